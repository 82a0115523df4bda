"""Simulation results: per-pool and fleet statistics beside the analytical predictions.

:class:`SimStats` holds what the iteration engine measured over the window (one pool or the
whole fleet); :class:`PoolSim` one pool with its spec, engine limits, the evaluator's
predictions (``predicted``: ``{metric: value or None}``, written ``predicted_<metric>`` in the
JSON; None where the analytical model does not give that figure) and the verdicts;
:class:`SimResult` the run (``fleetopt.simulation/1``, ``docs/config.md``).

Verdicts, per pool (the fleet's: every pool with measured requests):

* ``ttft_met``: the simulated TTFT at the SLO quantile (``slo_ttft_ms``) is within the target;
* ``tpot_met``: the same for TPOT when a TPOT target is set (else None);
* ``slo_met``: ``ttft_met`` and, with a TPOT target, ``tpot_met``;
* ``delivers_offered_load``: the pool emitted at least ``min_delivered`` (0.97) of the output
  tokens offered to it in the measured window, or falls short of it by no more than the
  measurement's noise (``delivered_fraction + min(delivered_ci, 1 - min_delivered) >=
  min_delivered``: the backlog left at the window's end fluctuates, ``fleetopt.sim.metrics``;
  the allowance is at most the tolerance itself, so below ``2 min_delivered - 1`` (94 %) a
  pool never passes); a pool that cannot carry its load falls short by its backlog's growth;
* ``check_passed``: ``slo_met`` and ``delivers_offered_load`` (what ``--check`` tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fleetopt.core.jsonio import jsonable, to_json, versioned
from fleetopt.physics.profiles import Deployment
from fleetopt.problem.fleet import with_ep

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_MIN_DELIVERED", "PoolSim", "SimResult", "SimStats"]

#: relative slack of the SLO verdict (a simulated tail equal to the target meets it)
_SLO_RTOL = 1e-9
#: a pool delivers its offered load when it emits at least this share of the offered tokens
DEFAULT_MIN_DELIVERED = 0.97


@dataclass(frozen=True)
class SimStats:
    """Measured statistics of one pool (or of the whole fleet) over the measurement window.

    Latencies in ms over the measured requests (arrived in the window); NaN (JSON null) when
    there are none. ``*_ci_ms``: confidence-interval half-widths (batch means within one run,
    or Student-t across independent replications). With several replications, counts and
    energy are totals over them and every other figure the mean of the replications'.
    """

    requests: int  # measured (arrived in the window)
    finished: int  # of those, finished when the run stopped
    p50_ttft_ms: float
    p90_ttft_ms: float
    p99_ttft_ms: float
    mean_ttft_ms: float
    p50_ttft_ci_ms: float
    p90_ttft_ci_ms: float
    p99_ttft_ci_ms: float
    slo_ttft_ms: float  # TTFT at the SLO's quantile (the P99 when quantile = 0.99)
    wait_prob: float  # share of measured requests not admitted into a batch on arrival
    mean_wait_ms: float  # arrival to first admission
    p50_tpot_ms: float
    p90_tpot_ms: float
    p99_tpot_ms: float
    mean_tpot_ms: float
    p50_tpot_ci_ms: float
    p90_tpot_ci_ms: float
    p99_tpot_ci_ms: float
    slo_tpot_ms: float  # TPOT at the SLO's quantile
    p50_e2e_ms: float
    p99_e2e_ms: float
    mean_e2e_ms: float
    arrival_rate: float  # req/s offered in the window
    completion_rate: float  # req/s finished in the window (throughput)
    offered_output_tok_per_s: float  # output tokens of the requests offered in the window
    output_tok_per_s: float  # output tokens emitted in the window (delivered)
    delivered_fraction: float  # delivered / offered output tokens
    delivered_ci: float  # half-width (the backlog's noise; across replications: Student-t)
    preemptions: int  # in the window
    preempted_share: float  # of measured requests preempted at least once
    kv_utilization: float  # time-average of used / capacity KV (paged blocks or slots)
    busy_fraction: float  # compute utilisation: share of time running iterations
    compute_term_utilization: float  # time-average of the step cost's compute term (or NaN)
    memory_term_utilization: float  # ... and of its memory term
    compute_bound_fraction: float  # share of busy time in compute-bound iterations
    mean_batch: float  # running sequences per instance, time-averaged
    utilization: float  # = kv_utilization (the old slot occupancy, generalised)
    instances: int
    slots: int  # sequences an instance can hold at once (reserved: slots; paged: max_seqs)
    power_w: float  # time-averaged
    energy_j: float  # over the window
    tok_per_w: float  # output tok/s per W (= tokens per joule)
    tok_per_j: float
    hit_rate: float  # prefix-cache tokens hit / prompt tokens (NaN without block hashes)
    mean_in_system: float  # requests in the router queues and on the instances
    mean_time_in_system_s: float  # mean E2E


def _verdict(value: float, target: float) -> bool | None:
    if not (math.isfinite(target) and target > 0):
        return None
    if math.isnan(value):
        return None
    return bool(value <= target * (1 + _SLO_RTOL))


def _predicted(metric: str) -> property:
    """A read-only attribute: the evaluator's prediction of ``metric`` (None: none)."""
    return property(lambda self: self.predicted.get(metric),
                    doc=f"The evaluator's predicted ``{metric}`` (None when it has none).")


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
    predicted: Mapping[str, float | None] = field(default_factory=dict)
    ttft_target_ms: float = math.nan  # the SLO's TTFT target
    tpot_target_ms: float = math.nan  # the SLO's TPOT target (NaN: none)
    min_delivered: float = DEFAULT_MIN_DELIVERED
    limits: Mapping[str, Any] = field(default_factory=dict)  # the engine limits simulated
    power_w_series: tuple[float, ...] = ()  # mean watts per interval of the window
    ep: int | None = None  # a mixture of experts' expert parallelism (None: a dense model)

    @property
    def label(self) -> str:
        """The deployment, as tables print it (``H100-SXM TP8 fp16``, ``... TP4 EP4 fp8``)."""
        return Deployment(self.gpu, self.tp, self.dtype, ep=self.ep or 1).label()

    # the evaluator's figures that the JSON has always carried
    predicted_p99_ttft_ms = _predicted("p99_ttft_ms")
    predicted_power_w = _predicted("power_w")
    predicted_output_tok_per_s = _predicted("output_tok_per_s")
    predicted_utilization = _predicted("utilization")
    predicted_mean_batch = _predicted("mean_batch")

    @property
    def ttft_met(self) -> bool | None:
        """Did the simulated TTFT at the SLO quantile meet the target? ``None`` for a pool that
        received no measured request (or when no target is known)."""
        if self.stats.requests == 0:
            return None
        return _verdict(self.stats.slo_ttft_ms, self.ttft_target_ms)

    @property
    def tpot_met(self) -> bool | None:
        """The same for TPOT; ``None`` without a TPOT target."""
        if self.stats.requests == 0:
            return None
        return _verdict(self.stats.slo_tpot_ms, self.tpot_target_ms)

    @property
    def slo_met(self) -> bool | None:
        """``ttft_met`` and (with a TPOT target) ``tpot_met``; ``None`` without a verdict."""
        t = self.ttft_met
        if t is None:
            return None
        return t and self.tpot_met is not False

    @property
    def delivers_offered_load(self) -> bool | None:
        """Did the pool emit at least ``min_delivered`` of the output tokens offered to it in
        the window, within the measurement's noise (``delivered_ci``)? ``None`` for a pool with
        no measured request."""
        d = self.stats.delivered_fraction
        if self.stats.requests == 0 or not math.isfinite(d):
            return None
        ci = self.stats.delivered_ci
        slack = min(ci, 1.0 - self.min_delivered) if math.isfinite(ci) else 0.0
        return bool(d + slack >= self.min_delivered)

    @property
    def check_passed(self) -> bool | None:
        """``slo_met`` and ``delivers_offered_load`` (``None`` when neither has a verdict)."""
        return _check(self.slo_met, self.delivers_offered_load)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ctx_lo": self.ctx_lo, "ctx_hi": self.ctx_hi, "gpu": self.gpu, "tp": self.tp,
            "dtype": self.dtype, "window_tokens": self.window_tokens,
        }
        d.update(asdict(self.stats))
        d["compressed_share"] = self.compressed_share
        for k, v in self.predicted.items():
            d[f"predicted_{k}"] = v
        for k in ("ttft_target_ms", "tpot_target_ms", "slo_met", "ttft_met", "tpot_met",
                  "delivers_offered_load", "check_passed", "min_delivered"):
            d[k] = getattr(self, k)
        d["limits"] = dict(self.limits)
        d["power_w_series"] = list(self.power_w_series)
        return jsonable(with_ep(d, self.ep))


def _all(verdicts: list[bool | None]) -> bool | None:
    v = [x for x in verdicts if x is not None]
    return all(v) if v else None


def _check(slo_met: bool | None, delivers: bool | None) -> bool | None:
    """What ``--check`` tests: neither verdict failed (``None`` when neither has one)."""
    if slo_met is None and delivers is None:
        return None
    return slo_met is not False and delivers is not False


@dataclass
class SimResult:
    """Outcome of :func:`fleetopt.sim.simulate`.

    ``pools`` holds one :class:`PoolSim` per pool; ``totals`` the fleet-wide statistics (TTFT
    percentiles over all measured requests) with the evaluator's fleet figures beside them
    (``predicted_p99_ttft_ms`` is the worst pool's, as the evaluator reports it; compare it with
    ``worst_pool_p99_ttft_ms``), the fleet verdicts and the run's settings. ``requests`` holds
    the per-request records (every replication, column ``replication``); ``power_series`` each
    pool's mean watts over the window's intervals (replication 0); ``summaries`` the engine's
    own summaries (:class:`fleetopt.sim.metrics.SimSummary`, one per replication).
    """

    pools: tuple[PoolSim, ...]
    fleet_stats: SimStats
    predicted: dict[str, Any]
    run: dict[str, Any]
    requests: pd.DataFrame = field(repr=False)
    wall_s: float = 0.0
    power_series: pd.DataFrame = field(default_factory=lambda: _empty_frame(), repr=False)
    summaries: tuple[Any, ...] = field(default=(), repr=False)

    @property
    def slo_met(self) -> bool | None:
        """The fleet's latency verdict: every pool that received requests met its target(s)
        (``None`` when no pool has a verdict)."""
        return _all([p.slo_met for p in self.pools])

    @property
    def delivers_offered_load(self) -> bool | None:
        """Every pool with measured requests delivered its offered load."""
        return _all([p.delivers_offered_load for p in self.pools])

    @property
    def check_passed(self) -> bool | None:
        """What ``--check`` tests: the SLO is met and the offered load delivered."""
        return _check(self.slo_met, self.delivers_offered_load)

    @property
    def totals(self) -> dict[str, Any]:
        d = asdict(self.fleet_stats)
        active = [p for p in self.pools if p.stats.requests > 0]

        def worst(attr: str) -> float:
            vals = [getattr(p.stats, attr) for p in active]
            vals = [v for v in vals if not math.isnan(v)]
            return max(vals, default=math.nan)

        d["worst_pool_p99_ttft_ms"] = worst("p99_ttft_ms")
        d["worst_pool_slo_ttft_ms"] = worst("slo_ttft_ms")
        d["worst_pool_p99_tpot_ms"] = worst("p99_tpot_ms")
        d["worst_pool_slo_tpot_ms"] = worst("slo_tpot_ms")
        d["pools_missed"] = sum(1 for p in self.pools if p.slo_met is False)
        d["pools_not_delivering"] = sum(1 for p in self.pools
                                        if p.delivers_offered_load is False)
        d["slo_met"] = self.slo_met
        d["delivers_offered_load"] = self.delivers_offered_load
        d["check_passed"] = self.check_passed
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
        """Simulated vs predicted P99 TTFT and TPOT, power and throughput per pool, with
        ratios (NaN where the evaluator gives no prediction)."""
        import pandas as pd

        rows = []
        for k, p in enumerate(self.pools):
            s, pr = p.stats, p.predicted
            rows.append({
                "pool": k, "ctx": f"({p.ctx_lo}, {p.ctx_hi}]", "gpu": f"{p.gpu} TP{p.tp}",
                "instances": s.instances, "requests": s.requests,
                "sim_p99_ttft_ms": s.p99_ttft_ms, "sim_p99_ttft_ci_ms": s.p99_ttft_ci_ms,
                "pred_p99_ttft_ms": pr.get("p99_ttft_ms"),
                "p99_ratio": _ratio(s.p99_ttft_ms, pr.get("p99_ttft_ms")),
                "sim_p99_tpot_ms": s.p99_tpot_ms, "sim_p99_tpot_ci_ms": s.p99_tpot_ci_ms,
                "pred_p99_tpot_ms": pr.get("p99_tpot_ms"),
                "tpot_ratio": _ratio(s.p99_tpot_ms, pr.get("p99_tpot_ms")),
                "sim_power_w": s.power_w, "pred_power_w": pr.get("power_w"),
                "power_ratio": _ratio(s.power_w, pr.get("power_w")),
                "sim_tok_s": s.output_tok_per_s, "offered_tok_s": s.offered_output_tok_per_s,
                "pred_tok_s": pr.get("output_tok_per_s"),
                "tok_ratio": _ratio(s.output_tok_per_s, pr.get("output_tok_per_s")),
                "delivered": s.delivered_fraction, "preemptions": s.preemptions,
                "sim_kv_util": s.kv_utilization, "pred_kv_util": pr.get("kv_utilization"),
                "sim_batch": s.mean_batch, "pred_batch": pr.get("mean_batch"),
            })
        return pd.DataFrame(rows)


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame()


def _ratio(a: float, b: float | None) -> float:
    if b is None or not math.isfinite(b) or b <= 0:
        return math.nan
    return a / b
