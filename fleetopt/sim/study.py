"""Validation study: the simulator against the analytical evaluator on the shipped examples.

Run ``python -m fleetopt.sim.study [--out docs/figures] [--quick]``; it prints the tables of
``docs/simulation.md`` (markdown) and writes the ``sim_*.png`` figures.

For each example a two-pool fleet is sized by the evaluator: for every candidate boundary
whose upper pool receives at least ``min_tail_share`` of the requests, each pool takes the
deployment of least predicted power at ``PoolModel.min_instances()``; the boundary of least
total power wins. The same is done for the Azure 2023 conversation workload at the example's
rate and hardware, which is then also replayed from the trace's own timestamps.

Then the burst correction (:func:`correction_study`): every solver (MIP and the three
baselines) plans each example at ``peak_factor`` 1 and ``fleetopt.burst.auto_peak_factor``,
and each plan is simulated with Poisson arrivals and by trace replay (``sim_correction.png``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fleetopt.evaluate import pool_model
from fleetopt.fleet import Fleet, PoolSpec
from fleetopt.models.queueing import erlang_c, ttft_quantile_s, wait_tail_rate
from fleetopt.poolmodel import PoolModel
from fleetopt.problem import Problem, example_names, load_config
from fleetopt.sim.api import simulate_problem
from fleetopt.workload import builtin

OPTIMISTIC = 1.15  # flag pools whose simulated P99 exceeds the prediction by more than 15 %


def size_two_pools(problem: Problem, min_tail_share: float = 0.05) -> Fleet:
    """Least-power two-pool fleet (evaluator's sizing), upper pool >= ``min_tail_share``."""
    wl = problem.workload
    best: tuple[float, Fleet] | None = None
    for b in problem.candidate_boundaries():
        if 1.0 - wl.share_at_most(b) < min_tail_share:
            continue
        pools, total = [], 0.0
        for lo, hi in ((0, b), (b, problem.max_ctx)):
            cands = []
            for d in problem.deployments():
                spec = PoolSpec(lo, hi, d.gpu, d.tp, 1, d.dtype, d.kv_dtype)
                pm = pool_model(spec, problem.profile(d), wl, problem.settings)
                if pm.slots < 1:
                    continue
                n = pm.min_instances()
                if n is None:
                    continue
                cands.append((float(pm.metrics([n])["power_w"][0]), n, d))
            if not cands:
                break
            pw, n, d = min(cands, key=lambda x: x[0])
            pools.append(PoolSpec(lo, hi, d.gpu, d.tp, n, d.dtype, d.kv_dtype))
            total += pw
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
    """The evaluator's TTFT quantile (physical mode), optionally with another ``cv2``."""
    c = instances * pm.slots
    lam, es = pm.rate_rps, pm.mean_service_s
    pw = erlang_c(c, lam * es)
    th = wait_tail_rate(c, 1.0 / es, lam, pm.cv2 if cv2 is None else cv2)
    q = pm.settings.quantile if quantile is None else quantile
    return float(ttft_quantile_s(pw, th, pm.prefill_full_s, pm.w, q))


def analytical_ccdf(pm: PoolModel, instances: int, t_s: np.ndarray) -> np.ndarray:
    """``P(TTFT > t)`` of the evaluator's model (physical mode)."""
    c = instances * pm.slots
    lam, es = pm.rate_rps, pm.mean_service_s
    pw = float(erlang_c(c, lam * es))
    th = float(wait_tail_rate(c, 1.0 / es, lam, pm.cv2))
    d = t_s[:, None] - pm.prefill_full_s[None, :]
    ex = np.where(d < 0, 1.0, pw * np.exp(-th * np.maximum(d, 0.0)))
    return ex @ pm.w


def cv2_to_match(pm: PoolModel, instances: int, target_s: float) -> float | None:
    """Service ``cv2`` at which the evaluator's P99 TTFT equals ``target_s`` (None: no cv2 does)."""
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
        row = {
            "case": case, "pool": f"({spec.ctx_lo}, {spec.ctx_hi}]",
            "gpu": f"{spec.gpu} TP{spec.tp} {spec.dtype}", "instances": spec.instances,
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
            row["cv2_model"], row["cv2_needed"] = pm.cv2, c2
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


def _md(df: pd.DataFrame, cols: dict[str, str], fmt: dict[str, str]) -> str:
    head = "| " + " | ".join(cols.values()) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r.get(c)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append("")
            elif c in fmt:
                cells.append(format(v, fmt[c]))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SOLVERS = ("mip", "homogeneous", "pool-routing", "two-pool")
TRACE = "azure-conv-2023"
TRACE_REQUESTS = 19366 * 5  # the trace has 19,366 requests: replay it 5 times back to back


def _solver(name: str) -> Any:
    from fleetopt.solvers import baselines
    from fleetopt.solvers.mip import solve

    return {"mip": solve, "homogeneous": baselines.homogeneous,
            "pool-routing": baselines.pool_routing, "two-pool": baselines.two_pool}[name]


def _pools_str(fleet: Fleet) -> str:
    return " + ".join(f"{p.instances}x{p.gpu} TP{p.tp} {p.dtype} ({p.ctx_lo},{p.ctx_hi}]"
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
    from fleetopt.burst import auto_peak_factor
    from fleetopt.errors import FleetoptError

    rows: list[dict[str, Any]] = []
    plans: dict[str, Any] = {}
    for ex in example_names():
        try:
            prob = load_config(ex)
        except FleetoptError:  # not a planning config (e.g. a sweep file)
            continue
        variants = [(prob, ("poisson",))] if prob.workload.name != TRACE else []
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


def run_study(out: Path | None, seeds: tuple[int, ...] = (0, 1, 2), requests: int = 100_000,
              quick: bool = False) -> dict[str, Any]:
    """The per-pool validation (two-pool fleets sized by the evaluator, k = 1) and the
    correction study (:func:`correction_study`); figures into ``out``."""
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
    if out is not None:
        _figures(df, fleets, sweep, Path(out), requests)
        _correction_figure(corr, Path(out))
    return {"table": df, "correction": corr, "plans": plans, "sweep": sweep, "fleets": fleets}


def _correction_figure(corr: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = corr[corr.arrivals.isin(["poisson", "replay"])].copy()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    ax = axes[0]
    for (mode, corrected), g in d.groupby([d.arrivals, d.k > 1.0]):
        mk = "o" if mode == "poisson" else "^"
        col = "tab:green" if corrected else "tab:red"
        ax.scatter(g.pred_p99_ms, g.sim_p99_ms, marker=mk, color=col, alpha=0.8,
                   label=f"{mode}, {'k = auto' if corrected else 'k = 1'}")
    lim = [max(1.0, d[["sim_p99_ms", "pred_p99_ms"]].min().min() * 0.8),
           d[["sim_p99_ms", "pred_p99_ms"]].max().max() * 1.3]
    ax.plot(lim, lim, "k-", lw=0.8)
    ax.axhline(500, color="r", lw=0.8, ls="--", label="SLO 500 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("analytical P99 TTFT of the worst pool (ms, at the design rate)")
    ax.set_ylabel("simulated P99 TTFT of the worst pool (ms)")
    ax.set_title("every solver's plan, before (k = 1) and after (k = auto)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    conv = d[(d.workload == TRACE) & (d.arrivals == "replay")]
    labels, before, after = [], [], []
    for (case, sv), g in conv.groupby(["case", "solver"], sort=False):
        b, a = g[g.k == 1.0], g[g.k > 1.0]
        if len(b) and len(a):
            labels.append(f"{case}\n{sv}")
            before.append(b.pred_power_w.iloc[0] / 1000)
            after.append(a.pred_power_w.iloc[0] / 1000)
    x = np.arange(len(labels))
    ratio = np.array(after) / np.array(before)
    ax.bar(x, ratio, 0.6, color="tab:green")
    for xi, (r, b, a) in enumerate(zip(ratio, before, after, strict=True)):
        ax.text(xi, r + 0.03, f"{b:.0f}->{a:.0f}", ha="center", fontsize=6, rotation=90, va="bottom")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=6, rotation=60, ha="right")
    ax.set_ylim(0, max(ratio) * 1.35)
    ax.set_ylabel("planned power, k = auto / k = 1 (labels: kW)")
    ax.set_title(f"{TRACE} plans: the power cost of the correction", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sim_correction.png", dpi=110)
    plt.close(fig)


def _figures(df: pd.DataFrame, fleets: dict[str, tuple[Problem, Fleet]], sweep: pd.DataFrame | None,
             out: Path, requests: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (s, p, title) in zip(axes, (("sim_p99_ms", "pred_p99_ms", "P99 TTFT (ms)"),
                                        ("sim_power_w", "pred_power_w", "power (W)"),
                                        ("sim_tok_s", "pred_tok_s", "output tokens/s")), strict=True):
        for mode, mk in (("poisson", "o"), ("replay", "^")):
            d = df[df.case.str.endswith(mode) & (df[p] > 0)]
            ax.scatter(d[p], d[s], marker=mk, label=mode, alpha=0.8)
        lim = [df[[s, p]].replace(0, np.nan).min().min() * 0.8, df[[s, p]].max().max() * 1.25]
        ax.plot(lim, lim, "k-", lw=0.8)
        if s == "sim_p99_ms":
            ax.plot(lim, [x * OPTIMISTIC for x in lim], "r--", lw=0.8, label="+15 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"predicted {title}")
        ax.set_ylabel(f"simulated {title}")
        ax.legend(fontsize=8)
    fig.suptitle("simulated vs analytical, per pool (shipped examples, two-pool fleets)")
    fig.tight_layout()
    fig.savefig(out / "sim_validation.png", dpi=110)
    plt.close(fig)

    prob, fl = fleets["azure-h100"]
    r = simulate_problem(prob, fl, requests=requests, seed=0)
    fig, axes = plt.subplots(1, len(fl.pools), figsize=(11, 4))
    for k, ax in enumerate(np.atleast_1d(axes)):
        req = r.requests[r.requests.measured & (r.requests.pool == k)]
        x = np.sort(req.ttft_s.to_numpy())
        ccdf = 1.0 - np.arange(1, len(x) + 1) / len(x)
        ax.step(x * 1000, ccdf, where="post", label="simulated")
        pm = pool_model_of(prob, fl.pools[k])
        t = np.linspace(0, max(x.max(), pm.prefill_full_s.max()) * 1.05, 400)
        ax.plot(t * 1000, analytical_ccdf(pm, fl.pools[k].instances, t), label="analytical")
        ax.axhline(0.01, color="grey", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.1)
        ax.set_xlabel("TTFT (ms)")
        ax.set_ylabel("P(TTFT > t)")
        p = fl.pools[k]
        ax.set_title(f"azure-h100 pool ({p.ctx_lo}, {p.ctx_hi}], {p.instances} x {p.gpu} TP{p.tp}",
                     fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sim_ttft_ccdf.png", dpi=110)
    plt.close(fig)

    if sweep is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(sweep.instances, sweep.sim_p99_ms, "o-", label="simulated P99")
        ax.plot(sweep.instances, sweep.pred_p99_ms.replace(np.inf, np.nan), "s--", label="analytical P99")
        ax.axhline(prob.settings.ttft_p99_ms, color="r", lw=0.8, label="SLO")
        ax.set_yscale("log")
        ax.set_xlabel("instances in the short pool")
        ax.set_ylabel("P99 TTFT (ms)")
        ax.set_title("azure-h100 short pool: shrinking below the planned size", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "sim_load_sweep.png", dpi=110)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="folder for the sim_*.png figures")
    ap.add_argument("--quick", action="store_true", help="one seed, 20,000 requests")
    a = ap.parse_args(argv)
    res = run_study(Path(a.out) if a.out else None, quick=a.quick)
    df = res["table"]
    for _, (prob, fl) in res["fleets"].items():
        print(prob.name, prob.workload.name, prob.workload.rate_rps, fl.to_list())
    print(_md(df, {"case": "case", "pool": "pool", "gpu": "deployment", "instances": "N",
                   "share": "share", "sim_p99_ms": "sim P99 ms", "sim_p99_lo": "lo",
                   "sim_p99_hi": "hi", "pred_p99_ms": "pred P99 ms", "p99_ratio": "sim/pred",
                   "sim_power_w": "sim W", "pred_power_w": "pred W", "power_ratio": "W ratio",
                   "sim_tok_s": "sim tok/s", "tok_ratio": "tok ratio", "sim_batch": "sim batch",
                   "pred_batch": "pred batch", "sim_wait_prob": "P(wait)"},
              {"share": ".3f", "sim_p99_ms": ".1f", "sim_p99_lo": ".1f", "sim_p99_hi": ".1f",
               "pred_p99_ms": ".1f", "p99_ratio": ".2f", "sim_power_w": ",.0f",
               "pred_power_w": ",.0f", "power_ratio": ".3f", "sim_tok_s": ",.0f",
               "tok_ratio": ".3f", "sim_batch": ".1f", "pred_batch": ".1f", "sim_wait_prob": ".3f"}))
    print()
    c = res["correction"]
    print(_md(c, {"case": "case", "workload": "workload", "solver": "solver", "k": "k",
                  "arrivals": "arrivals", "plan": "plan", "instances": "instances",
                  "worst_pool": "worst pool", "sim_p99_ms": "sim P99 ms",
                  "pred_p99_ms": "pred P99 ms", "meets_slo": "meets SLO",
                  "sim_power_w": "sim W", "pred_power_w": "pred W", "power_ratio": "W ratio",
                  "tok_ratio": "tok ratio"},
              {"k": ".2f", "sim_p99_ms": ".0f", "pred_p99_ms": ".0f", "sim_power_w": ",.0f",
               "pred_power_w": ",.0f", "power_ratio": ".3f", "tok_ratio": ".3f",
               "instances": ".0f"}))
    ok = c[(c.k > 1.0) & c.meets_slo.notna()]
    print(f"\ncorrected plans meeting the SLO in simulation: {int(ok.meets_slo.sum())} / {len(ok)}")
    if res["sweep"] is not None:
        print()
        print(_md(res["sweep"], {c: c for c in res["sweep"].columns},
                  {"pred_util": ".3f", "sim_util": ".3f", "sim_p99_ms": ".1f", "pred_p99_ms": ".1f"}))


if __name__ == "__main__":
    main()
