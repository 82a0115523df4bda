"""Figures for the studies: the procurement frontier and a fleet's topology.

Both draw with matplotlib on a given ``ax`` (or a new figure) and optionally save a PNG
(atomically); both return the figure.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fleetopt.io import write_output

__all__ = ["gpu_colors", "plot_frontier", "plot_topology", "save_figure"]

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
    if min_cost and min_cost.get("cost_per_hr") is not None and \
            not (isinstance(min_cost.get("cost_per_hr"), float) and math.isnan(min_cost["cost_per_hr"])):
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

    ``plan`` is a :class:`~fleetopt.solvers.solution.Solution`, a ``FleetResult`` or a
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
        text = f"{p.instances} × {p.gpu} TP{p.tp} {dtype}{share}"
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
