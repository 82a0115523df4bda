"""Exhaustive enumeration of fleets for small instances: the MIP's reference.

Every topology (a path of pools over the candidate boundaries, at most ``max_pools``), every
deployment per pool and every instance count in each candidate's range ``[n_min, n_max]`` is
tried; plans breaking the budget, inventory or GPU cap are discarded. ``mode="linearized"``
scores pools with the MIP's piecewise-linear watts (so its optimum must equal the MIP's);
``mode="exact"`` scores them with the exact pool model at every count.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict

from fleetopt.core.errors import FleetoptError
from fleetopt.core.status import Status
from fleetopt.evaluation import evaluate_plan
from fleetopt.planners.solution import Solution
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import (
    Candidate,
    CandidateSet,
    build_candidates,
    exact_power_table,
)
from fleetopt.sizing.limits import Limits, objective_key, pick

__all__ = ["count_plans", "enumerate_optimum"]


def _paths(K: int, max_pools: int, edges: set[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    out: list[list[tuple[int, int]]] = []

    def rec(t: int, path: list[tuple[int, int]]) -> None:
        if t == K:
            out.append(list(path))
            return
        if len(path) == max_pools:
            return
        for k in range(t + 1, K + 1):
            if (t, k) in edges:
                path.append((t, k))
                rec(k, path)
                path.pop()

    rec(0, [])
    return out


def count_plans(cset: CandidateSet, max_pools: int) -> int:
    """How many plans exhaustive enumeration would try (without building them)."""
    per_edge: dict[tuple[int, int], int] = defaultdict(int)
    for c in cset.candidates:
        per_edge[(c.i, c.k)] += c.n_max - c.n_min + 1
    # paths with at most max_pools edges: DP over (node, edges used)
    ways = {(0, 0): 1}
    total = 0
    for t in range(cset.K + 1):
        for used in range(max_pools + 1):
            w = ways.get((t, used), 0)
            if not w:
                continue
            if t == cset.K:
                total += w
                continue
            if used == max_pools:
                continue
            for k in range(t + 1, cset.K + 1):
                n = per_edge.get((t, k), 0)
                if n:
                    ways[(k, used + 1)] = ways.get((k, used + 1), 0) + w * n
    return total


def enumerate_optimum(
    problem: Problem,
    *,
    mode: str = "linearized",
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    candidates: CandidateSet | None = None,
    max_plans: int = 5_000_000,
) -> Solution:
    """The best plan by brute force (small instances only: raises if more than ``max_plans``)."""
    if mode not in ("linearized", "exact"):
        raise FleetoptError("mode", "must be 'linearized' or 'exact'")
    t0 = time.perf_counter()
    cset = candidates or build_candidates(problem, compress=compress, segments=segments,
                                          headroom=headroom, prune=False)
    by_edge: dict[tuple[int, int], list[Candidate]] = defaultdict(list)
    for c in cset.candidates:
        by_edge[(c.i, c.k)].append(c)
    tables: dict[int, dict[int, float]] = {}

    def watts(c: Candidate, n: int) -> float:
        if mode == "linearized":
            return c.linearized_power_w(n)
        if id(c) not in tables:
            tables[id(c)] = exact_power_table(problem, c)
        return tables[id(c)][n]

    options: dict[tuple[int, int], list[tuple[float, float, str, int, Candidate, int]]] = {}
    for e, cs in by_edge.items():
        options[e] = [(watts(c, n), c.cost_per_hr(n), c.inventory_key, c.gpus(n), c, n)
                      for c in cs for n in range(c.n_min, c.n_max + 1)]
    limits = Limits.of(problem)
    bounded, by_type = limits.bounded, bool(limits.inventory)
    obj_name = objective_key(problem.objective)
    best_key: tuple[float, float] | None = None
    best_plan = None
    plans = 0
    for path in _paths(cset.K, problem.max_pools, set(by_edge)):
        choices = [options[e] for e in path]
        size = math.prod(len(c) for c in choices)
        plans += size
        if plans > max_plans:
            raise FleetoptError("enumerate", f"more than {max_plans} plans: instance too large")
        for combo in itertools.product(*choices):
            power = sum(o[0] for o in combo)
            cost = sum(o[1] for o in combo)
            if bounded:
                used: dict[str, int] = defaultdict(int)
                if by_type:
                    for o in combo:
                        used[o[2]] += o[3]
                else:  # only the total counts
                    used[""] = sum(o[3] for o in combo)
                if not limits.allows(cost, used):
                    continue
            key = (cost, power) if obj_name == "cost_per_hr" else (power, cost)
            if best_key is None or key < best_key:
                best_key, best_plan = key, combo
    timing = {"total_s": time.perf_counter() - t0}
    details = {"plans": plans, "mode": mode, "candidates": len(cset.candidates)}
    if best_plan is None:
        return Solution(Status.INFEASIBLE, f"enumeration-{mode}", obj_name, timing=timing,
                        message="no plan meets every limit", details=details)
    pools = tuple(PoolSpec.on(o[4].deployment, o[4].lo, o[4].hi, o[5], o[4].window)
                  for o in best_plan)
    result = evaluate_plan(problem, Fleet(pools))
    assert best_key is not None  # set with best_plan
    value = best_key[0]  # the objective; best_key[1] only breaks ties
    exact = pick(obj_name, result.power_w, result.cost_per_hr)
    return Solution(Status.OPTIMAL, f"enumeration-{mode}", obj_name, value, value, 0.0, result,
                    exact - value, timing, "", details)
