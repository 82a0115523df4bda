"""Fleet-wide limits and the objective, in one place.

* :class:`Limits`: the budget ($/hr, in the problem's accounting), the per-type GPU inventory
  (physical GPUs, ``instances * gpus_per_instance``, calibrated profiles included), the GPU cap
  and the pool count of a problem, and THE check of a plan against them (baselines, the
  enumerator and the MIP's warm start; the MIP states the same limits as rows,
  :mod:`fleetopt.planners.mip.data`).
* :func:`objective_key`: a problem's objective (``power``, ``cost``, ``power_then_cost``) as the
  quantity it minimises first (``power_w`` or ``cost_per_hr``); :func:`pick` reads that quantity
  and :func:`plan_key` orders plans by it, the other quantity breaking ties.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Limits", "objective_key", "pick", "plan_key"]

#: the objective's quantity, by ``[objective] minimize``
_KEYS = {"power": "power_w", "cost": "cost_per_hr", "power_then_cost": "power_w"}


def objective_key(objective: str) -> str:
    """``power_w`` or ``cost_per_hr``: what ``objective`` minimises (first)."""
    try:
        return _KEYS[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}") from None


def pick(key: str, power_w: float, cost_per_hr: float) -> float:
    """The figure named by an objective key (:func:`objective_key`)."""
    return cost_per_hr if key == "cost_per_hr" else power_w


def plan_key(objective: str, power_w: float, cost_per_hr: float) -> tuple[float, float]:
    """Sort key of a plan: the objective's quantity first, the other as tie-break (rounded to
    1e-9 so that equal plans tie whatever the order of summation)."""
    if objective_key(objective) == "cost_per_hr":
        return (round(cost_per_hr, 9), round(power_w, 9))
    return (round(power_w, 9), round(cost_per_hr, 9))


@dataclass(frozen=True)
class Limits:
    """The fleet-wide limits of a problem (``None``/empty: no such limit)."""

    budget_per_hr: float | None = None
    inventory: Mapping[str, int] = field(default_factory=dict)
    max_gpus: int | None = None
    max_pools: int | None = None

    @classmethod
    def of(cls, problem: Any) -> Limits:
        return cls(problem.budget_per_hr, dict(problem.inventory), problem.max_gpus,
                   problem.max_pools)

    @property
    def bounded(self) -> bool:
        """Whether a budget, an inventory or a GPU cap couples the pools (without them the
        objective separates by pool)."""
        return self.budget_per_hr is not None or bool(self.inventory) or self.max_gpus is not None

    def violation(self, cost_per_hr: float, gpus_by_type: Mapping[str, int],
                  pools: int | None = None) -> str:
        """Why a plan of ``pools`` pools costing ``cost_per_hr`` with ``gpus_by_type`` physical
        GPUs (by inventory key) breaks a limit; ``""`` when it does not."""
        if pools is not None and self.max_pools is not None and pools > self.max_pools:
            return f"max_pools: {pools} pools > {self.max_pools}"
        if self.budget_per_hr is not None and cost_per_hr > self.budget_per_hr + 1e-9:
            return f"budget: ${cost_per_hr:,.2f}/h > ${self.budget_per_hr:,.2f}/h"
        for g, cap in self.inventory.items():
            if gpus_by_type.get(g, 0) > cap:
                return f"inventory: {gpus_by_type[g]} {g} GPUs > {cap}"
        total = sum(gpus_by_type.values())
        if self.max_gpus is not None and total > self.max_gpus:
            return f"max_gpus: {total} GPUs > {self.max_gpus}"
        return ""

    def allows(self, cost_per_hr: float, gpus_by_type: Mapping[str, int],
               pools: int | None = None) -> bool:
        return not self.violation(cost_per_hr, gpus_by_type, pools)
