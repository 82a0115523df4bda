"""``simulate``: run a fleet plan through the discrete-event simulator and compare with the
analytical evaluator (``docs/simulation.md``)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.evaluation import evaluate
from fleetopt.physics.catalog import Catalog
from fleetopt.physics.compression import compress
from fleetopt.physics.profiles import PhysicsParams, Profile, resolve
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import Workload
from fleetopt.sim.arrivals import Arrivals, load_trace, poisson, replay_stream
from fleetopt.sim.engine import DISPATCH_POLICIES, EnginePool, run
from fleetopt.sim.result import PoolSim, SimResult, SimStats, percentile_ms
from fleetopt.sim.timing import scalar_timing
from fleetopt.sizing.sizer import pool_model

if TYPE_CHECKING:
    from fleetopt.problem.problem import Problem

__all__ = ["POWER_SAMPLES", "route", "simulate", "simulate_problem"]


POWER_SAMPLES = 100  # intervals of the power-over-time series in the measured window


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


def simulate(
    plan: Any,
    workload: Workload,
    settings: Settings | None = None,
    *,
    model: str = "llama-3.1-70b",
    catalog: Catalog | None = None,
    physics: PhysicsParams | None = None,
    requests: int | None = 20000,
    seed: int = 0,
    replay: bool | str | dict | None = None,
    rate_rps: float | str | None = None,
    warmup_fraction: float = 0.1,
    dispatch: str = "least_loaded",
    profiles: list[Profile] | None = None,
) -> SimResult:
    """Simulate ``plan`` (a :class:`Fleet` or an object with ``.fleet``) serving ``workload``.

    * ``replay=None``/``False``: ``requests`` Poisson arrivals at ``rate_rps`` (default the
      workload's rate), lengths drawn from the workload's weighted points (seeded by ``seed``);
    * ``replay=True``: the shipped trace named like the workload; a string: a shipped trace's
      name or a trace file; its arrival times are rescaled to ``rate_rps`` (default the
      workload's rate; ``"trace"`` keeps the trace's own rate); ``requests=None`` replays it
      once, more repeats it.

    Predictions come from :func:`fleetopt.evaluation.evaluate` on the workload at the simulated
    rate. ``profiles`` (one per pool) overrides the catalog resolution (tests, custom profiles).
    The first ``warmup_fraction`` of requests (by arrival) are simulated but not measured, and at
    least two mean full-batch service times of the slowest pool (the time the fleet takes to
    fill up), but never more than half the run.
    """
    t_wall = time.perf_counter()
    fleet = _as_fleet(plan)
    settings = settings or Settings()
    if dispatch not in DISPATCH_POLICIES:
        raise FleetoptError("dispatch", f"must be one of {', '.join(DISPATCH_POLICIES)}, got {dispatch!r}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise FleetoptError("warmup_fraction", f"must be in [0, 1), got {warmup_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise FleetoptError("seed", f"must be a whole number >= 0, got {seed!r}")
    if requests is not None and (isinstance(requests, bool) or not isinstance(
            requests, int | np.integer) or requests < 1):
        raise FleetoptError("requests", f"must be a whole number >= 1, got {requests!r}")
    rng = np.random.default_rng(seed)
    if replay is None or replay is False:
        if isinstance(rate_rps, str):
            raise FleetoptError("rate_rps", "a number (req/s) unless replaying a trace")
        rate = float(rate_rps) if rate_rps is not None else workload.rate_rps
        if not rate > 0:
            raise FleetoptError("rate_rps", f"must be > 0, got {rate}")
        stream = poisson(workload, 20000 if requests is None else int(requests), rate, rng)
    else:
        tr, name = load_trace(replay, workload)
        if rate_rps == "trace":
            target = None
        elif isinstance(rate_rps, str):
            raise FleetoptError("rate_rps", f"a number (req/s) or 'trace', got {rate_rps!r}")
        else:
            target = float(rate_rps) if rate_rps is not None else workload.rate_rps
        stream = replay_stream(tr, name, requests, target)
    wl = workload.with_rate(stream.rate_rps)
    used = np.unique(route(fleet, stream.input_tokens, stream.output_tokens)[0])
    for k in used:
        if fleet.pools[k].instances < 1:
            raise FleetoptError(f"fleet.pools[{k}].instances", "the pool receives requests but has "
                                "no instances; give it at least one")

    if profiles is None:
        profiles = [resolve(p.deployment, model, catalog, physics, field_name=f"fleet.pools[{k}].gpu")
                    for k, p in enumerate(fleet.pools)]
        predicted = evaluate(fleet, wl, settings, model=model, catalog=catalog, physics=physics)
        pred_pools = [(r.p99_ttft_ms, r.power_w, r.output_tok_per_s, r.utilization, r.mean_batch)
                      for r in predicted.pools]
        tot = predicted.totals
        pred_tot = {"predicted_p99_ttft_ms": tot["worst_p99_ttft_ms"],
                    "predicted_power_w": tot["power_w"],
                    "predicted_output_tok_per_s": tot["output_tok_per_s"]}
    else:
        if len(profiles) != len(fleet.pools):
            raise FleetoptError("profiles", "give one profile per pool")
        pred_pools = [_predict_custom(p, prof, wl, settings)
                      for p, prof in zip(fleet.pools, profiles, strict=True)]
        pred_tot = {"predicted_p99_ttft_ms": max(x[0] for x in pred_pools),
                    "predicted_power_w": sum(x[1] for x in pred_pools),
                    "predicted_output_tok_per_s": sum(x[2] for x in pred_pools)}

    res = _run(fleet, profiles, stream, settings, warmup_fraction, dispatch)
    pools_out = []
    for k, spec in enumerate(fleet.pools):
        prof = profiles[k]
        st, comp = res["pools"][k]
        pp = pred_pools[k]
        pools_out.append(PoolSim(
            ctx_lo=spec.ctx_lo, ctx_hi=spec.ctx_hi, gpu=prof.gpu, tp=prof.tp, dtype=prof.dtype,
            window_tokens=spec.window, stats=st, compressed_share=comp,
            predicted_p99_ttft_ms=pp[0], predicted_power_w=pp[1],
            predicted_output_tok_per_s=pp[2], predicted_utilization=pp[3],
            predicted_mean_batch=pp[4], ttft_target_ms=settings.ttft_p99_ms, ep=prof.moe_ep,
        ))
    run_info = {"seed": int(seed), "arrivals": stream.source, "simulated_requests": len(stream),
                "rate_rps": stream.rate_rps, "dispatch": dispatch,
                "warmup_fraction": warmup_fraction, "window_s": res["window_s"],
                "slowest_mean_service_s": res["settle_s"] / 2.0,
                "accounting": settings.accounting, "ttft_target_ms": settings.ttft_p99_ms,
                "slo_quantile": settings.quantile}
    return SimResult(tuple(pools_out), res["fleet"], pred_tot, run_info, res["requests"],
                     wall_s=time.perf_counter() - t_wall, power_series=res["power_series"])


def simulate_problem(problem: Problem, plan: Any = None, **kw: Any) -> SimResult:
    """:func:`simulate` with workload, settings, model, catalog and physics from ``problem``.

    ``plan`` defaults to the problem's own ``[[fleet.pool]]`` fleet.
    """
    if plan is None:
        if problem.fleet is None:
            raise FleetoptError("fleet", "no fleet to simulate: give one (or [[fleet.pool]] in the config)")
        plan = problem.fleet
    return simulate(plan, problem.workload, problem.settings, model=problem.model,
                    catalog=problem.catalog, physics=problem.physics, **kw)


def _predict_custom(spec: Any, prof: Profile, wl: Workload,
                    settings: Settings) -> tuple[float, float, float, float, float]:
    try:
        pm = pool_model(spec, prof, wl, settings)
    except FleetoptError:  # a custom profile without an iteration model: no prediction
        nan = math.nan
        return nan, nan, nan, nan, nan
    if pm.empty:
        return (0.0, float(spec.instances * prof.instance_power_w(0.0, settings.accounting)),
                0.0, 0.0, 0.0)
    m = pm.metrics([spec.instances])
    p99, power, tok, util, batch = (float(m[k][0]) for k in (
        "p99_ttft_ms", "power_w", "output_tok_per_s", "utilization", "mean_batch"))
    return p99, power, tok, util, batch


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


def _run(fleet: Fleet, profiles: list[Profile], stream: Arrivals, settings: Settings,
         warmup_fraction: float, dispatch: str) -> dict[str, Any]:
    pool, lin, lout, comp = route(fleet, stream.input_tokens, stream.output_tokens)
    n = len(stream)
    eps = []
    for k, (spec, prof) in enumerate(zip(fleet.pools, profiles, strict=True)):
        s = int(prof.slots(spec.window))
        has = bool(np.any(pool == k))
        if has and (spec.instances < 1 or s < 1):
            why = "no instances" if spec.instances < 1 else f"no KV slot at window {spec.window}"
            raise FleetoptError(f"fleet.pools[{k}]", f"receives requests but has {why}")
        dec, pre = scalar_timing(prof)
        pw = np.atleast_1d(prof.instance_power_w(np.arange(max(s, 0) + 1, dtype=float),
                                                 settings.accounting)).tolist()
        eps.append(EnginePool(spec.instances, max(s, 0), dec, pre, pw))
    warm = min(int(warmup_fraction * n), n - 1)
    t_arr = stream.arrival_s
    t0, t1 = float(t_arr[warm]), float(t_arr[-1])
    # the fleet fills up over about one service time: also skip two mean full-batch service
    # times of the slowest pool (but never more than half the run)
    settle = 0.0
    for k, (spec, prof) in enumerate(zip(fleet.pools, profiles, strict=True)):
        m = pool == k
        if m.any():
            s_k = max(int(prof.slots(spec.window)), 1)
            ctx = lin[m] + lout[m] / 2.0
            svc = prof.prefill_s(lin[m], s_k, ctx) + lout[m] * prof.decode_s(s_k, ctx)
            settle = max(settle, 2.0 * float(np.mean(svc)))
    t0 = max(t0, min(float(t_arr[0]) + settle, float(t_arr[n // 2])))
    if t1 <= t0:
        t1 = t0 + 1e-9
    out = run(t_arr, lin, lout, pool, eps, (t0, t1), dispatch, snapshots=POWER_SAMPLES + 1)
    span = t1 - t0
    ttft = out.first_token_s - t_arr
    wait = out.admit_s - t_arr
    e2e = out.done_s - t_arr
    tpot = (out.done_s - out.first_token_s) / np.maximum(lout, 1)
    meas = np.arange(n) >= warm
    done_in = (out.done_s >= t0) & (out.done_s <= t1)
    inst_pool = np.repeat(np.arange(len(eps)), [p.instances for p in eps])

    def stats(mask: NDArray, imask: NDArray, slots: int) -> SimStats:
        m = mask & meas
        tok = float(out.tokens[imask].sum()) / span
        pw = float(out.energy_j[imask].sum()) / span
        ni = int(imask.sum())
        mb = float(out.batch_s[imask].sum()) / span / ni if ni else 0.0
        return SimStats(
            requests=int(m.sum()),
            p50_ttft_ms=percentile_ms(ttft[m], 50), p90_ttft_ms=percentile_ms(ttft[m], 90),
            p99_ttft_ms=percentile_ms(ttft[m], 99),
            mean_ttft_ms=float(ttft[m].mean() * 1000) if m.any() else 0.0,
            wait_prob=float((wait[m] > 0).mean()) if m.any() else 0.0,
            mean_wait_ms=float(wait[m].mean() * 1000) if m.any() else 0.0,
            p50_tpot_ms=percentile_ms(tpot[m], 50), p99_tpot_ms=percentile_ms(tpot[m], 99),
            p50_e2e_ms=percentile_ms(e2e[m], 50), p99_e2e_ms=percentile_ms(e2e[m], 99),
            arrival_rate=float(m.sum()) / span,
            completion_rate=float((mask & done_in).sum()) / span,
            output_tok_per_s=tok, power_w=pw, energy_j=float(out.energy_j[imask].sum()),
            tok_per_w=tok / pw if pw > 0 else 0.0, mean_batch=mb,
            utilization=mb / slots if slots else 0.0, instances=ni, slots=slots,
            slo_ttft_ms=percentile_ms(ttft[m], 100.0 * settings.quantile),
        )

    pools_out = []
    for k, ep in enumerate(eps):
        mk = pool == k
        share = float(comp[mk & meas].mean()) if (mk & meas).any() else 0.0
        pools_out.append((stats(mk, inst_pool == k, ep.slots), share))
    fleet_stats = stats(np.ones(n, bool), np.ones(len(inst_pool), bool), 0)
    tot_slots = sum(p.instances * p.slots for p in eps)
    nins = sum(p.instances for p in eps)
    fleet_stats = _with_util(fleet_stats, tot_slots, nins)
    reqs = pd.DataFrame({
        "arrival_s": t_arr, "pool": pool, "instance": out.instance, "input_tokens": lin,
        "output_tokens": lout, "compressed": comp, "wait_s": wait, "ttft_s": ttft,
        "tpot_s": tpot, "e2e_s": e2e, "measured": meas,
    })
    # power over time: mean watts of each pool between consecutive snapshots
    ts, ej = out.snap_s, out.snap_energy_j
    rows = []
    if ts is not None and len(ts) > 1 and ej is not None and ej.ndim == 2:
        dt = np.diff(ts)
        de = np.diff(ej, axis=0)  # (intervals, instances)
        for k, spec in enumerate(fleet.pools):
            cols = np.asarray(inst_pool) == k
            pw_k = de[:, cols].sum(axis=1) / np.where(dt > 0, dt, np.nan)
            rows += [{"t_s": float(a), "ctx_lo": spec.ctx_lo, "ctx_hi": spec.ctx_hi,
                      "power_w": float(v)} for a, v in zip(ts[:-1], pw_k, strict=True)]
    power_series = pd.DataFrame(rows, columns=["t_s", "ctx_lo", "ctx_hi", "power_w"])
    return {"pools": pools_out, "fleet": fleet_stats, "requests": reqs,
            "window_s": [t0, t1], "events": out.events, "settle_s": settle,
            "power_series": power_series}


def _with_util(s: SimStats, total_slots: int, instances: int) -> SimStats:
    from dataclasses import replace

    busy = s.mean_batch * s.instances  # mean_batch was computed per instance
    return replace(s, slots=total_slots, utilization=busy / total_slots if total_slots else 0.0,
                   instances=instances)
