"""Planners: each turns a :class:`~fleetopt.problem.Problem` into a
:class:`~fleetopt.planners.solution.Solution` (a plan, judged by the exact evaluator): the
baselines (:mod:`.baselines`), exhaustive enumeration (:mod:`.enumerate`) and the MIP
(:mod:`.mip`).

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.planners.baselines import best_baseline, homogeneous, pool_routing, two_pool
    from fleetopt.planners.enumerate import count_plans, enumerate_optimum
    from fleetopt.planners.mip.solve import solve
    from fleetopt.planners.solution import Solution

__all__ = ["Solution", "best_baseline", "count_plans", "enumerate_optimum", "homogeneous",
           "pool_routing", "solve", "two_pool"]
__getattr__, __dir__ = attach(__name__, globals())
