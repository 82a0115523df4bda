"""The planning problem: ONE schema (:mod:`.schema`) that validates TOML configs, sweep scenarios
and Python alike; the SLO settings, the workload, fleets, the :class:`Problem` and TOML configs.

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.problem.config import (
        example_names,
        load_config,
        problem_from_dict,
        resolve_config_path,
        sweep_example_names,
    )
    from fleetopt.problem.fleet import Fleet, PoolSpec
    from fleetopt.problem.problem import Problem, default_boundaries
    from fleetopt.problem.schema import FIELDS, OBJECTIVES, SCENARIO_FIELDS, Field
    from fleetopt.problem.settings import Settings
    from fleetopt.problem.workload import (
        Workload,
        auto_peak_factor,
        builtin,
        builtin_names,
        from_cdf_file,
        from_trace_file,
        paper_sampled,
        trace_of,
    )

__all__ = [
    "FIELDS", "OBJECTIVES", "SCENARIO_FIELDS", "Field", "Fleet", "PoolSpec", "Problem", "Settings",
    "Workload", "auto_peak_factor", "builtin", "builtin_names", "default_boundaries",
    "example_names", "from_cdf_file", "from_trace_file", "load_config", "paper_sampled",
    "problem_from_dict", "resolve_config_path", "sweep_example_names", "trace_of",
]
__getattr__, __dir__ = attach(__name__, globals())
