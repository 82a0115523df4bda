"""The outcome of a planning run: one enum, whose string values are the JSON's ``status``."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["USABLE", "Status"]


class Status(StrEnum):
    """How a solve (MIP, baseline, enumeration, a procurement point) ended.

    A ``StrEnum``: ``Status.OPTIMAL == "optimal"``, and ``str()``, f-strings and JSON give the
    plain value, so every document keeps ``"status": "optimal"``.
    """

    OPTIMAL = "optimal"  # proven optimal (within the MIP gap)
    FEASIBLE = "feasible"  # a plan, not proven optimal (the solver stopped for another reason)
    INFEASIBLE = "infeasible"  # proven: no plan meets the SLO and the limits
    TIME_LIMIT = "time_limit"  # stopped at the time limit (with the best plan so far, if any)
    ERROR = "error"  # the solver failed, or an internal check rejected its answer


#: statuses whose run may carry a plan
USABLE = frozenset({Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT})
