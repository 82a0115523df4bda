"""Simulation results: per-pool and fleet statistics beside the analytical predictions."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.core.jsonio import jsonable, to_json, versioned
from fleetopt.problem.fleet import with_ep

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PoolSim", "SimResult", "SimStats", "percentile_ms"]

#: relative slack of the SLO verdict (a simulated tail equal to the target meets it)
_SLO_RTOL = 1e-9


@dataclass(frozen=True)
class SimStats:
    """Measured statistics of one pool (or of the whole fleet) over the measurement window."""

    requests: int  # measured (post-warm-up) requests
    p50_ttft_ms: float
    p90_ttft_ms: float
    p99_ttft_ms: float
    mean_ttft_ms: float
    wait_prob: float  # share of measured requests that queued
    mean_wait_ms: float
    p50_tpot_ms: float
    p99_tpot_ms: float
    p50_e2e_ms: float
    p99_e2e_ms: float
    arrival_rate: float  # req/s in the window
    completion_rate: float  # req/s finished in the window
    output_tok_per_s: float
    power_w: float  # time-averaged
    energy_j: float  # over the window
    tok_per_w: float
    mean_batch: float  # time-averaged sequences in flight per instance
    utilization: float  # mean_batch / slots
    instances: int
    slots: int
    slo_ttft_ms: float = math.nan  # TTFT at the SLO's quantile (the P99 when quantile = 0.99)


@dataclass(frozen=True)
class PoolSim:
    """One pool: its spec, what the simulator measured and what the evaluator predicted."""

    ctx_lo: int
    ctx_hi: int
    gpu: str
    tp: int
    dtype: str
    window_tokens: int
    stats: SimStats
    compressed_share: float
    predicted_p99_ttft_ms: float
    predicted_power_w: float
    predicted_output_tok_per_s: float
    predicted_utilization: float
    predicted_mean_batch: float
    ttft_target_ms: float = math.nan  # the SLO's TTFT target
    ep: int | None = None  # a mixture of experts' expert parallelism (None: a dense model)

    @property
    def slo_met(self) -> bool | None:
        """Did the simulated TTFT at the SLO quantile meet the target? ``None`` for a pool that
        received no measured request (or when no target is known)."""
        if self.stats.requests == 0 or not math.isfinite(self.ttft_target_ms):
            return None
        return bool(self.stats.slo_ttft_ms <= self.ttft_target_ms * (1 + _SLO_RTOL))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ctx_lo": self.ctx_lo, "ctx_hi": self.ctx_hi, "gpu": self.gpu, "tp": self.tp,
            "dtype": self.dtype, "window_tokens": self.window_tokens,
        }
        d.update(asdict(self.stats))
        d["compressed_share"] = self.compressed_share
        for k in ("predicted_p99_ttft_ms", "predicted_power_w", "predicted_output_tok_per_s",
                  "predicted_utilization", "predicted_mean_batch", "ttft_target_ms", "slo_met"):
            d[k] = getattr(self, k)
        return jsonable(with_ep(d, self.ep))


@dataclass
class SimResult:
    """Outcome of :func:`fleetopt.sim.simulate`.

    ``pools`` holds one :class:`PoolSim` per pool; ``totals`` the fleet-wide statistics (TTFT
    percentiles over all measured requests) with the evaluator's fleet figures beside them
    (``predicted_p99_ttft_ms`` is the worst pool's, as the evaluator reports it; compare it with
    ``worst_pool_p99_ttft_ms``). ``requests`` holds the per-request records.
    """

    pools: tuple[PoolSim, ...]
    fleet_stats: SimStats
    predicted: dict[str, float]
    run: dict[str, Any]
    requests: pd.DataFrame = field(repr=False)
    wall_s: float = 0.0
    power_series: pd.DataFrame = field(default_factory=lambda: _empty_frame(), repr=False)  # t_s, pool, power_w

    @property
    def slo_met(self) -> bool | None:
        """The fleet's verdict: every pool that received requests met the target (``None``
        when no pool has a verdict)."""
        verdicts = [p.slo_met for p in self.pools if p.slo_met is not None]
        return all(verdicts) if verdicts else None

    @property
    def totals(self) -> dict[str, Any]:
        d = asdict(self.fleet_stats)
        active = [p for p in self.pools if p.stats.requests > 0]
        d["worst_pool_p99_ttft_ms"] = max((p.stats.p99_ttft_ms for p in active), default=0.0)
        d["worst_pool_slo_ttft_ms"] = max((p.stats.slo_ttft_ms for p in active), default=0.0)
        d["pools_missed"] = sum(1 for p in self.pools if p.slo_met is False)
        d["slo_met"] = self.slo_met
        d.update(self.predicted)
        d.update(self.run)
        return jsonable(d)

    def to_frame(self) -> pd.DataFrame:
        """One row per pool."""
        import pandas as pd

        return pd.DataFrame([p.to_dict() for p in self.pools])

    def to_dict(self) -> dict[str, Any]:
        """The ``fleetopt.simulation/1`` JSON document (``docs/config.md``)."""
        return versioned("simulation", {"pools": [p.to_dict() for p in self.pools],
                                        "totals": self.totals})

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self.to_dict(), indent)

    def comparison(self) -> pd.DataFrame:
        """Simulated vs predicted P99 TTFT, power and throughput per pool, with ratios."""
        import pandas as pd

        rows = []
        for k, p in enumerate(self.pools):
            s = p.stats
            rows.append({
                "pool": k, "ctx": f"({p.ctx_lo}, {p.ctx_hi}]", "gpu": f"{p.gpu} TP{p.tp}",
                "instances": s.instances, "requests": s.requests,
                "sim_p99_ttft_ms": s.p99_ttft_ms, "pred_p99_ttft_ms": p.predicted_p99_ttft_ms,
                "p99_ratio": _ratio(s.p99_ttft_ms, p.predicted_p99_ttft_ms),
                "sim_power_w": s.power_w, "pred_power_w": p.predicted_power_w,
                "power_ratio": _ratio(s.power_w, p.predicted_power_w),
                "sim_tok_s": s.output_tok_per_s, "pred_tok_s": p.predicted_output_tok_per_s,
                "tok_ratio": _ratio(s.output_tok_per_s, p.predicted_output_tok_per_s),
                "sim_util": s.utilization, "pred_util": p.predicted_utilization,
            })
        return pd.DataFrame(rows)


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(b) and b > 0 else float("nan")


def percentile_ms(x: NDArray, q: float) -> float:
    return float(np.percentile(x, q) * 1000.0) if len(x) else 0.0
