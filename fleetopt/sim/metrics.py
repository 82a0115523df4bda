"""Metric summaries of an iteration-level simulation, with confidence intervals.

:func:`summarize` turns an :class:`~fleetopt.sim.iteration.IterationSimOutput` into one
:class:`PoolSummary` per pool and one for the fleet:

* latency over the MEASURED requests (arrived in the window): P50/P90/P99 of TTFT and TPOT
  (mean inter-token time, requests of two or more output tokens) and E2E, in ms. A request not
  finished when the run stopped (``until_s``) counts as +inf (a percentile reaching it is inf);
* a confidence interval for each P50, P90 and P99 by batch means: the measured requests, in
  arrival order, are cut into ``batches`` consecutive batches; the half-width is Student's
  ``t(1 - (1-confidence)/2, batches-1) * sd(batch quantiles) / sqrt(batches)`` around the
  quantile of all measured requests;
* throughput within the window: completions/s and output tokens/s (tokens emitted by iterations
  ending in the window), beside the offered load (arrivals/s and their output tokens/s);
  ``delivered_fraction`` = delivered / offered output tokens: about 1 below saturation, well
  below 1 for a pool that cannot carry its load. Exactly, delivered = offered + ``R(t0) -
  R(t1)``, ``R(t)`` the output tokens still owed at ``t`` to the requests in the system, so a
  stable pool's share is off 1 by the backlog's fluctuation between the window's two ends,
  and a saturated pool's by its growth. ``delivered_ci`` is the half-width of that noise:
  ``z sqrt(2) sd(R) / offered`` (``z`` the normal quantile of the confidence), ``sd(R)`` from
  ``R`` at 41 evenly spaced times of the window after removing its linear trend (a growing
  backlog is the signal, not noise); a request's tokens owed are all of its output before its
  first token, then its remaining decode steps at its own mean inter-token time;
* preemptions, KV utilisation (time-average of used / capacity), compute utilisation (fraction
  of wall time running iterations; with a splitting step cost also the time-averages of its
  compute and memory terms and the share of busy time that is compute-bound), mean batch,
  energy, mean power, output tokens per joule, prefix-cache hit rate (tokens hit at first
  admission / prompt tokens of the measured requests), mean requests in the system (router
  queue + instances) and mean time in the system (Little's law: the first is about the
  arrival rate times the second).

:func:`replicate` runs independent replications (streams drawn from independent seeds of one
``numpy.random.SeedSequence``) and reports each metric's mean and Student-t confidence interval
across them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from fleetopt.core.errors import FleetoptError
from fleetopt.sim.iteration import (
    IterationSimOutput,
    PoolConfig,
    RequestRecords,
    RequestStream,
    simulate_pools,
)

__all__ = ["DEFAULT_BATCHES", "DEFAULT_CONFIDENCE", "PoolSummary", "ReplicationSummary",
           "SimSummary", "batch_means_ci", "percentile_ms", "replicate", "summarize",
           "t_half_width"]

DEFAULT_BATCHES = 10
DEFAULT_CONFIDENCE = 0.95


def percentile_ms(x: NDArray[np.float64], q: float) -> float:
    """The ``q``-th percentile of ``x`` seconds in ms (NaN if empty; inf-aware)."""
    if len(x) == 0:
        return math.nan
    if np.all(np.isfinite(x)):
        return float(np.percentile(x, q)) * 1000.0
    return float(np.percentile(x, q, method="higher")) * 1000.0


def batch_means_ci(x: NDArray[np.float64], q: float, batches: int,
                   confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Half-width (ms) of the batch-means confidence interval of the ``q``-th percentile of
    ``x`` (seconds, in arrival order); NaN if there are fewer than two values per batch."""
    n = len(x)
    if batches < 2 or n < 2 * batches:
        return math.nan
    edges = np.linspace(0, n, batches + 1).astype(int)
    vals = np.array([percentile_ms(x[a:b], q) for a, b in zip(edges[:-1], edges[1:],
                                                                 strict=True)])
    if not np.all(np.isfinite(vals)):
        return math.inf
    return t_half_width(vals, confidence)


def t_half_width(vals: ArrayLike, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Student-t half-width of the mean of independent values (batch means, replications):
    ``t(1 - (1-confidence)/2, n-1) sd / sqrt(n)``; NaN with fewer than two values or any that
    is not finite."""
    v = np.asarray(vals, dtype=float)
    n = len(v)
    if n < 2 or not np.all(np.isfinite(v)):
        return math.nan
    tq = float(sps.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1))
    return tq * float(np.std(v, ddof=1)) / math.sqrt(n)


@dataclass(frozen=True)
class PoolSummary:
    """One pool's (or the fleet's) measured figures over the window."""

    pool: str  # pool index, or "fleet"
    instances: int
    requests: int  # measured
    finished: int  # measured and finished when the run stopped
    p50_ttft_ms: float
    p90_ttft_ms: float
    p99_ttft_ms: float
    p99_ttft_ci_ms: float  # half-width (batch means)
    mean_ttft_ms: float
    p50_tpot_ms: float
    p90_tpot_ms: float
    p99_tpot_ms: float
    p99_tpot_ci_ms: float
    mean_tpot_ms: float
    p50_ttft_ci_ms: float  # half-widths of the P50 and P90 (batch means)
    p90_ttft_ci_ms: float
    p50_tpot_ci_ms: float
    p90_tpot_ci_ms: float
    p50_e2e_ms: float
    p99_e2e_ms: float
    mean_e2e_ms: float
    wait_prob: float  # share of measured requests not admitted at once on arrival
    mean_wait_ms: float  # arrival to first admission into a batch
    offered_rps: float
    throughput_rps: float  # completions in the window / span
    offered_output_tok_per_s: float
    output_tok_per_s: float
    delivered_fraction: float
    delivered_ci: float  # half-width: the backlog's fluctuation between the window's ends
    preemptions: int  # in the window
    preempted_share: float  # of measured requests preempted at least once
    kv_utilization: float
    busy_fraction: float  # compute utilisation: share of time running iterations
    compute_term_utilization: float  # NaN unless the step cost exposes its split
    memory_term_utilization: float
    compute_bound_fraction: float  # of busy time
    mean_batch: float  # running sequences per instance, time-averaged
    energy_j: float
    power_w: float
    tok_per_j: float
    hit_rate: float
    mean_in_system: float  # requests in the router queue and on the instances, time-averaged
    mean_time_in_system_s: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _clean(v) for k, v in asdict(self).items()}


def _clean(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


@dataclass(frozen=True)
class SimSummary:
    """Per-pool and fleet summaries, the power series and the run's settings."""

    pools: tuple[PoolSummary, ...]
    fleet: PoolSummary
    power: pd.DataFrame
    run: dict[str, Any]

    def to_frame(self) -> pd.DataFrame:
        """One row per pool, then the fleet."""
        return pd.DataFrame([asdict(p) for p in (*self.pools, self.fleet)])

    def to_dict(self) -> dict[str, Any]:
        return {"pools": [p.to_dict() for p in self.pools], "fleet": self.fleet.to_dict(),
                "run": self.run}


#: times of the window at which the output backlog is sampled (``delivered_ci``)
_BACKLOG_SAMPLES = 41


def owed_tokens(r: RequestRecords, mask: NDArray[np.bool_],
                t_s: ArrayLike) -> NDArray[np.float64]:
    """Output tokens still owed at each time of ``t_s`` to the requests of ``mask`` then in
    the system: all of a request's output before its first token, then its remaining decode
    steps at its own mean inter-token time (unfinished requests: all still owed)."""
    t_all = np.atleast_1d(np.asarray(t_s, dtype=float))
    done = np.nan_to_num(r.done_s[mask], nan=math.inf)
    arr = r.arrival_s[mask]
    live = (arr <= t_all.max()) & (done > t_all.min())  # in the system at some sampled time
    arr, done = arr[live], done[live]
    first = np.nan_to_num(r.first_token_s[mask][live], nan=math.inf)
    lout = r.output_tokens[mask][live].astype(float)
    with np.errstate(invalid="ignore"):
        span = done - first  # inf - inf (never started) is NaN: all still owed
    ok = np.isfinite(span) & (span > 0)
    out = np.empty(len(t_all))
    for j, t in enumerate(t_all):
        frac = np.where(ok, (done - t) / np.where(ok, span, 1.0), 1.0)
        owed = np.where(t < first, lout, np.maximum(lout - 1.0, 0.0) * np.clip(frac, 0.0, 1.0))
        out[j] = float(np.where((arr <= t) & (t < done), owed, 0.0).sum())
    return out


def _delivered_ci(r: Any, mask: NDArray[np.bool_], window_s: tuple[float, float],
                  offered_tok: float, confidence: float) -> float:
    """Half-width of the delivered share's noise (module docstring); NaN without offered
    tokens."""
    t0, t1 = window_s
    if not offered_tok > 0 or not t1 > t0:
        return math.nan
    ts = np.linspace(t0, t1, _BACKLOG_SAMPLES)
    owed = owed_tokens(r, mask, ts)
    resid = owed - np.polyval(np.polyfit(ts, owed, 1), ts)
    z = float(sps.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    return z * math.sqrt(2.0) * float(np.std(resid, ddof=2)) / offered_tok


def _summary(out: IterationSimOutput, label: str, req_mask: NDArray[np.bool_],
             inst_mask: NDArray[np.bool_], queue_s: float, batches: int,
             confidence: float) -> PoolSummary:
    r = out.requests
    ins = out.instances
    span = out.span_s
    m = req_mask & r.measured
    order = np.argsort(r.arrival_s[m], kind="stable")
    ttft = np.nan_to_num(r.ttft_s[m][order], nan=math.inf)
    two = (r.output_tokens[m] > 1)[order]
    tpot = np.nan_to_num(r.tpot_s[m][order], nan=math.inf)[two]
    e2e = np.nan_to_num(r.e2e_s[m][order], nan=math.inf)
    wait = np.nan_to_num(r.wait_s[m], nan=math.inf)
    done_in = req_mask & (r.done_s >= out.window_s[0]) & (r.done_s <= out.window_s[1])
    ni = int(inst_mask.sum())
    tok = float(ins.output_tokens[inst_mask].sum())
    offered_tok = float(r.output_tokens[m].sum())
    energy = float(ins.energy_j[inst_mask].sum())
    split = ins.compute_term_s[inst_mask]
    busy = float(ins.busy_s[inst_mask].sum())
    n_m = int(m.sum())

    def mean_ms(x: NDArray[np.float64]) -> float:
        return float(np.mean(x)) * 1000.0 if len(x) else math.nan

    def per_inst(x: NDArray[np.float64]) -> float:
        return float(x[inst_mask].sum()) / span / ni if ni else math.nan

    prompt = float(r.input_tokens[m].sum())
    return PoolSummary(
        delivered_ci=_delivered_ci(r, req_mask, out.window_s, offered_tok, confidence),
        pool=label, instances=ni, requests=n_m, finished=int(np.isfinite(r.done_s[m]).sum()),
        p50_ttft_ms=percentile_ms(ttft, 50), p90_ttft_ms=percentile_ms(ttft, 90),
        p99_ttft_ms=percentile_ms(ttft, 99),
        p99_ttft_ci_ms=batch_means_ci(ttft, 99, batches, confidence), mean_ttft_ms=mean_ms(ttft),
        p50_tpot_ms=percentile_ms(tpot, 50), p90_tpot_ms=percentile_ms(tpot, 90),
        p99_tpot_ms=percentile_ms(tpot, 99),
        p99_tpot_ci_ms=batch_means_ci(tpot, 99, batches, confidence), mean_tpot_ms=mean_ms(tpot),
        p50_ttft_ci_ms=batch_means_ci(ttft, 50, batches, confidence),
        p90_ttft_ci_ms=batch_means_ci(ttft, 90, batches, confidence),
        p50_tpot_ci_ms=batch_means_ci(tpot, 50, batches, confidence),
        p90_tpot_ci_ms=batch_means_ci(tpot, 90, batches, confidence),
        p50_e2e_ms=percentile_ms(e2e, 50), p99_e2e_ms=percentile_ms(e2e, 99),
        mean_e2e_ms=mean_ms(e2e),
        wait_prob=float(np.mean(wait > 0)) if n_m else math.nan, mean_wait_ms=mean_ms(wait),
        offered_rps=n_m / span, throughput_rps=float(done_in.sum()) / span,
        offered_output_tok_per_s=offered_tok / span, output_tok_per_s=tok / span,
        delivered_fraction=tok / offered_tok if offered_tok > 0 else math.nan,
        preemptions=int(ins.preemptions[inst_mask].sum()),
        preempted_share=float(np.mean(r.preemptions[m] > 0)) if n_m else math.nan,
        kv_utilization=per_inst(ins.kv_util_s), busy_fraction=per_inst(ins.busy_s),
        compute_term_utilization=per_inst(ins.compute_term_s),
        memory_term_utilization=per_inst(ins.memory_term_s),
        compute_bound_fraction=(float(ins.compute_bound_s[inst_mask].sum()) / busy
                                if busy > 0 and np.all(np.isfinite(split)) else math.nan),
        mean_batch=per_inst(ins.batch_s), energy_j=energy, power_w=energy / span,
        tok_per_j=tok / energy if energy > 0 else math.nan,
        hit_rate=float(r.cached_tokens[m].sum()) / prompt if prompt > 0 else math.nan,
        mean_in_system=(float(ins.in_system_s[inst_mask].sum()) + queue_s) / span,
        mean_time_in_system_s=float(np.mean(e2e)) if n_m else math.nan,
    )


def summarize(out: IterationSimOutput, *, batches: int = DEFAULT_BATCHES,
              confidence: float = DEFAULT_CONFIDENCE) -> SimSummary:
    """Per-pool and fleet summaries of a run (see the module docstring)."""
    if not isinstance(batches, int) or batches < 2:
        raise FleetoptError("batches", f"must be an integer >= 2, got {batches!r}")
    if not 0.0 < confidence < 1.0:
        raise FleetoptError("confidence", f"must be in (0, 1), got {confidence!r}")
    r = out.requests
    ip = out.instances.pool
    pools = tuple(
        _summary(out, str(k), r.pool == k, ip == k, float(out.router_queue_s[k]), batches,
                 confidence)
        for k in range(len(out.pools)))
    fleet = _summary(out, "fleet", np.ones(len(r.arrival_s), dtype=bool),
                     np.ones(len(ip), dtype=bool), float(out.router_queue_s.sum()), batches,
                     confidence)
    run = {"policy": out.policy, "window_s": list(out.window_s), "requests": len(r.arrival_s),
           "iterations": out.iterations_total, "events": out.events, "wall_s": out.wall_s,
           "batches": batches, "confidence": confidence}
    return SimSummary(pools, fleet, out.power_series(), run)


# ------------------------------------------------------------------------------ replications
@dataclass(frozen=True)
class ReplicationSummary:
    """Independent replications: each run's summary and every metric's mean and CI."""

    summaries: tuple[SimSummary, ...]
    confidence: float

    def table(self) -> pd.DataFrame:
        """One row per (pool, metric): mean, CI half-width and the replications' values."""
        rows = []
        numeric = [f.name for f in fields(PoolSummary) if f.name != "pool"]
        labels = [p.pool for p in self.summaries[0].pools] + ["fleet"]
        for j, label in enumerate(labels):
            for name in numeric:
                vals = np.array([float(getattr((*s.pools, s.fleet)[j], name))
                                 for s in self.summaries])
                mean = float(np.mean(vals))
                half = t_half_width(vals, self.confidence)
                rows.append({"pool": label, "metric": name, "mean": mean, "ci_half": half,
                             "values": vals.tolist()})
        return pd.DataFrame(rows)

    def metric(self, name: str, pool: str = "fleet") -> tuple[float, float]:
        """(mean, CI half-width) of one metric of one pool (``"fleet"``, ``"0"``, ...)."""
        t = self.table()
        row = t[(t.pool == pool) & (t.metric == name)]
        if row.empty:
            raise FleetoptError("metric", f"no metric {name!r} for pool {pool!r}")
        return float(row["mean"].iloc[0]), float(row["ci_half"].iloc[0])


def replicate(make_stream: Callable[[np.random.Generator], RequestStream],
              pools: Sequence[PoolConfig], *, replications: int = 5, seed: int = 0,
              batches: int = DEFAULT_BATCHES, confidence: float = DEFAULT_CONFIDENCE,
              **simulate_kw: Any) -> ReplicationSummary:
    """Run ``replications`` independent replications: replication ``j`` simulates
    ``make_stream(rng_j)`` with ``rng_j`` from the ``j``-th child of
    ``SeedSequence(seed)`` (same seed -> same results)."""
    if not isinstance(replications, int) or replications < 1:
        raise FleetoptError("replications", f"must be an integer >= 1, got {replications!r}")
    children = np.random.SeedSequence(seed).spawn(replications)
    out = []
    for ss in children:
        stream = make_stream(np.random.default_rng(ss))
        res = simulate_pools(stream, pools, **simulate_kw)
        out.append(summarize(res, batches=batches, confidence=confidence))
    return ReplicationSummary(tuple(out), confidence)
