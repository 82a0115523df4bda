"""Discrete-event simulation of the serving mechanism, to validate a plan's P99 TTFT,
throughput and power against the analytical evaluator (``docs/simulation.md``), and the
iteration-level engine (:mod:`.iteration`, ``docs/simulator_engine.md``; not yet behind
:func:`simulate`). No planner or study is imported here.

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.sim.api import route, simulate, simulate_problem
    from fleetopt.sim.arrivals import Arrivals, shipped_trace_names
    from fleetopt.sim.engine import DISPATCH_POLICIES, EngineOutput, EnginePool, run
    from fleetopt.sim.profile_cost import ProfileStepCost, profile_limits
    from fleetopt.sim.result import PoolSim, SimResult, SimStats
    from fleetopt.sim.timing import scalar_timing

__all__ = [
    "DISPATCH_POLICIES", "Arrivals", "EngineOutput", "EnginePool", "PoolSim", "ProfileStepCost",
    "SimResult", "SimStats", "profile_limits", "route", "run", "scalar_timing",
    "shipped_trace_names", "simulate", "simulate_problem",
]
__getattr__, __dir__ = attach(__name__, globals())
