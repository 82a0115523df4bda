"""Candidate pools for the fleet MIP and the enumerator: the shared data layer.

A candidate ``j`` is a routing range ``(b_i, b_k]`` between two candidate boundaries, a KV
window (``b_k``, or a smaller boundary ``b_m`` with ``b_k <= gamma * b_m`` when compress bands are
allowed) and a deployment ``d``. For each candidate the exact pool model
(:class:`fleetopt.poolmodel.PoolModel`) gives

* ``n_min``: the fewest instances meeting the P99 TTFT target and the utilisation cap (every
  larger count meets them too: P99 TTFT is non-increasing in the instance count);
* breakpoints ``N_0 = n_min < N_1 < ... < N_B <= ceil(n_min * (1 + headroom))`` and the EXACT
  pool watts ``W(N_b)`` at each. Between breakpoints the MIP interpolates linearly (the
  piecewise linearisation of the power and roofline curves in the per-instance operating point
  ``n = X / N``); at a breakpoint it is exact.

Candidates that can never meet the SLO, have no KV slot, or carry no traffic are pruned, and so
are candidates dominated by another of the same GPU type and range (``prune_dominated``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from fleetopt.evaluate import pool_model
from fleetopt.problem import Problem
from fleetopt.profiles import Deployment


@dataclass(frozen=True)
class Candidate:
    """One candidate pool and its exact sizes, watts and dollars at the breakpoints."""

    i: int  # index of the lower boundary
    k: int  # index of the upper boundary
    lo: int
    hi: int
    window: int
    deployment: Deployment
    inventory_key: str  # the GPU type (or calibrated profile) whose inventory it draws on
    gpus_per_instance: int  # physical GPUs per instance (inventory, GPU caps)
    cost_per_instance_hr: float  # under the problem's accounting
    rate_rps: float
    compressed_share: float
    n_points: tuple[int, ...]  # breakpoints N_0 = n_min < ... (instances)
    power_points_w: tuple[float, ...]  # exact pool watts at each breakpoint

    @property
    def n_min(self) -> int:
        return self.n_points[0]

    @property
    def n_max(self) -> int:
        return self.n_points[-1]

    def segments(self) -> list[tuple[int, int, float, float]]:
        """``(N_lo, N_hi, alpha, beta)`` per segment: watts = alpha + beta * N on [N_lo, N_hi]."""
        pts, pw = self.n_points, self.power_points_w
        if len(pts) == 1:
            return [(pts[0], pts[0], pw[0], 0.0)]
        out = []
        for b in range(1, len(pts)):
            beta = (pw[b] - pw[b - 1]) / (pts[b] - pts[b - 1])
            out.append((pts[b - 1], pts[b], pw[b - 1] - beta * pts[b - 1], beta))
        return out

    def linearized_power_w(self, n: int) -> float:
        """The MIP's watts at ``n`` instances (secant of the enclosing segment)."""
        for lo, hi, a, b in self.segments():
            if lo <= n <= hi:
                return a + b * n
        raise ValueError(f"{n} instances outside [{self.n_min}, {self.n_max}]")

    def cost_per_hr(self, n: int) -> float:
        return self.cost_per_instance_hr * n

    def gpus(self, n: int) -> int:
        return self.gpus_per_instance * n


@dataclass
class CandidateSet:
    """All candidates of a problem plus the boundary grid they live on."""

    boundaries: list[int]  # b_0 = 0 < b_1 < ... < b_K = max_ctx
    candidates: list[Candidate]
    build_s: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def K(self) -> int:
        return len(self.boundaries) - 1


def breakpoints(n_min: int, segments: int, headroom: float) -> list[int]:
    """Integer breakpoints from ``n_min`` to ``ceil(n_min * (1 + headroom))``, at most ``segments + 1``."""
    n_max = max(n_min, math.ceil(n_min * (1.0 + headroom)))
    if segments <= 0 or n_max == n_min:
        return [n_min]
    pts = np.unique(np.rint(np.linspace(n_min, n_max, segments + 1)).astype(int))
    return [int(x) for x in pts]


def build_candidates(
    problem: Problem,
    *,
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    prune: bool = True,
) -> CandidateSet:
    """Generate, size and prune the candidate pools of ``problem``.

    ``compress`` allows compress bands (windows ``b_m < b_k`` with ``b_k <= gamma b_m``, gamma =
    ``problem.compress_gamma`` or 2). ``segments`` and ``headroom`` set the power breakpoints.
    """
    t0 = time.perf_counter()
    b = [0, *problem.candidate_boundaries(), problem.max_ctx]
    K = len(b) - 1
    gamma = (problem.compress_gamma or 2.0) if compress else 1.0
    st = problem.settings
    wl = problem.workload
    tot = wl.total_tokens
    # traffic share per elementary interval: skip ranges with none
    stats = {"considered": 0, "empty": 0, "no_slot": 0, "slo_infeasible": 0, "kept": 0,
             "dominated": 0}
    cands: list[Candidate] = []
    profiles = [(d, problem.profile(d)) for d in problem.deployments()]
    for k in range(1, K + 1):
        windows = [b[k]] + ([b[m] for m in range(1, k) if b[k] <= gamma * b[m] + 1e-9]
                            if gamma > 1 else [])
        for d, prof in profiles:
            for win in windows:
                if win > prof.max_context:
                    continue
                slots = prof.slots(win)
                for i in range(0, k):
                    if win <= b[i]:
                        continue  # the window must exceed the range's lower end
                    stats["considered"] += 1
                    if not np.any((tot > b[i]) & (tot <= b[k]) & (wl.weights > 0)):
                        stats["empty"] += 1
                        continue
                    if slots < 1:
                        stats["no_slot"] += 1
                        continue
                    pm = pool_model((b[i], b[k], win), prof, wl, st)
                    n_min = pm.min_instances()
                    if n_min is None:
                        stats["slo_infeasible"] += 1
                        # a narrower range (larger lo) may still be feasible; keep going
                        continue
                    pts = breakpoints(n_min, segments, headroom)
                    pw = pm.power_w(pts)
                    cands.append(Candidate(
                        i=i, k=k, lo=b[i], hi=b[k], window=win, deployment=d,
                        inventory_key=d.gpu, gpus_per_instance=prof.gpus_per_instance,
                        cost_per_instance_hr=prof.instance_cost_per_hr(st.accounting),
                        rate_rps=pm.rate_rps, compressed_share=pm.compressed_share,
                        n_points=tuple(pts), power_points_w=tuple(float(x) for x in pw),
                    ))
    stats["kept"] = len(cands)
    if prune:
        cands = prune_dominated(cands, problem)
        stats["dominated"] = stats["kept"] - len(cands)
        stats["kept"] = len(cands)
    return CandidateSet(b, cands, time.perf_counter() - t0, stats)


def prune_dominated(cands: list[Candidate], problem: Problem) -> list[Candidate]:
    """Drop candidates that another candidate of the same range beats on every count.

    Without fleet-wide limits the objective separates by pool, so per range only the best
    candidate survives. With limits, ``c'`` dominates ``c`` when they share range, window and
    GPU type and ``c'`` at its fewest instances has no more watts than ``c`` at any breakpoint,
    no more dollars and no more GPUs than ``c`` at its fewest: any plan using ``c`` improves
    (weakly) by swapping in ``c'``.
    """
    limited = (problem.budget_per_hr is not None or problem.inventory or
               problem.max_gpus is not None)
    groups: dict[tuple, list[Candidate]] = {}
    for c in cands:
        key = (c.i, c.k, c.window) if not limited else (c.i, c.k, c.window, c.inventory_key)
        groups.setdefault(key, []).append(c)
    out: list[Candidate] = []
    for group in groups.values():
        if not limited and problem.objective in ("power", "cost"):
            if problem.objective == "power":
                best = min(group, key=lambda c: (min(c.power_points_w), c.cost_per_hr(c.n_min)))
            else:
                best = min(group, key=lambda c: (c.cost_per_hr(c.n_min), min(c.power_points_w)))
            out.append(best)
            continue
        for c in group:
            dominated = False
            for o in group:
                if o is c:
                    continue
                better_eq = (o.power_points_w[0] <= min(c.power_points_w) + 1e-9 and
                             o.cost_per_hr(o.n_min) <= c.cost_per_hr(c.n_min) + 1e-9 and
                             o.gpus(o.n_min) <= c.gpus(c.n_min))
                strictly = (o.power_points_w[0] < min(c.power_points_w) - 1e-9 or
                            o.cost_per_hr(o.n_min) < c.cost_per_hr(c.n_min) - 1e-9 or
                            o.gpus(o.n_min) < c.gpus(c.n_min) or id(o) < id(c))
                if better_eq and strictly:
                    dominated = True
                    break
            if not dominated:
                out.append(c)
    return out
