"""Procurement study (parametric re-solves) and scenario sweeps (executors, resume, CLI)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleetopt.core import processes
from fleetopt.core.errors import FleetoptError
from fleetopt.planners.mip import highs
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import load_config
from fleetopt.problem.problem import Problem
from fleetopt.report.cli import main
from fleetopt.studies import procurement_study
from fleetopt.studies.procurement import parse_budgets, procurement, with_inventory
from fleetopt.studies.sweep import (
    RESULT_COLUMNS,
    Study,
    checkpoint_path,
    load_sweep,
    read_checkpoint,
    read_results,
    save_results,
    sweep_from_dict,
)
from fleetopt.studies.sweep import executors as sweep_executors
from fleetopt.studies.sweep import study as sweep_study

BUDGETS = "1080:1200:8"  # $/hr; the cheapest plan of MIXED costs ~$1,100/hr, the least-watt ~$1,192
MIXED_TOML = """
name = "mixed-small"
[workload]
name = "azure-conv-2023"
rate = 1000
[model]
name = "llama-3.1-70b"
dtype = "fp8"
[fleet]
gpus = ["H100-SXM", "B200", "H200-SXM"]
tp = [4, 8]
max_pools = 3
max_ctx = 16384
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Problem:
    p = tmp_path_factory.mktemp("cfg") / "mixed.toml"
    p.write_text(MIXED_TOML)
    return load_config(p)


@pytest.fixture(scope="module")
def study(mixed: Problem):
    return procurement_study(mixed, BUDGETS)


@pytest.fixture(scope="module")
def paper() -> Problem:
    return load_config("paper-azure")


def _usable(status: str) -> bool:
    return status in ("optimal", "feasible", "time_limit")


# ------------------------------------------------------------------------------------------
# procurement


def test_parse_budgets() -> None:
    assert parse_budgets("100:200:50") == [100.0, 150.0, 200.0]
    assert parse_budgets("100:190:50") == [100.0, 150.0]
    assert parse_budgets("0.5:1.0:0.25") == [0.5, 0.75, 1.0]
    assert parse_budgets("300,100, 200") == [100.0, 200.0, 300.0]
    assert parse_budgets(250) == [250.0]
    assert parse_budgets([3, 1, 2, 2]) == [1.0, 2.0, 3.0]
    for bad in ("100-200", "100:50:10", "100:200:0", "a,b", "", "0:100:50", "1:2:3:4", "-5"):
        with pytest.raises(FleetoptError) as e:
            parse_budgets(bad)
        assert e.value.field == "--budgets"


def test_parametric_equals_fresh_solves(mixed: Problem, study) -> None:
    df = study.frame
    assert list(df["budget_per_hr"]) == parse_budgets(BUDGETS)
    statuses = set(df["status"])
    assert "infeasible" in statuses and "optimal" in statuses  # the range spans the frontier
    for b in (1080.0, 1096.0, 1104.0, 1120.0, 1144.0, 1168.0, 1200.0):
        fresh = solve(mixed.with_(budget_per_hr=b))
        para = study.solutions[b]
        assert _usable(para.status) == _usable(fresh.status), (b, para.status, fresh.status)
        if not _usable(fresh.status):
            assert para.result is None
            continue
        # same optimum (both at mip_gap 1e-4): model watts, and the exact watts of the plans
        assert para.objective == pytest.approx(fresh.objective, rel=2e-4), b
        assert para.result.power_w == pytest.approx(fresh.result.power_w, rel=2e-3), b
        assert para.result.cost_per_hr <= b + 1e-6
        assert para.feasible


def test_watts_never_rise_with_budget(study) -> None:
    df = study.frame
    ok = df[df["status"].map(_usable)]
    assert len(ok) >= 5
    # once a budget is feasible every larger one is
    first = df.index[df["status"].map(_usable)][0]
    assert df.loc[first:, "status"].map(_usable).all()
    objs = [study.solutions[b].objective for b in ok["budget_per_hr"]]
    assert all(b <= a + 1e-6 for a, b in zip(objs, objs[1:], strict=False)), objs
    watts = ok["power_w"].to_numpy()
    assert np.all(np.diff(watts) <= 1e-4 * watts[:-1]), watts
    assert np.all(ok["cost_per_hr"] <= ok["budget_per_hr"] + 1e-6)
    assert watts[-1] < watts[0]  # more budget buys fewer watts here
    binding = ok[~ok["message"].str.contains("does not bind")]
    assert 0 < len(binding) < len(ok)  # both paths: re-solved points and the unbudgeted plan
    # warm starts where this highspy can be trusted with them, clean re-solves where it cannot
    assert (binding["warm_started"].iloc[1:] == highs.warm_start_trusted()).all()
    assert (df["point_s"] >= 0).all()
    assert study.timing["mean_point_s"] < study.timing["build_s"] + 1.0


def test_lifting_the_budget_resolves_like_a_fresh_solve(mixed: Problem) -> None:
    """The re-solve that went wrong under highspy 1.16.0: solve at the cheapest plan's cost,
    lift the budget, re-solve the same loaded model warm-started from that plan. It must give
    the unbudgeted optimum (not the previous plan called optimal), with an objective that is
    its own solution's."""
    from fleetopt.planners.mip.data import build_mip_data
    from fleetopt.planners.mip.highs import HighsModel
    from fleetopt.sizing.candidates import build_candidates

    lim = mixed.with_(budget_per_hr=1200.0, objective="power")
    data = build_mip_data(lim, build_candidates(lim))
    brow = data.row_index("budget")
    cheap = HighsModel(data, data.cost_coef, None, 0.0)
    cheap.set_row_upper(brow, math.inf)
    c = cheap.run()
    m = HighsModel(data, data.power_coef)
    m.set_row_upper(brow, float(data.cost_coef @ c.x) + 1e-6)
    first = m.run(None, c.x)
    assert first.status == "optimal"
    fresh = HighsModel(data, data.power_coef)
    fresh.set_row_upper(brow, math.inf)
    want = fresh.run()
    for upper in (math.inf, 1e9, 1200.0):
        m.set_row_upper(brow, upper)
        again = m.run(None, first.x)
        assert again.status == "optimal"
        assert again.objective == pytest.approx(want.objective, rel=2e-4), upper
        assert float(data.power_coef @ again.x) == pytest.approx(again.objective, rel=1e-9)


def test_min_cost_plan(mixed: Problem, study) -> None:
    mc = study.min_cost_row()
    assert mc["status"] == "optimal"
    fresh = solve(mixed.with_(objective="cost", budget_per_hr=None))
    assert mc["cost_per_hr"] == pytest.approx(fresh.result.cost_per_hr, rel=1e-9, abs=1e-6)
    df = study.frame
    ok = df[df["status"].map(_usable)]
    assert (ok["cost_per_hr"] >= mc["cost_per_hr"] - 1e-6).all()
    # budgets below the cheapest plan are infeasible, those at or above it are not
    below = df[df["budget_per_hr"] < mc["cost_per_hr"] - 1e-6]
    assert (below["status"] == "infeasible").all() and len(below) > 0
    assert "below the cheapest plan" in below["message"].iloc[0]
    assert df.attrs["min_cost_plan"]["cost_per_hr"] == mc["cost_per_hr"]


def test_procurement_frame_and_inventory(mixed: Problem) -> None:
    df = procurement(mixed, [1150.0, 1200.0], inventory={"B200": 8})
    assert list(df.columns)[:4] == ["budget_per_hr", "status", "power_w", "cost_per_hr"]
    for d in df["gpus_by_type"]:
        assert d.get("B200", 0) <= 8
    for pools, gpus in zip(df["pools"], df["gpus"], strict=True):
        assert sum(p["gpus"] for p in pools) == gpus
    assert with_inventory(mixed, ["B200=8"]).inventory_map["B200"] == 8
    with pytest.raises(FleetoptError):
        with_inventory(mixed, ["B200"])
    with pytest.raises(FleetoptError):
        with_inventory(mixed, ["NOPE-GPU=3"])


def test_procurement_cli_json_csv_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "mixed.toml"
    cfg.write_text(MIXED_TOML)
    out, png = tmp_path / "p.json", tmp_path / "f.png"
    assert main(["study", "procurement", str(cfg), "--budgets", "1080,1140,1200", "--format", "json",
                 "--out", str(out), "--plot", str(png)]) == 0
    d = json.loads(out.read_text())
    assert [r["budget_per_hr"] for r in d["rows"]] == [1080.0, 1140.0, 1200.0]
    assert set(d["rows"][0]) >= {"budget_per_hr", "status", "power_w", "cost_per_hr",
                                 "gpus_by_type", "pools"}
    assert d["rows"][0]["status"] == "infeasible" and d["rows"][0]["power_w"] is None
    assert d["rows"][2]["pools"] and d["min_cost_plan"]["status"] == "optimal"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    csv = tmp_path / "p.csv"
    assert main(["study", "procurement", str(cfg), "--budgets", "1200", "--format", "csv",
                 "--out", str(csv)]) == 0
    back = pd.read_csv(csv)
    assert json.loads(back["gpus_by_type"][0])
    assert main(["study", "procurement", str(cfg), "--budgets", "1200"]) == 0
    text = capsys.readouterr().out
    assert "cheapest plan meeting the SLO" in text and "per budget" in text


@pytest.mark.parametrize("argv", [
    ["study", "procurement", "paper-azure", "--budgets", "100-2000"],
    ["study", "procurement", "paper-azure", "--budgets", "100:50:10"],
    ["study", "procurement", "paper-azure", "--budgets", "100:200:50", "--inventory", "H100"],
    ["study", "procurement", "no-such-config.toml", "--budgets", "100"],
    ["study", "procurement", "paper-azure", "--budgets", "100", "--format", "parquet"],
])
def test_procurement_cli_bad_input(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleetopt: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------
# sweeps

GRID = {"rate_rps": [500, 1000, 2000], "workload": ["azure", "lmsys"]}
LISTED = [{"name": "two", "max_pools": 2}, {"name": "three", "max_pools": 3}]
_VOLATILE = ["solve_s", "resumed", "scenario"]


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=_VOLATILE).sort_values("scenario_id").reset_index(drop=True)


def test_sweep_cartesian_and_tidy(paper: Problem) -> None:
    st = Study(paper, grid=GRID, scenarios=LISTED)
    assert len(st) == 2 * 3 * 2
    df = st.run("sequential", progress=False)
    assert len(df) == 12 and df["scenario_id"].is_unique
    for c in RESULT_COLUMNS:
        assert c in df.columns
    assert "max_pools" in df.columns and "simulated" not in df.columns
    assert set(zip(df["max_pools"], df["rate_rps"], df["workload"], strict=True)) == {
        (m, float(r), w) for m in (2, 3) for r in GRID["rate_rps"] for w in GRID["workload"]}
    assert (df["status"] == "optimal").all()
    assert pd.api.types.is_float_dtype(df["power_w"]) and pd.api.types.is_integer_dtype(df["gpus"])
    assert (df["n_pools"] <= df["max_pools"]).all()
    # watts grow with the arrival rate; a third pool never costs watts
    for (_m, w), g in df.groupby(["max_pools", "workload"]):
        assert g.sort_values("rate_rps")["power_w"].is_monotonic_increasing, (w,)
    two = df[df.max_pools == 2].set_index(["rate_rps", "workload"])["power_w"]
    three = df[df.max_pools == 3].set_index(["rate_rps", "workload"])["power_w"]
    assert (three <= two * (1 + 1e-3)).all()
    plan = json.loads(df["plan"].iloc[0])
    assert plan and {"ctx_lo", "ctx_hi", "gpu", "tp", "instances"} <= set(plan[0])


def test_sweep_invalid_scenarios_become_rows(paper: Problem) -> None:
    df = Study(paper, grid={"workload": ["azure", "mooncake-conversation"]}).run(
        "sequential", progress=False)
    bad = df[df["workload"] == "mooncake-conversation"].iloc[0]
    assert bad["status"] == "invalid" and "max_ctx" in bad["message"]
    assert df[df["workload"] == "azure"]["status"].iloc[0] == "optimal"


def test_sweep_peak_factor_auto_equals_the_config_setting(mixed: Problem,
                                                         tmp_path: Path) -> None:
    """``peak_factor`` as a scenario key: a number, "auto" (per pool) or "auto-global", each the
    same problem (and optimum) as the config setting; a workload without timestamps is an
    invalid scenario, not a silent 1.0."""
    df = Study(mixed, grid={"peak_factor": [1.5, "auto", "auto-global"]}).run(
        "sequential", progress=False)
    assert [str(v) for v in df["peak_factor"]] == ["1.5", "auto", "auto-global"]
    df["peak_factor"] = df["peak_factor"].astype(str)
    assert (df["status"] == "optimal").all()
    for v in (1.5, "auto", "auto-global"):
        cfg = tmp_path / f"pf-{v}.toml"
        pf = f'"{v}"' if isinstance(v, str) else str(v)
        cfg.write_text(MIXED_TOML.replace("[model]", f"[slo]\npeak_factor = {pf}\n[model]"))
        ref = solve(load_config(cfg))
        row = df[df["peak_factor"] == str(v)].iloc[0]
        assert row["power_w"] == pytest.approx(ref.objective, rel=1e-9), v
    assert df.set_index("peak_factor")["power_w"]["auto-global"] > \
        df.set_index("peak_factor")["power_w"]["auto"]
    bad = Study(mixed, grid={"workload": ["lmsys"], "max_ctx": [65536], "peak_factor": ["auto"]}).run(
        "sequential", progress=False).iloc[0]
    assert bad["status"] == "invalid" and "timestamps" in bad["message"]
    with pytest.raises(FleetoptError) as e:
        sweep_from_dict({"base": "paper-azure", "grid": {"peak_factor": ["fast"]}}, Path("."))
    assert e.value.field == "grid.peak_factor"


@pytest.mark.parametrize("data,field", [
    ({"base": "paper-azure", "grid": {"rate": [1, 2]}}, "grid"),
    ({"base": "paper-azure", "scenario": [{"slo_ms": 300}]}, "scenario[0]"),
    ({"base": "paper-azure", "grids": {}}, "sweep"),
    ({"base": "paper-azure", "solve": {"timelimit": 3}}, "sweep.solve"),
    ({"base": "paper-azure", "grid": {"workload": ["azur"]}}, "grid.workload"),
    ({"base": "paper-azure", "grid": {"gpus": [["H100-SXMX"]]}}, "grid.gpus"),
    ({"base": "paper-azure", "grid": {"rate_rps": []}}, "grid.rate_rps"),
    ({"base": "paper-azure", "grid": {"rate_rps": [-1]}}, "grid.rate_rps"),
    ({"base": "paper-azure", "grid": {"rate_rps": [1]}, "scenario": [{"rate_rps": 2}]},
     "scenario[0]"),
    ({"grid": {"rate_rps": [1]}}, "sweep.base"),
    ({"base": "no-such-base.toml"}, "sweep.base"),
])
def test_sweep_bad_keys(data: dict, field: str) -> None:
    with pytest.raises(FleetoptError) as e:
        sweep_from_dict(data, Path("."))
    assert e.value.field == field, str(e.value)


def test_sweep_toml_relative_base_and_shipped_example(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.toml").write_text(MIXED_TOML)
    sw = tmp_path / "sweeps" / "s.toml"
    sw.parent.mkdir()
    sw.write_text('base = "../configs/base.toml"\n[grid]\nrate_rps = [100, 200]\n'
                  '[[scenario]]\nname = "b200"\ngpus = ["B200"]\n'
                  '[[scenario]]\nname = "any"\n')
    st = load_sweep(sw)
    assert len(st) == 4 and st.base.name == "mixed-small"
    assert st.scenario_frame()["scenario"].tolist()[0] == "b200 | rate_rps=100"
    ex = load_sweep("sweep-example")
    assert len(ex) == 2 * 4 * 3 * 2 and ex.base.name == "paper-azure"


def test_sweep_resume_skips_finished(paper: Problem, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = sweep_study.run_scenario

    def counting(base, params, key, opts, label=""):
        calls.append(key)
        return real(base, params, key, opts, label)

    monkeypatch.setattr(sweep_study, "run_scenario", counting)
    ck = tmp_path / "r.parquet.checkpoint.jsonl"
    partial = Study(paper, grid={"rate_rps": [500, 1000], "workload": ["azure", "lmsys"]})
    part = partial.run("sequential", checkpoint=ck, progress=False)
    assert len(calls) == 4 and not part["resumed"].any()
    full = Study(paper, grid={"rate_rps": [500, 1000, 2000], "workload": ["azure", "lmsys"]})
    calls.clear()
    df = full.run("sequential", checkpoint=ck, progress=False)
    assert len(calls) == 2 and set(calls).isdisjoint(part["scenario_id"])
    assert df["resumed"].sum() == 4 and len(df) == 6
    assert set(df[df["resumed"]]["scenario_id"]) == set(part["scenario_id"])
    # resumed rows equal the rows first computed
    again = _stable(df[df["resumed"]])
    assert again.equals(_stable(part)), (again, _stable(part))
    calls.clear()
    full.run("sequential", checkpoint=ck, progress=False)
    assert calls == []
    # other options are other scenarios: nothing is reused
    Study(paper, grid={"rate_rps": [500]}, mip_gap=1e-3).run("sequential", checkpoint=ck,
                                                            progress=False)
    assert len(calls) == 1


def test_sweep_interrupted_keeps_finished(paper: Problem, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = sweep_study.run_scenario
    n = {"calls": 0}

    def flaky(base, params, key, opts, label=""):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt
        return real(base, params, key, opts, label)

    monkeypatch.setattr(sweep_study, "run_scenario", flaky)
    st = Study(paper, grid={"rate_rps": [250, 500, 1000, 2000]})
    ck = tmp_path / "out.csv.checkpoint.jsonl"
    with pytest.raises(KeyboardInterrupt):
        st.run("sequential", checkpoint=ck, progress=False)
    assert len(read_checkpoint(ck)) == 2
    with open(ck, "a") as f:
        f.write('{"id": "torn-li')  # a crash mid-line must not break the resume
    monkeypatch.setattr(sweep_study, "run_scenario", real)
    df = st.run("sequential", checkpoint=ck, progress=False)
    assert df["resumed"].sum() == 2 and (df["status"] == "optimal").all()


def test_process_executor_matches_sequential(paper: Problem) -> None:
    st = Study(paper, grid={"rate_rps": [300, 900, 2700], "workload": ["azure", "lmsys"]},
               scenarios=[{"max_pools": 2}, {"max_pools": 4}])
    seq = st.run("sequential", progress=False)
    par = st.run("process", workers=2, progress=False)
    pd.testing.assert_frame_equal(_stable(seq), _stable(par))


def test_process_pool_after_the_parent_ran_highs(paper: Problem) -> None:
    """Forked workers of a parent that has run HiGHS return "Not Set" from every solve; the
    pools must start their workers some other way."""
    assert solve(paper).status == "optimal"  # the parent now holds HiGHS state
    ctx = processes.process_context()
    assert ctx.get_start_method() in ("forkserver", "spawn")
    st = Study(paper, grid={"rate_rps": [300, 900, 2700], "max_pools": [2, 3]})
    par = st.run("process", workers=2, progress=False)
    assert (par["status"] == "optimal").all(), par[["status", "message"]]
    seq = st.run("sequential", progress=False)
    pd.testing.assert_frame_equal(_stable(seq), _stable(par))


def test_dask_local_cluster_never_forks(paper: Problem) -> None:
    """fleetopt's own local Dask cluster starts no worker by forking this process, even when
    Dask is configured to fork: state set here (a marker, and HiGHS's) never reaches them."""
    distributed = pytest.importorskip("distributed")
    import dask

    import fleetopt

    assert solve(paper).status == "optimal"  # the parent holds HiGHS state
    fleetopt._fork_marker = "parent"  # type: ignore[attr-defined]
    try:
        with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}), \
                sweep_executors._local_cluster(2) as cluster, distributed.Client(cluster) as client:
            seen = client.run(lambda: getattr(__import__("fleetopt"), "_fork_marker", None))
    finally:
        del fleetopt._fork_marker  # type: ignore[attr-defined]
    assert len(seen) == 2 and set(seen.values()) == {None}, seen
    st = Study(paper, grid={"rate_rps": [400, 1600]})
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}):
        df = st.run("dask", workers=2, progress=False)
    assert (df["status"] == "optimal").all(), df[["status", "message"]]


def test_dask_local_cluster_matches_sequential(paper: Problem) -> None:
    distributed = pytest.importorskip("distributed")
    st = Study(paper, grid={"rate_rps": [400, 1600], "workload": ["azure", "lmsys"]})
    seq = st.run("sequential", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        df = st.run("dask", scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(_stable(seq), _stable(df))


def test_dask_missing_is_a_clear_error(paper: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(FleetoptError) as e:
        Study(paper, grid={"rate_rps": [400]}).run("dask", progress=False)
    assert e.value.field == "--executor" and "dask" in str(e.value)


def test_sweep_simulate_columns(paper: Problem) -> None:
    df = Study(paper, grid={"rate_rps": [500]}, simulate=True, sim_requests=2000).run(
        "sequential", progress=False)
    row = df.iloc[0]
    for c in ("sim_p99_ttft_ms", "sim_power_w", "sim_output_tok_per_s", "sim_slo_met"):
        assert c in df.columns and not pd.isna(row[c])
    assert row["sim_power_w"] == pytest.approx(row["power_w"], rel=0.25)


def test_save_and_read_results(paper: Problem, tmp_path: Path) -> None:
    df = Study(paper, grid={"rate_rps": [500, 1000]}).run("sequential", progress=False)
    for name in ("r.parquet", "r.csv", "r.json"):
        save_results(df, tmp_path / name)
        back = read_results(tmp_path / name)
        assert len(back) == 2 and list(back.columns) == list(df.columns)
        assert np.allclose(back["power_w"], df["power_w"])
    with pytest.raises(FleetoptError):
        save_results(df, tmp_path / "r.xlsx")


def test_sweep_cli_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sw = tmp_path / "s.toml"
    sw.write_text('base = "paper-azure"\n[grid]\nrate_rps = [500, 1000]\nmax_pools = [2, 3]\n')
    out = tmp_path / "res.csv"
    argv = ["study", "sweep", str(sw), "--out", str(out), "--executor", "sequential"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 scenarios (0 resumed" in text and out.is_file()
    assert checkpoint_path(out).is_file()
    assert main(argv) == 0
    assert "4 resumed" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 4
    assert main(argv + ["--fresh"]) == 0
    assert "0 resumed" in capsys.readouterr().out


@pytest.mark.parametrize("body,extra", [
    ('base = "paper-azure"\n[grid]\nrate = [500]\n', []),
    ('base = "paper-azure"\nbudget = 3\n', []),
    ('base = "paper-azure"\n[grid]\nrate_rps = [500]\n', ["--out", "x.xlsx"]),
    ('base = "paper-azure"\n[grid]\nrate_rps = [500]\n', ["--scheduler", "tcp://x:1"]),
    ('base = "paper-azure"\n[grid\n', []),
])
def test_sweep_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture, body: str,
                             extra: list[str]) -> None:
    sw = tmp_path / "bad.toml"
    sw.write_text(body)
    assert main(["study", "sweep", str(sw), "--executor", "sequential", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fleetopt: error: ") and err.count("\n") == 1
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob("*.jsonl"))


def test_plots(study, paper: Problem, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from fleetopt.report.plots import plot_frontier, plot_topology

    fig = plot_frontier(study.frame, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    mixes = {m for m in study.frame["mix"] if m}
    assert mixes <= set(labels)
    sol = solve(paper)
    fig = plot_topology(sol, tmp_path / "t.png", workload=paper.workload)
    assert fig.axes[0].get_xscale() == "log"
    assert len(fig.axes[0].patches) == len(sol.result.pools)
    assert math.isclose(fig.axes[0].get_xlim()[1], sol.result.pools[-1].ctx_hi * 1.05)
