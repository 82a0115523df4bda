"""What counts as meeting the SLO, and how watts and dollars are counted: :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from fleetopt.problem.schema import SETTINGS_FIELDS, check

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """What counts as meeting the SLO, and how watts and dollars are counted."""

    ttft_p99_ms: float = 500.0
    utilization_cap: float = 0.85
    accounting: str = "physical"  # physical | paper
    quantile: float = 0.99
    peak_factor: float = 1.0  # size pools for peak_factor x the mean rate (bursty arrivals)
    prefill_tail_share: float = 0.5  # of the 1-q tail, the most that prefill-alone-late prompts take

    @property
    def prefill_late_budget(self) -> float:
        """Largest share of requests that may miss the target by prefill alone (no waiting)."""
        return (1.0 - self.quantile) * self.prefill_tail_share + 1e-12

    def __post_init__(self) -> None:  # the schema's checks (fleetopt.problem.schema)
        for attr, path in SETTINGS_FIELDS.items():
            check(path, getattr(self, attr))

    @property
    def slo_s(self) -> float:
        return self.ttft_p99_ms / 1000.0
