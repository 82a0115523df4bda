"""The ``fleetopt`` command line.

Every command reads a TOML config (a path, or the name of a shipped example: ``fleetopt
catalog`` lists them; ``fleetopt example NAME`` prints one). Bad input prints one line naming
the field and the fix, and exits 2; an internal error (a bug) prints one line saying so and exits
1 (``--debug`` shows the traceback). Exit codes: 0 ok, 1 no plan (or an internal error), 2 bad
input, 3 ``--check`` found a simulated P99 TTFT (or TPOT) above its target or a pool that does
not deliver its offered load. Settings without effect print
``fleetopt: warning: ...`` lines on stderr, and every run prints the values it used (``used:
...``; ``settings`` in its JSON). Output files are checked before any work and written
atomically (:mod:`fleetopt.core.files`); tables are formatted by :mod:`fleetopt.report.tables`.
The ``study`` commands are :mod:`fleetopt.report.cli_study`. Each command imports what it needs
when it runs, so ``fleetopt --help`` starts fast.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import STDOUT, check_outputs, write_output
from fleetopt.core.jsonio import to_json, versioned
from fleetopt.core.status import Status
from fleetopt.core.version import __version__
from fleetopt.report import cli_study
from fleetopt.report import tables as report
from fleetopt.report.cli_common import used, verbose_flag, warn

__all__ = ["EXIT_CHECK_FAILED", "FORMATS", "SIM_POLICIES", "build_parser", "main", "used", "warn"]

FORMATS = ("table", "json")
#: dispatch policies of the simulator (fleetopt.sim.dispatch.POLICIES; not imported here, so
#: that ``fleetopt --help`` loads no numpy; tests/test_cli.py checks they agree)
SIM_POLICIES = ("least_outstanding_tokens", "least_loaded", "round_robin")
#: exit code of ``simulate --check`` / ``solve --validate --check`` when a pool misses its SLO
#: or does not deliver its offered load
EXIT_CHECK_FAILED = 3
OUT_HELP = "also write the output to this file (- for stdout only)"
WIDE_HELP = "show every column (default: tables fit 120 characters)"
#: where internal errors (bugs) are to be reported
BUG_REPORTS = "the fleetopt issue tracker (README, 'Reporting bugs')"


class _UsageError(Exception):
    """A command-line syntax error (argparse's), reported in one line with exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, no usage dump, no SystemExit
        raise _UsageError(f"{message} (see {self.prog} --help)")


def _problem(args: argparse.Namespace) -> Any:
    from fleetopt.problem.config import load_config

    problem = load_config(args.config)
    warn(problem)
    return problem


def _fleet_for(problem: Any, fleet_path: str | None) -> Any:
    from fleetopt.evaluation import size_fleet
    from fleetopt.problem.fleet import Fleet

    if fleet_path:
        return Fleet.from_json_file(fleet_path).with_precisions(
            problem.dtypes, problem.kv_dtype, problem.catalog, "--fleet")
    if problem.fleet is not None:
        return problem.fleet
    return size_fleet(problem)


def _nl(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output path of the command is checked before any work (:mod:`fleetopt.core.files`)."""
    check_outputs((getattr(args, "out", None), "--out"),
                  (getattr(args, "plot", None), "--plot", False))


def _emit(args: argparse.Namespace, text: str) -> None:
    """The command's output: to stdout, and to ``--out`` when given (``--out -``: stdout only)."""
    text = _nl(text)
    out = getattr(args, "out", None)
    if out and out != STDOUT:
        write_output(out, text)
    sys.stdout.write(text)


def _human(args: argparse.Namespace) -> Any:
    """Where text that is not the ``--out`` content goes: stderr when ``--out -`` holds stdout."""
    return sys.stderr if getattr(args, "out", None) == STDOUT else sys.stdout


def _head(problem: Any) -> str:
    return (f"{problem.name}: {problem.workload.name} at {problem.workload.rate_rps:g} req/s, "
            f"{problem.model}, P99 TTFT target {problem.settings.ttft_p99_ms:g} ms")


def _totals_line(t: dict[str, Any], prefix: str = "fleet: ") -> str:
    parts = [f"instances {t['instances']}", f"GPUs {t['gpus']}",
             f"power {t['power_w'] / 1000:,.2f} kW", f"${t['cost_per_hr']:,.2f}/hr",
             f"{t['output_tok_per_s']:,.0f} output tok/s", f"{t['tok_per_w']:.3f} tok/W",
             "worst P99 TTFT " + (f"{t['worst_p99_ttft_ms']:,.1f} ms"
                                  if t.get("worst_p99_ttft_ms") is not None
                                  else "unbounded (a pool is overloaded)"),
             f"SLO met: {t['slo_met']}"]
    if (t.get("compressed_share") or 0) > 0:
        parts.append(f"compressed {100 * t['compressed_share']:.1f} % of requests "
                     "(prompts truncated to a pool's window)")
    if t.get("accounting") != "physical":
        parts[-1] += f" [{t['accounting']} accounting]"
    return report.join_wrapped(prefix, parts)


def _sim_note(res: Any) -> str:
    """The run's warnings (a short window, a short warm-up), one note each."""
    notes = res.totals.get("warnings") or []
    return "".join(report.wrap(f"\nnote: {w}") for w in notes)


def _pools_table(pools: Any, wide: bool = False) -> str:
    """The pools of a fleet result (its pool dicts: no DataFrame, so pandas is not loaded)."""
    return report.render(pools, report.POOL_COLS, wide=wide)


def _pool_rows(result: Any) -> list[dict[str, Any]]:
    return [] if result is None else [p.to_dict() for p in result.pools]


def _sim_text(res: Any, wide: bool = False, label: str = "simulated") -> tuple[str, bool | None]:
    """The simulation table, its verdict per pool and for the fleet (SLO and delivered load),
    and the fleet line; the verdict ``--check`` tests."""
    t = res.totals
    verdict, met = report.slo_verdict(res, label)

    def num(k: str, f: str, scale: float = 1.0) -> str:
        v = t.get(k)
        return "-" if v is None else format(v * scale, f)

    w = t.get("window_s") or [0.0, 0.0]
    reps = t.get("replications") or 1
    ci = "batch means" if reps == 1 else f"{reps} replications"
    fleet = report.join_wrapped("fleet (simulated): ", [
        f"{t['requests']:,} measured requests at {num('arrival_rate', ',.1f')} req/s",
        f"P99 TTFT {num('p99_ttft_ms', ',.1f')} ms (+- {num('p99_ttft_ci_ms', ',.1f')}, {ci})",
        f"P99 TPOT {num('p99_tpot_ms', ',.1f')} ms",
        f"delivered {num('delivered_fraction', '.1f', 100.0)} % of the offered output tokens",
        f"{num('output_tok_per_s', ',.0f')} output tok/s (predicted "
        f"{num('predicted_output_tok_per_s', ',.0f')})",
        f"power {num('power_w', ',.2f', 1e-3)} kW (predicted "
        f"{num('predicted_power_w', ',.2f', 1e-3)})", f"{num('tok_per_j', '.3f')} tok/J",
        f"{t.get('preemptions', 0):,} preemptions",
        f"{t.get('arrivals')} arrivals", f"seed {t.get('seed')}",
        f"{t.get('simulated_requests'):,} requests simulated"
        + (" (auto)" if t.get("requests_auto") else ""),
        f"measured window {w[0]:,.1f}-{w[1]:,.1f} s", f"{t.get('policy')} dispatch"])
    parts = [report.render([p.to_dict() for p in res.pools], report.SIM_COLS, wide=wide), "",
             verdict, fleet]
    if wide:
        parts.append(report.wrap("all totals: " + ", ".join(
            f"{k} {v:,.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in t.items()
            if not isinstance(v, list))))
    return "\n".join(parts) + _sim_note(res), met


def _catalog_data() -> dict[str, Any]:
    from fleetopt.physics.calibration import gpu_calibration
    from fleetopt.physics.catalog import default_catalog
    from fleetopt.physics.profiles import vllm_defaults
    from fleetopt.problem.config import example_names, sweep_example_names
    from fleetopt.problem.workload import builtin_info

    cat = default_catalog()
    gpus = []
    for g in cat.gpus.values():
        cal = gpu_calibration(g)
        tok, seqs = vllm_defaults(g)
        gpus.append({
            "name": g.name, "hbm_gb": g.hbm_gb, "hbm_bw_tb_s": g.hbm_bw_tb_s,
            "fp16_tflops": g.fp16_tflops, "fp8_tflops": g.fp8_tflops, "tdp_w": g.tdp_w,
            "price_per_gpu_hr": g.price_per_gpu_hr, "power_quality": g.power.quality,
            "idle_w": g.power.idle_w, "plateau_w": g.power.plateau_w,
            "step_calibration": cal.quality, "power_model_quality": cal.power.quality,
            "idle_w_no_iteration": float(cal.power.idle_w),
            "max_num_batched_tokens": tok, "max_num_seqs": seqs})
    models = [{"name": m.name, "params_total_b": m.params_total_b,
               "params_active_b": m.params_active_b, "layers": m.layers, "kv_heads": m.kv_heads,
               "attention": m.attention, "experts": m.experts, "max_context": m.max_context,
               "fp8_scheme": m.fp8_scheme, "fp8_scope": m.fp8_scope}
              for m in cat.models.values()]
    profiles = [{"name": p.name, "model": p.model, "tp": p.tp, "dtype": p.dtype,
                 "price_per_gpu_hr": p.price_per_gpu_hr, "source": p.source}
                for p in cat.profiles.values()]
    return versioned("catalog", {
        "gpus": gpus, "models": models, "profiles": profiles, "workloads": builtin_info(),
        "examples": example_names(), "sweep_examples": sweep_example_names()})


def cmd_catalog(args: argparse.Namespace) -> int:
    _check_outputs(args)
    data = _catalog_data()
    if args.format == "json":
        _emit(args, to_json(data))
        return 0
    parts = []
    for title, rows, cols in (("GPUs", data["gpus"], report.GPU_COLS),
                              ("Models", data["models"], report.MODEL_COLS),
                              ("Calibrated profiles", data["profiles"], report.PROFILE_COLS),
                              ("Workloads", data["workloads"], report.WORKLOAD_COLS)):
        parts.append(f"{title}\n{report.render(rows, cols, wide=args.wide)}")
    parts.append(report.wrap("Example configs (use the name as CONFIG; fleetopt example NAME "
                             "prints one to copy)\n  " + ", ".join(data["examples"])))
    parts.append(report.wrap("Example sweeps (fleetopt study sweep NAME)\n  "
                             + ", ".join(data["sweep_examples"])))
    _emit(args, "\n\n".join(parts))
    return 0


def _int_list(text: str, flag: str) -> list[int]:
    """``"1,8,64"`` as whole numbers >= 1 (an error naming ``flag`` otherwise)."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 or v > 10_000_000 for v in vals):
        raise FleetoptError(flag, f"must be whole numbers from 1 to 10,000,000 separated by "
                            f"commas (e.g. 1,8,64), got {text!r}")
    return vals


def _instance_profile(args: argparse.Namespace) -> Any:
    """The computed profile of the ``instance`` flags, each checked (errors name the flag)."""
    from fleetopt.physics.catalog import default_catalog
    from fleetopt.physics.kv import BYTES_PER_ELEMENT
    from fleetopt.physics.profiles import Deployment, check_ep, resolve

    cat = default_catalog()
    model = cat.model(args.model, "--model")
    if cat.is_profile(args.gpu):
        raise FleetoptError("--gpu", f"{args.gpu!r} is a calibrated profile; instance describes "
                            f"a catalog GPU: one of {', '.join(sorted(cat.gpus))}")
    gpu = cat.gpu(args.gpu, "--gpu")
    for flag, v in (("--dtype", args.dtype), ("--kv-dtype", args.kv_dtype)):
        if v.lower() not in BYTES_PER_ELEMENT:
            raise FleetoptError(flag, f"unknown precision {v!r}; use one of "
                                f"{', '.join(BYTES_PER_ELEMENT)}")
    if args.tp not in (1, 2, 4, 8, 16) or args.tp > gpu.max_tp:
        raise FleetoptError("--tp", f"must be one of 1, 2, 4, 8, 16 and at most {gpu.name}'s "
                            f"{gpu.max_tp}, got {args.tp}")
    ep = check_ep(model, args.tp, args.ep, "--ep")
    prof = resolve(Deployment(gpu.name, args.tp, args.dtype.lower(), args.kv_dtype.lower(), ep),
                   model, cat, field_name="--gpu")
    err = prof.fit_error()
    if err:
        raise FleetoptError("--tp", err)
    return prof


def cmd_instance(args: argparse.Namespace) -> int:
    from fleetopt.physics.instance import instance_summary

    _check_outputs(args)
    batches = _int_list(args.batch, "--batch")
    ctx = _int_list(str(args.ctx), "--ctx")[0]
    window = _int_list(str(args.window), "--window")[0]
    prof = _instance_profile(args)
    data = versioned("instance", instance_summary(prof, batches, ctx, window))
    if args.format == "json":
        _emit(args, to_json(data))
        return 0
    d = data["deployment"]
    head = [
        f"{prof.model.display or prof.model.name} on {prof.label()} ({d['gpus']} GPUs, "
        f"{d['step_precision']} weights, {d['weight_gib_per_gpu']:.1f} GiB per GPU)",
        f"calibration: step {d['calibration']} ({d['calibration_set']}), power "
        f"{d['power_quality']}; idle {d['idle_w_per_gpu']:.0f} W per GPU, TDP "
        f"{d['tdp_w_per_gpu']:.0f} W",
        f"engine: token budget {d['token_budget']:,} per iteration, at most {d['max_seqs']:,} "
        f"sequences; KV {data['kv_tokens']:,} tokens paged ({d['block_tokens']}-token blocks), "
        f"{data['slots_reserved']:,} reserved slots at a window of {window:,} tokens",
    ]
    _emit(args, "\n".join(report.wrap(h) for h in head) + "\n"
          + report.render(data["points"], report.INSTANCE_COLS, wide=args.wide))
    return 0


def _example_text(name: str) -> tuple[str, str]:
    """The canonical name and text of a shipped example config (or sweep)."""
    from importlib import resources

    from fleetopt.core.errors import unknown_name
    from fleetopt.problem.config import example_names, sweep_example_names

    names = example_names() + sweep_example_names()
    key = {n.lower(): n for n in names}.get(name.lower().removesuffix(".toml"))
    if key is None:
        raise unknown_name("NAME", name, names, "example")
    return key, resources.files("fleetopt.examples").joinpath(f"{key}.toml").read_text()


def _example_summary(text: str) -> str:
    """The first sentence of a config's leading comment."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    blurb = " ".join(w for w in words if w)
    return blurb.split(". ")[0].rstrip(".")


def cmd_example(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.name is None:
        from fleetopt.problem.config import example_names, sweep_example_names

        lines = ["Shipped examples (fleetopt example NAME --out my.toml writes one to edit):"]
        for n in example_names() + sweep_example_names():
            lines.append(report.wrap(f"  {n:<14} {_example_summary(_example_text(n)[1])}",
                                     indent=" " * 15))
        _emit(args, "\n".join(lines))
        return 0
    key, text = _example_text(args.name)
    if args.out and args.out != STDOUT:
        write_output(args.out, _nl(text))
        cmd = "study sweep" if key.startswith("sweep") else "solve"
        sys.stdout.write(f"wrote the {key} example to {args.out}; edit it, then: fleetopt {cmd} "
                         f"{args.out}\n")
    else:
        sys.stdout.write(_nl(text))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fleetopt.evaluation import evaluate_plan

    _check_outputs(args)
    problem = _problem(args)
    fleet = _fleet_for(problem, args.fleet)
    res = evaluate_plan(problem, fleet)
    settings, line = used(problem)
    if args.format == "json":
        _emit(args, to_json({**res.to_dict(), "settings": settings}))
    else:
        _emit(args, f"{report.wrap(_head(problem))}\n{report.wrap(line)}\n"
              f"{_pools_table(_pool_rows(res), args.wide)}\n\n{_totals_line(res.totals)}"
              + "".join(report.wrap(f"\nnote: {n}") for n in res.notes))
    return 0


def _solution_text(sol: Any, problem: Any, wide: bool = False, used_line: str = "") -> str:
    lines = [report.wrap(_head(problem)), *([report.wrap(used_line)] if used_line else []),
             f"status: {sol.status}"]
    if sol.result is None:
        lines.append(report.wrap(sol.message))
        return "\n".join(lines)
    if sol.status == Status.TIME_LIMIT:
        lines.append(sol.message)
    o = sol.to_dict()["objective"]
    if o["value"] is not None:
        unit = "W" if o["name"] == "power_w" else "$/hr"
        gap = f", gap {o['gap']:.2e}" if o["gap"] is not None else ""
        bound = f", bound {o['bound']:,.2f}" if o["bound"] is not None else ""
        lines.append(f"objective ({o['name']}): {o['value']:,.2f} {unit}{bound}{gap}")
    if sol.linearization_error is not None:
        lines.append(f"linearisation error (exact - model): {sol.linearization_error:,.3f}")
    lines.append(_pools_table(_pool_rows(sol.result), wide))
    lines.append("")
    lines.append(_totals_line(sol.totals))
    if sol.timing:
        lines.append(report.wrap("timing: " + ", ".join(f"{k} {v:.3f}"
                                                        for k, v in sol.timing.items())))
    return "\n".join(lines)


def cmd_solve(args: argparse.Namespace) -> int:
    from fleetopt.planners.mip.solve import solve

    for flag, given in (("--check", args.check), ("--policy", args.policy is not None),
                        ("--replications", args.replications is not None)):
        if given and not args.validate:
            raise FleetoptError(flag, "applies to the simulation of the plan: add --validate")
    _check_outputs(args)
    problem = _problem(args)
    sol = solve(problem, time_limit=args.time_limit, mip_gap=args.mip_gap, solver=args.solver,
                backend=args.backend, compress=args.compress, threads=args.threads)
    payload = sol.to_dict()
    settings, line = used(problem, sol.details.get("candidates"))
    payload["settings"] = settings
    validation = None
    if args.validate and sol.result is not None:
        from fleetopt.sim.api import simulate_problem

        validation = simulate_problem(problem, sol.fleet, **_sim_kwargs(args))
        payload["validation"] = validation.to_dict()
    plan = to_json(payload) + "\n"
    if args.out:  # the plan JSON (with --out -, the only thing on stdout)
        write_output(args.out, plan)
    met: bool | None = None
    if args.format == "json":
        if args.out != STDOUT:
            sys.stdout.write(plan)
        met = None if validation is None else validation.check_passed
    else:
        text = _solution_text(sol, problem, args.wide, line)
        if validation is not None:
            sim_text, met = _sim_text(validation, args.wide, "simulated")
            text += "\n\nsimulated vs predicted (the plan run through the simulator):\n" + sim_text
        _human(args).write(text + "\n")
    if sol.result is None:
        return 1
    return EXIT_CHECK_FAILED if args.check and met is False else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fleetopt.report.plots import plot_comparison
    from fleetopt.studies.compare import compare_solutions, comparison_frame, comparison_to_dict

    _check_outputs(args)
    problem = _problem(args)
    sols = compare_solutions(problem, time_limit=args.time_limit)
    df = comparison_frame(sols)
    settings, line = used(problem, next((s.details.get("candidates") for s in sols
                                         if s.approach == "mip"), None))
    if args.plot:
        plot_comparison(df, args.plot, title=f"{problem.name}: {problem.workload.name} at "
                        f"{problem.workload.rate_rps:g} req/s")
    if args.format == "json":
        _emit(args, to_json({**comparison_to_dict(sols), "settings": settings}))
    elif args.format == "csv":
        _emit(args, df.to_csv(index=False))
    else:
        _emit(args, f"{report.wrap(_head(problem))}\n{report.wrap(line)}\n"
              + report.render(df, report.COMPARE_COLS, wide=args.wide))
    return 0


def _sim_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The simulation flags as :func:`fleetopt.sim.simulate` arguments."""
    return {"requests": args.requests, "seed": args.seed,
            "policy": args.policy or "least_outstanding_tokens",
            "replications": args.replications or 1}


def cmd_simulate(args: argparse.Namespace) -> int:
    from fleetopt.sim.api import simulate_problem

    _check_outputs(args)
    problem = _problem(args)
    fleet = _fleet_for(problem, args.fleet)
    res = simulate_problem(problem, fleet, replay=args.replay or None, **_sim_kwargs(args))
    met = res.check_passed
    settings, line = used(problem)
    if args.format == "json":
        _emit(args, to_json({**res.to_dict(), "settings": settings}))
    else:
        text, met = _sim_text(res, args.wide)
        _emit(args, f"{report.wrap(_head(problem))}\n{report.wrap(line)}\n{text}")
    return EXIT_CHECK_FAILED if args.check and met is False else 0


def _sim_flags(p: argparse.ArgumentParser, suffix: str) -> None:
    """``--requests``, ``--seed``, ``--policy``, ``--replications`` (simulate, solve)."""
    sfx = f" ({suffix})" if suffix else ""
    p.add_argument("--requests", type=int, default=None,
                   help="requests to simulate per replication (default: auto: 20,000, more "
                   "when the slowest pool needs a longer window)" + sfx)
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the simulated arrivals" + sfx)
    p.add_argument("--policy", choices=SIM_POLICIES, default=None,
                   help="dispatch within a pool (default least_outstanding_tokens)" + sfx)
    p.add_argument("--replications", type=int, default=None,
                   help="independent replications (seeds); confidence intervals across them "
                   "(default 1: batch means)" + sfx)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="fleetopt",
        description="Plan LLM-inference GPU fleets: pools, context boundaries, GPU/TP/precision "
        "and instance counts for minimum watts under P99 TTFT targets.",
    )
    p.add_argument("--version", action="version", version=f"fleetopt {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (anywhere on the command line)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("catalog", help="list GPUs, models, calibrated profiles, workloads, examples")
    c.add_argument("--format", choices=FORMATS, default="table")
    c.add_argument("--out", help=OUT_HELP)
    c.add_argument("--wide", action="store_true", help=WIDE_HELP)
    c.set_defaults(func=cmd_catalog)

    i = sub.add_parser("instance", help="what one instance does: KV, step time, throughput, "
                       "power per batch", description="What one instance of a deployment does: "
                       "its KV capacity, engine limits and, per decode batch at one context, the "
                       "step time, output tokens/s, the largest prefill rate beside it and the "
                       "per-GPU power (the calibrated iteration model, docs/model.md).")
    i.add_argument("--model", required=True, help="a catalog model (fleetopt catalog)")
    i.add_argument("--gpu", required=True, help="a catalog GPU")
    i.add_argument("--tp", type=int, required=True, help="tensor-parallel degree")
    i.add_argument("--ep", type=int, default=1, help="expert parallelism (mixtures of experts: "
                   "1 or --tp; default 1)")
    i.add_argument("--dtype", required=True, help="weight precision: fp16, bf16, fp8, int8, int4")
    i.add_argument("--kv-dtype", default="fp16", help="KV-cache precision (default fp16)")
    i.add_argument("--batch", default="1,8,64,256",
                   help="decode batches, comma-separated (default 1,8,64,256)")
    i.add_argument("--ctx", type=int, default=1024,
                   help="cached context of every sequence, tokens (default 1024)")
    i.add_argument("--window", type=int, default=8192,
                   help="window of the reserved slots reported, tokens (default 8192)")
    i.add_argument("--format", choices=FORMATS, default="table")
    i.add_argument("--out", help=OUT_HELP)
    i.add_argument("--wide", action="store_true", help=WIDE_HELP)
    i.set_defaults(func=cmd_instance)

    x = sub.add_parser("example", help="print a shipped example config to copy and edit",
                       description="Print a shipped example config (or sweep) to standard output, "
                       "or write it to --out FILE; without NAME, list them.")
    x.add_argument("name", nargs="?", metavar="NAME", help="e.g. azure-h100 (omit to list)")
    x.add_argument("--out", help="write it to this file (- for stdout)")
    x.set_defaults(func=cmd_example)

    e = sub.add_parser("evaluate", help="evaluate a fleet exactly (watts, tokens, $, P99 TTFT)")
    e.add_argument("config", help="config TOML, or a shipped example's name")
    e.add_argument("--fleet", help="FLEET.json (a list of pools, or a plan with 'pools')")
    e.add_argument("--format", choices=FORMATS, default="table")
    e.add_argument("--out", help=OUT_HELP)
    e.add_argument("--wide", action="store_true", help=WIDE_HELP)
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
    s.add_argument("--out", help="write the plan JSON here (its pools are a valid FLEET.json); "
                   "- writes it to stdout, and the table to stderr")
    s.add_argument("--validate", action="store_true", help="simulate the plan (iteration by "
                   "iteration) and report both, with an SLO verdict per pool")
    s.add_argument("--check", action="store_true", help="with --validate: exit 3 when a "
                   "simulated P99 TTFT (or, with [slo] tpot_p99_ms, P99 TPOT) misses its "
                   "target or a pool does not deliver its offered load")
    _sim_flags(s, "for --validate")
    s.add_argument("--wide", action="store_true", help=WIDE_HELP)
    verbose_flag(s)
    s.set_defaults(func=cmd_solve)

    m = sub.add_parser("compare", help="baselines vs the MIP optimum, side by side")
    m.add_argument("config")
    m.add_argument("--format", choices=("table", "json", "csv"), default="table")
    m.add_argument("--plot", help="write a bar chart (PNG) here")
    m.add_argument("--time-limit", type=float, default=None)
    m.add_argument("--out", help=OUT_HELP)
    m.add_argument("--wide", action="store_true", help=WIDE_HELP)
    verbose_flag(m)
    m.set_defaults(func=cmd_compare)

    d = sub.add_parser("simulate", help="simulate a fleet iteration by iteration (vLLM-style "
                       "engines: token budget, paged KV, preemption, prefix cache)")
    d.add_argument("config")
    d.add_argument("--fleet", help="FLEET.json or a plan JSON")
    _sim_flags(d, "")
    d.add_argument("--replay", action="store_true", help="replay the shipped trace's timestamps")
    d.add_argument("--format", choices=FORMATS, default="table")
    d.add_argument("--out", help=OUT_HELP)
    d.add_argument("--check", action="store_true",
                   help="exit 3 when a pool's simulated P99 TTFT (or, with [slo] tpot_p99_ms, "
                   "P99 TPOT) misses its target or a pool does not deliver its offered load")
    d.add_argument("--wide", action="store_true", help=WIDE_HELP)
    d.set_defaults(func=cmd_simulate)

    cli_study.add_study_parser(sub)
    return p


#: checks of numeric flags: (argparse dest, flag, test, what it must be)
_FLAG_CHECKS: tuple[tuple[str, str, Any, str], ...] = (
    ("time_limit", "--time-limit", lambda v: math.isfinite(v) and v > 0, "seconds > 0"),
    ("mip_gap", "--mip-gap", lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
    ("threads", "--threads", lambda v: 1 <= v <= 1024, "a whole number from 1 to 1024"),
    ("requests", "--requests", lambda v: 1 <= v <= 10_000_000,
     "a whole number from 1 to 10,000,000"),
    ("seed", "--seed", lambda v: v >= 0, "a whole number >= 0"),
    ("replications", "--replications", lambda v: 1 <= v <= 1000,
     "a whole number from 1 to 1,000"),
    ("workers", "--workers", lambda v: v >= 1, "a whole number >= 1"),
)


def _check_flags(args: argparse.Namespace) -> None:
    for dest, flag, ok, what in _FLAG_CHECKS:
        v = getattr(args, dest, None)
        if v is not None and not ok(v):
            raise FleetoptError(flag, f"must be {what}, got "
                                + (f"{v:g}" if isinstance(v, float) else str(v)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code: 0 done, 1 no plan or an internal error (a bug),
    2 bad input, 3 ``--check`` missed, 130 interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:  # --help, --version
            return int(e.code or 0) if not isinstance(e.code, str) else 2
        if hasattr(args, "verbose"):  # a command that may run HiGHS (the others never load it)
            from fleetopt.planners.mip import highs

            highs.set_verbose(bool(args.verbose))
        _check_flags(args)
        return int(args.func(args) or 0)
    except (FleetoptError, _UsageError) as e:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"fleetopt: error: {_one_line(str(e))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fleetopt: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001  a bug: one line, the traceback only with --debug
        if debug:
            traceback.print_exc()
        summary = _one_line(f"{type(e).__name__}: {e}")
        sys.stderr.write(f"fleetopt: internal error (this is a bug in fleetopt): {summary}; "
                         f"please report it with the command and config to {BUG_REPORTS}"
                         + ("" if debug else "; rerun with --debug for the traceback") + "\n")
        return 1


def _one_line(text: str, limit: int = 600) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[:limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
