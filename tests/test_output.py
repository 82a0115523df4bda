"""Output files (checked before any work, written atomically to the real target), ``--out -``,
versioned JSON on every output, and the JSON cleaner."""

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import check_output_path, write_output
from fleetopt.core.jsonio import jsonable, to_json
from fleetopt.report.cli import main

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------
# io.write_output / check_output_path


def test_symlink_target_is_written_and_the_link_kept(tmp_path, capsys):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "plan.json"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    code, out, _ = run(capsys, "evaluate", "paper-azure", "--format", "json", "--out", link)
    assert code == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    d = json.loads(target.read_text())
    assert d["schema"] == "fleetopt.evaluation/1" and d == json.loads(out)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640  # the target keeps its permissions
    assert _leftovers(real_dir) == [] and _leftovers(tmp_path) == []


def test_dangling_symlink_creates_its_target(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    target.parent.mkdir()
    link = tmp_path / "l.txt"
    link.symlink_to(target)
    write_output(link, "hello\n")
    assert link.is_symlink() and target.read_text() == "hello\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask  # usual permissions


def test_symlink_chain_into_a_missing_folder_names_the_target(tmp_path):
    link = tmp_path / "l.json"
    link.symlink_to(tmp_path / "nowhere" / "x.json")
    with pytest.raises(FleetoptError, match="does not exist"):
        check_output_path(link)


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "dev-full", "directory", "link-to-device"])
def test_special_files_are_refused_and_left_alone(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "dev-null":
        path = Path("/dev/null")
    elif kind == "dev-full":
        path = Path("/dev/full")
    elif kind == "directory":
        path = tmp_path / "d"
        path.mkdir()
    else:
        path = tmp_path / "to-null"
        path.symlink_to("/dev/null")
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    before = os.stat(path)
    listing = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, "solve", "paper-azure", "--out", path)
    assert code == 2 and out == ""
    assert err.startswith("fleetopt: error: --out: ") and err.count("\n") == 1
    assert {"fifo": "FIFO", "dev-null": "character device", "dev-full": "character device",
            "directory": "directory", "link-to-device": "character device"}[kind] in err
    after = os.stat(path)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino,
                                                           before.st_rdev)
    assert sorted(os.listdir(tmp_path)) == listing  # nothing created
    if kind == "link-to-device":
        assert path.is_symlink()


def test_plot_refuses_a_device_and_stdout(capsys, tmp_path):
    code, _, err = run(capsys, "compare", "paper-azure", "--plot", "/dev/null")
    assert code == 2 and "--plot" in err and "device" in err
    code, _, err = run(capsys, "compare", "paper-azure", "--plot", "-")
    assert code == 2 and "--plot" in err and "standard output" in err
    same = tmp_path / "x.out"
    code, _, err = run(capsys, "compare", "paper-azure", "--out", same, "--plot", same)
    assert code == 2 and "--plot" in err and "--out already writes" in err
    assert not same.exists()


WORK = ["fleetopt.problem.config:load_config", "fleetopt.planners.mip.solve:solve",
        "fleetopt.sim.api:simulate_problem", "fleetopt.studies.compare:compare_solutions",
        "fleetopt.studies.procurement:procurement_study",
        "fleetopt.studies.sweep.study:load_sweep"]


def _forbid(monkeypatch, targets=WORK):
    """Every entry point of real work fails the test if it is called."""
    import importlib

    def boom(*a, **k):
        raise AssertionError("work started before the outputs were checked")
    for t in targets:
        mod, name = t.split(":")
        monkeypatch.setattr(importlib.import_module(mod), name, boom)


@pytest.mark.parametrize("argv", [
    ["solve", "paper-azure", "--out", "/proc/fleetopt-x.json"],
    ["solve", "paper-azure", "--validate", "--out", "/proc/fleetopt-x.json"],
    ["evaluate", "paper-azure", "--out", "/proc/fleetopt-x.json"],
    ["simulate", "paper-azure", "--out", "/proc/fleetopt-x.json"],
    ["compare", "paper-azure", "--plot", "/proc/fleetopt-x.png"],
    ["compare", "paper-azure", "--out", "/proc/fleetopt-x.json"],
    ["catalog", "--out", "/proc/fleetopt-x.json"],
    ["example", "azure-h100", "--out", "/proc/fleetopt-x.toml"],
    ["study", "procurement", "paper-azure", "--budgets", "100,200", "--out", "/proc/x.csv"],
    ["study", "procurement", "paper-azure", "--budgets", "100,200", "--plot", "/proc/x.png"],
    ["study", "sweep", "sweep-example", "--out", "/proc/fleetopt-x.parquet"],
], ids=lambda a: " ".join(a[:2]) + " " + a[-2])
def test_unwritable_output_is_refused_before_any_work(capsys, monkeypatch, argv):
    _forbid(monkeypatch)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("fleetopt: error: --") and err.count("\n") == 1
    assert argv[-2] in err and "Traceback" not in err


@pytest.mark.skipif(IS_ROOT, reason="root may write into any folder and any file")
def test_unwritable_folder_and_read_only_file(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run(capsys, "solve", "paper-azure", "--out", ro / "p.json")
        assert code == 2 and "cannot write in folder" in err
    finally:
        ro.chmod(0o700)
    f = tmp_path / "locked.json"
    f.write_text("keep")
    f.chmod(0o444)
    code, _, err = run(capsys, "solve", "paper-azure", "--out", f)
    assert code == 2 and "read-only" in err and f.read_text() == "keep"


@pytest.mark.parametrize("where, exc", [("fsync", OSError(28, "No space left on device")),
                                         ("replace", KeyboardInterrupt())])
def test_nothing_partial_on_error_or_interrupt(tmp_path, monkeypatch, where, exc):
    target = tmp_path / "out.json"
    target.write_text("previous\n")

    def fail(*a, **k):
        raise exc
    monkeypatch.setattr(os, where, fail)
    with pytest.raises(type(exc) if isinstance(exc, KeyboardInterrupt) else FleetoptError):
        write_output(target, "x" * 100_000)
    monkeypatch.undo()
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_output_bytes_and_replace(tmp_path):
    p = tmp_path / "a.bin"
    write_output(p, b"\x00\x01")
    write_output(p, b"\x02")
    assert p.read_bytes() == b"\x02" and _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------
# --out -


def test_out_dash_evaluate_json_goes_to_stdout_once(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "evaluate", "paper-azure", "--format", "json", "--out", "-")
    assert code == 0 and json.loads(out)["schema"] == "fleetopt.evaluation/1"
    assert err == "" and os.listdir(tmp_path) == []  # no file called "-"


def test_out_dash_solve_table_plan_on_stdout_table_on_stderr(capsys):
    code, out, err = run(capsys, "solve", "paper-azure", "--out", "-")
    assert code == 0
    plan = json.loads(out)  # stdout holds the plan JSON and nothing else
    assert plan["schema"] == "fleetopt.plan/1" and plan["status"] == "optimal"
    assert "status: optimal" in err and "ctx_tokens" in err


def test_out_dash_solve_json_once(capsys):
    code, out, _ = run(capsys, "solve", "paper-azure", "--format", "json", "--out", "-")
    assert code == 0 and json.loads(out)["schema"] == "fleetopt.plan/1"


def test_out_dash_procurement_csv(capsys):
    code, out, _ = run(capsys, "study", "procurement", "paper-azure", "--budgets", "200,300",
                       "--format", "csv", "--out", "-")
    assert code == 0
    assert out.splitlines()[0].startswith("budget_per_hr,") and len(out.splitlines()) == 3


def test_out_dash_refused_for_sweep(capsys):
    code, out, err = run(capsys, "study", "sweep", "sweep-example", "--out", "-")
    assert code == 2 and out == "" and "--out" in err and "not -" in err


# ------------------------------------------------------------------------------------------
# versioned JSON


def _first_key_schema(d: dict, kind: str) -> None:
    assert next(iter(d)) == "schema" and d["schema"] == f"fleetopt.{kind}/1"


def test_every_json_output_is_versioned(capsys, tmp_path):
    plan = tmp_path / "plan.json"
    for argv, kind in [
        (["catalog", "--format", "json"], "catalog"),
        (["evaluate", "paper-azure", "--format", "json"], "evaluation"),
        (["solve", "paper-azure", "--format", "json", "--out", plan], "plan"),
        (["compare", "paper-azure", "--format", "json"], "comparison"),
        (["simulate", "paper-azure", "--fleet", plan, "--requests", "1500", "--format", "json"],
         "simulation"),
        (["study", "procurement", "paper-azure", "--budgets", "200,300", "--format", "json"],
         "procurement"),
    ]:
        code, out, _ = run(capsys, *argv)
        assert code == 0, argv
        _first_key_schema(json.loads(out), kind)
    _first_key_schema(json.loads(plan.read_text()), "plan")
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "1500",
                       "--format", "json")
    d = json.loads(out)
    _first_key_schema(d, "plan")
    _first_key_schema(d["validation"], "simulation")
    # the plan JSON, with its schema key, is still a FLEET.json
    code, out, _ = run(capsys, "evaluate", "paper-azure", "--fleet", plan, "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["power_w"] == pytest.approx(
        json.loads(plan.read_text())["totals"]["power_w"])
    # so is an evaluation
    ev = tmp_path / "ev.json"
    assert run(capsys, "evaluate", "paper-azure", "--fleet", plan, "--format", "json",
               "--out", ev)[0] == 0
    assert run(capsys, "evaluate", "paper-azure", "--fleet", ev)[0] == 0


def test_sweep_outputs_are_versioned(capsys, tmp_path):
    from fleetopt.studies.sweep import read_results

    sw = tmp_path / "s.toml"
    sw.write_text('base = "paper-azure"\n[grid]\nrate_rps = [500, 1000]\n')
    out = tmp_path / "r.json"
    code, _, _ = run(capsys, "study", "sweep", sw, "--out", out, "--executor", "sequential")
    assert code == 0
    d = json.loads(out.read_text())
    _first_key_schema(d, "sweep")
    assert len(d["rows"]) == 2 and d["columns"] == list(d["rows"][0])
    for line in (tmp_path / "r.json.checkpoint.jsonl").read_text().splitlines():
        _first_key_schema(json.loads(line), "sweep-checkpoint")
    back = read_results(out)
    assert list(back.columns) == d["columns"] and len(back) == 2


@pytest.mark.parametrize("doc, hint", [
    ({"schema": "fleetopt.plan/2", "pools": []}, "holds no fleet"),
    ({"schema": "fleetopt.comparison/1", "rows": []}, "holds no fleet"),
    ({"schema": "fleetopt.plan/1", "status": "infeasible", "pools": []}, "no pools"),
])
def test_fleet_json_schema_is_checked(capsys, tmp_path, doc, hint):
    f = tmp_path / "f.json"
    f.write_text(json.dumps(doc))
    code, _, err = run(capsys, "evaluate", "paper-azure", "--fleet", f)
    assert code == 2 and "--fleet" in err and hint in err


def test_python_objects_give_the_cli_json(capsys):
    from fleetopt.evaluation import evaluate, size_fleet
    from fleetopt.problem.config import load_config

    problem = load_config("paper-azure")
    res = evaluate(size_fleet(problem), problem.workload, problem.settings, model=problem.model,
                   catalog=problem.catalog, physics=problem.physics)
    code, out, _ = run(capsys, "evaluate", "paper-azure", "--format", "json")
    cli = json.loads(out)
    assert code == 0 and cli.pop("settings")["accounting"] == "paper"  # the run's, from the CLI
    assert json.loads(res.to_json()) == cli == res.to_dict()


def test_jsonable_cleans_everything_once():
    x = {"a": float("nan"), "b": [np.float64("inf"), np.int64(3), np.bool_(True)],
         "c": (1, pd.NA, -math.inf), "d": np.array([1.5, np.nan]), "e": {"f": np.float32(2.5)}}
    assert jsonable(x) == {"a": None, "b": [None, 3, True], "c": [1, None, None],
                           "d": [1.5, None], "e": {"f": 2.5}}
    s = to_json(x, indent=None)
    assert "NaN" not in s and "Infinity" not in s and json.loads(s)["e"]["f"] == 2.5


def test_the_before_work_guard_bites(capsys, monkeypatch, tmp_path):
    _forbid(monkeypatch)
    # the guard's AssertionError is an internal error for main(): exit 1, said in one line
    assert main(["solve", "paper-azure", "--out", str(tmp_path / "ok.json")]) == 1
    assert "before the outputs were checked" in capsys.readouterr().err
    assert not (tmp_path / "ok.json").exists()
