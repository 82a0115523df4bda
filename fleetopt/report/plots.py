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

__all__ = ["VALIDATION_FIGURES", "gpu_colors", "plot_comparison", "plot_frontier", "plot_topology",
           "plot_validation", "save_figure"]

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


VALIDATION_FIGURES = ("sim_validation.png", "sim_throughput.png", "sim_burst.png")


def plot_validation(study: dict[str, Any], out: str | Path) -> list[Path]:
    """The validation study's figures (:func:`fleetopt.studies.validation.run_study`) into the
    folder ``out`` (:data:`VALIDATION_FIGURES`): simulated vs predicted P99 TTFT and TPOT per
    pool (with the target and the 10 % band), throughput against offered load (per pool, and
    the load sweep), and the per-pool burst factors beside the global one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    df = study["table"]
    marks = {"poisson": "o", "replay": "^"}

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, (sim, pred, title) in zip(axes, (("sim_p99_ttft_ms", "pred_p99_ttft_ms", "P99 TTFT"),
                                             ("sim_p99_tpot_ms", "pred_p99_tpot_ms", "P99 TPOT")),
                                      strict=True):
        d = df[df[sim].notna() & (df[sim] > 0)] if len(df) else df
        have = d[d[pred].notna()] if len(d) else d
        if len(have):
            for arr, mk in marks.items():
                x = have[have.arrivals == arr]
                ax.scatter(x[pred], x[sim], marker=mk, alpha=0.8, label=f"{arr}")
            vals = np.concatenate([have[pred].to_numpy(float), have[sim].to_numpy(float)])
            lim = [max(vals[vals > 0].min() * 0.7, 1e-1), vals.max() * 1.4]
            ax.plot(lim, lim, "k-", lw=0.8, label="sim = predicted")
            ax.plot(lim, [v * 1.1 for v in lim], "r--", lw=0.8, label="+10 % (optimistic)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(f"predicted {title} (ms)")
            ax.set_ylabel(f"simulated {title} (ms)")
        else:  # no prediction yet: the simulated figure against its pool
            x = np.arange(len(d))
            for arr, mk in marks.items():
                m = (d.arrivals == arr).to_numpy() if len(d) else np.zeros(0, bool)
                ax.scatter(x[m], d[sim].to_numpy(float)[m], marker=mk, label=arr)
            ax.set_yscale("log")
            ax.set_xlabel("pool (table order)")
            ax.set_ylabel(f"simulated {title} (ms)")
            ax.text(0.5, 0.95, "the analytical model gives no prediction yet",
                    transform=ax.transAxes, ha="center", va="top", fontsize=8)
        tgt = "ttft_target_ms" if "TTFT" in title else "tpot_target_ms"
        if len(d) and d[tgt].notna().any():
            ax.axhline(float(d[tgt].dropna().iloc[0]), color="grey", ls=":", lw=1,
                       label="target")
        ax.set_title(f"{title} per pool: simulated vs analytical", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "sim_validation.png", dpi=110)
    plt.close(fig)

    sweep = study.get("sweep")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    if len(df):
        for arr, mk in marks.items():
            x = df[df.arrivals == arr]
            ax.scatter(x.offered_tok_s, x.sim_tok_s, marker=mk, alpha=0.8, label=f"{arr}")
        hi = float(max(df.offered_tok_s.max(), df.sim_tok_s.max())) * 1.3
        lo = float(max(min(df.offered_tok_s.min(), df.sim_tok_s[df.sim_tok_s > 0].min()) * 0.7,
                       1.0))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="delivered = offered")
        ax.plot([lo, hi], [0.97 * lo, 0.97 * hi], "r--", lw=0.8, label="97 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("offered output tokens/s (pool)")
    ax.set_ylabel("delivered output tokens/s (simulated)")
    ax.set_title("throughput against offered load, per pool", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    if sweep is not None and len(sweep):
        ax.plot(sweep.offered_tok_s, sweep.sim_tok_s, "o-", label="simulated")
        ax.plot(sweep.offered_tok_s, sweep.pred_tok_s, "s--", label="analytical")
        ax.plot(sweep.offered_tok_s, sweep.offered_tok_s, "k:", lw=0.8, label="offered")
        factors = ", ".join(f"{f:g}" for f in sweep.factor)
        ax.set_title(f"{sweep.case.iloc[0]}: the plan at {factors} x its rate", fontsize=9)
    ax.set_xlabel("offered output tokens/s (fleet)")
    ax.set_ylabel("output tokens/s")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "sim_throughput.png", dpi=110)
    plt.close(fig)

    burst = study.get("burst")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    if burst is not None and len(burst):
        labels = [f"{r.workload}\n{r.pool}" for r in burst.itertuples()]
        x = np.arange(len(burst))
        ax.bar(x - 0.2, burst.k_pool, 0.4, label="per pool (windows of the pool's time in system)")
        ax.bar(x + 0.2, burst.k_pool_default_windows, 0.4, label="per pool (default windows)")
        ax.plot(x, burst.k_global, "k_", ms=20, mew=2, label="global (peak_factor = auto-global)")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=7)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_ylabel("burst (peak) factor")
    ax.set_title("burst factors of each pool's own requests, trace workloads", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "sim_burst.png", dpi=110)
    plt.close(fig)
    return [folder / n for n in VALIDATION_FIGURES]
