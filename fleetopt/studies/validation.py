"""Validation study: the iteration-level simulator against the analytical evaluator.

``python scripts/make_docs.py simulation`` runs it (:func:`run_study`) and writes the tables of
``docs/simulation.md`` and the ``sim_*.png`` figures
(:func:`fleetopt.report.plots.plot_validation`).

Cases (:func:`cases`): every shipped example with its own workload, and every other built-in
workload on the hardware and rate of a base example (``azure-h100``). For each, the solver's
plan (the MIP) is simulated (:func:`fleetopt.sim.simulate_problem`) under Poisson arrivals and,
for a workload with a trace, under replay of the trace's own timestamps (rescaled to the rate).
Per pool (:func:`pool_rows`): simulated vs predicted vs target for P99 TTFT and P99 TPOT (with
their confidence intervals), throughput against the offered load (the delivered share), power,
KV and compute utilisation, and whether the analytical model is optimistic by more than
:data:`OPTIMISTIC` (10 %). Then throughput against offered load as the rate of one plan is
scaled (:func:`load_sweep`), and each trace case's per-pool burst factors
(:func:`burst_rows`, :func:`fleetopt.physics.burst.pool_peak_factors`) beside the one global
factor (``[slo] peak_factor = "auto-global"``); and each trace case planned again with the burst
correction, one global factor and per pool (``"auto"``, :data:`BURST_MODES`), each plan replayed
(:func:`burst_plan_row`: its watts, and its simulated P99 TTFT under replay against the target).

The study measures; it fixes nothing. Where the analytical model is optimistic, the fix belongs
in the analytical pool model (``sizing/``), never in the simulator. :func:`run_study` with
``quick=True`` is the small version the test suite runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import is_missing
from fleetopt.physics.burst import pool_peak_factors
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import example_names, load_config
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import auto_peak_factor, builtin, builtin_names, builtin_trace
from fleetopt.sim.api import simulate_problem
from fleetopt.sim.arrivals import shipped_trace_names
from fleetopt.sim.result import SimResult

__all__ = ["BASE", "BURST_MODES", "OPTIMISTIC", "QUICK", "Case", "burst_plan_row", "burst_rows",
           "cases", "load_sweep", "plan_text", "pool_rows", "run_study", "summary",
           "with_peak_factor"]

#: a prediction is optimistic when the simulated figure exceeds it by more than this share
OPTIMISTIC = 0.10
#: the example whose hardware and rate the other built-in workloads are planned on
BASE = "azure-h100"
#: the small version (tests): one example, one trace workload on its hardware, few requests
QUICK: dict[str, Any] = {"examples": ("paper-azure",), "workloads": ("azure-conv-2023",),
                         "base": "paper-azure", "requests": 3000, "sweep_factors": (0.5, 1.0)}


@dataclass(frozen=True)
class Case:
    """One planning problem of the study and the arrivals it is simulated under."""

    name: str  # "<example>" or "<base> + <workload>"
    problem: Problem
    arrivals: tuple[str, ...]  # "poisson", and "replay" for a workload with a trace


def _has_trace(problem: Problem) -> bool:
    names = {n.lower() for n in shipped_trace_names()}
    return problem.workload.name.lower() in names


def cases(examples: Sequence[str] | None = None, workloads: Sequence[str] | None = None,
          base: str = BASE) -> list[Case]:
    """Every shipped example (its own workload), and every built-in workload not already
    an example's on the ``base`` example's hardware and rate (its context range widened to the
    workload's longest request when needed)."""
    out = []
    seen = set()
    for ex in (example_names() if examples is None else examples):
        try:
            prob = load_config(ex)
        except FleetoptError:  # not a planning config
            continue
        seen.add(prob.workload.name)
        out.append(Case(ex, prob, ("poisson", "replay") if _has_trace(prob) else ("poisson",)))
    ref = load_config(base)
    for w in (builtin_names() if workloads is None else workloads):
        if w in seen and workloads is None:
            continue
        wl = builtin(w, ref.workload.rate_rps)
        prob = ref.with_(workload=wl, max_ctx=None, name=f"{base}+{w}") \
            if wl.max_total_tokens > ref.max_ctx else ref.with_(workload=wl, name=f"{base}+{w}")
        out.append(Case(f"{base} + {w}", prob,
                        ("poisson", "replay") if _has_trace(prob) else ("poisson",)))
    return out


def plan_text(fleet: Fleet) -> str:
    return " + ".join(f"{p.instances}x{p.deployment.label()} ({p.ctx_lo},{p.ctx_hi}]"
                      for p in fleet.pools)


def _ratio(a: float | None, b: float | None) -> float:
    """Simulated over predicted; inf for a simulated tail that never ended (requests that
    did not finish), so such a pool reads as optimistic; NaN without both figures."""
    if a is None or math.isnan(a) or b is None or not math.isfinite(b) or b <= 0:
        return math.nan
    return a / b


def _num(x: Any) -> float | None:
    return None if is_missing(x) else float(x)


def pool_rows(case: Case, arrivals: str, res: SimResult) -> list[dict[str, Any]]:
    """One row per pool with measured requests: simulated vs predicted vs target."""
    rows = []
    total = sum(p.stats.requests for p in res.pools) or 1
    simulated = res.totals["simulated_requests"]
    for p in res.pools:
        s, pr = p.stats, p.predicted
        if s.requests == 0:
            continue
        pred_ttft, pred_tpot = _num(pr.get("p99_ttft_ms")), _num(pr.get("p99_tpot_ms"))
        r_ttft = _ratio(s.p99_ttft_ms, pred_ttft)
        r_tpot = _ratio(s.p99_tpot_ms, pred_tpot)
        rows.append({
            "case": case.name, "workload": case.problem.workload.name,
            "rate_rps": case.problem.workload.rate_rps, "arrivals": arrivals,
            "pool": f"({p.ctx_lo}, {p.ctx_hi}]", "gpu": p.label,
            "instances": s.instances, "share": s.requests / total, "requests": s.requests,
            "sim_p99_ttft_ms": s.p99_ttft_ms, "sim_p99_ttft_ci_ms": s.p99_ttft_ci_ms,
            "pred_p99_ttft_ms": pred_ttft, "ttft_target_ms": p.ttft_target_ms,
            "ttft_ratio": r_ttft,
            "sim_p99_tpot_ms": s.p99_tpot_ms, "sim_p99_tpot_ci_ms": s.p99_tpot_ci_ms,
            "pred_p99_tpot_ms": pred_tpot,
            "tpot_target_ms": p.tpot_target_ms if math.isfinite(p.tpot_target_ms) else None,
            "tpot_ratio": r_tpot,
            "offered_tok_s": s.offered_output_tok_per_s, "sim_tok_s": s.output_tok_per_s,
            "pred_tok_s": _num(pr.get("output_tok_per_s")), "delivered": s.delivered_fraction,
            "delivered_ci": s.delivered_ci, "preemptions": s.preemptions,
            "kv_util": s.kv_utilization, "busy": s.busy_fraction,
            "sim_batch": s.mean_batch, "pred_batch": _num(pr.get("mean_batch")),
            "sim_power_w": s.power_w, "pred_power_w": _num(pr.get("power_w")),
            "power_ratio": _ratio(s.power_w, _num(pr.get("power_w"))),
            "time_in_system_s": s.mean_time_in_system_s,
            "slo_met": p.slo_met, "delivers": p.delivers_offered_load,
            "check_passed": p.check_passed,
            "ttft_optimistic": bool(r_ttft > 1.0 + OPTIMISTIC),
            "tpot_optimistic": bool(r_tpot > 1.0 + OPTIMISTIC),
            "simulated": simulated,
        })
    return rows


def load_sweep(problem: Problem, fleet: Fleet, factors: Sequence[float] = (0.25, 0.5, 0.75, 1.0,
                                                                             1.25),
               requests: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Throughput against offered load: the plan simulated at ``factors`` x the problem's rate
    (the evaluator at each rate beside it)."""
    rows = []
    for f in factors:
        prob = problem.with_(workload=problem.workload.with_rate(f * problem.workload.rate_rps))
        res = simulate_problem(prob, fleet, requests=requests, seed=seed)
        t = res.totals
        rows.append({"factor": f, "rate_rps": prob.workload.rate_rps,
                     "offered_tok_s": t["offered_output_tok_per_s"],
                     "sim_tok_s": t["output_tok_per_s"],
                     "pred_tok_s": t["predicted_output_tok_per_s"],
                     "delivered": t["delivered_fraction"],
                     "sim_worst_p99_ttft_ms": t["worst_pool_p99_ttft_ms"],
                     "pred_worst_p99_ttft_ms": t["predicted_p99_ttft_ms"],
                     "check_passed": t["check_passed"]})
    return pd.DataFrame(rows)


def burst_rows(case: Case, res: SimResult, multiples: Sequence[float] = (1.0, 3.0)
               ) -> list[dict[str, Any]]:
    """Per pool of a trace case: the burst factor of the pool's own requests
    (:func:`~fleetopt.physics.burst.pool_peak_factors`) over windows of ``multiples`` x the
    pool's simulated mean time in system (NaN for a pool that does not keep up: its time in
    system is then the length of the run, not a property of the pool), and over the default
    windows; beside the one global factor that ``peak_factor = "auto"`` gives every pool."""
    prob = case.problem
    tr = builtin_trace(prob.workload.name)
    tot = np.asarray(tr["input"]) + np.asarray(tr["output"])
    fleet_edges = [0] + [p.ctx_hi for p in res.pools]
    rate = prob.workload.rate_rps
    per_pool = []  # a pool that keeps up: windows of its time in system; else none (NaN)
    for p in res.pools:
        ts = p.stats.mean_time_in_system_s
        ok = p.check_passed and math.isfinite(ts) and ts > 0
        per_pool.append([m * ts for m in multiples] if ok else None)
    own = pool_peak_factors(tr["arrival_s"], tot, fleet_edges, rate,
                            window_s=[w if w is not None else [1.0] for w in per_pool])
    own = [k if w is not None else math.nan for k, w in zip(own, per_pool, strict=True)]
    default = pool_peak_factors(tr["arrival_s"], tot, fleet_edges, rate)
    glob = auto_peak_factor(prob.workload)
    rows = []
    last = len(res.pools) - 1
    for k, p in enumerate(res.pools):
        mine = (tot > fleet_edges[k]) & ((tot <= fleet_edges[k + 1]) if k < last else True)
        rows.append({"case": case.name, "workload": prob.workload.name, "rate_rps": rate,
                     "pool": f"({p.ctx_lo}, {p.ctx_hi}]", "share": float(np.mean(mine)),
                     "time_in_system_s": p.stats.mean_time_in_system_s,
                     "k_pool": own[k], "k_pool_default_windows": default[k], "k_global": glob,
                     "sim_replay_p99_ttft_ms": None})
    return rows


#: the burst corrections a trace case is planned with and replayed (before: the case's own
#: setting, 1.0 in the shipped examples): ``[slo] peak_factor`` = one global factor, per pool
BURST_MODES: tuple[str, ...] = ("auto-global", "auto")


def with_peak_factor(problem: Problem, mode: str) -> Problem:
    """``problem`` with ``[slo] peak_factor = mode`` (``"auto"``: per pool, ``"auto-global"``:
    one factor for every pool)."""
    if mode not in BURST_MODES:
        raise FleetoptError("mode", f"one of {', '.join(BURST_MODES)}, got {mode!r}")
    return problem.with_(peak_factor_auto=True, peak_factor_global=mode == "auto-global")


def burst_plan_row(case: Case, problem: Problem, fleet: Fleet | None, status: str,
                   res: SimResult | None) -> dict[str, Any]:
    """One plan of a trace case under a burst correction and its replay: the factors it was
    sized at, its predicted watts, and the worst pool's simulated P99 TTFT (with its CI)
    against the target."""
    used = problem.settings_used()
    src = used["peak_factor_source"]
    label = "auto (per pool)" if src == "auto" else f"{used['peak_factor']:.3g} ({src})"
    row: dict[str, Any] = {"case": case.name, "peak_factor": label, "status": status,
                           "target_ms": problem.settings.ttft_p99_ms}
    if fleet is None or res is None:
        return {**row, "plan": f"(no plan: {status})"}
    ks = problem.fleet_peak_factors(fleet) or [problem.settings.peak_factor] * len(fleet.pools)
    live = [p for p in res.pools if p.stats.requests]
    worst = max(live, key=lambda p: p.stats.p99_ttft_ms) if live else None
    t = res.totals
    sim = worst.stats.p99_ttft_ms if worst else math.nan
    return {**row, "plan": plan_text(fleet), "k_pools": " / ".join(f"{k:.2f}" for k in ks),
            "instances": sum(p.instances for p in fleet.pools),
            "pred_power_w": t["predicted_power_w"],
            "pred_worst_p99_ttft_ms": t["predicted_p99_ttft_ms"],
            "sim_worst_p99_ttft_ms": sim,
            "sim_worst_p99_ttft_ci_ms": worst.stats.p99_ttft_ci_ms if worst else math.nan,
            "sim_over_target": sim / problem.settings.ttft_p99_ms,
            "within_ci": bool(worst is not None and sim - worst.stats.p99_ttft_ci_ms
                              <= problem.settings.ttft_p99_ms),
            "check_passed": t["check_passed"]}


def summary(table: pd.DataFrame, plans: pd.DataFrame) -> dict[str, Any]:
    """Counts: pools compared, where the evaluator is optimistic, plans passing in simulation."""
    t = table
    with_pred = t[t.pred_p99_ttft_ms.notna()] if len(t) else t
    feasible = plans[plans.status.isin(["optimal", "feasible"])] if len(plans) else plans
    return {
        "pool_rows": int(len(t)),
        "ttft_compared": int(len(with_pred)),
        "ttft_optimistic": int(t.ttft_optimistic.sum()) if len(t) else 0,
        "tpot_compared": int(t.pred_p99_tpot_ms.notna().sum()) if len(t) else 0,
        "tpot_optimistic": int(t.tpot_optimistic.sum()) if len(t) else 0,
        "not_delivering": int(t.delivers.eq(False).sum()) if len(t) else 0,
        "plans": int(len(plans)), "plans_feasible": int(len(feasible)),
        "runs_passed": int(feasible.check_passed.eq(True).sum()) if len(feasible) else 0,
        "runs": int(len(feasible)),
    }


def run_study(*, examples: Sequence[str] | None = None, workloads: Sequence[str] | None = None,
              base: str = BASE, requests: int | None = None, seed: int = 0,
              replications: int = 1, sweep_case: str | None = None,
              sweep_factors: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.25),
              quick: bool = False) -> dict[str, Any]:
    """The study: ``{"plans", "table", "sweep", "burst", "burst_plans", "summary",
    "results"}``.

    ``plans``: one row per (case, arrivals) with the plan and the fleet verdict; ``table``:
    :func:`pool_rows` of every run; ``sweep``: :func:`load_sweep` of ``sweep_case`` (default
    the base example); ``burst``: :func:`burst_rows` of every trace case; ``burst_plans``: per
    trace case, :func:`burst_plan_row` of its plan as configured and planned with each of
    :data:`BURST_MODES` (each replayed); ``results``: the
    :class:`~fleetopt.sim.result.SimResult` of every run. ``requests=None`` lets each run
    choose its length (``simulate(requests=None)``). ``quick=True``: :data:`QUICK`.
    """
    if quick:
        examples, workloads, base = QUICK["examples"], QUICK["workloads"], QUICK["base"]
        requests, sweep_factors = QUICK["requests"], QUICK["sweep_factors"]
    plans: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    burst: list[dict[str, Any]] = []
    burst_plans: list[dict[str, Any]] = []
    results: dict[tuple[str, str], SimResult] = {}
    fleets: dict[str, tuple[Problem, Fleet]] = {}
    for case in cases(examples, workloads, base):
        sol = solve(case.problem)
        head = {"case": case.name, "workload": case.problem.workload.name,
                "rate_rps": case.problem.workload.rate_rps, "status": str(sol.status)}
        fleet = sol.fleet if sol.feasible else None
        if fleet is None:
            plans.append({**head, "arrivals": "-", "plan": f"(no plan: {sol.status})",
                          "check_passed": None})
            continue
        fleets[case.name] = (case.problem, fleet)
        for arr in case.arrivals:
            res = simulate_problem(case.problem, fleet, requests=requests, seed=seed,
                                   replications=replications,
                                   replay=True if arr == "replay" else None)
            results[(case.name, arr)] = res
            t = res.totals
            plans.append({**head, "arrivals": arr, "plan": plan_text(fleet),
                          "instances": sum(p.instances for p in fleet.pools),
                          "pred_power_w": t["predicted_power_w"], "sim_power_w": t["power_w"],
                          "pred_worst_p99_ttft_ms": t["predicted_p99_ttft_ms"],
                          "sim_worst_p99_ttft_ms": t["worst_pool_p99_ttft_ms"],
                          "sim_worst_p99_tpot_ms": t["worst_pool_p99_tpot_ms"],
                          "delivered": t["delivered_fraction"],
                          "evaluator_slo_met": bool(sol.totals.get("slo_met")),
                          "slo_met": t["slo_met"], "check_passed": t["check_passed"],
                          "simulated": t["simulated_requests"]})
            rows += pool_rows(case, arr, res)
        if "replay" in case.arrivals:
            b = burst_rows(case, results[(case.name, "poisson")])
            rep = results[(case.name, "replay")]
            for row, p in zip(b, rep.pools, strict=True):
                row["sim_replay_p99_ttft_ms"] = p.stats.p99_ttft_ms if p.stats.requests else None
            burst += b
            burst_plans.append(burst_plan_row(case, case.problem, fleet, str(sol.status), rep))
            for mode in BURST_MODES:
                pm = with_peak_factor(case.problem, mode)
                sm = solve(pm)
                fm = sm.fleet if sm.feasible else None
                rm = None if fm is None else simulate_problem(
                    pm, fm, requests=requests, seed=seed, replications=replications, replay=True)
                burst_plans.append(burst_plan_row(case, pm, fm, str(sm.status), rm))
    table = pd.DataFrame(rows)
    plans_df = pd.DataFrame(plans)
    first: str | None = next(iter(fleets), None)
    key = sweep_case or (base if base in fleets else first)
    sweep = None
    if key is not None and key in fleets:
        prob, fl = fleets[key]
        sweep = load_sweep(prob, fl, sweep_factors, requests, seed)
        sweep.insert(0, "case", key)
    return {"plans": plans_df, "table": table, "sweep": sweep, "burst": pd.DataFrame(burst),
            "burst_plans": pd.DataFrame(burst_plans), "summary": summary(table, plans_df), "results": results, "fleets": fleets}
