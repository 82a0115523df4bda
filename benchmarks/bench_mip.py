"""Solve time of the fleet MIP against problem size, with build / translation / solve split.

Run as a benchmark (pytest-benchmark):   pytest benchmarks/bench_mip.py --benchmark-only
Print the README table:                  python benchmarks/bench_mip.py [--quick]

The instance: Llama-3.1-70B serving the Azure 2023 conversation trace at 1,000 req/s, P99 TTFT
500 ms, with the given number of candidate boundaries (spread over the length distribution),
GPU types, TP set and pool limit; "limits" adds a budget (90 % of the unconstrained optimum's
$/hr) and an inventory (half of the unconstrained plan's GPUs of its main type).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import pytest

from fleetopt.planners.enumerate import count_plans, enumerate_optimum
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.sizing.candidates import build_candidates
from fleetopt.sizing.poolmodel import Settings

GPUS = ["H100-SXM", "H200-SXM", "B200", "GB200", "A100-SXM", "L40S", "MI300X"]


def boundaries(n: int, max_ctx: int = 16384) -> tuple[int, ...]:
    """``n`` distinct boundaries, log-spaced between 256 tokens and max_ctx, rounded to 64."""
    pts = np.unique(np.round(np.geomspace(256, max_ctx * 0.95, n) / 64) * 64).astype(int)
    k = 1
    while len(pts) < n:  # fill rounding collisions
        pts = np.unique(np.concatenate([pts, [256 + 64 * k]]))
        k += 1
    return tuple(int(x) for x in pts[:n])


def problem(n_bounds: int, n_gpus: int, tps: tuple[int, ...], max_pools: int,
            limits: bool = False, dtypes: tuple[str, ...] = ("fp16",)) -> Problem:
    p = Problem(workload=builtin("azure-conv-2023", 1000), model="llama-3.1-70b",
                gpus=tuple(GPUS[:n_gpus]), tp=tps, max_pools=max_pools, max_ctx=16384,
                boundaries=boundaries(n_bounds), settings=Settings(500), dtypes=dtypes)
    if limits:
        # a budget halfway between the cheapest and the least-watt plan, and an inventory of
        # the least-watt plan's main GPU type: 75 % of what either plan uses of it (all of it,
        # or no inventory, if that is infeasible)
        free = solve(p, warm_start=False)
        cheap = solve(p.with_(objective="cost"), warm_start=False)

        def use(s: object) -> dict[str, int]:
            by: dict[str, int] = {}
            for pr in s.result.pools:  # type: ignore[attr-defined]
                by[pr.gpu] = by.get(pr.gpu, 0) + pr.gpus
            return by

        a, b = use(free), use(cheap)
        g = max(a, key=lambda k: a[k])
        most = max(a.get(g, 0), b.get(g, 0))
        budget = 0.5 * (cheap.totals["cost_per_hr"] + free.totals["cost_per_hr"])
        for inv in ((g, max(1, int(most * 0.75))), (g, most), None):
            q = p.with_(budget_per_hr=budget, inventory=(inv,) if inv else ())
            if solve(q, explain=False).result is not None:
                return q
        return q
    return p


def run(p: Problem, backend: str = "highspy") -> dict[str, Any]:
    t0 = time.perf_counter()
    s = solve(p, backend=backend)
    wall = time.perf_counter() - t0
    return {"status": s.status, "gap": s.gap, "candidates": s.details["candidates"],
            "columns": s.details["columns"], "candidates_s": s.details["candidate_build_s"],
            "build_s": s.timing["build_s"], "translate_s": s.timing["translate_s"],
            "solve_s": s.timing["solve_s"], "total_s": wall,
            "candidate_stats": s.details.get("candidate_stats", {})}


CASES = [
    # (boundaries, gpu types, TP set, max_pools, limits)
    (8, 1, (8,), 4, False),
    (16, 1, (8,), 4, False),
    (32, 1, (8,), 4, False),
    (48, 1, (8,), 4, False),
    (32, 3, (8,), 4, False),
    (32, 7, (8,), 4, False),
    (32, 7, (4, 8), 4, False),
    (32, 7, (1, 2, 4, 8), 2, True),
    (32, 7, (1, 2, 4, 8), 4, True),
    (32, 7, (1, 2, 4, 8), 6, True),
    (32, 7, (1, 2, 4, 8), 4, True, ("fp16", "fp8")),  # issue 11's target: <= 1 s
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"b{c[0]}-g{c[1]}-tp{len(c[2])}-p{c[3]}"
                         f"{'-lim' if c[4] else ''}{'-fp8' if len(c) > 5 else ''}")
def test_bench_mip(benchmark, case):
    p = problem(*case)
    out = benchmark.pedantic(run, args=(p,), rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    assert out["status"] == "optimal"


def enumerator_speedup() -> dict[str, float]:
    """MIP vs exhaustive enumeration at 16 boundaries, 7 GPU types, TP {1,2,4,8}, <= 4 pools.

    Both work on the same (unpruned) candidates, so the comparison is of the search alone.
    """
    p = problem(16, 7, (1, 2, 4, 8), 4)
    cset = build_candidates(p, prune=False)
    plans = count_plans(cset, p.max_pools)
    t0 = time.perf_counter()
    m = solve(p, candidates=cset, warm_start=False, mip_gap=1e-9)
    t_mip = time.perf_counter() - t0
    t0 = time.perf_counter()
    e = enumerate_optimum(p, candidates=cset, max_plans=10**9)
    t_enum = time.perf_counter() - t0
    assert math.isclose(m.objective, e.objective, rel_tol=1e-7)
    return {"plans": plans, "enumeration_s": t_enum, "mip_s": t_mip, "speedup": t_enum / t_mip}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the largest cases")
    ap.add_argument("--pyomo", action="store_true", help="also time the Pyomo backend")
    a = ap.parse_args()
    print("| boundaries | GPU types | TP | dtypes | max pools | limits | candidates | columns | "
          "candidates (s) | model build (s) | translate (s) | solve (s) | total (s) | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in CASES[:6] if a.quick else CASES:
        p = problem(*case)
        backends = ["highspy", "pyomo"] if a.pyomo else ["highspy"]
        for be in backends:
            r = run(p, be)
            dts = case[5] if len(case) > 5 else ("fp16",)
            print(f"| {case[0]} | {case[1]} | {','.join(map(str, case[2]))} | {'+'.join(dts)} | "
                  f"{case[3]} | "
                  f"{'yes' if case[4] else 'no'} | {r['candidates']} | {r['columns']} | "
                  f"{r['candidates_s']:.2f} | {r['build_s'] - r['candidates_s']:.3f} | "
                  f"{r['translate_s']:.3f} | {r['solve_s']:.3f} | {r['total_s']:.2f} | "
                  f"{r['status']}{' (pyomo)' if be == 'pyomo' else ''} |")
    # the last case is issue 11's target: what was screened, probed and kept
    if not a.quick:
        print(f"\nTarget instance candidate_stats: {r['candidate_stats']}")
    r = enumerator_speedup()
    print(f"\nMIP vs enumeration, 16 boundaries, 7 GPU types, TP 1,2,4,8, <= 4 pools: "
          f"{r['plans']:,} plans; enumeration {r['enumeration_s']:.1f} s, MIP "
          f"{r['mip_s']:.3f} s on the same candidates: {r['speedup']:,.0f}x faster")


if __name__ == "__main__":
    main()
