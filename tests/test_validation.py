"""The validation study (``fleetopt.studies.validation``): its small version runs end to end,
its rows are what the simulator and the evaluator said, and the docs' tables and figures are
made from it (``scripts/make_docs.py simulation``)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fleetopt.studies.validation import OPTIMISTIC, QUICK, cases, run_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    return run_study(quick=True)


def test_cases_cover_every_example_and_builtin_workload() -> None:
    from fleetopt.problem.config import example_names
    from fleetopt.problem.workload import builtin_names

    cs = cases()
    names = [c.name for c in cs]
    assert set(example_names()) <= set(names)
    own = {c.problem.workload.name for c in cs if c.name in example_names()}
    for w in set(builtin_names()) - own:
        assert f"azure-h100 + {w}" in names
    for c in cs:  # replay exactly for the workloads with a shipped trace
        trace = c.problem.workload.name in ("azure-conv-2023", "azure-code-2023",
                                            "mooncake-conversation")
        assert c.arrivals == (("poisson", "replay") if trace else ("poisson",)), c.name
        assert c.problem.max_ctx >= c.problem.workload.max_total_tokens


def test_quick_study_rows_are_the_runs(study) -> None:
    plans, table = study["plans"], study["table"]
    assert list(plans.case) == ["paper-azure", "paper-azure + azure-conv-2023",
                                "paper-azure + azure-conv-2023"]
    assert list(plans.arrivals) == ["poisson", "poisson", "replay"]
    for (case, arr), res in study["results"].items():
        rows = table[(table.case == case) & (table.arrivals == arr)]
        live = [p for p in res.pools if p.stats.requests]
        assert len(rows) == len(live)
        for row, p in zip(rows.itertuples(), live, strict=True):
            assert row.sim_p99_ttft_ms == p.stats.p99_ttft_ms
            assert row.pred_p99_ttft_ms == p.predicted_p99_ttft_ms
            assert row.ttft_ratio == pytest.approx(row.sim_p99_ttft_ms / row.pred_p99_ttft_ms)
            assert row.ttft_optimistic == (row.ttft_ratio > 1 + OPTIMISTIC)
            assert row.delivered == p.stats.delivered_fraction
            assert row.check_passed == p.check_passed
            assert row.simulated == QUICK["requests"]
        assert math.isclose(rows.share.sum(), 1.0)
    # the evaluator does not predict P99 TPOT yet: the study says so rather than invent one
    assert table.pred_p99_tpot_ms.isna().all() and not table.tpot_optimistic.any()
    s = study["summary"]
    assert s["pool_rows"] == len(table) and s["ttft_optimistic"] == int(table.ttft_optimistic.sum())
    assert s["runs"] == 3 and s["runs_passed"] == int(plans.check_passed.eq(True).sum())


def test_quick_study_sweep_and_burst(study) -> None:
    sw = study["sweep"]
    assert list(sw.factor) == list(QUICK["sweep_factors"]) and (sw.case == "paper-azure").all()
    assert sw.offered_tok_s.iloc[1] == pytest.approx(2 * sw.offered_tok_s.iloc[0], rel=0.1)
    b = study["burst"]
    assert list(b.case.unique()) == ["paper-azure + azure-conv-2023"]
    assert (b.k_pool.dropna() >= 1.0).all() and (b.k_pool_default_windows >= 1.0).all()
    assert (b.k_global > 1.0).all()
    assert b.share.sum() == pytest.approx(1.0)
    # the short pool (most of the traffic) is far smoother than the one global factor
    assert b.k_pool_default_windows.iloc[0] < b.k_global.iloc[0]
    assert np.isfinite(b.sim_replay_p99_ttft_ms).all()


def test_docs_tables_and_figures_come_from_the_study(study, tmp_path) -> None:
    from fleetopt.report.plots import VALIDATION_FIGURES, plot_validation

    paths = plot_validation(study, tmp_path)
    assert [p.name for p in paths] == list(VALIDATION_FIGURES)
    assert all(p.stat().st_size > 10_000 for p in paths)
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "scripts" / "make_docs.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_docs"] = mod
    spec.loader.exec_module(mod)
    tables = mod.simulation_tables(study)
    assert set(tables) == {"sim-cases", "sim-validation", "sim-throughput", "sim-burst",
                           "sim-burst-plans", "sim-summary"}
    text = (ROOT / "docs" / "simulation.md").read_text()
    for name in tables:
        mod.between(text, name)  # every table has its markers in the doc
    assert set(VALIDATION_FIGURES) <= set(mod.FIGURE_PARTS)
    assert tables["sim-validation"].count("\n") == len(study["table"]) + 1


def test_quick_study_burst_plans(study) -> None:
    """Each trace case as configured (k = 1), planned with one global factor and per pool, each
    replayed: the rows are those runs, per-pool factors are the pools' own."""
    bp = study["burst_plans"]
    assert list(bp.case) == ["paper-azure + azure-conv-2023"] * 3
    assert list(bp.peak_factor) == ["1 (default)", "2.81 (auto-global)", "auto (per pool)"]
    assert (bp.target_ms == 500).all() and bp.sim_worst_p99_ttft_ms.notna().all()
    assert np.allclose(bp.sim_over_target, bp.sim_worst_p99_ttft_ms / bp.target_ms)
    ks = [[float(x) for x in r.split(" / ")] for r in bp.k_pools]
    assert ks[0] == [1.0] * len(ks[0]) and all(k == 2.81 for k in np.round(ks[1], 2))
    assert all(1.0 <= k <= 2.81 for k in ks[2])
    # a correction never plans fewer watts than none; per pool never more than the global one
    before, glob, pool = bp.pred_power_w
    assert before <= pool <= glob


def test_a_tail_that_never_ended_reads_as_optimistic() -> None:
    from fleetopt.studies.validation import OPTIMISTIC, _ratio

    assert _ratio(math.inf, 500.0) == math.inf and _ratio(math.inf, 500.0) > 1 + OPTIMISTIC
    assert _ratio(550.0, 500.0) == pytest.approx(1.1)
    assert math.isnan(_ratio(math.nan, 500.0)) and math.isnan(_ratio(100.0, None))
    assert math.isnan(_ratio(100.0, math.inf)) and math.isnan(_ratio(None, 500.0))
