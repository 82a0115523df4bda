"""Candidate pools for the fleet MIP and the enumerator: the shared data layer.

A candidate ``j`` is a routing range ``(b_i, b_k]`` between two candidate boundaries, a KV
window (``b_k``, or a smaller boundary ``b_m`` with ``b_k <= gamma * b_m`` when compress bands are
allowed) and a deployment ``d``. For each candidate the exact pool model
(:class:`fleetopt.poolmodel.PoolModel`) gives

* ``n_min``: the fewest instances meeting the P99 TTFT target and the utilisation cap (every
  larger count meets them too: P99 TTFT is non-increasing in the instance count);
* the instance range ``[n_min, n_max]``, ``n_max = min(ceil(n_min (1 + headroom)),
  n_min + max_extra)``, and the EXACT pool watts ``W(N)`` at every integer ``N`` in it;
* breakpoints ``N_0 = n_min < N_1 < ... < N_B = n_max`` (``segments`` of them) and, per segment,
  the line ``alpha + beta N``: the secant through the breakpoints, shifted down by the largest
  amount it exceeds ``W`` at any integer of the segment. The piecewise-linear watts are thus an
  UNDER-estimator of the exact watts at every feasible count (exact at the breakpoints when the
  curve is concave there), so the MIP optimum is a lower bound on the exact optimum over the
  same ranges and ``exact(plan) - model(plan) >= 0`` bounds the plan's suboptimality.
  This is the piecewise linearisation of the power and roofline curves in the per-instance
  operating point ``n = X / N`` (``X`` sequences in flight in the pool).

Candidates that can never meet the SLO, have no KV slot, or carry no traffic are pruned, and so
are candidates dominated by another of the same GPU type and range (``prune_dominated``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetopt.evaluate import pool_model
from fleetopt.poolmodel import PoolBatch
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
    n_points: tuple[int, ...]  # breakpoints N_0 = n_min < ... < N_B = n_max (instances)
    power_exact_w: tuple[float, ...]  # exact pool watts at n_min, n_min + 1, ..., n_max
    segs: tuple[tuple[int, int, float, float], ...] = ()  # (N_lo, N_hi, alpha, beta)

    @property
    def n_min(self) -> int:
        return self.n_points[0]

    @property
    def n_max(self) -> int:
        return self.n_points[-1]

    def exact_power_w(self, n: int) -> float:
        return self.power_exact_w[n - self.n_min]

    def segments(self) -> list[tuple[int, int, float, float]]:
        """``(N_lo, N_hi, alpha, beta)`` per segment: model watts = alpha + beta * N on it."""
        return list(self.segs)

    @property
    def model_min_w(self) -> float:
        """The least model (piecewise-linear) watts over the candidate's range."""
        return min(min(a + b * lo, a + b * hi) for lo, hi, a, b in self.segs)

    def linearized_power_w(self, n: int) -> float:
        """The MIP's watts at ``n`` instances: the lowest segment line that covers ``n``.

        Adjacent segments share their breakpoint and are shifted down separately, so at a shared
        breakpoint the MIP (free to pick either segment) takes the lower line; so does this.
        """
        vals = [a + b * n for lo, hi, a, b in self.segs if lo <= n <= hi]
        if not vals:
            raise ValueError(f"{n} instances outside [{self.n_min}, {self.n_max}]")
        return min(vals)

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


def breakpoints(n_min: int, segments: int, headroom: float, max_extra: int = 32) -> list[int]:
    """Integer breakpoints from ``n_min`` to ``n_max``, at most ``segments + 1`` of them."""
    n_max = max(n_min, min(math.ceil(n_min * (1.0 + headroom)), n_min + max_extra))
    if segments <= 0 or n_max == n_min:
        return [n_min]
    span = n_max - n_min
    return sorted({n_min + round(span * q / segments) for q in range(segments + 1)})


def _curve(pts: list[int], exact: np.ndarray) -> dict[str, Any]:
    """Breakpoints, exact watts and model segments of a candidate.

    When the exact watts never fall as instances are added, every count above ``n_min`` costs
    more watts, dollars and GPUs than ``n_min`` itself: the candidate collapses to that single,
    exact point (no linearisation at all). Otherwise the under-estimating segments are used.
    """
    ex = [float(x) for x in exact]
    if all(b >= a for a, b in zip(ex, ex[1:], strict=False)):
        return {"n_points": (pts[0],), "power_exact_w": (ex[0],),
                "segs": ((pts[0], pts[0], ex[0], 0.0),)}
    return {"n_points": tuple(pts), "power_exact_w": tuple(ex), "segs": under_segments(pts, ex)}


def under_segments(
    pts: list[int], exact: np.ndarray | list[float]
) -> tuple[tuple[int, int, float, float], ...]:
    """Per segment, the secant shifted down to lie below ``exact`` at every integer in it.

    ``exact[i]`` is the watts at ``pts[0] + i``.
    """
    n0 = pts[0]
    ex = [float(v) for v in exact]
    if len(pts) == 1:
        return ((n0, n0, ex[0], 0.0),)
    out = []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        wa, wb = ex[a - n0], ex[b - n0]
        beta = (wb - wa) / (b - a)
        over = max(wa + beta * (n - a) - ex[n - n0] for n in range(a, b + 1))
        out.append((a, b, wa - beta * a - max(0.0, over), beta))
    return tuple(out)


def build_candidates(
    problem: Problem,
    *,
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    max_extra: int = 32,
    prune: bool = True,
    workers: int | None = None,
) -> CandidateSet:
    """Generate, size and prune the candidate pools of ``problem``.

    ``compress`` allows compress bands (windows ``b_m < b_k`` with ``b_k <= gamma b_m``, gamma =
    ``problem.compress_gamma`` or 2). ``segments``, ``headroom`` and ``max_extra`` set the power
    breakpoints. ``workers`` processes share the deployments (default 1); the result does not
    depend on it.
    """
    t0 = time.perf_counter()
    b = [0, *problem.candidate_boundaries(), problem.max_ctx]
    deployments = problem.deployments()
    if workers is None:
        # In-process by default. Workers start with forkserver or spawn, never fork (see
        # fleetopt.solvers.highs.process_context); measured on the 2-core machine, two such
        # workers save nothing on a 64-boundary, 21-deployment build (2,145 candidates: 1.7 s
        # in-process, 1.6 s with a warm forkserver, 2.9 s with spawn), a first pool pays about
        # 1 s to start its server, and a pool re-imports the caller's __main__.
        workers = 1
    stats = {"considered": 0, "empty": 0, "no_slot": 0, "slo_infeasible": 0, "kept": 0,
             "dominated": 0}
    cands: list[Candidate] = []
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        from fleetopt.solvers.highs import process_context

        chunks = [deployments[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=process_context()) as ex:
            futs = [ex.submit(_candidates_for, problem, b, ch, compress, segments, headroom,
                              max_extra) for ch in chunks]
            parts = [f.result() for f in futs]
        for part_c, part_s in parts:
            cands.extend(part_c)
            for key, v in part_s.items():
                stats[key] += v
    else:
        cands, part_s = _candidates_for(problem, b, deployments, compress, segments, headroom,
                                        max_extra)
        stats.update(part_s)
    order = {d: i for i, d in enumerate(deployments)}
    cands.sort(key=lambda c: (c.k, order[c.deployment], -c.window, c.i))  # worker-independent
    stats["kept"] = len(cands)
    if prune:
        cands = prune_dominated(cands, problem)
        stats["dominated"] = stats["kept"] - len(cands)
        stats["kept"] = len(cands)
    return CandidateSet(b, cands, time.perf_counter() - t0, stats)


def _candidates_for(
    problem: Problem, b: list[int], deployments: list[Deployment], compress: bool,
    segments: int, headroom: float, max_extra: int, batched: bool = True,
) -> tuple[list[Candidate], dict[str, int]]:
    """Size every candidate of the given deployments (one worker's share)."""
    K = len(b) - 1
    gamma = (problem.compress_gamma or 2.0) if compress else 1.0
    st = problem.settings
    wl = problem.workload
    tot = wl.total_tokens
    stats = {"considered": 0, "empty": 0, "no_slot": 0, "slo_infeasible": 0}
    cands: list[Candidate] = []
    mixes: dict[tuple, dict] = {}
    # requests with total length <= b[t], for O(1) "does (b_i, b_k] carry traffic?"
    live = wl.weights > 0
    traffic = [int(np.count_nonzero(live & (tot <= x))) for x in b]
    profiles = [(d, problem.profile(d)) for d in deployments]
    for k in range(1, K + 1):
        windows = [b[k]] + ([b[m] for m in range(1, k) if b[k] <= gamma * b[m] + 1e-9]
                            if gamma > 1 else [])
        for win in windows:
            family: list[tuple[Deployment, Any]] = []  # deployments that hold this window
            lows: list[int] = []
            for d, prof in profiles:
                if win > prof.max_context:
                    continue
                slots = prof.slots(win)
                for i in range(0, k):
                    if win <= b[i]:
                        continue  # the window must exceed the range's lower end
                    stats["considered"] += 1
                    if slots < 1:
                        stats["no_slot"] += 1
                    elif traffic[k] - traffic[i] <= 0:
                        # no sampled traffic: a coverage pool of one idle instance
                        stats["empty"] += 1
                        if win == b[k]:
                            cands.append(_coverage(problem, b, i, k, d, prof))
                if slots >= 1:
                    family.append((d, prof))
            lows = [i for i in range(0, k) if win > b[i] and traffic[k] - traffic[i] > 0]
            if not lows or not family:
                continue
            if st.accounting == "physical" and batched:
                cands.extend(_batch_family(problem, b, lows, k, win, family, segments,
                                           headroom, max_extra, stats, mixes))
                continue
            for d, prof in family:
                for i in lows:
                    pm = pool_model((b[i], b[k], win), prof, wl, st)
                    n_min = pm.min_instances()
                    if n_min is None:
                        stats["slo_infeasible"] += 1
                        # a narrower range (larger lo) may still be feasible; keep going
                        continue
                    pts = breakpoints(n_min, segments, headroom, max_extra)
                    exact = pm.power_w(np.arange(pts[0], pts[-1] + 1))
                    cands.append(Candidate(
                        i=i, k=k, lo=b[i], hi=b[k], window=win, deployment=d,
                        inventory_key=d.gpu, gpus_per_instance=prof.gpus_per_instance,
                        cost_per_instance_hr=prof.instance_cost_per_hr(st.accounting),
                        rate_rps=pm.rate_rps, compressed_share=pm.compressed_share,
                        **_curve(pts, exact),
                    ))
    return cands, stats


def prune_dominated(cands: list[Candidate], problem: Problem) -> list[Candidate]:
    """Drop candidates that another candidate of the same range beats on every count.

    All comparisons use the MIP's own (piecewise-linear) watts, so pruning never changes the MIP
    optimum. Without fleet-wide limits the objective separates by pool, so per range and window
    only the best candidate survives. With limits, ``c'`` dominates ``c`` when they share range,
    window and GPU type and ``c'`` at its fewest instances has no more model watts than ``c``
    anywhere in its range, no more dollars and no more GPUs than ``c`` at its fewest: any plan
    using ``c`` improves (weakly) by swapping in ``c'``.
    """
    limited = (problem.budget_per_hr is not None or problem.inventory or
               problem.max_gpus is not None)
    groups: dict[tuple, list[int]] = {}
    for idx, c in enumerate(cands):
        key = (c.i, c.k, c.window) if not limited else (c.i, c.k, c.window, c.inventory_key)
        groups.setdefault(key, []).append(idx)
    # per candidate, once: model watts at n_min, least model watts, $/hr and GPUs at n_min
    p0 = [c.linearized_power_w(c.n_min) for c in cands]
    pmin = [c.model_min_w for c in cands]
    cost0 = [c.cost_per_hr(c.n_min) for c in cands]
    gpus0 = [c.gpus(c.n_min) for c in cands]
    keep: list[int] = []
    for group in groups.values():
        if not limited and problem.objective in ("power", "cost"):
            if problem.objective == "power":
                keep.append(min(group, key=lambda j: (pmin[j], cost0[j], j)))
            else:
                keep.append(min(group, key=lambda j: (cost0[j], pmin[j], j)))
            continue
        for j in group:
            dominated = False
            for o in group:
                if o == j:
                    continue
                better_eq = (p0[o] <= pmin[j] + 1e-9 and cost0[o] <= cost0[j] + 1e-9
                             and gpus0[o] <= gpus0[j])
                # strictly better somewhere, or identical and earlier in the list (a fixed order)
                strictly = (p0[o] < pmin[j] - 1e-9 or cost0[o] < cost0[j] - 1e-9
                            or gpus0[o] < gpus0[j] or o < j)
                if better_eq and strictly:
                    dominated = True
                    break
            if not dominated:
                keep.append(j)
    out = [cands[j] for j in sorted(keep)]
    return out


def _batch_family(problem: Problem, b: list[int], lows: list[int], k: int, win: int,
                  family: list[tuple[Deployment, Any]], segments: int, headroom: float,
                  max_extra: int, stats: dict[str, int], mixes: dict[tuple, dict]) -> list[Candidate]:
    """Size the candidates ``(b_i, b_k]``, ``i`` in ``lows``, of every deployment in ``family``
    at once (:class:`PoolBatch`; deployments that do not stack are batched one by one)."""
    st = problem.settings
    wl = problem.workload
    key = (k, win, tuple(lows))
    if key not in mixes:
        if any(kk[0] != k for kk in mixes):
            mixes.clear()  # families are visited k by k: keep only the current k's
        mixes[key] = PoolBatch.mix(wl.input_tokens, wl.output_tokens, wl.weights, wl.rate_rps,
                                   [b[i] for i in lows], b[k], win)
    profs = [prof for _, prof in family]
    try:
        batches = [(family, PoolBatch(profs, wl.input_tokens, wl.output_tokens, wl.weights,
                                      wl.rate_rps, [b[i] for i in lows], b[k], win, st,
                                      mix=mixes[key]))]
    except ValueError:  # not stackable: one batch per deployment
        batches = [([(d, prof)], PoolBatch(prof, wl.input_tokens, wl.output_tokens, wl.weights,
                                           wl.rate_rps, [b[i] for i in lows], b[k], win, st,
                                           mix=mixes[key])) for d, prof in family]
    out = []
    for members, pb in batches:
        n_min = pb.min_instances()
        cols, ns, spans = [], [], []
        for col, n0 in enumerate(n_min):
            if n0 < 0:
                stats["slo_infeasible"] += 1
                continue
            pts = breakpoints(int(n0), segments, headroom, max_extra)
            rng = np.arange(pts[0], pts[-1] + 1)
            spans.append((col, pts, len(ns), len(ns) + len(rng)))
            cols.extend([col] * len(rng))
            ns.extend(rng.tolist())
        if not spans:
            continue
        power = pb.power_w(np.asarray(cols), np.asarray(ns, dtype=float))
        for col, pts, a, z in spans:
            d, prof = members[int(pb.dep[col])]
            i = lows[int(pb.lc[col])]
            out.append(Candidate(
                i=i, k=k, lo=b[i], hi=b[k], window=win, deployment=d, inventory_key=d.gpu,
                gpus_per_instance=prof.gpus_per_instance,
                cost_per_instance_hr=prof.instance_cost_per_hr(st.accounting),
                rate_rps=float(pb.rate_rps[col]), compressed_share=float(pb.compressed_share[col]),
                **_curve(pts, power[a:z]),
            ))
    return out

def _coverage(problem: Problem, b: list[int], i: int, k: int, d: Deployment, prof: Any) -> Candidate:
    """A pool over a range with no sampled requests: one instance, so the range is served."""
    acct = problem.settings.accounting
    w1 = float(prof.instance_power_w(0.0, acct))
    return Candidate(
        i=i, k=k, lo=b[i], hi=b[k], window=b[k], deployment=d, inventory_key=d.gpu,
        gpus_per_instance=prof.gpus_per_instance, cost_per_instance_hr=prof.instance_cost_per_hr(acct),
        rate_rps=0.0, compressed_share=0.0, n_points=(1,), power_exact_w=(w1,),
        segs=((1, 1, w1, 0.0),),
    )
