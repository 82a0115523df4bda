"""fleetopt: plan LLM-inference GPU fleets by mixed-integer optimisation.

Quick use::

    import fleetopt as fo
    problem = fo.load_config("azure-h100")        # a shipped example, or a path to a TOML
    solution = fo.solve(problem)                  # the MIP optimum (HiGHS)
    solution.to_frame()                           # pools as a DataFrame

``import fleetopt`` loads nothing heavy: every name below is imported from its module the first
time it is used (:mod:`fleetopt.core.lazy`), so pandas, scipy, pyomo and matplotlib load only
when a result needs them. The layout is ``docs/architecture.md``.
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach
from fleetopt.core.version import __version__

if TYPE_CHECKING:
    from fleetopt.core.errors import FleetoptError
    from fleetopt.core.status import Status
    from fleetopt.evaluation import (
        FleetResult,
        PoolResult,
        evaluate,
        evaluate_plan,
        size_fleet,
    )
    from fleetopt.physics.catalog import Catalog, GPUSpec, ModelSpec, default_catalog
    from fleetopt.physics.profiles import Deployment, PhysicsParams, resolve
    from fleetopt.planners.baselines import homogeneous, pool_routing, two_pool
    from fleetopt.planners.mip.solve import solve
    from fleetopt.planners.solution import Solution
    from fleetopt.problem.config import load_config
    from fleetopt.problem.fleet import Fleet, PoolSpec
    from fleetopt.problem.problem import Problem
    from fleetopt.problem.settings import Settings
    from fleetopt.problem.workload import Workload, builtin, from_cdf_file, from_trace_file
    from fleetopt.sim.api import simulate, simulate_problem
    from fleetopt.sim.result import SimResult
    from fleetopt.sizing.poolmodel import PoolModel
    from fleetopt.studies.compare import compare
    from fleetopt.studies.procurement import procurement_study

__all__ = [
    "Catalog", "Deployment", "Fleet", "FleetResult", "FleetoptError", "GPUSpec", "ModelSpec",
    "PhysicsParams", "PoolModel", "PoolResult", "PoolSpec", "Problem", "Settings", "SimResult",
    "Solution", "Status", "Workload", "__version__", "builtin", "compare", "default_catalog",
    "evaluate", "evaluate_plan", "from_cdf_file", "from_trace_file", "homogeneous",
    "load_config", "pool_routing", "procurement_study", "resolve", "simulate",
    "simulate_problem", "size_fleet", "solve", "two_pool",
]
__getattr__, __dir__ = attach(__name__, globals())
