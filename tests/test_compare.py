"""The comparison table, its dictionary form and its chart."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest

from fleetopt.compare import (
    APPROACHES,
    COLUMNS,
    compare,
    compare_solutions,
    comparison_frame,
    comparison_to_dict,
    plot_comparison,
)
from fleetopt.poolmodel import Settings
from fleetopt.problem import Problem
from fleetopt.workload import builtin

try:
    from fleetopt.solvers.mip import solve as _mip_solve  # noqa: F401

    HAS_MIP = True
except ImportError:
    HAS_MIP = False
FAMILY = {"homogeneous": "uncompressed", "pool-routing": "uncompressed", "mip": "uncompressed",
          "two-pool-fleetopt": "compressed", "mip-compress": "compressed"}


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem(workload=builtin("azure-conv-2023", 200.0), gpus=("H100-SXM",), tp=(8,),
                   max_pools=3, boundaries=(1024, 2048, 4096, 8192))


@pytest.fixture(scope="module")
def solutions(problem: Problem) -> list:
    return compare_solutions(problem, time_limit=20)


@pytest.fixture(scope="module")
def frame(problem: Problem, solutions: list) -> pd.DataFrame:
    return comparison_frame(solutions, problem.objective)


def test_rows_columns_and_families(frame: pd.DataFrame, solutions: list) -> None:
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["approach"]) == list(APPROACHES) == [s.approach for s in solutions]
    assert dict(zip(frame["approach"], frame["family"], strict=True)) == FAMILY


def test_heuristic_rows_match_the_exact_totals(frame: pd.DataFrame, solutions: list) -> None:
    rows = {r["approach"]: r for r in comparison_to_dict(solutions)["rows"]}
    homog_w = rows["homogeneous"]["totals"]["power_w"]
    for name in ("homogeneous", "pool-routing", "two-pool-fleetopt"):
        r = frame.set_index("approach").loc[name]
        t = rows[name]["totals"]
        assert r["status"] == "optimal"
        assert r["power_kw"] == pytest.approx(t["power_w"] / 1000)
        assert r["tok_per_w"] == pytest.approx(t["output_tok_per_s"] / t["power_w"])
        assert r["instances"] == sum(p["instances"] for p in rows[name]["pools"])
        assert r["gpus"] == t["gpus"] and r["cost_per_hr"] == pytest.approx(t["cost_per_hr"])
        assert r["worst_p99_ttft_ms"] == pytest.approx(
            max(p["p99_ttft_ms"] for p in rows[name]["pools"] if p["arrival_rate"] > 0))
        assert r["pools"] == sum(1 for p in rows[name]["pools"] if p["instances"] > 0)
        assert r["change_vs_homogeneous_pct"] == pytest.approx(
            100 * (t["power_w"] - homog_w) / homog_w)
        assert math.isnan(r["mip_saving_vs_best_heuristic_pct"])
    assert frame.loc[frame["family"] == "uncompressed", "compressed"].fillna(0).eq(0).all()
    assert frame.set_index("approach").loc["two-pool-fleetopt", "compressed"] > 0


def test_dict_form_is_solution_to_dict(solutions: list) -> None:
    d = comparison_to_dict(solutions)
    assert [r["approach"] for r in d["rows"]] == list(APPROACHES)
    for r, s in zip(d["rows"], solutions, strict=True):
        full = s.to_dict()
        assert set(r) == {"approach", "status", "totals", "pools"}
        assert r["totals"] == full["totals"] and r["pools"] == full["pools"]
        assert r["status"] == s.status
    json.dumps(d)  # serialisable


@pytest.mark.skipif(not HAS_MIP, reason="fleetopt.solvers.mip does not import yet")
def test_mip_rows_are_no_worse_than_the_heuristics_of_their_family(frame: pd.DataFrame) -> None:
    f = frame.set_index("approach")
    for mip, family in (("mip", "uncompressed"), ("mip-compress", "compressed")):
        assert f.loc[mip, "status"] in ("optimal", "feasible", "time_limit")
        heur = f[(f["family"] == family) & ~f.index.str.startswith("mip")]
        best_kw = heur["power_kw"].min()
        saving = 100 * (best_kw - f.loc[mip, "power_kw"]) / best_kw
        assert f.loc[mip, "mip_saving_vs_best_heuristic_pct"] == pytest.approx(saving, abs=1e-9)
        assert saving >= -1e-6  # the MIP's space contains these heuristics' plans
    assert f.loc["mip", "compressed"] == 0


def test_mip_unavailable_keeps_its_rows(problem: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fleetopt.solvers.mip", None)  # import raises ImportError
    df = compare(problem)
    f = df.set_index("approach")
    for mip in ("mip", "mip-compress"):
        assert f.loc[mip, "status"] == "error"
        assert np.isnan(f.loc[mip, "power_kw"]) and np.isnan(f.loc[mip, "mip_saving_vs_best_heuristic_pct"])
    assert (f.loc[["homogeneous", "pool-routing", "two-pool-fleetopt"], "status"] == "optimal").all()
    sols = compare_solutions(problem)
    assert "MIP unavailable" in sols[3].message


def test_infeasible_heuristics_keep_their_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fleetopt.solvers.mip", None)
    p = Problem(workload=builtin("agent-heavy", 100.0), gpus=("H100-SXM",), tp=(8,),
                settings=Settings(ttft_p99_ms=100.0))
    df = compare(p)
    assert list(df["status"][:3]) == ["infeasible"] * 3
    assert df["power_kw"].isna().all() and df["change_vs_homogeneous_pct"].isna().all()


def test_plot_writes_a_png(frame: pd.DataFrame, tmp_path) -> None:
    out = plot_comparison(frame, tmp_path / "cmp.png", title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    partial = frame.copy()
    partial.loc[3:, ["power_kw", "tok_per_w"]] = np.nan
    partial.loc[3:, "status"] = "error"
    assert plot_comparison(partial, tmp_path / "partial.png").stat().st_size > 10_000


def test_cost_objective_measures_the_mip_saving_in_dollars(problem: Problem,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fleetopt.solvers.mip", None)
    sols = compare_solutions(problem.with_(objective="cost"))
    assert all(s.objective_name == "cost_per_hr" for s in sols)
    # a fake MIP row: the homogeneous plan relabelled; its "saving" must be in dollars
    from dataclasses import replace

    fake = replace(sols[0], approach="mip")
    df = comparison_frame([sols[0], sols[1], sols[2], fake, sols[4]]).set_index("approach")
    ref = min(sols[0].result.cost_per_hr, sols[1].result.cost_per_hr)
    by_watts = min(sols[0].result.power_w, sols[1].result.power_w)
    got = df.loc["mip", "mip_saving_vs_best_heuristic_pct"]
    assert got == pytest.approx(100 * (ref - fake.result.cost_per_hr) / ref)
    assert got != pytest.approx(100 * (by_watts - fake.result.power_w) / by_watts)
