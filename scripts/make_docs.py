"""Every figure in ``docs/figures/`` and every result table of README.md and ``docs/*.md``.

Run ``python scripts/make_docs.py`` (everything; several minutes on the 2-core machine, most of
it the simulator's validation study) or name parts: ``python scripts/make_docs.py readme
studies``. ``--check`` rewrites nothing and exits 1 when a generated text differs from the
file (the figures are then not drawn).

Generated text lives between markers (each on a line of its own) in the Markdown files::

    <!-- fleetopt:begin NAME -->
    ... written by this script ...
    <!-- fleetopt:end NAME -->

and everything between them is replaced; the rest of each file is left alone. The output is
deterministic: fixed seeds, no timings in generated text (timings are benchmarks:
``benchmarks/``), and PNGs without a software-version stamp. ``tests/test_docs.py`` checks the
README's tables (and the other fast parts) against a fresh run.

Parts:

* ``readme``: README "Results on the shipped examples" (``fleetopt compare`` per example);
* ``baselines``: the comparison table of each shipped example in ``docs/baselines.md``;
* ``topology``: what remains of the 1/W law under paged and reserved KV (``docs/model.md``)
  and where multi-pool topology still saves watts (``docs/baselines.md``);
* ``studies``: the procurement example of ``docs/studies.md`` (its config is the TOML block on
  that page), ``study_frontier.png`` and ``study_topology.png`` (the ``azure-mixed`` optimum);
* ``power``: ``power_fit.png`` from the shipped measurements and fits (``docs/data.md``'s own
  tables come from ``scripts/derive_data.py``, which needs the raw data sets);
* ``paper``: ``paper_*.png``, by executing ``notebooks/paper_reproduction.ipynb`` with
  ``FLEETOPT_EXPORT_FIGURES=1``;
* ``simulation``: the validation study's tables of ``docs/simulation.md`` and ``sim_*.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
EXAMPLES = ("azure-h100", "azure-mixed", "paper-azure")
MARK = "<!-- fleetopt:{} {} -->"

#: every figure in docs/figures and the part that draws it
FIGURE_PARTS: dict[str, str] = {
    "study_frontier.png": "studies", "study_topology.png": "studies", "power_fit.png": "power",
    "paper_fleet_kw.png": "paper", "paper_tokw_vs_context.png": "paper",
    "sim_validation.png": "simulation", "sim_throughput.png": "simulation",
    "sim_burst.png": "simulation",
}


# ------------------------------------------------------------------------------------------
# markers


def replace_between(text: str, name: str, body: str) -> str:
    """``text`` with the lines between the ``name`` markers replaced by ``body``."""
    begin, end = MARK.format("begin", name), MARK.format("end", name)
    pat = re.compile(r"^" + re.escape(begin) + r"\n.*?^" + re.escape(end), re.S | re.M)
    if len(pat.findall(text)) != 1:
        raise SystemExit(f"make_docs: expected one '{begin}' ... '{end}' block")
    return pat.sub(lambda _m: f"{begin}\n{body.rstrip()}\n{end}", text)


def between(text: str, name: str) -> str:
    """The text between the ``name`` markers."""
    begin, end = MARK.format("begin", name), MARK.format("end", name)
    m = re.search(r"^" + re.escape(begin) + r"\n(.*?)^" + re.escape(end), text, re.S | re.M)
    if m is None:
        raise SystemExit(f"make_docs: no '{begin}' block")
    return m.group(1).rstrip()


# ------------------------------------------------------------------------------------------
# the tables


def _pct(v: float | None, sign: bool = False) -> str:
    if v is None or v != v:
        return "–"
    return f"{v:+.1f}%" if sign else f"{v:.1f}%"


def comparisons() -> dict[str, Any]:
    """``compare_solutions`` and its frame per shipped example (computed once per run)."""
    from fleetopt.problem.config import load_config
    from fleetopt.studies.compare import compare_solutions, comparison_frame

    out = {}
    for ex in EXAMPLES:
        problem = load_config(ex)
        sols = compare_solutions(problem)
        out[ex] = (problem, sols, comparison_frame(sols, problem.objective))
    return out


#: the README's description of each example
README_EXAMPLES = {
    "azure-h100": "Azure CDF, 1,000 req/s, H100 TP 4/8",
    "azure-mixed": "Azure conv trace, 500 req/s, 5 GPU types, budget, inventory",
    "paper-azure": "calibrated H100, published accounting, <= 2 pools",
}
_NAMES = {"homogeneous": "homogeneous", "pool-routing": "pool routing",
          "two-pool-fleetopt": "two-pool"}


def readme_results(cmp: dict[str, Any]) -> str:
    """README: kW of every approach per shipped example, and the compression sentence."""
    lines = ["| example | homogeneous | pool routing | two-pool FleetOpt (compress) | MIP | "
             "MIP with compress bands |", "|---|---|---|---|---|---|"]
    for ex in ("azure-h100", "azure-mixed", "paper-azure"):
        _problem, sols, df = cmp[ex]
        rows = {r["approach"]: r for r in df.to_dict("records")}
        cells = [f"{rows[a]['power_kw']:,.1f}" for a in ("homogeneous", "pool-routing",
                                                         "two-pool-fleetopt")]
        for a, fam_best in (("mip", ("homogeneous", "pool-routing")),
                            ("mip-compress", ("two-pool-fleetopt",))):
            r = rows[a]
            saving = r["mip_saving_vs_best_heuristic_pct"]
            if saving == saving and saving > 0.05:
                best = min(fam_best, key=lambda b: rows[b]["power_kw"])
                cells.append(f"**{r['power_kw']:,.1f}** ({int(r['pools'])} pools, "
                             f"-{saving:.1f} % vs {_NAMES[best]})")
            else:
                cells.append(f"{r['power_kw']:,.1f}")
        lines.append(f"| `{ex}` ({README_EXAMPLES[ex]}) | " + " | ".join(cells) + " |")
    rows = {r["approach"]: r for r in cmp["azure-h100"][2].to_dict("records")}
    lines += ["", "The MIP is never worse than a baseline of its family (tested on every built-in "
              "workload), and", "reports how many requests each compressed plan truncates (the "
              "MIP with compress bands on", f"`azure-h100` compresses "
              f"{100 * rows['mip-compress']['compressed']:.1f} % of requests against "
              f"{100 * rows['two-pool-fleetopt']['compressed']:.1f} % for two-pool FleetOpt: a "
              "different", "service, which is why the families are compared separately)."]
    return "\n".join(lines)


def comparison_table(df: Any) -> str:
    """docs/baselines.md: one example's comparison, every approach."""
    lines = ["| approach | family | status | pools | instances | GPUs | kW | tok/W | $/h | worst "
             "P99 TTFT ms | compressed | vs homogeneous | mip saving |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        lines.append("| " + " | ".join([
            r["approach"], r["family"], str(r["status"]), f"{int(r['pools'])}",
            f"{int(r['instances']):,}", f"{int(r['gpus']):,}", f"{r['power_kw']:,.1f}",
            f"{r['tok_per_w']:.2f}", f"{r['cost_per_hr']:,.0f}",
            f"{r['worst_p99_ttft_ms']:,.0f}", _pct(100 * r["compressed"]),
            _pct(r["change_vs_homogeneous_pct"], sign=True),
            _pct(r["mip_saving_vs_best_heuristic_pct"])]) + " |")
    return "\n".join(lines)


def procurement_config() -> dict[str, Any]:
    """The ``procurement-demo.toml`` shown in docs/studies.md (the page's first TOML block)."""
    text = (DOCS / "studies.md").read_text()
    m = re.search(r"save it as `procurement-demo\.toml`\):\n\n```toml\n(.*?)```", text, re.S)
    if m is None:
        raise SystemExit("make_docs: docs/studies.md has no procurement-demo.toml block")
    return tomllib.loads(m.group(1))


PROCUREMENT_BUDGETS = "2200:2400:10"


def procurement_demo() -> tuple[Any, Any]:
    from fleetopt.problem.config import problem_from_dict
    from fleetopt.studies.procurement import procurement_study

    problem = problem_from_dict(procurement_config(), name="procurement-demo")
    return problem, procurement_study(problem, PROCUREMENT_BUDGETS)


def procurement_text(problem: Any, res: Any) -> str:
    """docs/studies.md: what ``fleetopt study procurement`` prints, each plan's first budget
    (the rows between are ``...``), without the per-point timings."""
    from fleetopt.report import tables

    cols = tuple(c for c in tables.PROCUREMENT_COLS if c.header != "point_ms")
    df = res.frame
    keep, prev = [], None
    for i, r in enumerate(df.to_dict("records")):
        key = (r["status"], r["power_w"] if r["power_w"] == r["power_w"] else None,
               r["cost_per_hr"] if r["cost_per_hr"] == r["cost_per_hr"] else None)
        if key != prev:
            keep.append(i)
        prev = key
    shown = tables.render(df.iloc[keep], cols).splitlines()
    out = [f"$ fleetopt study procurement procurement-demo.toml --budgets {PROCUREMENT_BUDGETS} "
           "--plot docs/figures/study_frontier.png",
           tables.wrap(f"{problem.name}: {problem.workload.name} at {problem.workload.rate_rps:g} "
                       f"req/s, {problem.model}, P99 TTFT target {problem.settings.ttft_p99_ms:g} "
                       "ms; minimum watts per budget"), shown[0]]
    for j, line in enumerate(shown[1:]):
        if j and keep[j] != keep[j - 1] + 1:
            out.append("...")
        out.append(line)
    if keep[-1] != len(df) - 1:
        out.append("...")
    mc = res.min_cost_row()
    out.append(f"cheapest plan meeting the SLO: ${mc['cost_per_hr']:,.2f}/hr, "
               f"{mc['power_w'] / 1000:,.2f} kW, {mc['gpus']} GPUs ("
               + ", ".join(f"{g} {n}" for g, n in mc["gpus_by_type"].items()) + ")")
    out.append(f"timing: ... ({int(res.timing['candidates'])} candidates; the per-budget "
               "times are in the point_ms column, left out here)")
    return "```\n" + "\n".join(out) + "\n```"


def procurement_summary(res: Any) -> str:
    """docs/studies.md: the figure's plans in one paragraph."""
    df = res.frame
    ok = df[df["status"] == "optimal"]
    mc = res.min_cost_row()
    first_b200 = ok[ok["gpus_by_type"].map(lambda d: "B200" in d)]
    free = ok.iloc[-1]

    def mix(d: dict[str, int]) -> str:
        return " + ".join(f"{n} {g}" for g, n in d.items())

    parts = [f"Here the cheapest fleet is {mix(mc['gpus_by_type'])} (${mc['cost_per_hr']:,.2f}/hr, "
             f"{mc['power_w'] / 1000:,.1f} kW)"]
    if len(first_b200):
        r = first_b200.iloc[0]
        parts.append(f"from ${r['budget_per_hr']:,.0f}/hr B200s take part ({mix(r['gpus_by_type'])}, "
                     f"{r['power_w'] / 1000:,.1f} kW)")
    parts.append(f"and from ${free['cost_per_hr']:,.2f}/hr the least-watt fleet "
                 f"({mix(free['gpus_by_type'])}, {free['power_w'] / 1000:,.1f} kW) is affordable "
                 "and more budget changes nothing.")
    text = "; ".join(parts[:-1]) + ", " + parts[-1] if len(parts) > 1 else parts[0]
    projected = sorted({g for d in (mc["gpus_by_type"], free["gpus_by_type"]) for g in d
                        if _quality(g) == "projected"})
    if projected:
        text += (f" {' and '.join(projected)} step times and watts are projected (no "
                 "measurements, docs/data.md): the plans that use them are only as good as that "
                 "projection.")
    return textwrap.fill(text, width=96, break_on_hyphens=False)


def _quality(gpu: str) -> str:
    """``"projected"`` when a GPU's step or power figures rest on no measurement of it."""
    from fleetopt.physics.profiles import Deployment, resolve

    prof = resolve(Deployment(gpu, 8), "llama-3.1-70b")
    quals = {getattr(prof, "calibration_quality", None), prof.power_model.quality}
    return "projected" if "projected" in quals else "fitted"


# ------------------------------------------------------------------------------------------
# what remains of the 1/W law, and where topology pays (docs/model.md, docs/baselines.md)

#: the 1/W-law table: one deployment, one workload, one pool at each window
LAW_DEPLOYMENT = ("H100-SXM", 8)
LAW_WORKLOAD = ("azure-conv-2023", 200.0)
LAW_MAX_TOTAL = 8192
LAW_WINDOWS = (8192, 16384, 32768, 65536)


def law_rows() -> list[dict[str, Any]]:
    """tok/W of ONE pool against its window, paged and reserved KV: the same deployment and
    the same requests (those of at most ``LAW_MAX_TOTAL`` tokens, so no window compresses)."""
    from fleetopt.physics.profiles import Deployment, resolve
    from fleetopt.problem.settings import Settings
    from fleetopt.problem.workload import builtin
    from fleetopt.sizing.poolmodel import PoolModel

    name, rate = LAW_WORKLOAD
    w = builtin(name, rate)
    m = w.total_tokens <= LAW_MAX_TOTAL
    prof = resolve(Deployment(*LAW_DEPLOYMENT), "llama-3.1-70b")
    rows = []
    for window in LAW_WINDOWS:
        row: dict[str, Any] = {"window": window, "slots": prof.slots(window)}
        for kv in ("paged", "reserved"):
            st = Settings(500.0, 0.85, "physical", kv_allocation=kv)
            pm = PoolModel(prof, w.input_tokens[m], w.output_tokens[m], w.weights[m],
                           rate * float(w.weights[m].sum()), window, st)
            n = pm.min_instances()
            assert n is not None, (kv, window)
            met = pm.metrics([n])
            row[f"{kv}_n"] = int(n)
            row[f"{kv}_kw"] = float(met["power_w"][0]) / 1e3
            row[f"{kv}_tpw"] = float(met["output_tok_per_s"][0] / met["power_w"][0])
            row[f"{kv}_batch"] = float(met["mean_batch"][0])
        rows.append(row)
    return rows


def law_table(rows: list[dict[str, Any]]) -> str:
    name, rate = LAW_WORKLOAD
    gpu, tp = LAW_DEPLOYMENT
    lines = [textwrap.fill(f"Llama-3.1-70B on {gpu} TP {tp} fp16, the `{name}` requests of at "
                           f"most {LAW_MAX_TOTAL:,} tokens at {rate:g} req/s, P99 TTFT 500 ms, "
                           "one pool sized to the SLO at each window:", width=96), "",
             "| window | reserved slots / instance | paged: instances | kW | tok/W | mean batch "
             "| reserved: instances | kW | tok/W | mean batch | reserved tok/W / previous window |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    prev = None
    for r in rows:
        ratio = "–" if prev is None else f"{r['reserved_tpw'] / prev:.2f}"
        prev = r["reserved_tpw"]
        lines.append(f"| {r['window']:,} | {r['slots']} | {r['paged_n']} | {r['paged_kw']:.1f} | "
                     f"{r['paged_tpw']:.3f} | {r['paged_batch']:.0f} | {r['reserved_n']} | "
                     f"{r['reserved_kw']:.1f} | {r['reserved_tpw']:.3f} | "
                     f"{r['reserved_batch']:.0f} | {ratio} |")
    return "\n".join(lines)


#: the topology table: variants of the shipped azure-h100 example (config names of settings)
TOPOLOGY_CASES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("the example: paged KV, TP 4 or 8, 500 ms", {}),
    ("TP 8 only", {"fleet.tp": [8]}),
    ("TP 4 only", {"fleet.tp": [4]}),
    ("TP 4 or 8, P99 TTFT 1,000 ms", {"slo.ttft_p99_ms": 1000}),
    ("TP 4 only, 1,000 ms", {"slo.ttft_p99_ms": 1000, "fleet.tp": [4]}),
    ("TP 4 only, 1,000 ms, kv_overflow_prob 0.1",
     {"slo.ttft_p99_ms": 1000, "fleet.tp": [4], "physics.kv_overflow_prob": 0.1}),
    ("reserved KV (per-window slots), TP 4 or 8, 500 ms", {"physics.kv_allocation": "reserved"}),
)


def _pools_text(sol: Any) -> str:
    return "; ".join(
        f"({p.ctx_lo:,}, {p.ctx_hi:,}] {p.instances} x TP{p.tp} (util {p.utilization:.2f}, "
        f"P99 TTFT {p.p99_ttft_ms:.0f} ms" + (f", KV {p.kv_util:.2f}" if p.kv_util is not None
                                            and p.kv_util == p.kv_util else "") + ")"
        for p in sol.result.pools if p.instances)


def topology_rows() -> list[dict[str, Any]]:
    """homogeneous, pool routing and the MIP on variants of ``azure-h100``."""
    from fleetopt.planners.baselines import homogeneous, pool_routing
    from fleetopt.planners.mip.solve import solve
    from fleetopt.problem.config import load_config

    base = load_config("azure-h100")
    rows = []
    for label, changes in TOPOLOGY_CASES:
        p = base.with_settings(changes) if changes else base
        sols = {"homogeneous": homogeneous(p), "pool-routing": pool_routing(p), "mip": solve(p)}
        r: dict[str, Any] = {"case": label}
        for k, s in sols.items():
            assert s.feasible, (label, k, s.message)
            r[k] = s.totals["power_w"] / 1e3
        r["homogeneous_pools"] = _pools_text(sols["homogeneous"])
        r["mip_pools"] = _pools_text(sols["mip"])
        rows.append(r)
    return rows


def topology_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| `azure-h100` variant | homogeneous kW | pool routing kW | MIP kW | MIP vs "
             "homogeneous | homogeneous pool | MIP pools |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['homogeneous']:,.1f} | {r['pool-routing']:,.1f} | "
                     f"{r['mip']:,.1f} | {100 * (r['mip'] / r['homogeneous'] - 1):+.1f} % | "
                     f"{r['homogeneous_pools']} | {r['mip_pools']} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# the simulation study (docs/simulation.md)


def _ci(v: Any, ci: Any, fmt: str = ",.0f") -> str:
    """``v +- ci`` (ci omitted when missing)."""
    if v is None or v != v:
        return ""
    if ci is None or ci != ci:
        return format(v, fmt)
    return f"{format(v, fmt)} ± {format(ci, fmt)}"


def _yes(v: Any) -> str:
    return "" if v is None or v != v else ("yes" if v else "**no**")


def simulation_tables(study: dict[str, Any]) -> dict[str, str]:
    """docs/simulation.md: the validation study's tables (``run_study``)."""
    from fleetopt.report.tables import markdown_table

    plans = study["plans"].copy()
    plans["where"] = [f"{w} @ {r:g}" for w, r in zip(plans.workload, plans.rate_rps, strict=True)]
    for c in ("evaluator_slo_met", "check_passed"):
        plans[c] = [_yes(v) for v in plans[c]]
    plans["pred_kw"] = plans.pred_power_w / 1000.0
    plans["sim_kw"] = plans.sim_power_w / 1000.0
    plans["delivered_pct"] = plans.delivered * 100.0
    out = {"sim-cases": markdown_table(plans, {
        "case": "case", "where": "workload @ req/s", "arrivals": "arrivals", "plan": "plan (MIP)",
        "pred_worst_p99_ttft_ms": "pred worst P99 TTFT ms",
        "sim_worst_p99_ttft_ms": "sim worst P99 TTFT ms",
        "sim_worst_p99_tpot_ms": "sim worst P99 TPOT ms", "delivered_pct": "delivered %",
        "pred_kw": "pred kW", "sim_kw": "sim kW", "evaluator_slo_met": "evaluator: SLO met",
        "check_passed": "simulator: check passed", "simulated": "requests simulated"}, {
        "pred_worst_p99_ttft_ms": ",.0f", "sim_worst_p99_ttft_ms": ",.0f",
        "sim_worst_p99_tpot_ms": ",.1f", "delivered_pct": ".1f", "pred_kw": ",.1f",
        "sim_kw": ",.1f", "simulated": ",.0f"})}
    t = study["table"].copy()
    t["sim_ttft"] = [_ci(v, c) for v, c in zip(t.sim_p99_ttft_ms, t.sim_p99_ttft_ci_ms,
                                                strict=True)]
    t["sim_tpot"] = [_ci(v, c, ",.1f") for v, c in zip(t.sim_p99_tpot_ms, t.sim_p99_tpot_ci_ms,
                                                       strict=True)]
    t["delivered_pct"] = [_ci(100.0 * v, 100.0 * c, ".1f")
                          for v, c in zip(t.delivered, t.delivered_ci, strict=True)]
    t["kv_pct"] = t.kv_util * 100.0
    t["busy_pct"] = t.busy * 100.0
    t["verdict"] = ["met" if c else ("MISSED" if s is False else "behind")
                    for c, s in zip(t.check_passed, t.slo_met, strict=True)]
    t["flag"] = ["**optimistic**" if o else "" for o in t.ttft_optimistic]
    out["sim-validation"] = markdown_table(t, {
        "case": "case", "arrivals": "arrivals", "pool": "pool", "gpu": "deployment",
        "instances": "N", "share": "share", "sim_ttft": "sim P99 TTFT ms",
        "pred_p99_ttft_ms": "pred", "ttft_ratio": "sim/pred", "flag": "",
        "sim_tpot": "sim P99 TPOT ms", "pred_p99_tpot_ms": "pred TPOT",
        "offered_tok_s": "offered tok/s", "delivered_pct": "delivered %",
        "preemptions": "preempt", "kv_pct": "KV %", "busy_pct": "busy %",
        "power_ratio": "W sim/pred", "verdict": "verdict"}, {
        "share": ".3f", "pred_p99_ttft_ms": ",.0f", "ttft_ratio": ".2f",
        "pred_p99_tpot_ms": ",.1f", "offered_tok_s": ",.0f",
        "preemptions": ",d", "kv_pct": ".0f", "busy_pct": ".0f", "power_ratio": ".2f",
        "instances": ",d"})
    sw = study["sweep"]
    if sw is not None:
        sw = sw.copy()
        sw["delivered_pct"] = sw.delivered * 100.0
        sw["check"] = [_yes(v) for v in sw.check_passed]
        out["sim-throughput"] = markdown_table(sw, {
            "case": "plan of", "factor": "x rate", "rate_rps": "req/s",
            "offered_tok_s": "offered tok/s", "sim_tok_s": "sim tok/s", "pred_tok_s": "pred tok/s",
            "delivered_pct": "delivered %", "sim_worst_p99_ttft_ms": "sim worst P99 TTFT ms",
            "pred_worst_p99_ttft_ms": "pred worst P99 TTFT ms", "check": "check passed"}, {
            "factor": "g", "rate_rps": ",.0f", "offered_tok_s": ",.0f", "sim_tok_s": ",.0f",
            "pred_tok_s": ",.0f", "delivered_pct": ".1f", "sim_worst_p99_ttft_ms": ",.0f",
            "pred_worst_p99_ttft_ms": ",.0f"})
    b = study["burst"]
    if len(b):
        out["sim-burst"] = markdown_table(b, {
            "case": "case", "pool": "pool", "share": "share of requests",
            "time_in_system_s": "sim time in system s", "k_pool": "k (pool, its windows)",
            "k_pool_default_windows": "k (pool, default windows)",
            "k_global": "k (global, auto-global)", "sim_replay_p99_ttft_ms": "replay P99 TTFT ms"}, {
            "share": ".3f", "time_in_system_s": ",.1f", "k_pool": ".2f",
            "k_pool_default_windows": ".2f", "k_global": ".2f", "sim_replay_p99_ttft_ms": ",.0f"})
    bp = study.get("burst_plans")
    if bp is not None and len(bp):
        bp = bp.copy()
        bp["pred_kw"] = bp.pred_power_w / 1000.0
        bp["sim_ttft"] = [_ci(v, c) for v, c in zip(bp.sim_worst_p99_ttft_ms,
                                                     bp.sim_worst_p99_ttft_ci_ms, strict=True)]
        bp["meets"] = ["yes" if c is True else ("within CI" if w else "**no**")
                       for c, w in zip(bp.check_passed, bp.within_ci, strict=True)]
        out["sim-burst-plans"] = markdown_table(bp, {
            "case": "case", "peak_factor": "peak_factor", "k_pools": "k per pool",
            "plan": "plan (MIP)", "pred_kw": "planned kW",
            "pred_worst_p99_ttft_ms": "pred worst P99 TTFT ms",
            "sim_ttft": "replay worst P99 TTFT ms", "target_ms": "target ms",
            "sim_over_target": "replay / target", "meets": "meets target"}, {
            "pred_kw": ",.1f", "pred_worst_p99_ttft_ms": ",.0f", "target_ms": ",.0f",
            "sim_over_target": ".2f"})
    sm = study["summary"]
    out["sim-summary"] = (
        f"{sm['pool_rows']} pool runs; the evaluator predicts P99 TTFT for {sm['ttft_compared']} "
        f"of them and is optimistic by more than 10 % for {sm['ttft_optimistic']}; it predicts "
        f"P99 TPOT for {sm['tpot_compared']}. {sm['not_delivering']} pool runs do not deliver "
        f"their offered load. Of {sm['runs']} simulated runs of {sm['plans_feasible']} feasible "
        f"plans (all called feasible by the evaluator), {sm['runs_passed']} "
        f"pass{'es' if sm['runs_passed'] == 1 else ''} the simulator's check.")
    return out


# ------------------------------------------------------------------------------------------
# parts


def _figures_deterministic() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure

    fig_cls: Any = matplotlib.figure.Figure
    if getattr(fig_cls.savefig, "_fleetopt", False):
        return
    orig = fig_cls.savefig

    def savefig(self: Any, *a: Any, **k: Any) -> Any:
        # no "Software: matplotlib x.y" stamp: the PNG bytes do not depend on the version
        k.setdefault("metadata", {"Software": None})
        return orig(self, *a, **k)

    savefig._fleetopt = True  # type: ignore[attr-defined]
    fig_cls.savefig = savefig


def part_texts(part: str, cache: dict[str, Any]) -> dict[tuple[str, str], str]:
    """The generated texts of a part: ``{(file, marker): text}``."""
    if part == "readme":
        cmp = cache.setdefault("cmp", comparisons())
        return {("README.md", "results"): readme_results(cmp)}
    if part == "baselines":
        cmp = cache.setdefault("cmp", comparisons())
        return {("docs/baselines.md", f"compare-{ex}"): comparison_table(cmp[ex][2])
                for ex in EXAMPLES}
    if part == "studies":
        problem, res = cache.setdefault("proc", procurement_demo())
        return {("docs/studies.md", "procurement-output"): procurement_text(problem, res),
                ("docs/studies.md", "procurement-summary"): procurement_summary(res)}
    if part == "topology":
        return {("docs/model.md", "law-paged-reserved"): law_table(law_rows()),
                ("docs/baselines.md", "topology-sources"): topology_table(topology_rows())}
    if part == "simulation":
        from fleetopt.studies.validation import run_study

        study = cache.setdefault("sim", run_study())
        return {("docs/simulation.md", k): v for k, v in simulation_tables(study).items()}
    return {}


def draw(part: str, cache: dict[str, Any]) -> list[Path]:
    """Draw the figures of a part (``FIGURE_PARTS``); the files written."""
    _figures_deterministic()
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    if part == "studies":
        from fleetopt.planners.mip.solve import solve
        from fleetopt.problem.config import load_config
        from fleetopt.report.plots import plot_frontier, plot_topology

        problem, res = cache.setdefault("proc", procurement_demo())
        fig = plot_frontier(res.frame, FIGURES / "study_frontier.png", min_cost=res.min_cost_row(),
                            title=f"{problem.name}: {problem.workload.name} at "
                            f"{problem.workload.rate_rps:g} req/s, P99 TTFT "
                            f"{problem.settings.ttft_p99_ms:g} ms")
        plt.close(fig)
        mixed = load_config("azure-mixed")
        fig = plot_topology(solve(mixed), FIGURES / "study_topology.png", workload=mixed.workload)
        plt.close(fig)
        return [FIGURES / "study_frontier.png", FIGURES / "study_topology.png"]
    if part == "power":
        import json

        import pandas as pd

        spec = importlib.util.spec_from_file_location("derive_data", ROOT / "scripts" /
                                                      "derive_data.py")
        assert spec is not None and spec.loader is not None
        derive = importlib.util.module_from_spec(spec)
        sys.modules["derive_data"] = derive  # its dataclasses look their module up
        spec.loader.exec_module(derive)
        data = ROOT / "fleetopt" / "data"
        fits = json.loads((data / "power_fits.json").read_text())["fits"]
        derive.power_figure(fits, pd.read_csv(data / "power_points.csv"),
                            FIGURES / "power_fit.png")
        return [FIGURES / "power_fit.png"]
    if part == "paper":
        import nbclient
        import nbformat

        nb = nbformat.read(ROOT / "notebooks" / "paper_reproduction.ipynb", as_version=4)
        os.environ["FLEETOPT_EXPORT_FIGURES"] = "1"
        try:
            nbclient.NotebookClient(nb, timeout=600, resources={
                "metadata": {"path": str(ROOT / "notebooks")}}).execute()
        finally:
            os.environ.pop("FLEETOPT_EXPORT_FIGURES", None)
        return [FIGURES / "paper_fleet_kw.png", FIGURES / "paper_tokw_vs_context.png"]
    if part == "simulation":
        from fleetopt.report.plots import plot_validation
        from fleetopt.studies.validation import run_study

        study = cache.setdefault("sim", run_study())
        return plot_validation(study, FIGURES)
    return []


PARTS = ("readme", "baselines", "studies", "topology", "power", "paper", "simulation")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parts", nargs="*", default=None, metavar="PART",
                    help=f"any of {', '.join(PARTS)} (default: all)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a generated text differs from the file")
    args = ap.parse_args(argv)
    parts = args.parts or list(PARTS)
    bad = [x for x in parts if x not in PARTS]
    if bad:
        ap.error(f"unknown part {bad[0]!r}; choose from {', '.join(PARTS)}")
    cache: dict[str, Any] = {}
    texts: dict[tuple[str, str], str] = {}
    for part in parts:
        texts.update(part_texts(part, cache))
    stale = []
    for (name, marker), body in texts.items():
        path = ROOT / name
        old = path.read_text()
        new = replace_between(old, marker, body)
        if new != old:
            stale.append(f"{name} [{marker}]")
            if not args.check:
                path.write_text(new)
    if args.check:
        print("\n".join(f"differs: {s}" for s in stale) or "up to date")
        return 1 if stale else 0
    for part in parts:
        for f in draw(part, cache):
            print(f"drew {f.relative_to(ROOT)}")
    for s in stale:
        print(f"rewrote {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
