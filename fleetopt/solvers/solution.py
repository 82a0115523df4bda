"""The result type every solver returns (MIP, baselines, enumeration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fleetopt.evaluate import FleetResult
from fleetopt.fleet import Fleet
from fleetopt.io import to_json, versioned

STATUSES = ("optimal", "feasible", "infeasible", "time_limit", "error")


@dataclass
class Solution:
    """Outcome of one planning approach.

    ``objective`` is the solver's own objective value (for the MIP: under the piecewise
    linearisation); ``result`` is the exact evaluation of the returned plan, the judge of
    every plan; ``linearization_error = exact - objective`` (same units).
    """

    status: str
    approach: str
    objective_name: str = "power_w"
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    result: FleetResult | None = None
    linearization_error: float | None = None
    timing: dict[str, float] = field(default_factory=dict)
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.result is not None and self.result.feasible

    @property
    def fleet(self) -> Fleet | None:
        return None if self.result is None else self.result.fleet()

    @property
    def totals(self) -> dict[str, Any]:
        return {} if self.result is None else self.result.totals

    @property
    def pools(self) -> pd.DataFrame:
        return pd.DataFrame() if self.result is None else self.result.to_frame()

    @property
    def exact_objective(self) -> float | None:
        if self.result is None:
            return None
        return self.result.cost_per_hr if self.objective_name == "cost_per_hr" else self.result.power_w

    def to_frame(self) -> pd.DataFrame:
        return self.pools

    def to_dict(self) -> dict[str, Any]:
        """The ``fleetopt.plan/1`` JSON document (``docs/config.md``); its ``pools`` list is a
        valid FLEET.json."""
        return versioned("plan", {
            "approach": self.approach,
            "status": self.status,
            "objective": {"name": self.objective_name, "value": self.objective,
                          "bound": self.bound, "gap": self.gap},
            "linearization_error": self.linearization_error,
            "totals": self.totals,
            "pools": [] if self.result is None else [p.to_dict() for p in self.result.pools],
            "timing": {k: round(v, 6) for k, v in self.timing.items()},
            "message": self.message,
            # infeasible: relaxations that each make the problem feasible (every option a list
            # {text, changes: [{field, value, current}]}; fleetopt.solvers.explain)
            "relaxations": self.details.get("relaxations", []),
        })

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self.to_dict(), indent)

    def __repr__(self) -> str:  # compact
        t = self.totals
        return (f"Solution({self.approach}, {self.status}, power_w={t.get('power_w')}, "
                f"cost_per_hr={t.get('cost_per_hr')}, pools={len(self.result.pools) if self.result else 0})")
