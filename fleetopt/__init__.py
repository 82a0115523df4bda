"""fleetopt: plan LLM-inference GPU fleets by mixed-integer optimisation.

Quick use::

    import fleetopt as fo
    problem = fo.load_config("azure-h100")        # a shipped example, or a path to a TOML
    solution = fo.solve(problem)                  # the MIP optimum (HiGHS)
    solution.to_frame()                           # pools as a DataFrame
"""

from fleetopt.catalog import Catalog, GPUSpec, ModelSpec, default_catalog
from fleetopt.errors import FleetoptError
from fleetopt.evaluate import FleetResult, PoolResult, evaluate
from fleetopt.fleet import Fleet, PoolSpec
from fleetopt.poolmodel import PoolModel, Settings
from fleetopt.problem import Problem, load_config
from fleetopt.profiles import Deployment, PhysicsParams, resolve
from fleetopt.workload import Workload, builtin, from_cdf_file, from_trace_file

__version__ = "0.1.0"

__all__ = [
    "Catalog", "Deployment", "Fleet", "FleetResult", "FleetoptError", "GPUSpec", "ModelSpec",
    "PhysicsParams", "PoolModel", "PoolResult", "PoolSpec", "Problem", "Settings", "Workload",
    "builtin", "default_catalog", "evaluate", "from_cdf_file", "from_trace_file", "load_config",
    "resolve",
]


def __getattr__(name: str):  # lazy: solvers import pyomo, which is slow to import
    if name in ("solve", "Solution"):
        from fleetopt.solvers import mip

        return getattr(mip, name)
    if name in ("compare",):
        from fleetopt import compare as _c

        return _c.compare
    if name in ("simulate",):
        from fleetopt.sim import simulate

        return simulate
    raise AttributeError(name)
