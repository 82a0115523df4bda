"""Speed of the iteration-level simulator (fleetopt.sim.iteration): requests simulated per
second. Target (issue 12): 100,000 requests in <= 30 s on one core.

Cases (Poisson arrivals at 1,000 req/s, H100 TP8 Llama-70B instances with the reference
:class:`~fleetopt.sim.testing.RooflineStepCost` and paged-KV limits, routed by total length):

* ``azure-conv`` (the speed target): the shipped ``azure-conv-2023`` lengths (mean prompt
  ~1,150, mean output ~210 tokens); 48 instances for (0, 4096] and 14 for (4096, 16384],
  loaded but not saturated (the step cost's compute term runs ~60-80 % of the time, every
  offered token is delivered);
* ``azure-h100-plan``: the ``azure`` CDF on the 9/12/6/1-instance plan over
  3072/6144/8192/65536 of issue 12: under-provisioned (it delivers ~40 % of the offered
  tokens), so the run also drains a large backlog.

Run: ``python benchmarks/bench_sim_iteration.py [case] [requests] [--profile]`` (prints the
figure and the run's summary), or ``pytest benchmarks/bench_sim_iteration.py --benchmark-only``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.workload import builtin
from fleetopt.sim.api import route
from fleetopt.sim.iteration import PoolConfig, RequestStream, poisson_stream, simulate_pools
from fleetopt.sim.metrics import summarize
from fleetopt.sim.testing import RooflineStepCost, h100_tp8_llama70b_limits

REQUESTS = 100_000
RATE_RPS = 1000.0
TARGET_S = 30.0
CASES = {  # workload, ((ctx_lo, ctx_hi, instances), ...)
    "azure-conv": ("azure-conv-2023", ((0, 4096, 48), (4096, 16384, 14))),
    "azure-h100-plan": ("azure", ((0, 3072, 9), (3072, 6144, 12), (6144, 8192, 6),
                                  (8192, 65536, 1))),
}


def case(name: str = "azure-conv", requests: int = REQUESTS,
         seed: int = 0) -> tuple[RequestStream, list[PoolConfig]]:
    wname, plan = CASES[name]
    w = builtin(wname, RATE_RPS)
    raw = poisson_stream(w.input_tokens, w.output_tokens, w.weights, requests, RATE_RPS, seed)
    fleet = Fleet(tuple(PoolSpec(lo, hi, "H100-SXM", 8, n) for lo, hi, n in plan))
    pool, lin, lout, _ = route(fleet, raw.input_tokens, raw.output_tokens)
    stream = RequestStream(raw.arrival_s, lin, lout, np.asarray(pool))
    cost, lim = RooflineStepCost(), h100_tp8_llama70b_limits()
    return stream, [PoolConfig(n, cost, lim) for _, _, n in plan]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bench_iteration_sim_100k(benchmark, name: str) -> None:
    stream, pools = case(name)
    out = benchmark.pedantic(lambda: simulate_pools(stream, pools), rounds=3, iterations=1)
    secs = benchmark.stats.stats.mean
    benchmark.extra_info["requests"] = REQUESTS
    benchmark.extra_info["requests_per_s"] = REQUESTS / secs
    benchmark.extra_info["iterations"] = out.iterations_total
    assert out.requests.finished.all()
    assert secs <= TARGET_S, f"{REQUESTS} requests took {secs:.1f} s (target <= {TARGET_S} s)"


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--")]
    name = args[0] if args else "azure-conv"
    n = int(args[1]) if len(args) > 1 else REQUESTS
    stream, pools = case(name, n)
    if "--profile" in argv:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        out = simulate_pools(stream, pools)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    t = time.perf_counter()
    out = simulate_pools(stream, pools)
    secs = time.perf_counter() - t
    print(f"{name}: {n} requests, {out.iterations_total} iterations, {sum(p.instances for p in pools)} "
          f"instances: {secs:.2f} s = {n / secs:,.0f} requests/s "
          f"({secs / out.iterations_total * 1e6:.2f} us per iteration); target <= {TARGET_S} s "
          f"per {REQUESTS:,}")
    cols = ["pool", "instances", "p50_ttft_ms", "p99_ttft_ms", "p99_ttft_ci_ms", "p50_tpot_ms",
            "p99_tpot_ms", "delivered_fraction", "busy_fraction", "compute_term_utilization",
            "mean_batch", "kv_utilization", "power_w", "tok_per_j", "preemptions"]
    print(summarize(out).to_frame()[cols].to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
