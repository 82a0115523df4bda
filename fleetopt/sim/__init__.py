"""The serving simulator: every pool's instances run the engine scheduler iteration by
iteration (:mod:`.iteration`, ``docs/simulator_engine.md``), to validate a plan's P99 TTFT and
TPOT, throughput and power against the analytical evaluator (``docs/simulation.md``). It
shares with the analytical model only the per-iteration step cost (:mod:`.costs`). No planner
or study is imported here.

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.sim.api import PREDICTIONS, route, simulate, simulate_problem
    from fleetopt.sim.arrivals import Arrivals, shipped_trace_names
    from fleetopt.sim.costs import instance_limits, profile_step_cost
    from fleetopt.sim.dispatch import POLICIES
    from fleetopt.sim.iteration import InstanceLimits, PoolConfig, StepCost, simulate_pools
    from fleetopt.sim.profile_cost import ProfileStepCost, profile_limits
    from fleetopt.sim.result import PoolSim, SimResult, SimStats

__all__ = [
    "POLICIES", "PREDICTIONS", "Arrivals", "InstanceLimits", "PoolConfig", "PoolSim",
    "ProfileStepCost", "SimResult", "SimStats", "StepCost", "instance_limits",
    "profile_limits", "profile_step_cost", "route", "shipped_trace_names", "simulate",
    "simulate_pools", "simulate_problem",
]
__getattr__, __dir__ = attach(__name__, globals())
