"""Time limits bound the whole run; a stopped run still reports a valid bound and gap."""

import time

import numpy as np
import pytest

from fleetopt.planners.mip.bounds import path_bound, range_floors
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import load_config
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.report.cli import _solution_text
from fleetopt.sizing.candidates import build_candidates
from fleetopt.sizing.poolmodel import Settings

GAP = 1e-9


class _AfterChecks:
    """A deadline that passes after ``n`` checks (deterministic, unlike the clock)."""

    bounded = True

    def __init__(self, n: int) -> None:
        self.n = n

    def expired(self, reserve_s: float = 0.0) -> bool:
        self.n -= 1
        return self.n < 0

    def remaining(self) -> float:
        return 0.0 if self.n < 0 else 1e9


def _base() -> Problem:
    return Problem(workload=builtin("azure-conv-2023", 120), model="llama-3.1-8b",
                   gpus=("H100-SXM", "A100-SXM", "L40S"), tp=(1, 2), max_pools=3,
                   boundaries=(1024, 2048, 4096, 8192), max_ctx=16384, settings=Settings(500))


@pytest.fixture(scope="module")
def reference():
    p = _base()
    s = solve(p, mip_gap=GAP)
    assert s.status == "optimal" and s.linearization_error == pytest.approx(0.0, abs=1e-6)
    return p, s


@pytest.mark.parametrize("checks", [0, 1, 2, 3, 4])
def test_cut_candidate_building_keeps_a_valid_bound(reference, checks):
    """Candidate building stopped after a few batches: the plan (if any) is among the
    candidates built, status time_limit, and the bound holds for the WHOLE problem."""
    p, full = reference
    cset = build_candidates(p, deadline=_AfterChecks(checks), workers=1)
    assert not cset.complete
    s = solve(p, mip_gap=GAP, candidates=cset)
    assert s.status == "time_limit"
    assert s.bound is not None and s.bound <= full.objective * (1 + 1e-9) + 1e-6
    assert "candidate building stopped" in s.message
    if s.result is not None:
        assert s.result.feasible and s.result.power_w >= full.objective - 1e-6
        assert 0.0 <= s.gap <= 1.0


def test_range_floors_are_below_every_candidate(reference):
    """The per-range floor used for ranges not sized holds for every built candidate too."""
    p, _ = reference
    cset = build_candidates(p, prune=False)
    F = range_floors(p, cset.boundaries, 1.0, "power_w")
    C = range_floors(p, cset.boundaries, 1.0, "cost_per_hr")
    for c in cset.candidates:
        assert F[c.i, c.k] <= min(c.power_exact_w) * (1 + 1e-9)
        assert C[c.i, c.k] <= c.cost_per_hr(c.n_min) * (1 + 1e-9)


def test_stopped_solver_reports_a_bound_and_a_gap(reference):
    """HiGHS stopped at once (the warm start is the plan): the bound comes from the candidates
    (shortest path over least model watts) and is valid."""
    p, full = reference
    cset = build_candidates(p)
    s = solve(p, time_limit=1e-9, candidates=cset)
    assert s.status == "time_limit" and s.result is not None and s.result.feasible
    assert s.bound == pytest.approx(path_bound(p, cset, "power_w"))
    assert s.bound <= full.objective + 1e-6
    assert s.gap == pytest.approx((s.objective - s.bound) / s.objective)
    text = _solution_text(s, p)
    assert "status: time_limit" in text and "stopped at the time limit" in text
    assert f"bound {s.bound:,.2f}" in text


def test_time_limit_bounds_the_whole_run():
    """A problem that takes well over a minute unbounded (64 boundaries, 7 GPU types, TP 1-8,
    compress bands, a budget and an inventory) stops near its limit with a plan, a valid
    bound and a gap. No wall time is asserted here (a unit test must not depend on the
    machine's load): benchmarks/bench_timelimit.py measures how close to the limit runs end."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_timelimit import hard_problem

    p = hard_problem()
    limit = 3.0
    t0 = time.perf_counter()
    s = solve(p, time_limit=limit, compress=True)
    wall = time.perf_counter() - t0
    assert s.status == "time_limit" and s.result is not None and s.result.feasible
    assert s.bound is not None and 0.0 < s.bound <= s.result.power_w
    assert 0.0 <= s.gap < 1.0
    assert s.timing["total_s"] <= wall


def test_cli_time_limit_exits_0_with_a_plan(capsys, monkeypatch):
    """The CLI exits 0 and says so in the table when a stopped run has a plan."""
    import fleetopt.planners.mip.solve as mip
    from fleetopt.report.cli import main

    cset = build_candidates(load_config("azure-mixed"))
    real = mip.solve
    monkeypatch.setattr(mip, "solve", lambda problem, **kw: real(
        problem, **{**kw, "time_limit": 1e-9, "candidates": cset}))
    assert main(["solve", "azure-mixed", "--time-limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "status: time_limit" in out and "stopped at the time limit" in out


def test_explanation_respects_the_limit():
    """An infeasible problem with a limit: the explanation is part of the run."""
    p = _base().with_(budget_per_hr=0.5)
    t0 = time.perf_counter()
    s = solve(p, time_limit=20.0)
    assert s.timing["total_s"] <= time.perf_counter() - t0  # the run's own clock covers it all
    assert s.status == "infeasible" and "budget" in s.message
    assert np.isfinite(s.timing["total_s"])
