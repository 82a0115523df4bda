"""``simulate``: run a fleet plan through the iteration-level simulator and put the analytical
evaluator's predictions beside what it measures (``docs/simulation.md``).

Each pool's instances run the engine scheduler iteration by iteration
(:func:`fleetopt.sim.iteration.simulate_pools`, ``docs/simulator_engine.md``) with the step cost
and limits of the pool's profile (:mod:`fleetopt.sim.costs`, the one seam to the physics);
requests are routed by total length (compress bands truncate prompts to the pool's window);
arrivals are Poisson or a trace's own timestamps (with its prompt block hashes, when it has
them, for the per-instance prefix caches). Nothing pool-level of the analytical model is used to
simulate: the evaluator (:func:`fleetopt.evaluation.evaluate`) is called only to report its
predictions beside the measurements (:data:`PREDICTIONS`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.evaluation import evaluate, evaluate_pool
from fleetopt.physics.catalog import Catalog
from fleetopt.physics.compression import compress
from fleetopt.physics.profiles import PhysicsParams, Profile, resolve
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import Workload
from fleetopt.sim.arrivals import Arrivals, load_trace, poisson, replay_stream
from fleetopt.sim.costs import describe_cost, instance_limits, profile_step_cost
from fleetopt.sim.dispatch import POLICIES
from fleetopt.sim.iteration import (
    DEFAULT_WARMUP_FRACTION,
    InstanceLimits,
    IterationSimOutput,
    PoolConfig,
    RequestStream,
    StepCost,
    simulate_pools,
)
from fleetopt.sim.metrics import (
    DEFAULT_BATCHES,
    DEFAULT_CONFIDENCE,
    PoolSummary,
    SimSummary,
    percentile_ms,
    summarize,
    t_half_width,
)
from fleetopt.sim.result import DEFAULT_MIN_DELIVERED, PoolSim, SimResult, SimStats

if TYPE_CHECKING:
    from fleetopt.problem.problem import Problem

__all__ = ["AUTO_FILL_SHARE", "AUTO_MAX_REQUESTS", "AUTO_REQUESTS", "DEFAULT_POLICY",
           "DEFAULT_WARMUP_FRACTION", "POWER_SAMPLES", "PREDICTIONS", "WARMUP_LIFETIMES",
           "WINDOW_LIFETIMES", "fill_time_s", "route", "simulate", "simulate_problem"]

POWER_SAMPLES = 100  # intervals of the power-over-time series in the measured window
DEFAULT_POLICY = "least_outstanding_tokens"
#: the warm-up skips at least this share of the arrivals ...
#: ... and at least this many lone-request lifetimes of the slowest pool (but at most half)
WARMUP_LIFETIMES = 8.0
#: a warning when the warm-up is shorter than 2, or the window than this many, measured mean
#: times in system of the slowest pool
WINDOW_LIFETIMES = 5.0
MAX_REPLICATIONS = 1000
#: ``requests=None`` (auto): first run this many requests; when the warm-up or the window is
#: short against the slowest pool's measured mean time in system T, run again with a warm-up of
#: AUTO_WARMUP_LIFETIMES x T and a window of AUTO_WINDOW_LIFETIMES x T (at most
#: AUTO_MAX_REQUESTS requests)
AUTO_REQUESTS = 20000
AUTO_WARMUP_LIFETIMES = 2.5
AUTO_WINDOW_LIFETIMES = 6.0
AUTO_MAX_REQUESTS = 400_000
#: ... and at least until the pools are full: the warm-up lasts until at most this share of a
#: pool's steady-state work in system is still missing (:func:`fill_time_s`)
AUTO_FILL_SHARE = 0.01
AUTO_RERUNS = 2

#: The evaluator's figure beside each simulated metric: ``predicted_<metric>`` is the first of
#: these :class:`~fleetopt.evaluation.PoolResult` attributes that exists (None when none does:
#: the analytical model does not predict it yet). ``energy_j`` is predicted as the predicted
#: ``power_w`` times the measured window.
PREDICTIONS: dict[str, tuple[str, ...]] = {
    "p99_ttft_ms": ("p99_ttft_ms",),
    "p50_ttft_ms": ("p50_ttft_ms",),
    "p90_ttft_ms": ("p90_ttft_ms",),
    "mean_ttft_ms": ("mean_ttft_ms",),
    "p99_tpot_ms": ("p99_tpot_ms",),
    "p50_tpot_ms": ("p50_tpot_ms",),
    "p90_tpot_ms": ("p90_tpot_ms",),
    "mean_tpot_ms": ("mean_tpot_ms",),
    "mean_e2e_ms": ("mean_e2e_ms", "mean_ttlt_ms"),
    "p99_e2e_ms": ("p99_e2e_ms", "p99_ttlt_ms"),
    "arrival_rate": ("arrival_rate",),
    "output_tok_per_s": ("output_tok_per_s",),
    "power_w": ("power_w",),
    "tok_per_w": ("tok_per_w",),
    "tok_per_j": ("tok_per_j", "tok_per_w"),
    "utilization": ("utilization",),
    "mean_batch": ("mean_batch",),
    "kv_utilization": ("kv_utilization", "kv_occupancy", "kv_util"),
    "busy_fraction": ("busy_fraction", "compute_utilization"),
}

#: SimStats fields that are counts or integrals: summed over replications (the rest averaged)
_SUMMED = {"requests", "finished", "preemptions", "energy_j"}
#: quantile fields and their confidence-interval fields
_QUANTILES = {f"{q}_{m}_ms": f"{q}_{m}_ci_ms" for q in ("p50", "p90", "p99")
              for m in ("ttft", "tpot")}


def _as_fleet(plan: Any) -> Fleet:
    if isinstance(plan, Fleet):
        return plan
    f = getattr(plan, "fleet", None)
    if callable(f):
        f = f()
    if isinstance(f, Fleet):
        return f
    raise FleetoptError("plan", "expected a Fleet or an object with a .fleet (e.g. a Solution) "
                        "holding one; the plan has no fleet (was the problem infeasible?)")


def _whole(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo or \
            (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"from {lo} to {hi:,}"
        raise FleetoptError(name, f"must be a whole number {rng}, got {v!r}")
    return int(v)


def _policy(policy: str | None, dispatch: str | None) -> str:
    if dispatch is not None and policy not in (None, DEFAULT_POLICY, dispatch):
        raise FleetoptError("dispatch", f"is the old name of policy; give one of them (got "
                            f"policy={policy!r}, dispatch={dispatch!r})")
    p = dispatch if dispatch is not None else (policy or DEFAULT_POLICY)
    if p not in POLICIES:
        raise FleetoptError("policy", f"must be one of {', '.join(POLICIES)}, got {p!r}")
    return p


def simulate(
    plan: Any,
    workload: Workload,
    settings: Settings | None = None,
    *,
    model: str = "llama-3.1-70b",
    catalog: Catalog | None = None,
    physics: PhysicsParams | None = None,
    requests: int | None = None,
    seed: int = 0,
    replay: bool | str | dict | None = None,
    rate_rps: float | str | None = None,
    warmup_fraction: float | None = None,
    policy: str = DEFAULT_POLICY,
    dispatch: str | None = None,
    replications: int = 1,
    batches: int = DEFAULT_BATCHES,
    confidence: float = DEFAULT_CONFIDENCE,
    kv_allocation: str | None = None,
    tpot_target_ms: float | None = None,
    min_delivered: float = DEFAULT_MIN_DELIVERED,
    profiles: Sequence[Profile] | None = None,
    engines: Sequence[tuple[StepCost, InstanceLimits]] | None = None,
    peak_factors: Sequence[float] | Callable[[Workload], Sequence[float] | None] | None = None,
) -> SimResult:
    """Simulate ``plan`` (a :class:`Fleet` or an object with ``.fleet``) serving ``workload``.

    Arrivals:

    * ``replay=None``/``False``: ``requests`` Poisson arrivals at ``rate_rps`` (default the
      workload's rate), lengths drawn from the workload's weighted points;
    * ``replay=True``: the shipped trace named like the workload; a string: a shipped trace's
      name or a trace file; a dict: ``input``, ``output``, ``arrival_s`` (and optionally
      ``hash_ids``, ``hash_offsets``, ``hash_block_tokens``). Its arrival times are rescaled
      to ``rate_rps`` (default the workload's rate; ``"trace"`` keeps the trace's own rate);
      more requests than the trace holds repeat it, fewer take its first ones.

    ``requests=None`` (auto): :data:`AUTO_REQUESTS`, and while the warm-up or the window turns
    out short against the slowest pool's measured mean time in system ``T`` (of the pools that
    meet their latency target), up to two more runs with a warm-up of 2.5 ``T`` and a window
    of 6 ``T`` (at most :data:`AUTO_MAX_REQUESTS` requests).

    ``replications`` independent runs: Poisson streams from the children of
    ``numpy.random.SeedSequence(seed)`` (replication 0 is the same whatever their number); a
    replay starts replication ``j`` at the ``j / replications`` point of the trace (wrapping
    around). With one replication the confidence intervals are batch means (``batches``
    batches of the measured requests), with several Student-t across replications.

    Each pool runs ``policy`` dispatch (``least_outstanding_tokens``, ``least_loaded``,
    ``round_robin``; ``dispatch`` is its old name) with its profile's step cost and limits
    (:mod:`fleetopt.sim.costs`): paged KV, or ``kv_allocation="reserved"`` slots at the pool's
    window (default: ``physics.kv_allocation`` when the physics has one, else paged).
    ``profiles`` (one per pool) overrides the catalog resolution; ``engines`` (one ``(step
    cost, InstanceLimits)`` per pool) bypasses profiles altogether (no predictions then).

    Measurement (warm-up excluded): requests arriving in a window from ``t0`` to the last
    arrival. ``warmup_fraction=None`` (default) puts ``t0`` after the first 10 % of the arrivals
    and at least :data:`WARMUP_LIFETIMES` lone-request lifetimes of the slowest pool after the
    first arrival (but never past the middle arrival); a number puts it after that share of the
    arrivals. The result warns (``totals.warnings``) when the window or the warm-up is short
    against the slowest pool's measured mean time in system.

    Verdicts: the TTFT at ``settings.quantile`` against ``settings.ttft_p99_ms``; the TPOT at
    that quantile against ``tpot_target_ms`` (default ``settings.tpot_p99_ms`` when the
    settings have one); a pool delivers its offered load when it emits at least
    ``min_delivered`` of the output tokens offered to it in the window.

    Predictions come from :func:`fleetopt.evaluation.evaluate` of the same plan on the workload
    at the simulated rate (:data:`PREDICTIONS`), with ``peak_factors`` (one design-rate factor
    per pool, or a function of the workload at the simulated rate giving them or None:
    :func:`simulate_problem` passes the problem's per-pool factors) when given.
    """
    t_wall = time.perf_counter()
    fleet = _as_fleet(plan)
    settings = settings or Settings()
    pol = _policy(policy, dispatch)
    seed = _whole("seed", seed, 0)
    if requests is not None:
        requests = _whole("requests", requests, 1)
    reps = _whole("replications", replications, 1, MAX_REPLICATIONS)
    batches = _whole("batches", batches, 2)
    if not 0.0 < float(confidence) < 1.0:
        raise FleetoptError("confidence", f"must be in (0, 1), got {confidence!r}")
    if warmup_fraction is not None and not 0.0 <= float(warmup_fraction) < 1.0:
        raise FleetoptError("warmup_fraction", f"must be in [0, 1), got {warmup_fraction}")
    if not 0.0 < float(min_delivered) <= 1.0:
        raise FleetoptError("min_delivered", f"must be in (0, 1], got {min_delivered!r}")
    kv_alloc = kv_allocation or getattr(physics, "kv_allocation", None) or "paged"
    tpot_target = tpot_target_ms if tpot_target_ms is not None else \
        getattr(settings, "tpot_p99_ms", None)
    if tpot_target is not None and not (math.isfinite(float(tpot_target))
                                        and float(tpot_target) > 0):
        raise FleetoptError("tpot_target_ms", f"must be > 0 ms, got {tpot_target!r}")

    source = _Source(workload, replay, rate_rps)
    wl = workload.with_rate(source.rate_rps)
    pfs = peak_factors(wl) if callable(peak_factors) else peak_factors
    costs, limits, predicted, pred_tot, profs = _engines(
        fleet, wl, settings, model, catalog, physics, kv_alloc, settings.accounting, profiles,
        engines, pfs)
    pools = [PoolConfig(spec.instances, costs[k], limits[k],
                        name=f"({spec.ctx_lo}, {spec.ctx_hi}]")
             for k, spec in enumerate(fleet.pools)]
    common: dict[str, Any] = dict(fleet=fleet, source=source, seed=seed, reps=reps, pools=pools,
                                  policy=pol, batches=batches, confidence=float(confidence),
                                  quantile=settings.quantile)
    n = AUTO_REQUESTS if requests is None else requests
    run = _run_all(n=n, warmup_fraction=warmup_fraction, warmup_s=None, **common)
    pools_out = _pools(run, fleet, predicted, profs, costs, limits, settings, tpot_target,
                       float(min_delivered))
    slowest = _slowest_time_in_system(pools_out)
    fill = _fill_time(run, pools_out)
    for _ in range(AUTO_RERUNS if requests is None else 0):
        warm = max(AUTO_WARMUP_LIFETIMES * slowest, fill)
        if not (slowest > 0 and (_short(run, slowest) or _warmup_s(run) < fill)):
            break
        n2 = min(AUTO_MAX_REQUESTS, math.ceil(
            source.rate_rps * (warm + AUTO_WINDOW_LIFETIMES * slowest)))
        if n2 <= n:
            break
        n = n2
        run = _run_all(n=n, warmup_fraction=None, warmup_s=warm, **common)
        pools_out = _pools(run, fleet, predicted, profs, costs, limits, settings, tpot_target,
                           float(min_delivered))
        slowest = max(slowest, _slowest_time_in_system(pools_out))
        fill = max(fill, _fill_time(run, pools_out))
    streams, outs = run["streams"], run["outs"]
    warnings: list[str] = []
    t_first = float(streams[0].arrival_s[0])
    t0, t1 = outs[0].window_s
    if slowest > 0:
        if t0 - t_first < 2.0 * slowest:
            warnings.append(
                f"the warm-up ({t0 - t_first:,.1f} s) is shorter than two mean times in system "
                f"of the slowest pool ({slowest:,.1f} s each): the fleet may not have filled up "
                "when the measurement started; raise the requests")
        if t1 - t0 < WINDOW_LIFETIMES * slowest:
            warnings.append(
                f"the measured window ({t1 - t0:,.1f} s) is shorter than "
                f"{WINDOW_LIFETIMES:g} mean times in system of the slowest pool ({slowest:,.1f} "
                "s each): its throughput and tail are not settled; raise the requests")
    run_info = {
        "seed": int(seed), "arrivals": streams[0].source, "simulated_requests": n,
        "requests_auto": requests is None,
        "replications": reps, "rate_rps": streams[0].rate_rps, "dispatch": pol, "policy": pol,
        "warmup_fraction": float(np.searchsorted(streams[0].arrival_s, t0, side="left")) / n,
        "warmup_s": t0 - t_first, "window_s": [t0, t1],
        "slowest_mean_service_s": slowest, "slowest_mean_time_in_system_s": slowest,
        "accounting": settings.accounting, "ttft_target_ms": settings.ttft_p99_ms,
        "tpot_target_ms": tpot_target, "slo_quantile": settings.quantile,
        "kv_allocation": kv_alloc, "min_delivered": float(min_delivered),
        "ci_method": "replications" if reps > 1 else "batch_means",
        "confidence": float(confidence), "batches": batches,
        "iterations": int(sum(o.iterations_total for o in outs)),
        "events": int(sum(o.events for o in outs)),
        "power_series_t_s": [float(x) for x in outs[0].snap_s[:-1]],
        "power_w_series": [float(x) for x in outs[0].power_series()["fleet_w"]],
        "warnings": warnings,
    }
    return SimResult(tuple(pools_out), run["stats"][-1], pred_tot, run_info,
                     pd.concat(run["frames"], ignore_index=True),
                     wall_s=time.perf_counter() - t_wall,
                     power_series=_power_frame(outs[0], fleet), summaries=tuple(run["summaries"]))


def simulate_problem(problem: Problem, plan: Any = None, **kw: Any) -> SimResult:
    """:func:`simulate` with workload, settings, model, catalog and physics from ``problem``.

    ``plan`` defaults to the problem's own ``[[fleet.pool]]`` fleet.
    """
    if plan is None:
        if problem.fleet is None:
            raise FleetoptError("fleet", "no fleet to simulate: give one (or [[fleet.pool]] in the config)")
        plan = problem.fleet
    if problem.per_pool_peak_factors and "peak_factors" not in kw:
        fleet = _as_fleet(plan)
        kw["peak_factors"] = lambda w: problem.with_(workload=w).fleet_peak_factors(fleet)
    return simulate(plan, problem.workload, problem.settings, model=problem.model,
                    catalog=problem.catalog, physics=problem.physics, **kw)


def route(fleet: Fleet, lin: NDArray, lout: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Pool index of each request by total length, and its lengths compressed to the pool's
    window. Requests beyond the last pool go to it (compressed)."""
    his = np.array([p.ctx_hi for p in fleet.pools])
    tot = lin + lout
    pool = np.minimum(np.searchsorted(his, tot, side="left"), len(his) - 1)
    lin2, lout2 = lin.copy(), lout.copy()
    comp = np.zeros(len(lin), dtype=bool)
    for k, p in enumerate(fleet.pools):
        m = pool == k
        if m.any():
            a, b, c = compress(lin[m], lout[m], p.window)
            lin2[m], lout2[m], comp[m] = a, b, c
    return pool, lin2, lout2, comp


def _run_all(*, n: int, warmup_fraction: float | None, warmup_s: float | None, fleet: Fleet,
             source: _Source, seed: int, reps: int, pools: list[PoolConfig], policy: str,
             batches: int, confidence: float, quantile: float) -> dict[str, Any]:
    """Every replication of ``n`` requests: streams, routing, runs, summaries, records."""
    streams = source.streams(n, seed, reps)
    routed = [route(fleet, s.input_tokens, s.output_tokens) for s in streams]
    used = np.unique(np.concatenate([r[0] for r in routed]))
    for k in used:
        if fleet.pools[k].instances < 1:
            raise FleetoptError(f"fleet.pools[{k}].instances", "the pool receives requests but "
                                "has no instances; give it at least one")
    outs: list[IterationSimOutput] = []
    summaries: list[SimSummary] = []
    slo_q: list[dict[str, list[float]]] = []
    frames = []
    for j, (st, (pool, lin, lout, comp)) in enumerate(zip(streams, routed, strict=True)):
        if warmup_s is None:
            life = max((_lone_lifetime_s(pools[k].cost, pools[k].limits, lin[pool == k],
                                         lout[pool == k]) for k in np.unique(pool)), default=0.0)
            window = _window(st.arrival_s, WARMUP_LIFETIMES * life, warmup_fraction)
        else:
            window = _window(st.arrival_s, warmup_s, None)
        rs = RequestStream(st.arrival_s, lin, lout, pool, hash_ids=st.hash_ids,
                           hash_offsets=st.hash_offsets, hash_block_tokens=st.hash_block_tokens)
        out = simulate_pools(rs, pools, policy=policy, window_s=window, power_bins=POWER_SAMPLES)
        outs.append(out)
        summaries.append(summarize(out, batches=batches, confidence=confidence))
        slo_q.append(_slo_quantiles(out, len(pools), quantile))
        frames.append(_requests_frame(out, comp, j))
    stats = _aggregate(summaries, slo_q, [p.limits for p in pools], reps, confidence)
    return {"streams": streams, "routed": routed, "outs": outs, "summaries": summaries,
            "stats": stats, "frames": frames}


def _pools(run: dict[str, Any], fleet: Fleet, predicted: list[dict[str, Any]],
           profs: list[tuple[str, int, str, int | None]], costs: list[StepCost],
           limits: list[InstanceLimits], settings: Settings, tpot_target: float | None,
           min_delivered: float) -> list[PoolSim]:
    outs, routed, stats = run["outs"], run["routed"], run["stats"]
    span = float(sum(o.span_s for o in outs))
    out = []
    for k, spec in enumerate(fleet.pools):
        pr = dict(predicted[k])
        if pr.get("power_w") is not None:
            pr["energy_j"] = float(pr["power_w"]) * span
        shares = []
        for (pool, _, _, comp), o in zip(routed, outs, strict=True):
            m = (pool == k) & o.requests.measured
            shares.append(float(np.mean(comp[m])) if m.any() else 0.0)
        lim = limits[k]
        out.append(PoolSim(
            ctx_lo=spec.ctx_lo, ctx_hi=spec.ctx_hi, gpu=profs[k][0], tp=profs[k][1],
            dtype=profs[k][2], window_tokens=spec.window, stats=stats[k],
            compressed_share=float(np.mean(shares)), predicted=pr,
            ttft_target_ms=float(settings.ttft_p99_ms),
            tpot_target_ms=math.nan if tpot_target is None else float(tpot_target),
            min_delivered=min_delivered, ep=profs[k][3],
            limits={"kv_allocation": lim.kv_allocation, "token_budget": lim.token_budget,
                    "max_seqs": lim.max_seqs, "kv_capacity_tokens": lim.capacity_tokens,
                    "block_tokens": lim.block_tokens, "slots": lim.slots or None,
                    "step_cost": describe_cost(costs[k])},
            power_w_series=tuple(float(x) for x in _pool_watts(outs[0], k)),
        ))
    return out


def fill_time_s(lifetimes_s: Any, share: float = AUTO_FILL_SHARE) -> float:
    """How long a pool started empty takes to hold all but ``share`` of its steady-state work:
    under Poisson arrivals the requests in system after ``t`` are ``lam E[min(S, t)]`` against
    ``lam E[S]`` in steady state (M/G/infinity), so the least ``t`` with ``E[(S - t)+] <= share
    E[S]`` over the sample of lifetimes ``S`` (s; 0 for an empty sample). A heavy tail of long
    requests makes it many mean lifetimes."""
    x = np.sort(np.asarray(lifetimes_s, dtype=float))
    x = x[np.isfinite(x) & (x > 0)]
    if len(x) == 0:
        return 0.0
    n = len(x)
    suffix = np.concatenate([np.cumsum(x[::-1])[::-1], [0.0]])[:n]
    missing = (suffix - (n - np.arange(n)) * x) / n  # E[(S - x_i)+]
    ok = np.flatnonzero(missing <= share * float(x.mean()))
    return float(x[ok[0]]) if len(ok) else float(x[-1])


def _fill_time(run: dict[str, Any], pools: list[PoolSim]) -> float:
    """The longest :func:`fill_time_s` of a pool that does not miss its latency target, over
    its measured requests' times in system (replication 0)."""
    rec = run["outs"][0].requests
    e2e = rec.e2e_s
    out = 0.0
    for k, p in enumerate(pools):
        if p.stats.requests == 0 or p.slo_met is False:
            continue
        m = (rec.pool == k) & rec.measured
        out = max(out, fill_time_s(e2e[m]))
    return out


def _warmup_s(run: dict[str, Any]) -> float:
    return float(run["outs"][0].window_s[0] - run["streams"][0].arrival_s[0])


def _short(run: dict[str, Any], slowest_s: float) -> bool:
    """Is the warm-up or the window short against the slowest pool's time in system?"""
    st = run["streams"][0]
    t0, t1 = run["outs"][0].window_s
    return bool(t0 - float(st.arrival_s[0]) < 2.0 * slowest_s
                or t1 - t0 < WINDOW_LIFETIMES * slowest_s)


# ------------------------------------------------------------------------------ the set-up
class _Source:
    """Where the requests come from: Poisson sampling of the workload, or a trace (read once)."""

    def __init__(self, workload: Workload, replay: Any, rate_rps: Any) -> None:
        self.workload = workload
        self.trace: dict[str, Any] | None = None
        self.name = ""
        if replay is None or replay is False:
            if isinstance(rate_rps, str):
                raise FleetoptError("rate_rps", "a number (req/s) unless replaying a trace")
            rate = float(rate_rps) if rate_rps is not None else workload.rate_rps
            if not rate > 0:
                raise FleetoptError("rate_rps", f"must be > 0, got {rate}")
            self.target: float | None = rate
            self.rate_rps = rate
            return
        self.trace, self.name = load_trace(replay, workload)
        if rate_rps == "trace":
            self.target = None
        elif isinstance(rate_rps, str):
            raise FleetoptError("rate_rps", f"a number (req/s) or 'trace', got {rate_rps!r}")
        else:
            self.target = float(rate_rps) if rate_rps is not None else workload.rate_rps
            if not self.target > 0:
                raise FleetoptError("rate_rps", f"must be > 0, got {self.target}")
        self.rate_rps = replay_stream(self.trace, self.name, 2, self.target).rate_rps

    def streams(self, n: int, seed: int, reps: int) -> list[Arrivals]:
        """One stream of ``n`` requests per replication."""
        if self.trace is None:
            return [poisson(self.workload, n, self.rate_rps, np.random.default_rng(ss))
                    for ss in np.random.SeedSequence(seed).spawn(reps)]
        n0 = len(self.trace["arrival_s"])
        return [replay_stream(self.trace, self.name, n, self.target, start=(j * n0) // reps)
                for j in range(reps)]


def _engines(fleet: Fleet, wl: Workload, settings: Settings, model: str,
             catalog: Catalog | None, physics: PhysicsParams | None, kv_alloc: str,
             accounting: str, profiles: Sequence[Profile] | None,
             engines: Sequence[tuple[StepCost, InstanceLimits]] | None,
             peak_factors: Sequence[float] | None = None,
             ) -> tuple[list[StepCost], list[InstanceLimits], list[dict[str, Any]],
                        dict[str, Any], list[tuple[str, int, str, int | None]]]:
    """Per pool: step cost, limits, predictions, (gpu, tp, dtype); and the fleet predictions."""
    n = len(fleet.pools)
    if profiles is not None and engines is not None:
        raise FleetoptError("engines", "give profiles or engines, not both")
    if engines is not None:
        if len(engines) != n:
            raise FleetoptError("engines", f"give one (step cost, limits) per pool ({n})")
        costs, lims = [], []
        for k, e in enumerate(engines):
            if not (isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], InstanceLimits)):
                raise FleetoptError(f"engines[{k}]", "must be a (step cost, InstanceLimits) pair")
            costs.append(e[0])
            lims.append(e[1])
        labels: list[tuple[str, int, str, int | None]] = [
            (p.gpu, p.tp, str(p.dtype), None) for p in fleet.pools]
        return costs, lims, [_predictions(None) for _ in range(n)], _fleet_predictions([]), \
            labels
    if profiles is None:
        profs = [resolve(p.deployment, model, catalog, physics, field_name=f"fleet.pools[{k}].gpu")
                 for k, p in enumerate(fleet.pools)]
        res = evaluate(fleet, wl, settings, model=model, catalog=catalog, physics=physics,
                       peak_factors=peak_factors)
        results: list[Any] = list(res.pools)
        pred_tot = _fleet_predictions(results, res.totals)
    else:
        if len(profiles) != n:
            raise FleetoptError("profiles", "give one profile per pool")
        profs = list(profiles)
        results = []
        for k, (spec, prof) in enumerate(zip(fleet.pools, profs, strict=True)):
            st = settings if peak_factors is None else \
                dataclasses.replace(settings, peak_factor=float(peak_factors[k]))
            try:
                results.append(evaluate_pool(spec, prof, wl, st, f"fleet.pools[{k}]"))
            except (FleetoptError, NotImplementedError, AttributeError):
                results.append(None)  # a profile the evaluator cannot size: no prediction
        pred_tot = _fleet_predictions([r for r in results if r is not None])
    costs = [profile_step_cost(p, accounting) for p in profs]
    lims = [instance_limits(p, kv_alloc, spec.window) for p, spec in zip(profs, fleet.pools,
                                                                          strict=True)]
    labels = [(str(p.gpu), int(p.tp), str(p.dtype), p.moe_ep) for p in profs]
    return costs, lims, [_predictions(r) for r in results], pred_tot, labels


def _predictions(result: Any) -> dict[str, Any]:
    """``{metric: the evaluator's figure or None}`` (:data:`PREDICTIONS`)."""
    out: dict[str, Any] = {}
    for metric, attrs in PREDICTIONS.items():
        v = None
        if result is not None:
            for a in attrs:
                if getattr(result, a, None) is not None:
                    v = getattr(result, a)
                    break
        out[metric] = None if v is None else float(v)
    return out


def _fleet_predictions(results: list[Any], totals: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
    """The fleet's predicted figures (worst pool for the latencies, sums for the rest)."""
    def worst(attr: str) -> float | None:
        vals = [getattr(r, attr) for r in results
                if getattr(r, attr, None) is not None and getattr(r, "arrival_rate", 1.0) > 0]
        if not vals:
            return None
        v = max(float(x) for x in vals)
        return v if math.isfinite(v) else None

    def total(attr: str) -> float | None:
        return float(sum(getattr(r, attr) for r in results)) if results else None

    t = totals or {}
    power = t.get("power_w", total("power_w"))
    tok = t.get("output_tok_per_s", total("output_tok_per_s"))
    return {
        "predicted_p99_ttft_ms": t["worst_p99_ttft_ms"] if "worst_p99_ttft_ms" in t
        else worst("p99_ttft_ms"),
        "predicted_p99_tpot_ms": t["worst_p99_tpot_ms"] if "worst_p99_tpot_ms" in t
        else worst("p99_tpot_ms"),
        "predicted_power_w": power,
        "predicted_output_tok_per_s": tok,
        "predicted_tok_per_j": tok / power if power and tok is not None else None,
    }


def _lone_lifetime_s(cost: StepCost, lim: InstanceLimits, lin: NDArray, lout: NDArray,
                     sample: int = 200) -> float:
    """Mean time in system of the pool's requests (its first ``sample``) served alone on an
    instance: chunked prefill at the token budget, then one step per output token (a lower
    bound of the loaded lifetime, from the step cost alone)."""
    if len(lin) == 0:
        return 0.0
    tot = 0.0
    m = min(sample, len(lin))
    budget = lim.token_budget
    for p, o in zip(lin[:m].tolist(), lout[:m].tolist(), strict=True):
        s, t = 0, 0.0
        while s < p:
            c = min(p - s, budget)
            t += cost.step_s(0, 0.0, c, float(c * s + c * (c + 1) // 2))
            s += c
        if o > 1:
            t += (o - 1) * cost.step_s(1, float(p + o / 2.0), 0, 0.0)
        tot += t
    return tot / m


def _window(arrival_s: NDArray, warmup_s: float,
            warmup_fraction: float | None) -> tuple[float, float]:
    """From ``t0`` to the last arrival: ``t0`` after ``warmup_fraction`` of the arrivals, or
    (None) after 10 % of them and at least ``warmup_s`` after the first, but at most the middle
    arrival."""
    n = len(arrival_s)
    t_first, t_last = float(arrival_s[0]), float(arrival_s[-1])
    frac = DEFAULT_WARMUP_FRACTION if warmup_fraction is None else float(warmup_fraction)
    t0 = float(arrival_s[min(int(frac * n), n - 1)])
    if warmup_fraction is None:
        t0 = max(t0, min(t_first + warmup_s, float(arrival_s[n // 2])))
    return t0, (t_last if t_last > t0 else t0 + 1e-9)


# ------------------------------------------------------------------------------ the results
def _slo_quantiles(out: IterationSimOutput, npools: int, q: float) -> dict[str, list[float]]:
    """TTFT and TPOT at the SLO quantile ``q``, per pool then the fleet (ms)."""
    r = out.requests
    ttft = np.nan_to_num(r.ttft_s, nan=math.inf)
    tpot = np.nan_to_num(r.tpot_s, nan=math.inf)
    two = r.output_tokens > 1
    res: dict[str, list[float]] = {"ttft": [], "tpot": []}
    masks = [r.pool == k for k in range(npools)] + [np.ones(len(ttft), dtype=bool)]
    for m in masks:
        m = m & r.measured
        res["ttft"].append(percentile_ms(ttft[m], 100.0 * q))
        res["tpot"].append(percentile_ms(tpot[m & two], 100.0 * q))
    return res


_STAT_FROM_SUMMARY = {"arrival_rate": "offered_rps", "completion_rate": "throughput_rps",
                      "utilization": "kv_utilization", "tok_per_w": "tok_per_j"}


def _stats_row(s: PoolSummary, slo_ttft: float, slo_tpot: float, slots: int) -> dict[str, Any]:
    d = {}
    names = {f.name for f in fields(PoolSummary)}
    for f in fields(SimStats):
        src = _STAT_FROM_SUMMARY.get(f.name, f.name)
        if src in names:
            d[f.name] = getattr(s, src)
    d.update(slo_ttft_ms=slo_ttft, slo_tpot_ms=slo_tpot, slots=slots)
    return d


def _aggregate(summaries: list[SimSummary], slo_q: list[dict[str, list[float]]],
               limits: list[InstanceLimits], reps: int, confidence: float) -> list[SimStats]:
    """Per pool, then the fleet: one replication's figures, or the replications' combined."""
    npools = len(limits)
    per_slots = [lim.slots if not lim.paged else lim.max_seqs for lim in limits]
    out = []
    for k in range(npools + 1):
        rows = []
        for j, s in enumerate(summaries):
            ps = s.pools[k] if k < npools else s.fleet
            slots = per_slots[k] if k < npools else sum(
                per_slots[i] * s.pools[i].instances for i in range(npools))
            rows.append(_stats_row(ps, slo_q[j]["ttft"][k], slo_q[j]["tpot"][k], slots))
        if reps == 1:
            out.append(SimStats(**rows[0]))
            continue
        agg: dict[str, Any] = {}
        for f in fields(SimStats):
            vals = np.array([float(r[f.name]) for r in rows])
            if f.name in ("instances", "slots"):
                agg[f.name] = rows[0][f.name]
            elif f.name in _SUMMED:
                agg[f.name] = int(vals.sum()) if f.type in (int, "int") else float(vals.sum())
            elif np.all(np.isnan(vals)):
                agg[f.name] = math.nan
            else:
                agg[f.name] = float(np.nanmean(vals))
        for qf, cf in {**_QUANTILES, "delivered_fraction": "delivered_ci"}.items():
            agg[cf] = t_half_width([float(r[qf]) for r in rows], confidence)
        out.append(SimStats(**agg))
    return out


def _slowest_time_in_system(pools: list[PoolSim]) -> float:
    """The largest measured mean time in system (s) of a pool that does not miss its latency
    target (a pool that misses it fails however long the run; a longer run settles the others'
    throughput and tails)."""
    vals = [p.stats.mean_time_in_system_s for p in pools
            if p.stats.requests > 0 and p.slo_met is not False
            and math.isfinite(p.stats.mean_time_in_system_s)]
    return max(vals, default=0.0)


def _pool_watts(out: IterationSimOutput, k: int) -> NDArray:
    dt = np.diff(out.snap_s)
    de = np.diff(out.snap_energy_j[:, k])
    with np.errstate(invalid="ignore", divide="ignore"):
        return de / dt


def _power_frame(out: IterationSimOutput, fleet: Fleet) -> pd.DataFrame:
    """Each pool's mean watts between consecutive snapshots: ``t_s, ctx_lo, ctx_hi, power_w``."""
    rows = []
    ts = out.snap_s[:-1]
    for k, spec in enumerate(fleet.pools):
        w = _pool_watts(out, k)
        rows += [{"t_s": float(a), "ctx_lo": spec.ctx_lo, "ctx_hi": spec.ctx_hi,
                  "power_w": float(v)} for a, v in zip(ts, w, strict=True)]
    return pd.DataFrame(rows, columns=["t_s", "ctx_lo", "ctx_hi", "power_w"])


def _requests_frame(out: IterationSimOutput, compressed: NDArray, j: int) -> pd.DataFrame:
    df = out.requests.to_frame()
    df.insert(0, "replication", j)
    df.insert(df.columns.get_loc("output_tokens") + 1, "compressed", compressed)
    df["wait_s"] = out.requests.wait_s
    return df
