"""Figures: the procurement frontier, a fleet's topology, the comparison of approaches and the
validation study's figures (``docs/figures/``, ``scripts/make_docs.py``).

The frontier and topology draw with matplotlib on a given ``ax`` (or a new figure) and
optionally save a PNG (atomically); they return the figure. matplotlib is imported when a
figure is drawn, never on import.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetopt.core.files import write_output
from fleetopt.core.jsonio import is_missing

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["gpu_colors", "plot_comparison", "plot_frontier", "plot_topology", "plot_validation",
           "save_figure"]

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f")


def gpu_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name, in order of first appearance."""
    out: dict[str, str] = {}
    for n in names:
        if n not in out:
            out[n] = _PALETTE[len(out) % len(_PALETTE)]
    return out


def save_figure(fig: Any, path: str | Path, field_name: str = "--plot", dpi: int = 150) -> None:
    """Save ``fig`` as a PNG at ``path`` (all or nothing)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    write_output(path, buf.getvalue(), field_name, allow_stdout=False)


def _new_ax(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_frontier(frame: pd.DataFrame, path: str | Path | None = None, *, ax: Any = None,
                  min_cost: dict[str, Any] | None = None, title: str | None = None) -> Any:
    """The procurement frontier: least fleet kW against the budget in $/hr.

    Each horizontal step is one plan (the optimum for every budget from its own cost up to the
    next plan's), coloured by its GPU mix; dots mark the plans at their actual cost; the star
    marks the cheapest plan meeting the SLO (``min_cost``, default ``frame.attrs``); budgets
    with no feasible plan are shaded.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, ax = _new_ax(ax, (8.5, 5.0))
    if min_cost is None:
        min_cost = frame.attrs.get("min_cost_plan")
    df = frame.sort_values("budget_per_hr")
    ok = df[df["power_w"].notna() & df["status"].isin(["optimal", "feasible", "time_limit"])]
    bmin, bmax = float(df["budget_per_hr"].min()), float(df["budget_per_hr"].max())
    mixes = list(dict.fromkeys(ok["mix"]))
    colors = gpu_colors(mixes)
    # distinct plans in budget order: (cost, kW, mix, first budget, last budget)
    plans: list[dict[str, Any]] = []
    for _, r in ok.iterrows():
        key = (round(float(r["power_w"]), 3), round(float(r["cost_per_hr"]), 4), r["mix"])
        if plans and plans[-1]["key"] == key:
            plans[-1]["b_last"] = float(r["budget_per_hr"])
            continue
        plans.append({"key": key, "cost": float(r["cost_per_hr"]), "kw": float(r["power_w"]) / 1e3,
                      "mix": r["mix"], "gpus": r["gpus_by_type"], "b_first": float(r["budget_per_hr"]),
                      "b_last": float(r["budget_per_hr"])})
    for i, p in enumerate(plans):
        x0 = p["cost"]
        x1 = plans[i + 1]["cost"] if i + 1 < len(plans) else bmax
        ax.hlines(p["kw"], x0, max(x1, x0), colors=colors[p["mix"]], linewidth=3.0, zorder=2)
        if i + 1 < len(plans):
            ax.vlines(x1, plans[i + 1]["kw"], p["kw"], colors="0.6", linewidth=1.0,
                      linestyles=":", zorder=1)
        ax.plot([x0], [p["kw"]], "o", color=colors[p["mix"]], markersize=6,
                markeredgecolor="black", markeredgewidth=0.6, zorder=3)
    # label each plan with its GPU counts, alternating above/below to limit overlap
    if plans and len(plans) <= 12:
        span = max(p["kw"] for p in plans) - min(p["kw"] for p in plans) or 1.0
        for i, p in enumerate(plans):
            gpus = p["gpus"] if isinstance(p["gpus"], dict) else {}
            label = ", ".join(f"{n}×{g}" for g, n in gpus.items())
            dy = 0.035 * span * (1 if i % 2 == 0 else -1)
            ax.annotate(label, (p["cost"], p["kw"]), xytext=(p["cost"], p["kw"] + dy),
                        fontsize=7.5, ha="left", va="bottom" if dy > 0 else "top", color="0.15",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8,
                              "linewidth": 0}, zorder=5)
    handles: list[Any] = [Patch(color=colors[m], label=m) for m in mixes]
    cheapest = None
    if min_cost and not is_missing(min_cost.get("cost_per_hr")):
        cheapest = float(min_cost["cost_per_hr"])
        ax.plot([cheapest], [float(min_cost["power_w"]) / 1e3], "*", color="gold", markersize=16,
                markeredgecolor="black", zorder=4)
        handles.append(Line2D([], [], marker="*", color="gold", markeredgecolor="black",
                              linestyle="", markersize=12,
                              label=f"cheapest plan meeting the SLO (${cheapest:,.2f}/hr)"))
    infeasible = df[~df.index.isin(ok.index)]
    if len(infeasible):
        hi = cheapest if cheapest is not None else float(infeasible["budget_per_hr"].max())
        ax.axvspan(bmin, min(hi, bmax), color="0.9", zorder=0)
        handles.append(Patch(color="0.9", label="no plan meets the SLO within budget"))
    ax.set_xlim(bmin - 0.02 * (bmax - bmin or 1), bmax + 0.02 * (bmax - bmin or 1))
    if plans:
        lo = min(p["kw"] for p in plans)
        hi = max(p["kw"] for p in plans)
        pad = 0.1 * (hi - lo) if hi > lo else 0.05 * hi
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("budget and plan cost ($/hr)")
    ax.set_ylabel("least fleet power meeting the SLO (kW)")
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, title="GPU mix", fontsize=8, title_fontsize=8, loc="upper right")
    ax.set_title(title or "Procurement frontier: minimum watts per budget")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_topology(plan: Any, path: str | Path | None = None, *, ax: Any = None,
                  workload: Any = None, title: str | None = None) -> Any:
    """A fleet's pools on the context axis (log scale), coloured by GPU type, with instance counts.

    ``plan`` is a :class:`~fleetopt.planners.solution.Solution`, a ``FleetResult`` or a
    ``Fleet``. With ``workload`` the share of requests each pool serves is shown too.
    """
    from matplotlib.patches import Patch

    result = getattr(plan, "result", None) if hasattr(plan, "approach") else plan
    if result is None:
        raise ValueError("the solution has no plan to draw")
    pools = list(result.pools)
    fig, ax = _new_ax(ax, (9.0, 1.2 + 0.75 * max(len(pools), 1)))
    colors = gpu_colors([p.gpu for p in pools])
    left = 2 ** math.floor(math.log2(max(64, min(
        (p.ctx_hi for p in pools), default=1024) / 16)))
    right = max(p.ctx_hi for p in pools)
    for y, p in enumerate(pools):
        lo = max(p.ctx_lo, left)
        ax.barh(y, p.ctx_hi - lo, left=lo, height=0.62, color=colors[p.gpu],
                edgecolor="black", linewidth=0.6, alpha=0.9)
        win = getattr(p, "window_tokens", p.ctx_hi)
        if win and win < p.ctx_hi:
            ax.axvline(win, ymin=(y + 0.2) / len(pools), ymax=(y + 0.8) / len(pools),
                       color="black", linestyle="--", linewidth=1)
        dtype = getattr(p, "dtype", "")
        share = ""
        if workload is not None:
            s = workload.share_at_most(p.ctx_hi) - workload.share_at_most(p.ctx_lo)
            share = f", {100 * s:.1f}% of requests" if s >= 0.001 else ", <0.1% of requests"
        ep = getattr(p, "ep", None) or 1
        text = f"{p.instances} × {p.gpu} TP{p.tp}{f' EP{ep}' if ep > 1 else ''} {dtype}{share}"
        width_oct = math.log2(p.ctx_hi / lo)
        need_oct = 0.085 * len(text) * (math.log2(right * 1.05 / left) / 9.0)
        if width_oct >= need_oct:  # fits inside the bar
            ax.text(math.sqrt(lo * p.ctx_hi), y, text, ha="center", va="center", fontsize=8.5,
                    color="white", fontweight="bold")
        elif math.log2(right * 1.05 / p.ctx_hi) >= need_oct:  # right of the bar
            ax.text(p.ctx_hi * 1.06, y, text, ha="left", va="center", fontsize=8.5, color="0.1")
        else:  # left of the bar
            ax.text(lo / 1.06, y, text, ha="right", va="center", fontsize=8.5, color="0.1")
    ax.set_xscale("log", base=2)
    ax.set_xlim(left, right * 1.05)
    ax.set_yticks(range(len(pools)))
    ax.set_yticklabels([f"({p.ctx_lo:,}, {p.ctx_hi:,}]" for p in pools], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("request length, prompt + output (tokens, log scale)")
    ax.set_ylabel("pool (context range)")
    ticks = [2 ** k for k in range(int(math.log2(left)), int(math.log2(right)) + 1)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t // 1024}K" if t >= 1024 else str(t) for t in ticks], fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(handles=[Patch(color=c, label=g) for g, c in colors.items()], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), title="GPU type", title_fontsize=8)
    totals = getattr(result, "totals", None)
    sub = ""
    if isinstance(totals, dict) and totals:
        sub = (f"{totals['gpus']} GPUs, {totals['power_w'] / 1e3:,.1f} kW, "
               f"${totals['cost_per_hr']:,.2f}/hr")
    ax.set_title(title or ("Fleet topology" + (f": {sub}" if sub else "")), fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig


_FAMILY_COLOURS = {"uncompressed": "#3b6ea8", "compressed": "#e08a2c"}


def plot_comparison(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Bar chart (PNG): fleet kW and tok/W per approach, bars coloured by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.patches import Patch

    path = Path(path)
    labels = [str(a) for a in df["approach"]]
    colours = [_FAMILY_COLOURS.get(str(f), "#888888") for f in df["family"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), constrained_layout=True)
    panels = (("power_kw", "fleet power (kW)", "{:,.1f}"), ("tok_per_w", "output tokens per watt",
                                                             "{:.2f}"))
    x = list(range(len(labels)))
    for ax, (col, ylabel, fmt) in zip(axes, panels, strict=True):
        vals = pd.to_numeric(df[col], errors="coerce").astype(float).tolist()
        heights = [0.0 if is_missing(v) else v for v in vals]
        bars = ax.bar(x, heights, color=colours, edgecolor="black", linewidth=0.6)
        top = max(heights) if any(heights) else 1.0
        for b, v, st in zip(bars, vals, df["status"], strict=True):
            txt = fmt.format(v) if not is_missing(v) else f"n/a ({st})"
            ax.annotate(txt, (b.get_x() + b.get_width() / 2, b.get_height()),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=9)
        ax.set_ylim(0, top * 1.15)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=20, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    handles = [Patch(color=c, label=f) for f, c in _FAMILY_COLOURS.items()]
    fig.legend(handles=handles, title="family", loc="outside lower center", ncol=len(handles))
    if title:
        fig.suptitle(title)
    try:
        save_figure(fig, path, "--plot", dpi=120)
    finally:
        plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# the validation study


def plot_validation(study: dict[str, Any], out: str | Path) -> list[Path]:
    """The validation study's figures (:func:`fleetopt.studies.validation.run_study`) into the
    folder ``out``: ``sim_validation.png``, ``sim_ttft_ccdf.png``, ``sim_load_sweep.png`` (when
    the study ran its load sweep) and ``sim_correction.png``."""
    folder = Path(out)
    _validation_figures(study["table"], study["fleets"], study["sweep"], folder,
                        study["requests"])
    _correction_figure(study["correction"], folder)
    names = ["sim_validation.png", "sim_ttft_ccdf.png", "sim_correction.png"]
    if study["sweep"] is not None:
        names.insert(2, "sim_load_sweep.png")
    return [folder / n for n in names]


def _correction_figure(corr: pd.DataFrame, out: Path) -> None:
    import matplotlib
    import numpy as np

    from fleetopt.studies.validation import TRACE

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


def _validation_figures(df: pd.DataFrame, fleets: dict[str, Any], sweep: pd.DataFrame | None,
                        out: Path, requests: int) -> None:
    import matplotlib
    import numpy as np

    from fleetopt.sim.api import simulate_problem
    from fleetopt.studies.validation import OPTIMISTIC, analytical_ccdf, pool_model_of

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
        t = np.linspace(0, max(x.max(), pm.ttft_floor_s, 1e-3) * 1.05, 400)
        ax.plot(t * 1000, analytical_ccdf(pm, fl.pools[k].instances, t), label="analytical")
        ax.axhline(0.01, color="grey", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.1)
        ax.set_xlabel("TTFT (ms)")
        ax.set_ylabel("P(TTFT > t)")
        pool = fl.pools[k]
        ax.set_title(f"azure-h100 pool ({pool.ctx_lo}, {pool.ctx_hi}], {pool.instances} x "
                     f"{pool.gpu} TP{pool.tp}", fontsize=9)
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
