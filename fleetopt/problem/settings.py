"""What counts as meeting the SLO, and how watts and dollars are counted: :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from fleetopt.problem.schema import SETTINGS_FIELDS, check

__all__ = ["Settings"]

#: settings whose absence (None) means "not set" (the profile's value, no target, no cache)
_OPTIONAL = frozenset({"tpot_p99_ms", "prefix_cache_hit"})


@dataclass(frozen=True)
class Settings:
    """What counts as meeting the SLO, and how watts and dollars are counted."""

    ttft_p99_ms: float = 500.0
    utilization_cap: float = 0.85
    accounting: str = "physical"  # physical | paper
    quantile: float = 0.99
    peak_factor: float = 1.0  # size pools for peak_factor x the mean rate (bursty arrivals)
    prefill_tail_share: float = 0.5  # of the 1-q tail, the most that prefill-alone-late prompts take
    tpot_p99_ms: float | None = None  # P99 over requests of their mean inter-token time (optional)
    kv_allocation: str = "paged"  # paged (blocks for the tokens held) | reserved (window slots)
    kv_overflow_prob: float = 1e-3  # most probability that in-flight KV exceeds the budget
    prefix_cache_hit: float | None = None  # share of prompt tokens from cache (None: 0, or
    # estimated per pool from a trace's block hashes)

    @property
    def prefill_late_budget(self) -> float:
        """Largest share of requests that may miss the target by prefill alone (no waiting)."""
        return (1.0 - self.quantile) * self.prefill_tail_share + 1e-12

    def __post_init__(self) -> None:  # the schema's checks (fleetopt.problem.schema)
        for attr, path in SETTINGS_FIELDS.items():
            v = getattr(self, attr)
            if v is not None or attr not in _OPTIONAL:
                check(path, v)

    @property
    def slo_s(self) -> float:
        return self.ttft_p99_ms / 1000.0

    @property
    def hit_share(self) -> float:
        """The prefix-cache hit share used when no estimate replaces it (0 when unset)."""
        return 0.0 if self.prefix_cache_hit is None else float(self.prefix_cache_hit)
