"""Pyomo solver options: fleetopt's time limit, MIP gap and threads reach each solver under
its own option name (``fleetopt.planners.mip.pyomo.SOLVER_OPTIONS``), or are refused."""

from __future__ import annotations

import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.planners.mip.pyomo import SOLVER_OPTIONS, solver_arguments
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import load_config

#: (solve keywords, solver options) for time limit 12.5 s, gap 0.01, 3 threads
EXPECTED = {
    "highs": ({"time_limit": 12.5, "rel_gap": 0.01, "threads": 3}, {}),
    "appsi_highs": ({"timelimit": 12.5}, {"mip_rel_gap": 0.01, "threads": 3}),
    "gurobi": ({}, {"TimeLimit": 12.5, "MIPGap": 0.01, "Threads": 3}),
    "cplex": ({}, {"timelimit": 12.5, "mipgap": 0.01, "threads": 3}),
    "cbc": ({}, {"seconds": 12.5, "ratioGap": 0.01, "threads": 3}),
}


@pytest.mark.parametrize("solver", sorted(EXPECTED))
def test_each_solver_gets_its_own_option_names(solver: str) -> None:
    assert solver_arguments(solver, 12.5, 0.01, 3) == EXPECTED[solver]
    assert solver_arguments(solver.upper(), 12.5, 0.01, 3) == EXPECTED[solver]


def test_glpk_whole_seconds_and_no_threads() -> None:
    assert solver_arguments("glpk", 12.5, 0.01, None) == ({}, {"tmlim": 13, "mipgap": 0.01})
    with pytest.raises(FleetoptError) as e:
        solver_arguments("glpk", 10.0, 0.01, 2)
    assert e.value.field == "--threads"


def test_unset_settings_are_not_passed() -> None:
    assert solver_arguments("gurobi", None, 1e-4, None) == ({}, {"MIPGap": 1e-4})
    assert solver_arguments("highs", None, 1e-4, None) == ({"rel_gap": 1e-4}, {})


def test_an_unknown_solver_runs_with_its_defaults_or_refuses_settings() -> None:
    assert solver_arguments("mysolver", None, 1e-4, None) == ({}, {})
    for args, flag in (((5.0, 1e-4, None), "--time-limit"), ((None, 1e-3, None), "--mip-gap"),
                       ((None, 1e-4, 2), "--threads")):
        with pytest.raises(FleetoptError) as e:
            solver_arguments("mysolver", *args)
        assert e.value.field == flag and "mysolver" in str(e.value)


def test_the_table_covers_the_solvers_people_use() -> None:
    assert {"highs", "appsi_highs", "gurobi", "cplex", "cbc", "glpk"} <= set(SOLVER_OPTIONS)
    for name, keys in SOLVER_OPTIONS.items():
        assert set(keys) == {"time_limit", "mip_gap", "threads"}, name


def test_appsi_highs_solves_like_highs() -> None:
    pe = pytest.importorskip("pyomo.environ")
    if not pe.SolverFactory("appsi_highs").available(exception_flag=False):
        pytest.skip("appsi_highs is not available")
    problem = load_config("paper-azure")
    ref = solve(problem)
    # (no threads: HiGHS refuses a thread count other than the one its global scheduler started
    # with, once any HiGHS run in the process has started it)
    got = solve(problem, solver="appsi_highs", time_limit=60.0, mip_gap=1e-6)
    assert got.details["backend"] == "pyomo" and got.status == "optimal"
    assert got.objective == pytest.approx(ref.objective, rel=1e-4)
