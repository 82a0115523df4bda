"""Whole-process start-up: ``python -c "import fleetopt"``, ``fleetopt --help`` and
``fleetopt solve azure-h100``, each a fresh interpreter (what a user waits for).

Run: ``python benchmarks/bench_cli.py [--rounds N] [--json FILE]`` (or through pytest:
``pytest benchmarks/bench_cli.py --benchmark-only``). Each command runs ``N`` times in a new
process; the table gives the best (least) and the median wall time. The console script is the
``fleetopt`` beside this interpreter (a venv's ``bin/``), so the numbers are for the installed
package. The README's Performance section quotes them, before and after the restructure of
issue 10 (``docs/architecture.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _console_script() -> str:
    here = Path(sys.executable).parent / "fleetopt"
    return str(here) if here.is_file() else (shutil.which("fleetopt") or "fleetopt")


def commands() -> dict[str, list[str]]:
    exe = _console_script()
    return {
        'python -c "import fleetopt"': [sys.executable, "-c", "import fleetopt"],
        "fleetopt --help": [exe, "--help"],
        "fleetopt solve azure-h100": [exe, "solve", "azure-h100"],
    }


def time_command(argv: list[str], rounds: int) -> dict[str, float]:
    """Best and median wall seconds of ``rounds`` runs of ``argv`` (each must exit 0)."""
    times = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run(argv, capture_output=True, env=env, check=True)  # warm the file cache
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    rows = {name: time_command(cmd, args.rounds) for name, cmd in commands().items()}
    print("| command | best (s) | median (s) |")
    print("|---|---|---|")
    for name, r in rows.items():
        print(f"| `{name}` | {r['best_s']:.2f} | {r['median_s']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def test_bench_cli_processes(benchmark) -> None:  # pytest-benchmark entry point
    rows = benchmark.pedantic(lambda: {n: time_command(c, 3) for n, c in commands().items()},
                              rounds=1, iterations=1)
    benchmark.extra_info.update({n: r["best_s"] for n, r in rows.items()})
    assert all(r["best_s"] > 0 for r in rows.values())


if __name__ == "__main__":
    sys.exit(main())
