"""``fleetopt study procurement`` and ``fleetopt study sweep`` (added to :mod:`.cli`'s parser).

The studies are imported when a command runs, so the parser itself is cheap to build."""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import STDOUT, check_output_path, check_outputs, write_output
from fleetopt.core.jsonio import to_json
from fleetopt.core.status import USABLE
from fleetopt.report import tables as report
from fleetopt.report.cli_common import used, verbose_flag, warn

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PROCUREMENT_FORMATS", "add_study_parser", "cmd_procurement", "cmd_sweep"]

PROCUREMENT_FORMATS = ("table", "json", "csv", "parquet")


def add_study_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``study`` command (with ``procurement`` and ``sweep``) to the fleetopt CLI."""
    st = subparsers.add_parser("study", help="procurement frontiers and scenario sweeps")
    sub = st.add_subparsers(dest="study", required=True)

    p = sub.add_parser(
        "procurement", help="minimum-watt plan at every budget, and the cheapest plan",
        description="For each budget ($/hr) the plan of least watts meeting the SLO, plus the "
        "cheapest plan meeting it; one HiGHS model is built once and re-solved per budget.")
    p.add_argument("config", help="config TOML, or a shipped example's name")
    p.add_argument("--budgets", required=True,
                   help="START:STOP:STEP in $/hr (e.g. 100:2000:50), or a comma list")
    p.add_argument("--inventory", nargs="+", metavar="GPU=N", default=None,
                   help="GPU caps to add or override, e.g. B200=64 H200-SXM=128")
    p.add_argument("--format", choices=PROCUREMENT_FORMATS, default="table")
    p.add_argument("--out", help="also write the output here (parquet needs it; - for stdout "
                   "only)")
    p.add_argument("--plot", help="write the frontier figure (PNG) here")
    p.add_argument("--wide", action="store_true",
                   help="show every column (default: tables fit 120 characters)")
    p.add_argument("--time-limit", type=float, default=None, help="seconds per budget")
    p.add_argument("--mip-gap", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compress", action="store_true", help="allow compress bands")
    verbose_flag(p)
    p.set_defaults(func=cmd_procurement)

    s = sub.add_parser(
        "sweep", help="solve (and simulate) every scenario of a SWEEP.toml",
        description="Solve each scenario of a SWEEP.toml (a base config plus [grid] and/or "
        "[[scenario]] changes) and save one tidy row per scenario. Finished scenarios are "
        "kept in OUT.checkpoint.jsonl; rerunning the command resumes.")
    s.add_argument("sweep", help="SWEEP.toml, or a shipped sweep example's name")
    s.add_argument("--out", help="results file: .parquet (default), .csv or .json "
                   "(default: ./<sweep name>-results.parquet)")
    s.add_argument("--executor", choices=("sequential", "process", "dask"), default="process")
    s.add_argument("--workers", type=int, default=None,
                   help="processes or local Dask workers (default: all cores)")
    s.add_argument("--scheduler", help="Dask scheduler address (with --executor dask)")
    s.add_argument("--simulate", action="store_true", help="also simulate each plan")
    s.add_argument("--fresh", action="store_true",
                   help="ignore and replace the checkpoint of earlier runs")
    s.add_argument("--wide", action="store_true",
                   help="show every column (default: tables fit 120 characters)")
    bar = s.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar")
    bar.add_argument("--no-progress", dest="progress", action="store_false",
                     help="never show it (default: only on a terminal)")
    verbose_flag(s)
    s.set_defaults(func=cmd_sweep)
    return st


def _write(args: argparse.Namespace, text: str) -> None:
    """The output: to stdout, and to ``--out`` when given (``--out -``: stdout only)."""
    text = text if text.endswith("\n") else text + "\n"
    if getattr(args, "out", None) and args.out != STDOUT:
        write_output(args.out, text)
    sys.stdout.write(text)


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """Dict and list columns as JSON strings (for CSV and parquet)."""
    out = frame.copy()
    for c in ("gpus_by_type", "pools"):
        if c in out.columns:
            out[c] = out[c].map(lambda v: to_json(v, indent=None))
    return out


def cmd_procurement(args: argparse.Namespace) -> int:
    from fleetopt.problem.config import load_config
    from fleetopt.studies.procurement import parse_budgets, procurement_study, with_inventory

    budgets = parse_budgets(args.budgets)  # bad syntax fails before any work
    if args.format == "parquet" and not args.out:
        raise FleetoptError("--out", "--format parquet writes a file: give --out FILE.parquet")
    check_outputs((args.out, "--out"), (args.plot, "--plot", False))
    if args.threads is not None and args.threads < 1:
        raise FleetoptError("--threads", f"must be >= 1, got {args.threads}")
    problem = with_inventory(load_config(args.config), args.inventory)
    warn(problem)
    res = procurement_study(problem, budgets, time_limit=args.time_limit, mip_gap=args.mip_gap,
                            threads=args.threads, compress=args.compress)
    df = res.frame
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from fleetopt.report.plots import plot_frontier

        plot_frontier(df, args.plot, min_cost=res.min_cost_row(),
                      title=f"{problem.name}: {problem.workload.name} at "
                      f"{problem.workload.rate_rps:g} req/s, P99 TTFT "
                      f"{problem.settings.ttft_p99_ms:g} ms")
    settings, line = used(problem, int(res.timing["candidates"])
                          if res.timing.get("candidates") is not None else None)
    if args.format == "json":
        _write(args, to_json({**res.to_dict(), "settings": settings}))
    elif args.format == "csv":
        _write(args, _flat(df).to_csv(index=False))
    elif args.format == "parquet":
        buf = io.BytesIO()
        _flat(df).to_parquet(buf, index=False)
        write_output(args.out, buf.getvalue())
        where = sys.stderr if args.out == STDOUT else sys.stdout
        where.write(f"wrote {len(df)} budgets to {'stdout' if args.out == STDOUT else args.out}\n")
    else:
        _write(args, _procurement_text(problem, res, args.wide, line))
    return 0


def _procurement_text(problem: Any, res: Any, wide: bool = False, used_line: str = "") -> str:
    df = res.frame
    show = report.render(df, report.PROCUREMENT_COLS, wide=wide)
    head = report.wrap(
        f"{problem.name}: {problem.workload.name} at {problem.workload.rate_rps:g} req/s, "
        f"{problem.model}, P99 TTFT target {problem.settings.ttft_p99_ms:g} ms; minimum "
        "watts per budget")
    mc = res.min_cost_row()
    if mc["status"] in USABLE and mc["gpus_by_type"]:
        cheapest = (f"cheapest plan meeting the SLO: ${mc['cost_per_hr']:,.2f}/hr, "
                    f"{mc['power_w'] / 1000:,.2f} kW, {mc['gpus']} GPUs ("
                    + ", ".join(f"{g} {n}" for g, n in mc["gpus_by_type"].items()) + ")")
    else:
        cheapest = f"cheapest plan: {mc['status']}: {mc['message']}"
    t = res.timing
    timing = (f"timing: build {t.get('build_s', 0):.2f} s once ({int(t.get('candidates', 0))} "
              f"candidates), {t.get('mean_point_s', 0) * 1000:.1f} ms per budget on average "
              f"(max {t.get('max_point_s', 0) * 1000:.1f} ms), total {t.get('total_s', 0):.2f} s")
    return "\n".join([head, *([report.wrap(used_line)] if used_line else []), show, "",
                      report.wrap(cheapest), report.wrap(timing)])


def cmd_sweep(args: argparse.Namespace) -> int:
    from fleetopt.studies.sweep.checkpoint import checkpoint_path
    from fleetopt.studies.sweep.results import save_results
    from fleetopt.studies.sweep.study import load_sweep

    if args.workers is not None and args.workers < 1:
        raise FleetoptError("--workers", f"must be >= 1, got {args.workers}")
    if args.scheduler and args.executor != "dask":
        raise FleetoptError("--scheduler", "only applies with --executor dask")
    if args.out == STDOUT:
        raise FleetoptError("--out", "a sweep writes a results file and a checkpoint next to it: "
                            "give FILE.parquet, FILE.csv or FILE.json (not -)")
    if args.out:
        check_output_path(args.out, "--out", allow_stdout=False)
    study = load_sweep(args.sweep, simulate=True if args.simulate else None)
    warn(study.base)
    out = Path(args.out) if args.out else Path(f"{study.name or 'sweep'}-results.parquet")
    if out.suffix.lower() not in (".parquet", ".csv", ".json"):
        raise FleetoptError("--out", f"unknown output type {out.suffix or '(none)'!r}: use "
                            ".parquet, .csv or .json")
    check_output_path(out, "--out", allow_stdout=False)
    check_output_path(checkpoint_path(out), "--out (its checkpoint)", allow_stdout=False)
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise FleetoptError("--out", "writing parquet needs pyarrow (pip install pyarrow); "
                                "or use --out results.csv") from None
    ck = checkpoint_path(out)
    if args.fresh and ck.exists():
        ck.unlink()
    finished = [0]
    t0 = time.perf_counter()
    try:
        df = study.run(executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                       checkpoint=ck, progress=args.progress,
                       on_row=lambda _r: finished.__setitem__(0, finished[0] + 1))
    except KeyboardInterrupt:
        sys.stderr.write(f"fleetopt: {finished[0]} newly finished scenarios are kept in {ck}; "
                         "run the same command again to resume\n")
        raise
    save_results(df, out)
    wall = time.perf_counter() - t0
    counts = df["status"].value_counts().to_dict()
    resumed = int(df["resumed"].sum())
    lines = [report.wrap(
        f"{study.name or 'sweep'}: {len(df)} scenarios ({resumed} resumed from {ck.name}, "
        f"{len(df) - resumed} solved) in {wall:.1f} s with the {args.executor} executor; "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
        report.wrap("base " + used(study.base)[1] + " (each row's own: the settings column)"),
        report.wrap(f"results: {out}")]
    lines.append(report.render(df, report.SWEEP_COLS, wide=args.wide, limit=30))
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
