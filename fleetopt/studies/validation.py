"""Validation study: the simulator against the analytical evaluator on the shipped examples.

``python scripts/make_docs.py`` runs it (:func:`run_study`) and writes the tables of
``docs/simulation.md`` and the ``sim_*.png`` figures (:mod:`fleetopt.report.plots`).

For each example a two-pool fleet is sized by the evaluator: for every candidate boundary
whose upper pool receives at least ``min_tail_share`` of the requests, each pool takes the
deployment of least predicted power at its fewest SLO-meeting instances (the
:class:`~fleetopt.sizing.sizer.Sizer`); the boundary of least total power wins. The same is done
for the Azure 2023 conversation workload at the example's rate and hardware, which is then also
replayed from the trace's own timestamps.

Then the burst correction (:func:`correction_study`): every solver (MIP and the three
baselines) plans each example at ``peak_factor`` 1 and
:func:`fleetopt.problem.workload.auto_peak_factor`, and each plan is simulated with Poisson
arrivals and by trace replay (``sim_correction.png``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.queueing import erlang_c, ttft_quantile_s, wait_tail_rate
from fleetopt.planners import baselines
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import example_names, load_config
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import auto_peak_factor, builtin
from fleetopt.sim.api import simulate_problem
from fleetopt.sizing.poolmodel import PoolModel
from fleetopt.sizing.sizer import Sizer, pool_model

__all__ = ["OPTIMISTIC", "SOLVERS", "TRACE", "TRACE_REQUESTS", "analytical_ccdf",
           "analytical_ttft_s", "compare_case", "correction_study", "cv2_to_match",
           "extra_instances", "load_sweep", "plan_row", "pool_model_of", "run_study",
           "size_two_pools"]

OPTIMISTIC = 1.15  # flag pools whose simulated P99 exceeds the prediction by more than 15 %


def size_two_pools(problem: Problem, min_tail_share: float = 0.05) -> Fleet:
    """Least-power two-pool fleet (evaluator's sizing), upper pool >= ``min_tail_share``."""
    wl = problem.workload
    sizer = Sizer(problem)
    best: tuple[float, Fleet] | None = None
    for b in problem.candidate_boundaries():
        if 1.0 - wl.share_at_most(b) < min_tail_share:
            continue
        pools, total = [], 0.0
        for lo, hi in ((0, b), (b, problem.max_ctx)):
            sized = [sp for sp in (sizer.size(lo, hi, hi, d) for d in problem.deployments())
                     if sp.ok]
            if not sized:
                break
            sp = min(sized, key=lambda x: x.power_w)
            pools.append(sp.spec())
            total += sp.power_w
        else:
            if best is None or total < best[0]:
                best = (total, Fleet(tuple(pools)))
    if best is None:
        raise RuntimeError(f"no feasible two-pool fleet for {problem.name}")
    return best[1]


def pool_model_of(problem: Problem, spec: PoolSpec, rate_rps: float | None = None) -> PoolModel:
    wl = problem.workload if rate_rps is None else problem.workload.with_rate(rate_rps)
    return pool_model(spec, problem.profile(spec.deployment), wl, problem.settings)


def analytical_ttft_s(pm: PoolModel, instances: int, cv2: float | None = None,
                      quantile: float | None = None) -> float:
    """The evaluator's P99 TTFT; in ``paper`` accounting optionally with another service
    ``cv2`` or quantile (the serving model of physical accounting has no single ``cv2``)."""
    if pm.family is not None:
        if cv2 is not None or quantile is not None:
            raise ValueError("cv2 and quantile apply to paper accounting's queue only")
        return float(pm.metrics([instances])["p99_ttft_ms"][0]) / 1000.0
    c = instances * pm.slots
    lam, es = pm.rate_rps, pm.mean_service_s
    pw = erlang_c(c, lam * es)
    th = wait_tail_rate(c, 1.0 / es, lam, pm.cv2 if cv2 is None else cv2)
    q = pm.settings.quantile if quantile is None else quantile
    return float(ttft_quantile_s(pw, th, pm.prefill_full_s, pm.w, q))


def analytical_ccdf(pm: PoolModel, instances: int, t_s: np.ndarray) -> np.ndarray:
    """``P(TTFT > t)`` of the evaluator's model at each ``t`` in ``t_s`` (the sizing test's
    tail, :meth:`fleetopt.sizing.poolmodel.PoolModel.ttft_exceed_prob`)."""
    return pm.ttft_exceed_prob(instances, np.asarray(t_s, dtype=float))


def cv2_to_match(pm: PoolModel, instances: int, target_s: float) -> float | None:
    """Service ``cv2`` at which the evaluator's P99 TTFT equals ``target_s`` (None: no cv2 does,
    or the pool is sized by the serving model, which has no single service ``cv2``)."""
    if pm.family is not None:
        return None
    lo, hi = pm.cv2, 200.0
    if analytical_ttft_s(pm, instances, lo) >= target_s:
        return lo
    if analytical_ttft_s(pm, instances, hi) < target_s:
        return None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if analytical_ttft_s(pm, instances, mid) < target_s:
            lo = mid
        else:
            hi = mid
    return hi


def compare_case(problem: Problem, fleet: Fleet, case: str, seeds: tuple[int, ...],
                 requests: int, replay: Any = None) -> list[dict[str, Any]]:
    """One row per pool: simulated (mean over seeds, min-max of P99) vs predicted."""
    runs = [simulate_problem(problem, fleet, requests=requests, seed=s, replay=replay) for s in seeds]
    rows = []
    for k, spec in enumerate(fleet.pools):
        ps = [r.pools[k] for r in runs]
        p99 = np.array([p.stats.p99_ttft_ms for p in ps])
        sim = float(p99.mean())
        pred = ps[0].predicted_p99_ttft_ms
        row: dict[str, Any] = {
            "case": case, "pool": f"({spec.ctx_lo}, {spec.ctx_hi}]",
            "gpu": spec.deployment.label(), "instances": spec.instances,
            "share": float(np.mean([p.stats.requests for p in ps]) / max(1, runs[0].totals["requests"])),
            "sim_p99_ms": sim, "sim_p99_lo": float(p99.min()), "sim_p99_hi": float(p99.max()),
            "pred_p99_ms": pred, "p99_ratio": sim / pred if pred else math.nan,
            "sim_power_w": float(np.mean([p.stats.power_w for p in ps])),
            "pred_power_w": ps[0].predicted_power_w,
            "sim_tok_s": float(np.mean([p.stats.output_tok_per_s for p in ps])),
            "pred_tok_s": ps[0].predicted_output_tok_per_s,
            "sim_batch": float(np.mean([p.stats.mean_batch for p in ps])),
            "pred_batch": ps[0].predicted_mean_batch,
            "sim_wait_prob": float(np.mean([p.stats.wait_prob for p in ps])),
            "slo_ms": problem.settings.ttft_p99_ms, "accounting": problem.settings.accounting,
            "requests": int(np.mean([p.stats.requests for p in ps])),
        }
        row["power_ratio"] = row["sim_power_w"] / row["pred_power_w"]
        row["tok_ratio"] = row["sim_tok_s"] / row["pred_tok_s"] if row["pred_tok_s"] else math.nan
        row["optimistic"] = bool(row["p99_ratio"] > OPTIMISTIC)
        if row["optimistic"] and problem.settings.accounting == "physical":
            pm = pool_model_of(problem, spec, runs[0].totals["rate_rps"])
            c2 = cv2_to_match(pm, spec.instances, sim / 1000.0)
            row["cv2_model"], row["cv2_needed"] = getattr(pm, "cv2", None), c2
        rows.append(row)
    return rows


def extra_instances(problem: Problem, fleet: Fleet, pool: int, seeds: tuple[int, ...],
                    requests: int, replay: Any = None, limit: int = 512) -> int | None:
    """Fewest extra instances on ``pool`` for a simulated P99 (max over seeds) within the SLO
    (doubling, then bisection; assumes P99 falls as instances are added)."""
    slo = problem.settings.ttft_p99_ms

    def ok(extra: int) -> bool:
        pools = list(fleet.pools)
        pools[pool] = replace(pools[pool], instances=pools[pool].instances + extra)
        f = Fleet(tuple(pools))
        return max(simulate_problem(problem, f, requests=requests, seed=s, replay=replay)
                   .pools[pool].stats.p99_ttft_ms for s in seeds) <= slo

    if ok(0):
        return 0
    lo, hi = 0, 1
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def load_sweep(problem: Problem, fleet: Fleet, pool: int, seeds: tuple[int, ...],
               requests: int, down: int) -> pd.DataFrame:
    """Simulated vs predicted P99 TTFT as the pool shrinks below its planned size."""
    rows = []
    spec0 = fleet.pools[pool]
    lo_n = max(1, spec0.instances - down)
    for n in range(lo_n, spec0.instances + 2):
        pools = list(fleet.pools)
        pools[pool] = replace(spec0, instances=n)
        f = Fleet(tuple(pools))
        rs = [simulate_problem(problem, f, requests=requests, seed=s) for s in seeds]
        p = [r.pools[pool] for r in rs]
        rows.append({"instances": n, "pred_util": p[0].predicted_utilization,
                     "sim_util": float(np.mean([x.stats.utilization for x in p])),
                     "sim_p99_ms": float(np.mean([x.stats.p99_ttft_ms for x in p])),
                     "pred_p99_ms": p[0].predicted_p99_ttft_ms})
    return pd.DataFrame(rows)


SOLVERS = ("mip", "homogeneous", "pool-routing", "two-pool")
TRACE = "azure-conv-2023"
TRACE_REQUESTS = 19366 * 5  # the trace has 19,366 requests: replay it 5 times back to back


def _solver(name: str) -> Any:
    return {"mip": solve, "homogeneous": baselines.homogeneous,
            "pool-routing": baselines.pool_routing, "two-pool": baselines.two_pool}[name]


def _pools_str(fleet: Fleet) -> str:
    return " + ".join(f"{p.instances}x{p.deployment.label()} ({p.ctx_lo},{p.ctx_hi}]"
                      for p in fleet.pools)


def plan_row(problem: Problem, fleet: Fleet, case: str, solver: str, k: float, arrivals: str,
             requests: int, seed: int = 0) -> dict[str, Any]:
    """Simulate one plan (Poisson or replay of :data:`TRACE`); the worst pool decides."""
    res = simulate_problem(problem, fleet, requests=requests, seed=seed,
                           replay=TRACE if arrivals == "replay" else None)
    live = [p for p in res.pools if p.stats.requests > 0]
    worst = max(live, key=lambda p: p.stats.p99_ttft_ms)
    pred = max(p.predicted_p99_ttft_ms for p in live)
    sim_w = sum(p.stats.power_w for p in res.pools)
    pred_w = sum(p.predicted_power_w for p in res.pools)
    sim_tok = sum(p.stats.output_tok_per_s for p in res.pools)
    pred_tok = sum(p.predicted_output_tok_per_s for p in res.pools)
    slo = problem.settings.ttft_p99_ms
    return {
        "case": case, "workload": problem.workload.name, "rate_rps": problem.workload.rate_rps,
        "solver": solver, "k": k, "arrivals": arrivals, "plan": _pools_str(fleet),
        "instances": sum(p.instances for p in fleet.pools),
        "sim_p99_ms": worst.stats.p99_ttft_ms, "worst_pool": f"({worst.ctx_lo}, {worst.ctx_hi}]",
        "pred_p99_ms": pred, "p99_ratio": worst.stats.p99_ttft_ms / pred if pred else math.nan,
        "slo_ms": slo, "meets_slo": bool(worst.stats.p99_ttft_ms <= slo),
        "sim_power_w": sim_w, "pred_power_w": pred_w, "power_ratio": sim_w / pred_w,
        "sim_tok_s": sim_tok, "pred_tok_s": pred_tok,
        "tok_ratio": sim_tok / pred_tok if pred_tok else math.nan,
        "accounting": problem.settings.accounting,
    }


def correction_study(requests: int = 100_000, trace_requests: int = TRACE_REQUESTS,
                     solvers: tuple[str, ...] = SOLVERS) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Plans of every solver, without (k = 1) and with ``auto_peak_factor``, simulated.

    For each shipped example: its own workload (Poisson arrivals; a CDF workload has no
    timestamps, so ``auto`` is 1 and only k = 1 is planned), and the Azure 2023 conversation
    workload at the example's rate and hardware, planned at k = 1 and k = auto, simulated with
    Poisson arrivals and with the trace's own timestamps (rescaled to the rate).
    """
    rows: list[dict[str, Any]] = []
    plans: dict[str, Any] = {}
    for ex in example_names():
        try:
            prob = load_config(ex)
        except FleetoptError:  # not a planning config (e.g. a sweep file)
            continue
        variants: list[tuple[Problem, tuple[str, ...]]] = \
            [(prob, ("poisson",))] if prob.workload.name != TRACE else []
        conv = prob if prob.workload.name == TRACE else prob.with_(
            workload=builtin(TRACE, prob.workload.rate_rps))
        variants.append((conv, ("poisson", "replay")))
        for base, modes in variants:
            k_auto = auto_peak_factor(base.workload)
            for k in dict.fromkeys((1.0, k_auto)):
                pk = base.with_(settings=replace(base.settings, peak_factor=k))
                for sv in solvers:
                    sol = _solver(sv)(pk)
                    plans[f"{ex}/{base.workload.name}/{sv}/{k:.2f}"] = (pk, sol)
                    if not sol.feasible:
                        rows.append({"case": ex, "workload": base.workload.name, "solver": sv,
                                     "k": k, "arrivals": "-", "plan": f"({sol.status})",
                                     "meets_slo": None})
                        continue
                    for mode in modes:
                        rows.append(plan_row(pk, sol.fleet, ex, sv, k, mode,
                                             requests if mode == "poisson" else trace_requests))
    return pd.DataFrame(rows), plans


def run_study(seeds: tuple[int, ...] = (0, 1, 2), requests: int = 100_000,
              quick: bool = False) -> dict[str, Any]:
    """The per-pool validation (two-pool fleets sized by the evaluator, k = 1) and the
    correction study (:func:`correction_study`): ``{"table", "correction", "plans", "sweep",
    "fleets", "requests"}`` (:func:`fleetopt.report.plots.plot_validation` draws them)."""
    if quick:
        seeds, requests = (0,), 20_000
    rows: list[dict[str, Any]] = []
    fleets: dict[str, tuple[Problem, Fleet]] = {}
    for ex in example_names():
        try:
            prob = load_config(ex)
        except Exception:  # not a planning config (e.g. a sweep file)
            continue
        fl = size_two_pools(prob)
        fleets[ex] = (prob, fl)
        rows += compare_case(prob, fl, f"{ex} / {prob.workload.name} / poisson", seeds, requests)
        conv = prob if prob.workload.name == TRACE else prob.with_(
            workload=builtin(TRACE, prob.workload.rate_rps))
        flc = fl if conv is prob else size_two_pools(conv)
        fleets[f"{ex}+conv"] = (conv, flc)
        if conv is not prob:
            rows += compare_case(conv, flc, f"{ex} / {TRACE} / poisson", seeds, requests)
        rows += compare_case(conv, flc, f"{ex} / {TRACE} / replay", (0,),
                             19366 * (1 if quick else 5), replay=TRACE)
    df = pd.DataFrame(rows)
    corr, plans = correction_study(requests=requests, trace_requests=19366 * (1 if quick else 5))
    sweep = None
    if not quick:
        prob, fl = fleets["azure-h100"]
        sweep = load_sweep(prob, fl, 0, (0, 1), 60_000, down=8)
    return {"table": df, "correction": corr, "plans": plans, "sweep": sweep, "fleets": fleets,
            "requests": requests}
