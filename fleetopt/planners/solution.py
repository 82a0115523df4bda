"""The result type every solver returns (MIP, baselines, enumeration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetopt.core.jsonio import to_json, versioned
from fleetopt.core.status import USABLE, Status
from fleetopt.evaluation import FleetResult
from fleetopt.problem.fleet import Fleet
from fleetopt.sizing.limits import pick

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STATUSES", "Solution"]

#: every status a solution may have (the values of :class:`~fleetopt.core.status.Status`)
STATUSES = tuple(s.value for s in Status)


@dataclass
class Solution:
    """Outcome of one planning approach.

    ``status`` is a :class:`~fleetopt.core.status.Status` (a string enum: it compares equal to
    ``"optimal"`` etc. and is written so in JSON); ``objective`` is the solver's own objective
    value (for the MIP: under the piecewise linearisation); ``result`` is the exact evaluation
    of the returned plan, the judge of every plan; ``linearization_error = exact - objective``
    (same units).
    """

    status: Status
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

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # a plain string in, the enum out (a bad one fails)

    @property
    def feasible(self) -> bool:
        return self.result is not None and self.result.feasible

    @property
    def usable(self) -> bool:
        """A plan that meets the SLO, from a run that may carry one (optimal, feasible,
        stopped at the time limit)."""
        return self.feasible and self.status in USABLE

    @property
    def fleet(self) -> Fleet | None:
        return None if self.result is None else self.result.fleet()

    @property
    def totals(self) -> dict[str, Any]:
        return {} if self.result is None else self.result.totals

    @property
    def pools(self) -> pd.DataFrame:
        if self.result is None:
            import pandas as pd

            return pd.DataFrame()
        return self.result.to_frame()

    @property
    def exact_objective(self) -> float | None:
        if self.result is None:
            return None
        return pick(self.objective_name, self.result.power_w, self.result.cost_per_hr)

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
            # {text, changes: [{field, value, current}]}; fleetopt.planners.mip.explain)
            "relaxations": self.details.get("relaxations", []),
        })

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self.to_dict(), indent)

    def __repr__(self) -> str:  # compact
        t = self.totals
        return (f"Solution({self.approach}, {self.status}, power_w={t.get('power_w')}, "
                f"cost_per_hr={t.get('cost_per_hr')}, pools={len(self.result.pools) if self.result else 0})")
