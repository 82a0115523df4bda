"""The ``fleetopt`` command line.

Every command reads a TOML config (a path, or the name of a shipped example: ``fleetopt
catalog`` lists them). Bad input prints one line naming the field and the fix, and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import pandas as pd

from fleetopt.errors import FleetoptError
from fleetopt.io import atomic_write, format_table, to_json

FORMATS = ("table", "json")


def _problem(args: argparse.Namespace) -> Any:
    from fleetopt.problem import load_config

    return load_config(args.config)


def _fleet_for(problem: Any, fleet_path: str | None) -> Any:
    from fleetopt.evaluate import size_fleet
    from fleetopt.fleet import Fleet

    if fleet_path:
        return Fleet.from_json_file(fleet_path)
    if problem.fleet is not None:
        return problem.fleet
    return size_fleet(problem)


def _emit(args: argparse.Namespace, text: str) -> None:
    out = getattr(args, "out", None)
    if out:
        atomic_write(out, text if text.endswith("\n") else text + "\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _totals_line(t: dict[str, Any]) -> str:
    return (f"instances {t['instances']}, GPUs {t['gpus']}, power {t['power_w'] / 1000:,.2f} kW, "
            f"${t['cost_per_hr']:,.2f}/hr, {t['output_tok_per_s']:,.0f} output tok/s, "
            f"{t['tok_per_w']:.3f} tok/W, worst P99 TTFT "
            + (f"{t['worst_p99_ttft_ms']:,.1f} ms" if t.get("worst_p99_ttft_ms") is not None
               else "unbounded (a pool is overloaded)")
            + f", SLO met: {t['slo_met']}"
            + (f" [{t['accounting']} accounting]" if t.get("accounting") != "physical" else ""))


_POOL_COLS = ["ctx_lo", "ctx_hi", "window_tokens", "gpu", "tp", "dtype", "instances", "gpus",
              "arrival_rate", "utilization", "mean_batch", "p99_ttft_ms", "slo_met", "power_w",
              "tok_per_w", "cost_per_hr", "min_instances"]


def _sim_note(res: Any) -> str:
    """A warning when the measured window is short against the slowest pool's service time."""
    info = res.to_dict()["totals"]
    w = info.get("window_s") or [0.0, 0.0]
    svc = info.get("slowest_mean_service_s") or 0.0
    span = w[1] - w[0]
    if svc > 0 and span < 5 * svc:
        return (f"\nnote: the measured window ({span:,.1f} s) is shorter than 5 mean service times "
                f"of the slowest pool ({svc:,.1f} s each): its throughput and tail are not settled; "
                "raise --requests")
    return ""


def _pools_table(df: pd.DataFrame) -> str:
    cols = [c for c in _POOL_COLS if c in df.columns]
    return format_table(df[cols])


def cmd_catalog(args: argparse.Namespace) -> int:
    from fleetopt.catalog import default_catalog
    from fleetopt.problem import example_names, sweep_example_names
    from fleetopt.workload import builtin_info

    cat = default_catalog()
    gpus = [{"name": g.name, "hbm_gb": g.hbm_gb, "hbm_bw_tb_s": g.hbm_bw_tb_s,
             "fp16_tflops": g.fp16_tflops, "fp8_tflops": g.fp8_tflops, "tdp_w": g.tdp_w,
             "price_per_gpu_hr": g.price_per_gpu_hr, "power_quality": g.power.quality,
             "idle_w": g.power.idle_w, "plateau_w": g.power.plateau_w} for g in cat.gpus.values()]
    models = [{"name": m.name, "params_total_b": m.params_total_b,
               "params_active_b": m.params_active_b, "layers": m.layers, "kv_heads": m.kv_heads,
               "attention": m.attention, "experts": m.experts, "max_context": m.max_context}
              for m in cat.models.values()]
    profiles = [{"name": p.name, "model": p.model, "tp": p.tp, "dtype": p.dtype,
                 "price_per_gpu_hr": p.price_per_gpu_hr, "source": p.source}
                for p in cat.profiles.values()]
    workloads = builtin_info()
    data = {"gpus": gpus, "models": models, "profiles": profiles, "workloads": workloads,
            "examples": example_names(), "sweep_examples": sweep_example_names()}
    if args.format == "json":
        _emit(args, to_json(data))
        return 0
    parts = []
    for title, rows in (("GPUs", gpus), ("Models", models), ("Calibrated profiles", profiles),
                        ("Workloads", workloads)):
        df = pd.DataFrame(rows)
        if title == "Workloads":
            df = df[["name", "kind", "source", "license"]]
        if title == "Calibrated profiles":
            df = df.drop(columns=["source"])
        parts.append(f"{title}\n{format_table(df)}")
    parts.append("Example configs (use the name as CONFIG)\n  " + ", ".join(data["examples"]))
    parts.append("Example sweeps (fleetopt study sweep NAME)\n  " + ", ".join(data["sweep_examples"]))
    _emit(args, "\n\n".join(parts))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fleetopt.evaluate import evaluate

    problem = _problem(args)
    fleet = _fleet_for(problem, args.fleet)
    res = evaluate(fleet, problem.workload, problem.settings, model=problem.model,
                   catalog=problem.catalog, physics=problem.physics)
    if args.format == "json":
        _emit(args, to_json(res.to_dict()))
    else:
        head = (f"{problem.name}: {problem.workload.name} at {problem.workload.rate_rps:g} req/s, "
                f"{problem.model}, P99 TTFT target {problem.settings.ttft_p99_ms:g} ms")
        _emit(args, f"{head}\n{_pools_table(res.to_frame())}\n\nfleet: {_totals_line(res.totals)}"
              + "".join(f"\nnote: {n}" for n in res.notes))
    return 0


def _solution_text(sol: Any, problem: Any) -> str:
    head = (f"{problem.name}: {problem.workload.name} at {problem.workload.rate_rps:g} req/s, "
            f"{problem.model}, P99 TTFT target {problem.settings.ttft_p99_ms:g} ms")
    lines = [head, f"status: {sol.status}"]
    if sol.result is None:
        lines.append(sol.message)
        return "\n".join(lines)
    if sol.status == "time_limit":
        lines.append(sol.message)
    o = sol.to_dict()["objective"]
    if o["value"] is not None:
        unit = "W" if o["name"] == "power_w" else "$/hr"
        gap = f", gap {o['gap']:.2e}" if o["gap"] is not None else ""
        bound = f", bound {o['bound']:,.2f}" if o["bound"] is not None else ""
        lines.append(f"objective ({o['name']}): {o['value']:,.2f} {unit}{bound}{gap}")
    if sol.linearization_error is not None:
        lines.append(f"linearisation error (exact - model): {sol.linearization_error:,.3f}")
    lines.append(_pools_table(sol.pools))
    lines.append("")
    lines.append(f"fleet: {_totals_line(sol.totals)}")
    if sol.timing:
        lines.append("timing: " + ", ".join(f"{k} {v:.3f}" for k, v in sol.timing.items()))
    return "\n".join(lines)


def cmd_solve(args: argparse.Namespace) -> int:
    from fleetopt.solvers.mip import solve

    problem = _problem(args)
    sol = solve(problem, time_limit=args.time_limit, mip_gap=args.mip_gap, solver=args.solver,
                backend=args.backend, compress=args.compress, threads=args.threads)
    payload = sol.to_dict()
    validation = None
    if args.validate and sol.result is not None:
        from fleetopt.sim import simulate_problem

        validation = simulate_problem(problem, sol.fleet, requests=args.requests, seed=args.seed)
        payload["validation"] = validation.to_dict()
    if args.format == "json":
        _emit(args, to_json(payload))
    else:
        text = _solution_text(sol, problem)
        if validation is not None:
            v = validation.to_frame()
            cols = [c for c in ("ctx_lo", "ctx_hi", "p99_ttft_ms", "predicted_p99_ttft_ms",
                                "power_w", "predicted_power_w", "output_tok_per_s",
                                "predicted_output_tok_per_s") if c in v.columns]
            text += "\n\nsimulated vs predicted:\n" + format_table(v[cols]) + _sim_note(validation)
        if args.out:
            atomic_write(args.out, to_json(payload) + "\n")
        sys.stdout.write(text + "\n")
    return 0 if sol.result is not None else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from fleetopt.compare import (
        compare_solutions,
        comparison_frame,
        comparison_to_dict,
        plot_comparison,
    )

    problem = _problem(args)
    sols = compare_solutions(problem, time_limit=args.time_limit)
    df = comparison_frame(sols)
    if args.plot:
        plot_comparison(df, args.plot, title=f"{problem.name}: {problem.workload.name} at "
                        f"{problem.workload.rate_rps:g} req/s")
    if args.format == "json":
        _emit(args, to_json(comparison_to_dict(sols)))
    elif args.format == "csv":
        _emit(args, df.to_csv(index=False))
    else:
        _emit(args, format_table(df))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from fleetopt.sim import simulate_problem

    problem = _problem(args)
    fleet = _fleet_for(problem, args.fleet)
    res = simulate_problem(problem, fleet, requests=args.requests, seed=args.seed,
                           replay=args.replay or None)
    if args.format == "json":
        _emit(args, to_json(res.to_dict()))
    else:
        _emit(args, format_table(res.to_frame()) + "\n\nfleet: " + ", ".join(
            f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in res.to_dict()["totals"].items()) + _sim_note(res))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetopt",
        description="Plan LLM-inference GPU fleets: pools, context boundaries, GPU/TP/precision "
        "and instance counts for minimum watts under P99 TTFT targets.",
    )
    p.add_argument("--version", action="version", version="fleetopt 0.1.0")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("catalog", help="list GPUs, models, calibrated profiles, workloads, examples")
    c.add_argument("--format", choices=FORMATS, default="table")
    c.set_defaults(func=cmd_catalog)

    e = sub.add_parser("evaluate", help="evaluate a fleet exactly (watts, tokens, $, P99 TTFT)")
    e.add_argument("config", help="config TOML, or a shipped example's name")
    e.add_argument("--fleet", help="FLEET.json (a list of pools, or a plan with 'pools')")
    e.add_argument("--format", choices=FORMATS, default="table")
    e.add_argument("--out", help="also write the output to this file")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("solve", help="find the optimal N-pool fleet (MIP, HiGHS)")
    s.add_argument("config")
    s.add_argument("--format", choices=FORMATS, default="table")
    s.add_argument("--time-limit", type=float, default=None,
                   help="seconds for the whole run (default: none); a stopped run prints its "
                   "best plan, bound and gap and exits 0")
    s.add_argument("--mip-gap", type=float, default=1e-4)
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--solver", default="highs", help="any Pyomo MIP solver; HiGHS is built in")
    s.add_argument("--backend", choices=("auto", "highspy", "pyomo"), default="auto")
    s.add_argument("--compress", action="store_true",
                   help="allow compress bands (prompt truncation) at pool boundaries")
    s.add_argument("--out", help="write the plan JSON here (its pools are a valid FLEET.json)")
    s.add_argument("--validate", action="store_true", help="simulate the plan and report both")
    s.add_argument("--requests", type=int, default=20000, help="requests for --validate")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_solve)

    m = sub.add_parser("compare", help="baselines vs the MIP optimum, side by side")
    m.add_argument("config")
    m.add_argument("--format", choices=("table", "json", "csv"), default="table")
    m.add_argument("--plot", help="write a bar chart (PNG) here")
    m.add_argument("--time-limit", type=float, default=None)
    m.add_argument("--out", help="also write the output to this file")
    m.set_defaults(func=cmd_compare)

    d = sub.add_parser("simulate", help="discrete-event simulation of a fleet")
    d.add_argument("config")
    d.add_argument("--fleet", help="FLEET.json or a plan JSON")
    d.add_argument("--requests", type=int, default=20000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--replay", action="store_true", help="replay the shipped trace's timestamps")
    d.add_argument("--format", choices=FORMATS, default="table")
    d.add_argument("--out", help="also write the output to this file")
    d.set_defaults(func=cmd_simulate)

    try:
        from fleetopt.studies.cli import add_study_parser
    except ImportError:
        pass
    else:
        add_study_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FleetoptError as e:
        sys.stderr.write(f"fleetopt: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fleetopt: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
