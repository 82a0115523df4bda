"""Simulator speed: requests simulated per second (target: 100,000 requests in <= 10 s).

Run: ``pytest benchmarks/bench_sim.py --benchmark-only``.
"""

from __future__ import annotations

import pytest

from fleetopt.problem.config import load_config
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.sim import simulate_problem

REQUESTS = 100_000

CASES = {
    # computed H100 roofline, Azure CDF at 1,000 req/s: 45 + 9 instances, ~100 seqs per instance
    "azure-h100": Fleet((PoolSpec(0, 4096, "H100-SXM", 4, 47), PoolSpec(4096, 16384, "H100-SXM", 8, 30))),
    # calibrated profile, 256 slots per short instance
    "paper-azure": Fleet((PoolSpec(0, 4096, "1w-law-h100", 8, 22),
                          PoolSpec(4096, 65536, "1w-law-h100", 8, 65))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_simulate_100k(benchmark, name: str) -> None:
    problem = load_config(name)
    fleet = CASES[name]
    res = benchmark.pedantic(
        lambda: simulate_problem(problem, fleet, requests=REQUESTS, seed=0), rounds=3, iterations=1
    )
    secs = benchmark.stats.stats.mean
    benchmark.extra_info["requests"] = REQUESTS
    benchmark.extra_info["requests_per_s"] = REQUESTS / secs
    assert res.totals["simulated_requests"] == REQUESTS
    assert secs <= 10.0, f"{REQUESTS} requests took {secs:.1f} s (target <= 10 s)"
