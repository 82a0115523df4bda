"""Study speed: a 1,000-scenario sweep and a parametric procurement study.

Run: ``pytest benchmarks/bench_studies.py --benchmark-only``. Targets on the 2-core machine:
1,000 scenarios of the shipped ``paper-azure`` example in <= 60 s with the process executor;
a procurement point costs far less than a fresh solve (the model is built once).
"""

from __future__ import annotations

import os
import time

import pytest

from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import load_config
from fleetopt.studies import Study, procurement_study

RATES = [100.0 * k for k in range(1, 51)]  # 50 arrival rates, 100 to 5,000 req/s
GRID = {
    "rate_rps": RATES,
    "workload": ["azure", "azure-conv-2023", "lmsys", "agent-heavy"],
    "max_pools": [1, 2, 3, 4, 5],
}  # 50 x 4 x 5 = 1,000 scenarios


def test_bench_sweep_1000(benchmark, tmp_path) -> None:
    study = Study(load_config("paper-azure"), grid=GRID)
    assert len(study) == 1000
    workers = os.cpu_count() or 1
    runs = iter(range(10))

    def once():
        # a fresh checkpoint per round, so nothing is resumed
        return study.run("process", workers=workers, progress=False,
                         checkpoint=tmp_path / f"r{next(runs)}.checkpoint.jsonl")

    df = benchmark.pedantic(once, rounds=1, iterations=1)
    secs = benchmark.stats.stats.mean
    benchmark.extra_info.update(scenarios=len(df), workers=workers,
                                scenarios_per_s=len(df) / secs,
                                mean_solve_s=float(df["solve_s"].mean()))
    assert len(df) == 1000 and not df["resumed"].any()
    assert (df["status"] == "optimal").all(), df["status"].value_counts()
    assert secs <= 60.0, f"1,000 scenarios took {secs:.1f} s (target <= 60 s)"


def test_bench_procurement_points(benchmark) -> None:
    problem = load_config("azure-mixed").with_(budget_per_hr=None)
    res = benchmark.pedantic(lambda: procurement_study(problem, "30:60:1"), rounds=1,
                             iterations=1)
    t = res.timing
    t0 = time.perf_counter()
    fresh = solve(problem.with_(budget_per_hr=45.0))
    fresh_s = time.perf_counter() - t0
    benchmark.extra_info.update(points=int(t["points"]), build_s=t["build_s"],
                                mean_point_s=t["mean_point_s"], max_point_s=t["max_point_s"],
                                fresh_solve_s=fresh_s)
    assert res.solutions[45.0].objective == pytest.approx(fresh.objective, rel=2e-4)
    # a re-solve of the loaded model is cheaper than a fresh solve
    assert t["mean_point_s"] < fresh_s
