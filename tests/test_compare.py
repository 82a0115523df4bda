"""The comparison table, its dictionary form and its chart."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.report.plots import plot_comparison
from fleetopt.sizing.poolmodel import Settings
from fleetopt.studies.compare import (
    APPROACHES,
    COLUMNS,
    compare,
    compare_solutions,
    comparison_frame,
    comparison_to_dict,
)

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
        assert set(r) == {"approach", "family", "status", "message", "change_vs_homogeneous_pct",
                          "mip_saving_vs_best_heuristic_pct", "totals", "pools"}
        assert r["totals"] == full["totals"] and r["pools"] == full["pools"]
        assert r["status"] == s.status
    assert next(iter(d)) == "schema" and d["schema"] == "fleetopt.comparison/1"
    json.dumps(d, allow_nan=False)  # serialisable, strict JSON


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


def test_infeasible_heuristics_keep_their_rows() -> None:
    p = Problem(workload=builtin("agent-heavy", 100.0), gpus=("H100-SXM",), tp=(8,),
                settings=Settings(ttft_p99_ms=100.0))
    df = compare(p)
    assert list(df["status"]) == ["infeasible"] * 5
    assert df["power_kw"].isna().all() and df["change_vs_homogeneous_pct"].isna().all()


def test_plot_writes_a_png(frame: pd.DataFrame, tmp_path) -> None:
    out = plot_comparison(frame, tmp_path / "cmp.png", title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    partial = frame.copy()
    partial.loc[3:, ["power_kw", "tok_per_w"]] = np.nan
    partial.loc[3:, "status"] = "error"
    assert plot_comparison(partial, tmp_path / "partial.png").stat().st_size > 10_000


def test_cost_objective_measures_the_mip_saving_in_dollars(problem: Problem) -> None:
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


@pytest.mark.parametrize("name", ["azure-conv-2023", "azure-code-2023", "mooncake-conversation",
                                  "azure", "lmsys", "agent-heavy"])
def test_mip_wins_within_each_family_on_every_builtin_workload(name: str) -> None:
    """Identical physics, SLO and cap: the MIP's watts <= the best baseline of its family."""
    from fleetopt.problem.workload import builtin as _builtin

    wl = _builtin(name, 300.0)
    long_ = wl.max_total_tokens > 65536
    p = Problem(workload=wl, model="llama-3.1-70b", gpus=("H100-SXM", "B200"), tp=(8,),
                max_pools=3, max_ctx=131072 if long_ else 65536,
                settings=Settings(ttft_p99_ms=5000.0 if name in ("mooncake-conversation",
                                                                 "agent-heavy") else 1000.0))
    sols = {s.approach: s for s in compare_solutions(p)}
    for s in sols.values():
        assert s.result is not None and s.result.feasible, (s.approach, s.message)
    best_plain = min(sols[a].result.power_w for a in ("homogeneous", "pool-routing"))
    assert sols["mip"].result.power_w <= best_plain * (1 + 1e-9) + sols["mip"].linearization_error
    best_comp = sols["two-pool-fleetopt"].result.power_w
    assert sols["mip-compress"].result.power_w <= best_comp * (1 + 1e-9) + \
        sols["mip-compress"].linearization_error
