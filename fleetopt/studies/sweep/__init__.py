"""Scenario sweeps: solve (and optionally simulate) many variants of one base problem, on a
sequential, process-pool or Dask executor, resumably, into one tidy DataFrame.

:mod:`.spec` (scenarios and their checks), :mod:`.run` (one scenario), :mod:`.executors`,
:mod:`.checkpoint`, :mod:`.results`, :mod:`.study` (:class:`Study`, SWEEP.toml). Names load
lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.studies.sweep.checkpoint import checkpoint_path, read_checkpoint
    from fleetopt.studies.sweep.executors import EXECUTORS
    from fleetopt.studies.sweep.results import (
        RESULT_COLUMNS,
        SIM_COLUMNS,
        read_results,
        save_results,
    )
    from fleetopt.studies.sweep.run import run_scenario
    from fleetopt.studies.sweep.spec import SCENARIO_KEYS, scenario_problem
    from fleetopt.studies.sweep.study import Study, load_sweep, sweep_from_dict

__all__ = [
    "EXECUTORS", "RESULT_COLUMNS", "SCENARIO_KEYS", "SIM_COLUMNS", "Study", "checkpoint_path",
    "load_sweep", "read_checkpoint", "read_results", "run_scenario", "save_results",
    "scenario_problem", "sweep_from_dict",
]
__getattr__, __dir__ = attach(__name__, globals())
