"""The fleet MIP: its arrays (:mod:`.data`), the HiGHS backend (:mod:`.highs`), the Pyomo model
and solver options (:mod:`.pyomo`), :func:`solve` (:mod:`.solve`), bounds for stopped runs
(:mod:`.bounds`) and explanations of infeasibility (:mod:`.explain`).

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.planners.mip.bounds import path_bound, range_floors
    from fleetopt.planners.mip.data import MipData, SolverRun, build_mip_data
    from fleetopt.planners.mip.explain import apply_changes, diagnose
    from fleetopt.planners.mip.highs import HighsModel, run_limited
    from fleetopt.planners.mip.pyomo import SOLVER_OPTIONS, build_pyomo_model, solver_arguments
    from fleetopt.planners.mip.solve import explain_infeasible, plan_solution

# ``solve`` (the function) is ``fleetopt.solve`` or ``fleetopt.planners.mip.solve.solve``: here
# the name is the module (a lazily re-exported name must not be a submodule's name)
__all__ = [
    "SOLVER_OPTIONS", "HighsModel", "MipData", "SolverRun", "apply_changes", "build_mip_data",
    "build_pyomo_model", "diagnose", "explain_infeasible", "path_bound", "plan_solution",
    "range_floors", "run_limited", "solver_arguments",
]
__getattr__, __dir__ = attach(__name__, globals())
