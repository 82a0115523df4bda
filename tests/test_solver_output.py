"""HiGHS prints nothing unless --verbose: the CLI run as a user runs it, in a fresh process.

A fresh process matters: highspy 1.16.0 prints its banner on stdout only while the first
``highspy.Highs()`` of a process is constructed, which an in-process test (after other tests
have made Highs objects) would never see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetopt.planners.mip import highs


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("fleetopt")
    cmd = [str(script)] if script.is_file() else [
        sys.executable, "-c", "import sys; from fleetopt.report.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL)


def _json_only(r: subprocess.CompletedProcess[str]) -> dict:
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # nothing from HiGHS (or anything else) on stderr
    return json.loads(r.stdout)  # the whole of stdout is the JSON document


def test_solve_json_is_pure_json() -> None:
    d = _json_only(_cli("solve", "azure-h100", "--format", "json"))
    assert d["status"] == "optimal"


def test_solve_json_is_pure_json_with_the_pyomo_backend() -> None:
    d = _json_only(_cli("solve", "azure-h100", "--format", "json", "--backend", "pyomo"))
    assert d["status"] == "optimal"


def test_compare_json_is_pure_json() -> None:
    d = _json_only(_cli("compare", "azure-h100", "--format", "json"))
    assert d  # a comparison document


def test_procurement_json_is_pure_json() -> None:
    d = _json_only(_cli("study", "procurement", "azure-mixed", "--budgets", "200:260:20",
                        "--format", "json"))
    assert {r["status"] for r in d["rows"]} >= {"optimal"}


def test_process_sweep_workers_are_silent(tmp_path: Path) -> None:
    sweep = tmp_path / "s.toml"
    sweep.write_text('base = "paper-azure"\n[grid]\nrate_rps = [300, 900, 2700]\n')
    r = _cli("study", "sweep", str(sweep), "--out", str(tmp_path / "r.csv"), "--executor",
             "process", "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "HiGHS" not in r.stdout
    assert (tmp_path / "r.csv").is_file()


def test_verbose_logs_to_stderr_and_keeps_stdout_json() -> None:
    r = _cli("solve", "azure-h100", "--format", "json", "--verbose")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "optimal"
    assert "HiGHS" in r.stderr and "MIP" in r.stderr  # the solver's log, on stderr


def test_solver_output_restores_descriptors_and_keeps_earlier_output(
        capfd: pytest.CaptureFixture[str]) -> None:
    print("before", flush=False)  # still buffered when the redirection starts
    with highs.solver_output(False):
        os.write(1, b"hidden-out\n")
        os.write(2, b"hidden-err\n")
        with highs.solver_output(False):  # nested: one redirection
            os.write(1, b"hidden-nested\n")
    print("after")
    with highs.solver_output(True):  # verbose: stdout goes to stderr
        os.write(1, b"shown-on-err\n")
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert err == "shown-on-err\n"


def test_highspy_version_and_warm_start_gate() -> None:
    v = highs.highspy_version()
    assert len(v) == 3 and v >= (1, 7, 1)
    assert highs.warm_start_trusted() == (v < highs.UNTRUSTED_MIP_START_FROM)
