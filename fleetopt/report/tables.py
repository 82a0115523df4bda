"""Text output: the CLI's tables that fit 120 columns, with units in the headers, verdicts, the
``used: ...`` line, and markdown tables for the docs.

A table is a list of :class:`Col` (header, value, format) rendered by :func:`render`. By default
it shows the columns not marked ``wide`` and drops the least important ones (highest ``drop``)
until every line fits :data:`WIDTH` characters; ``wide=True`` shows every column, including the
frame's columns that no :class:`Col` names. Prose lines are wrapped to :data:`WIDTH` by
:func:`wrap`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetopt.core.jsonio import is_missing

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPARE_COLS", "GPU_COLS", "INSTANCE_COLS", "MODEL_COLS", "POOL_COLS", "PROCUREMENT_COLS",
           "PROFILE_COLS", "SEP", "SIM_COLS", "SWEEP_COLS", "WIDTH", "WORKLOAD_COLS", "Col",
           "cell", "join_wrapped", "markdown_table", "render", "settings_line", "slo_verdict",
           "wrap"]

#: the widest line the CLI prints without ``--wide``
WIDTH = 120
SEP = "  "

Getter = str | Callable[[Mapping[str, Any]], Any]
Fmt = str | Callable[[Any], str]


@dataclass(frozen=True)
class Col:
    """One column: ``header`` (with its unit), ``get`` (a key, or a function of the row),
    ``fmt`` (a format string, or a function), shown by default unless ``wide``; ``when`` (a
    function of all rows) shows it only where it matters; ``drop`` orders which columns go
    first when a table is too wide (0 never goes); ``maxw`` truncates long text by default."""

    header: str
    get: Getter
    fmt: Fmt = "{:,.2f}"
    wide: bool = False
    drop: int = 0
    maxw: int | None = None
    when: Callable[[Sequence[Mapping[str, Any]]], bool] | None = None

    @property
    def key(self) -> str | None:
        return self.get if isinstance(self.get, str) else None

    def value(self, row: Mapping[str, Any]) -> Any:
        if callable(self.get):
            return self.get(row)
        return row.get(self.get)


def cell(v: Any, fmt: Fmt = "{:,.2f}") -> str:
    """One value as text: missing values (:func:`~fleetopt.core.jsonio.is_missing`) as ``-``,
    booleans as yes / no."""
    if is_missing(v):
        return "-"
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if callable(fmt):
        return fmt(v)
    if isinstance(v, str):
        return v
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        if isinstance(v, float) and v.is_integer():  # a whole number stored as a float
            return fmt.format(int(v)) if "d}" in fmt else str(int(v))
        return str(v)


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) or \
        type(v).__module__ == "numpy" and type(v).__name__ not in ("bool_", "str_")


def _records(data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                      list[str]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame
        return data.to_dict("records"), [str(c) for c in data.columns]
    rows = [dict(r) for r in data]
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return rows, list(keys)


def _truncate(s: str, n: int | None) -> str:
    return s if n is None or len(s) <= n else s[: max(n - 3, 1)] + "..."


def _layout(rows: list[dict[str, Any]], cols: list[Col], wide: bool) -> list[list[str]]:
    grid: list[list[Any]] = [[c.header for c in cols]]
    for r in rows:
        grid.append([c.value(r) for c in cols])
    out = [list(grid[0])]
    for vals in grid[1:]:
        line = []
        for c, v in zip(cols, vals, strict=True):
            text = cell(v, c.fmt)
            line.append(text if wide else _truncate(text, c.maxw))
        out.append(line)
    return out


def _lines(text_grid: list[list[str]], right: list[bool]) -> list[str]:
    widths = [max(len(row[i]) for row in text_grid) for i in range(len(right))]
    lines = []
    for row in text_grid:
        parts = [s.rjust(w) if r else s.ljust(w) for s, w, r in zip(row, widths, right,
                                                                     strict=True)]
        lines.append(SEP.join(parts).rstrip())
    return lines


def render(data: pd.DataFrame | Sequence[Mapping[str, Any]], cols: Sequence[Col], *,
           wide: bool = False, width: int = WIDTH, limit: int | None = None) -> str:
    """A plain-text table of ``data`` (a DataFrame or a list of row dicts).

    Default: the non-``wide`` columns that apply (``when``), less the least important ones
    while a line is longer than ``width`` (a note then says ``--wide`` shows them). ``wide``:
    every column of ``cols``, then every other key of the data, unformatted and untruncated.
    ``limit`` shows only the first rows (a note counts the rest).
    """
    rows, keys = _records(data)
    if not rows:
        return "(no rows)"
    shown_rows = rows if limit is None else rows[:limit]
    if wide:
        chosen = [c for c in cols if c.key is None or c.key in keys]
        named = {c.key for c in cols if c.key is not None}
        chosen += [Col(k, k, "{:,.4g}") for k in keys if k not in named]
    else:
        chosen = [c for c in cols if not c.wide and (c.key is None or c.key in keys)
                  and (c.when is None or c.when(rows))]
    dropped: list[str] = []
    while True:
        grid = _layout(shown_rows, chosen, wide)
        right = [all(_numeric(c.value(r)) or is_missing(c.value(r)) for r in shown_rows)
                 and any(_numeric(c.value(r)) for r in shown_rows) for c in chosen]
        lines = _lines(grid, right)
        too_wide = max(len(s) for s in lines) > width
        droppable = [c for c in chosen if c.drop > 0]
        if wide or not too_wide or not droppable:
            break
        worst = max(droppable, key=lambda c: (c.drop, chosen.index(c)))
        chosen.remove(worst)
        dropped.append(worst.header)
    if limit is not None and len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    if dropped:
        lines.append(wrap(f"(not shown for width: {', '.join(reversed(dropped))}; "
                          "--wide shows every column)", width))
    return "\n".join(lines)


def wrap(text: str, width: int = WIDTH, indent: str = "  ") -> str:
    """Wrap each line of ``text`` longer than ``width`` (continuations indented)."""
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        out.extend(textwrap.wrap(line, width, initial_indent="", subsequent_indent=lead + indent,
                                 break_long_words=False, break_on_hyphens=False)
                   or [line])
    return "\n".join(out)


def join_wrapped(prefix: str, parts: Sequence[str], width: int = WIDTH, sep: str = ", ",
                 indent: str = "  ") -> str:
    """``prefix`` and ``parts`` joined by ``sep``, broken between parts to fit ``width``."""
    lines: list[str] = []
    cur = prefix
    for i, part in enumerate(parts):
        piece = part + (sep.rstrip() if i < len(parts) - 1 else "")
        if cur.strip() and len(cur) + len(piece) + (0 if cur == prefix else 1) > width:
            lines.append(cur.rstrip())
            cur = indent + piece
        else:
            cur = cur + ("" if cur == prefix or cur.endswith(" ") else " ") + piece
    lines.append(cur.rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# column sets


def _ctx(row: Mapping[str, Any]) -> str:
    return f"({row.get('ctx_lo')}, {row.get('ctx_hi')}]"


def _scaled(key: str, factor: float) -> Callable[[Mapping[str, Any]], Any]:
    def get(row: Mapping[str, Any]) -> Any:
        v = row.get(key)
        return None if v is None or is_missing(v) else float(v) * factor
    return get


def _has_window(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("window_tokens") not in (None, r.get("ctx_hi")) for r in rows)


def _compresses(rows: Sequence[Mapping[str, Any]], key: str = "compressed_share") -> bool:
    return any(not is_missing(r.get(key)) and float(r.get(key) or 0) > 0 for r in rows)


def _pct(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return _scaled(key, 100.0)


def _has_ep(rows: Sequence[Mapping[str, Any]]) -> bool:
    """Some pool shards a mixture of experts' experts (``ep > 1``)."""
    return any(not is_missing(r.get("ep")) and int(r.get("ep") or 1) > 1 for r in rows)


def _has_peak(rows: Sequence[Mapping[str, Any]]) -> bool:
    """The pools have their own design-rate factors (``[slo] peak_factor = "auto"``)."""
    return any(not is_missing(r.get("peak_factor")) for r in rows)


def _tpot_target(rows: Sequence[Mapping[str, Any]]) -> bool:
    """A TPOT target is set: the P99 TPOT is part of the verdict."""
    return any(not is_missing(r.get("tpot_slo_ms")) for r in rows)


#: pools of an evaluated fleet or a plan (evaluate, solve)
POOL_COLS: tuple[Col, ...] = (
    Col("ctx_tokens", _ctx, str),
    Col("window_tok", "window_tokens", "{:d}", when=_has_window),
    Col("gpu", "gpu", str),
    Col("tp", "tp", "{:d}"),
    Col("ep", "ep", "{:d}", when=_has_ep),
    Col("dtype", "dtype", str),
    Col("instances", "instances", "{:,d}"),
    Col("gpus", "gpus", "{:,d}", drop=3),
    Col("rate_rps", "arrival_rate", "{:,.2f}", drop=5),
    Col("peak_k", "peak_factor", "{:.2f}", when=_has_peak),
    Col("util_%", _pct("utilization"), "{:.1f}", drop=4),
    Col("mean_batch", "mean_batch", "{:,.1f}", wide=True),
    Col("p99_ttft_ms", "p99_ttft_ms", "{:,.1f}"),
    Col("p99_tpot_ms", "p99_tpot_ms", "{:,.1f}", when=_tpot_target),
    Col("slo_met", "slo_met", str),
    Col("power_kW", _scaled("power_w", 1e-3), "{:,.2f}"),
    Col("tok/W", "tok_per_w", "{:,.2f}", drop=2),
    Col("$/hr", "cost_per_hr", "{:,.2f}", drop=1),
    Col("compressed_%", _pct("compressed_share"), "{:.1f}", when=_compresses),
    Col("min_instances", "min_instances", "{:,d}", wide=True),
    Col("p99_tpot_ms", "p99_tpot_ms", "{:,.1f}", wide=True,
        when=lambda rs: not _tpot_target(rs)),
    Col("mean_tpot_ms", "mean_tpot_ms", "{:,.1f}", wide=True),
    Col("p99_ttlt_ms", "p99_ttlt_ms", "{:,.0f}", wide=True),
    Col("prefill_%", _pct("prefill_share"), "{:.1f}", wide=True),
    Col("kv_%", _pct("kv_util"), "{:.1f}", wide=True),
    Col("mean_step_ms", "mean_step_ms", "{:,.1f}", wide=True),
    Col("slots", "slots", "{:,d}", wide=True),
    Col("kv_dtype", "kv_dtype", str, wide=True),
    Col("output_tok/s", "output_tok_per_s", "{:,.0f}", wide=True),
)


def _sim_verdict(row: Mapping[str, Any]) -> str:
    v = row.get("check_passed")
    if is_missing(v):
        return "idle"
    if v:
        return "met"
    return "MISSED" if row.get("slo_met") is False else "BEHIND"  # behind the offered load


def _measured(key: str, factor: float = 1.0) -> Callable[[Mapping[str, Any]], Any]:
    """A simulated figure, blank for a pool without measured requests."""
    def get(row: Mapping[str, Any]) -> Any:
        v = row.get(key)
        if not row.get("requests") or v is None or is_missing(v):
            return None
        return float(v) * factor
    return get


def _any_preemption(rows: Sequence[Mapping[str, Any]]) -> bool:
    return any((r.get("preemptions") or 0) > 0 for r in rows)


#: pools of a simulation (simulate, solve --validate)
SIM_COLS: tuple[Col, ...] = (
    Col("ctx_tokens", _ctx, str),
    Col("window_tok", "window_tokens", "{:d}", when=_has_window),
    Col("gpu", "gpu", str),
    Col("tp", "tp", "{:d}"),
    Col("ep", "ep", "{:d}", when=_has_ep),
    Col("dtype", "dtype", str, drop=8),
    Col("instances", "instances", "{:,d}"),
    Col("requests", "requests", "{:,d}", drop=7),
    Col("p50_ttft_ms", "p50_ttft_ms", "{:,.1f}", wide=True),
    Col("slo_ttft_ms", "slo_ttft_ms", "{:,.1f}", wide=True),
    Col("p99_ttft_ms", _measured("p99_ttft_ms"), "{:,.1f}"),
    Col("pred_p99_ms", "predicted_p99_ttft_ms", "{:,.1f}", drop=3),
    Col("p99_tpot_ms", _measured("p99_tpot_ms"), "{:,.1f}"),
    Col("pred_tpot_ms", "predicted_p99_tpot_ms", "{:,.1f}", wide=True),
    Col("delivered_%", _measured("delivered_fraction", 100.0), "{:.1f}"),
    Col("slo", _sim_verdict, str),
    Col("power_kW", _scaled("power_w", 1e-3), "{:,.2f}", drop=2),
    Col("pred_kW", _scaled("predicted_power_w", 1e-3), "{:,.2f}", drop=4),
    Col("tok/s", "output_tok_per_s", "{:,.0f}", drop=5),
    Col("pred_tok/s", "predicted_output_tok_per_s", "{:,.0f}", drop=6),
    Col("kv_%", _measured("kv_utilization", 100.0), "{:.1f}", drop=9),
    Col("busy_%", _measured("busy_fraction", 100.0), "{:.1f}", wide=True),
    Col("preempt", "preemptions", "{:,d}", when=_any_preemption, drop=10),
    Col("compressed_%", _pct("compressed_share"), "{:.1f}", when=_compresses),
)

#: the comparison of approaches (compare)
COMPARE_COLS: tuple[Col, ...] = (
    Col("approach", "approach", str),
    Col("family", "family", str),
    Col("status", "status", str),
    Col("pools", "pools", "{:d}", drop=4),
    Col("instances", "instances", "{:,d}", wide=True),
    Col("gpus", "gpus", "{:,d}", drop=3),
    Col("power_kW", "power_kw", "{:,.2f}"),
    Col("tok/W", "tok_per_w", "{:,.2f}", drop=2),
    Col("$/hr", "cost_per_hr", "{:,.2f}"),
    Col("worst_p99_ms", "worst_p99_ttft_ms", "{:,.1f}", drop=1),
    Col("compressed_%", _pct("compressed"), "{:.1f}", when=lambda rs: _compresses(rs, "compressed")),
    Col("vs_homog_%", "change_vs_homogeneous_pct", "{:+.1f}"),
    Col("mip_saving_%", "mip_saving_vs_best_heuristic_pct", "{:.1f}"),
)


def _mix(d: Any) -> str:
    return ", ".join(f"{g} {n}" for g, n in d.items()) if isinstance(d, Mapping) and d else ""


#: the procurement frontier (study procurement)
PROCUREMENT_COLS: tuple[Col, ...] = (
    Col("budget_$/hr", "budget_per_hr", "{:,.2f}"),
    Col("status", "status", str),
    Col("power_kW", _scaled("power_w", 1e-3), "{:,.2f}"),
    Col("$/hr", "cost_per_hr", "{:,.2f}"),
    Col("gpus", "gpus", "{:,d}"),
    Col("pools", "n_pools", "{:d}", drop=2),
    Col("gpus_by_type", lambda r: _mix(r.get("gpus_by_type")), str, maxw=48),
    Col("worst_p99_ms", "worst_p99_ttft_ms", "{:,.1f}", wide=True),
    Col("tok/W", "tok_per_w", "{:,.2f}", wide=True),
    Col("gap", "gap", "{:.2e}", wide=True),
    Col("point_ms", _scaled("point_s", 1e3), "{:,.1f}", drop=1),
)

#: sweep results (study sweep)
SWEEP_COLS: tuple[Col, ...] = (
    Col("scenario", "scenario", str, maxw=44),
    Col("status", "status", str),
    Col("power_kW", _scaled("power_w", 1e-3), "{:,.2f}"),
    Col("$/hr", "cost_per_hr", "{:,.2f}"),
    Col("gpus", "gpus", "{:,d}"),
    Col("pools", "n_pools", "{:d}", drop=2),
    Col("mix", "mix", str, maxw=28, drop=1),
)

#: catalog tables (catalog)
GPU_COLS: tuple[Col, ...] = (
    Col("name", "name", str), Col("hbm_GiB", "hbm_gb", "{:,.0f}"),
    Col("hbm_TB/s", "hbm_bw_tb_s", "{:.2f}"), Col("fp16_TFLOPS", "fp16_tflops", "{:,.0f}"),
    Col("fp8_TFLOPS", "fp8_tflops", "{:,.0f}"), Col("tdp_W", "tdp_w", "{:,.0f}"),
    Col("$/gpu/hr", "price_per_gpu_hr", "{:.2f}"), Col("step_cal", "step_calibration", str),
    Col("power_model", "power_model_quality", str),
    Col("idle_W", "idle_w_no_iteration", "{:,.0f}"),
    Col("curve", "power_quality", str, drop=1), Col("curve_lo_W", "idle_w", "{:,.0f}", drop=2),
    Col("curve_hi_W", "plateau_w", "{:,.0f}", drop=2),
)
MODEL_COLS: tuple[Col, ...] = (
    Col("name", "name", str), Col("params_B", "params_total_b", "{:,.1f}"),
    Col("active_B", "params_active_b", "{:,.1f}"), Col("layers", "layers", "{:d}"),
    Col("kv_heads", "kv_heads", "{:d}"), Col("attention", "attention", str),
    Col("experts", "experts", "{:d}"), Col("max_ctx_tok", "max_context", "{:,d}"),
    Col("fp8", lambda r: f"{r['fp8_scheme']}/{r['fp8_scope']}", str, drop=1),
)
#: what one instance does (instance)
INSTANCE_COLS: tuple[Col, ...] = (
    Col("batch", "batch", "{:,d}"), Col("ctx_tok", "ctx", "{:,d}"),
    Col("step_ms", "step_ms", "{:,.2f}"), Col("out_tok/s", "output_tok_per_s", "{:,.0f}"),
    Col("prefill_tok/s_max", "prefill_tok_per_s_max", "{:,.0f}"),
    Col("W/GPU", "power_w_per_gpu", "{:,.0f}"),
    Col("bound", lambda r: "compute" if r["compute_bound"] else "memory", str),
    Col("fits", lambda r: "yes" if r["within_limits"] else "NO", str),
)
PROFILE_COLS: tuple[Col, ...] = (
    Col("name", "name", str), Col("model", "model", str), Col("tp", "tp", "{:d}"),
    Col("dtype", "dtype", str), Col("$/gpu/hr", "price_per_gpu_hr", "{:.2f}"),
    Col("source", "source", str, wide=True),
)
WORKLOAD_COLS: tuple[Col, ...] = (
    Col("name", "name", str), Col("kind", "kind", str), Col("source", "source", str, maxw=60),
    Col("license", "license", str, maxw=24),
)


# ------------------------------------------------------------------------------------------
# verdicts


def slo_verdict(sim: Any, label: str = "simulated") -> tuple[str, bool | None]:
    """Per-pool and fleet verdict lines of a :class:`fleetopt.sim.result.SimResult` (the SLO:
    TTFT, and TPOT when it has a target; and whether each pool delivered its offered load),
    and the fleet verdict ``--check`` tests (``None`` when no pool received requests)."""
    tot = sim.totals
    target = tot.get("ttft_target_ms")
    tpot = tot.get("tpot_target_ms")
    q = tot.get("slo_quantile") or 0.99
    share = tot.get("min_delivered") or 0.97
    qname = f"P{100 * q:g}"
    what = [f"{label} {qname} TTFT vs the {target:,.0f} ms target" if target is not None
            else f"{label} {qname} TTFT"]
    if tpot is not None:
        what.append(f"{qname} TPOT vs the {tpot:,.0f} ms target")
    what.append(f"at least {100 * share:g} % of the offered output tokens delivered")
    lines = [f"SLO verdict ({'; '.join(what)}):"]
    for p in sim.pools:
        where = f"pool ({p.ctx_lo}, {p.ctx_hi}] {p.label}"
        if p.check_passed is None:
            lines.append(f"  {where}: idle (no measured requests)")
            continue
        st = p.stats
        word = "met" if p.check_passed else ("MISSED" if p.slo_met is False else
                                             "NOT DELIVERED")
        parts = []
        if p.ttft_met is not None:
            op = "<=" if p.ttft_met else ">"
            parts.append(f"TTFT {st.slo_ttft_ms:,.1f} ms {op} {p.ttft_target_ms:,.0f} ms")
        if p.tpot_met is not None:
            op = "<=" if p.tpot_met else ">"
            parts.append(f"TPOT {st.slo_tpot_ms:,.1f} ms {op} {p.tpot_target_ms:,.0f} ms")
        if p.delivers_offered_load is not None:
            ci = st.delivered_ci
            pm = f" +- {100 * ci:.1f}" if math.isfinite(ci) else ""
            short = st.delivered_fraction < p.min_delivered
            op = (">=" if not short else "within noise of") if p.delivers_offered_load else "<"
            parts.append(f"delivered {100 * st.delivered_fraction:.1f}{pm} % {op} "
                         f"{100 * p.min_delivered:g} %")
        lines.append(wrap(f"  {where}: {word}, {', '.join(parts)} ({st.requests:,} requests)",
                          indent="      "))
    verdict = sim.check_passed
    n = sum(1 for p in sim.pools if p.check_passed is not None)
    missed = sum(1 for p in sim.pools if p.slo_met is False)
    short = sum(1 for p in sim.pools if p.delivers_offered_load is False)
    worst = tot.get("worst_pool_slo_ttft_ms")
    if verdict is None:
        lines.append("fleet: no verdict (no pool received measured requests)")
        return "\n".join(lines), verdict
    which = "the one pool" if n == 1 else f"all {n} pools"
    if sim.slo_met is False:
        head = f"fleet: SLO MISSED in {missed} of {n} pools (worst TTFT {worst:,.1f} ms"
        head += f" > {target:,.0f} ms)" if worst is not None and target is not None and \
            worst > target else ")"
    else:
        head = f"fleet: SLO met in {which} with requests (worst TTFT {worst:,.1f} ms)"
    if short:
        head += f"; offered load NOT delivered by {short} of {n} pools"
    elif sim.delivers_offered_load:
        head += "; offered load delivered"
    lines.append(wrap(head))
    return "\n".join(lines), verdict


# ------------------------------------------------------------------------------------------
# the settings a run used, and markdown


def settings_line(used: dict[str, Any]) -> str:
    """The one-line text form of :meth:`fleetopt.problem.Problem.settings_used`: ``used: rate
    ..., ...``."""
    u = used
    src = {"trace": "the trace's own", "config": "config"}.get(u["rate_source"], u["rate_source"])
    notes = [src]
    if u.get("trace_rate_rps") is not None and u["rate_source"] != "trace":
        notes.append(f"the trace's own {u['trace_rate_rps']:,.4g} req/s")
    if u.get("timestamp_unit"):
        notes.append(f"timestamps in {u['timestamp_unit']}: {u['timestamp_rule']}")
    rate = f"rate {u['rate_rps']:,.4g} req/s ({'; '.join(notes)})"
    parts = [rate]
    if u.get("input_fraction") is not None:
        parts.append(f"input share {u['input_fraction']:g} ({u['input_fraction_source']})")
    parts.append(f"max_ctx {u['max_ctx']} ({u['max_ctx_source']})")
    oc = u.get("over_max_ctx_applied")
    if oc:
        parts.append(f"over_max_ctx {oc['mode']} ({100 * oc['share']:.2g} % of requests)")
    if u["peak_factor_source"] == "auto":  # one per pool: in the pools' table and JSON
        parts.append("peak factor per pool (auto)")
    else:
        parts.append(f"peak factor {u['peak_factor']:.3g} ({u['peak_factor_source']})")
    parts.append(f"accounting {u['accounting']}")
    if u.get("ep", "off") != "off":
        parts.append(f"expert parallelism {u['ep']}")
    phys = f"physics {u['profiles']}"
    if u["physics_overrides"]:
        phys += " (" + ", ".join(f"{k}={v:g}" for k, v in u["physics_overrides"].items()) + ")"
    else:
        phys += " (default parameters)" if "computed" in u["profiles"] else ""
    parts.append(phys)
    if u["accounting"] == "physical" and "kv_allocation" in u:
        serve = [f"{u['kv_allocation']} KV"
                 + (f" (overflow <= {u['kv_overflow_prob']:g})" if u["kv_allocation"] == "paged"
                    else "")]
        if u.get("tpot_p99_ms") is not None:
            serve.append(f"P99 TPOT {u['tpot_p99_ms']:g} ms")
        if u.get("prefix_cache_hit"):
            serve.append(f"prefix hit {u['prefix_cache_hit']:g} ({u['prefix_cache_hit_source']})")
        for key, name in (("max_num_batched_tokens", "token budget"),
                          ("max_num_seqs", "max seqs")):
            if u.get(key) is not None:
                serve.append(f"{name} {u[key]:,}")
        parts.append(", ".join(serve))
    if u.get("candidates") is not None:
        parts.append(f"{u['candidates']:,} candidates")
    return "used: " + ", ".join(parts)


def markdown_table(df: pd.DataFrame | Sequence[Mapping[str, Any]], cols: Mapping[str, str],
                   fmt: Mapping[str, str] | None = None) -> str:
    """A markdown table of ``df`` (a DataFrame or row dicts): ``cols`` maps a column to its
    header, ``fmt`` a column to a format spec; missing values are empty cells."""
    fmt = fmt or {}
    head = "| " + " | ".join(cols.values()) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    rows, _keys = _records(df)
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if is_missing(v):
                cells.append("")
            elif c in fmt:
                cells.append(format(v, fmt[c]))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
