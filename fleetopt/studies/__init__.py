"""Studies built on the planners and the simulator (``docs/studies.md``, ``docs/simulation.md``):

* :mod:`.compare`: every approach side by side on one problem;
* :mod:`.procurement`: the minimum-watt plan at every budget from one HiGHS model built once,
  plus the cheapest plan that meets the SLO;
* :mod:`.sweep`: many scenarios of a base problem, on a sequential, process-pool or Dask
  executor, resumably, into one tidy DataFrame;
* :mod:`.validation`: the simulator against the analytical evaluator.

The figures are :mod:`fleetopt.report.plots`. Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

# ``compare`` and ``procurement`` are the modules here (``fleetopt.compare`` is the function;
# a lazily re-exported name must not be a submodule's name)
if TYPE_CHECKING:
    from fleetopt.studies.compare import compare_solutions, comparison_frame
    from fleetopt.studies.procurement import ProcurementResult, parse_budgets, procurement_study
    from fleetopt.studies.sweep import (
        SCENARIO_KEYS,
        Study,
        load_sweep,
        read_results,
        save_results,
        scenario_problem,
    )

__all__ = [
    "SCENARIO_KEYS", "ProcurementResult", "Study", "compare_solutions", "comparison_frame",
    "load_sweep", "parse_budgets", "procurement_study", "read_results", "save_results",
    "scenario_problem",
]
__getattr__, __dir__ = attach(__name__, globals())
