"""Studies built on the fleet MIP: procurement frontiers and scenario sweeps (``docs/studies.md``).

* :func:`procurement` / :func:`procurement_study`: the minimum-watt plan at every budget from one
  HiGHS model built once, plus the cheapest plan that meets the SLO;
* :class:`Study` / :func:`load_sweep`: solve (and optionally simulate) many scenarios of a base
  problem on a sequential, process-pool or Dask executor, resumably, into one tidy DataFrame;
* :func:`plot_frontier`, :func:`plot_topology`: the figures.
"""

from fleetopt.studies.plots import plot_frontier, plot_topology
from fleetopt.studies.procurement import (
    ProcurementResult,
    parse_budgets,
    procurement,
    procurement_study,
)
from fleetopt.studies.sweep import (
    SCENARIO_KEYS,
    Study,
    load_sweep,
    read_results,
    save_results,
    scenario_problem,
)

__all__ = [
    "SCENARIO_KEYS", "ProcurementResult", "Study", "load_sweep", "parse_budgets", "plot_frontier",
    "plot_topology", "procurement", "procurement_study", "read_results", "save_results",
    "scenario_problem",
]
