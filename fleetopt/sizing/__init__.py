"""Sizing pools: the exact model of one pool, families of pools, THE sizer every planner and the
evaluator call, the MIP's candidate pools, and the fleet-wide limits and objective keys.

Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.sizing.candidates import (
        Candidate,
        CandidateSet,
        build_candidates,
        exact_power_table,
        prune_dominated,
    )
    from fleetopt.sizing.family import NotStackable, family_mix
    from fleetopt.sizing.limits import Limits, objective_key, pick, plan_key
    from fleetopt.sizing.poolmodel import PoolModel
    from fleetopt.sizing.servemodel import InstancePhysics, ServeFamily, physics_of
    from fleetopt.sizing.sizer import SizedPool, Sizer, pool_model

__all__ = [
    "Candidate", "CandidateSet", "InstancePhysics", "Limits", "NotStackable", "PoolModel",
    "ServeFamily", "SizedPool", "Sizer", "build_candidates", "exact_power_table", "family_mix",
    "objective_key", "physics_of", "pick", "plan_key", "pool_model", "prune_dominated",
]
__getattr__, __dir__ = attach(__name__, globals())
