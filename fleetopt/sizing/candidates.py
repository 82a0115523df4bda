"""Candidate pools for the fleet MIP and the enumerator: the shared data layer.

A candidate ``j`` is a routing range ``(b_i, b_k]`` between two candidate boundaries, a KV
window (``b_k``, or a smaller boundary ``b_m`` with ``b_k <= gamma * b_m`` when compress bands are
allowed) and a deployment ``d``. For each candidate the exact pool model
(:class:`fleetopt.sizing.poolmodel.PoolModel`, through :class:`fleetopt.sizing.sizer.Sizer`) gives

* ``n_min``: the fewest instances meeting the P99 TTFT target and the utilisation cap (every
  larger count meets them too: P99 TTFT is non-increasing in the instance count);
* the instance range ``[n_min, n_max]``: ``n_max`` is the largest count that is not PROVABLY
  dominated by a smaller count of the same candidate (no fewer watts, and more dollars and
  GPUs): every count above ``n_max`` has at least the exact watts of some count below it
  (:func:`_proven_ranges`, ``docs/formulation.md`` §5). Exact watts are evaluated at every
  integer of ``[n_min, n_min + min(ceil(headroom n_min), max_extra)]`` and at a geometric grid
  beyond, refined where the proof needs it; between evaluated counts rigorous lower bounds
  ``W(N) >= kappa N`` hold (from the operating batch, which never rises with ``N``, and the
  non-decreasing power curve);
* breakpoints ``N_0 = n_min < ... < N_B = n_max`` (evaluated counts) and, per segment, a line
  ``alpha + beta N`` through the exact watts at its lower end that lies below the exact watts
  at every evaluated count and below the lower bounds in between. The piecewise-linear watts
  are thus an UNDER-estimator of the exact watts at every feasible count, so the MIP optimum is
  a lower bound on the exact optimum (over the same boundaries, without any range restriction)
  and ``exact(plan) - model(plan) >= 0`` bounds the plan's suboptimality.

Candidates that can never meet the SLO, have no KV slot, or carry no traffic are pruned, and so
are candidates dominated by another of the same range and window, of any deployment, under the
problem's limits (``prune_dominated``).
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetopt.core.deadline import Deadline
from fleetopt.core.errors import FleetoptError
from fleetopt.physics.profiles import Deployment
from fleetopt.problem.problem import Problem
from fleetopt.sizing.limits import Limits
from fleetopt.sizing.servemodel import ServeFamily, idle_instance_w
from fleetopt.sizing.sizer import Sizer, pool_model

__all__ = ["Candidate", "CandidateSet", "breakpoints", "build_candidates", "exact_power_table",
           "prune_dominated", "under_segments"]


@dataclass(frozen=True)
class Candidate:
    """One candidate pool: its range of instance counts, exact watts where evaluated, segments."""

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
    exact_n: tuple[int, ...]  # counts in [n_min, n_max] whose exact watts were evaluated
    power_exact_w: tuple[float, ...]  # exact pool watts at exact_n
    segs: tuple[tuple[int, int, float, float], ...] = ()  # (N_lo, N_hi, alpha, beta)

    @property
    def n_min(self) -> int:
        return self.n_points[0]

    @property
    def n_max(self) -> int:
        return self.n_points[-1]

    def exact_power_w(self, n: int) -> float:
        """Exact watts at an evaluated count (:func:`exact_power_table` gives any count)."""
        idx = bisect.bisect_left(self.exact_n, n)
        if idx == len(self.exact_n) or self.exact_n[idx] != n:
            raise ValueError(f"exact watts at {n} instances were not evaluated")
        return self.power_exact_w[idx]

    def segments(self) -> list[tuple[int, int, float, float]]:
        """``(N_lo, N_hi, alpha, beta)`` per segment: model watts = alpha + beta * N on it."""
        return list(self.segs)

    @property
    def model_min_w(self) -> float:
        """The least model (piecewise-linear) watts over the candidate's range."""
        return _segs_min(self.segs)

    def linearized_power_w(self, n: int) -> float:
        """The MIP's watts at ``n`` instances: the lowest segment line that covers ``n``.

        Adjacent segments share their breakpoint, each with its own line, so at a shared
        breakpoint the MIP (free to pick either segment) takes the lower line; so does this.
        """
        if not any(lo <= n <= hi for lo, hi, _, _ in self.segs):
            raise ValueError(f"{n} instances outside [{self.n_min}, {self.n_max}]")
        return _segs_at(self.segs, n)

    def cost_per_hr(self, n: int) -> float:
        return self.cost_per_instance_hr * n

    def gpus(self, n: int) -> int:
        return self.gpus_per_instance * n


def _segs_min(segs: Any) -> float:
    """The least watts of segments ``(N_lo, N_hi, alpha, beta)`` over their counts."""
    return min(min(a + b * lo, a + b * hi) for lo, hi, a, b in segs)


def _segs_at(segs: Any, n: int) -> float:
    """The MIP's watts at ``n`` instances: the lowest segment line covering ``n``."""
    return min(a + b * n for lo, hi, a, b in segs if lo <= n <= hi)


@dataclass
class CandidateSet:
    """All candidates of a problem plus the boundary grid they live on.

    ``missing`` lists the arcs ``(i, k)`` (ranges ``(b_i, b_k]``) whose candidates were not
    all built (candidate building stopped at a deadline); empty when the set is complete.
    """

    boundaries: list[int]  # b_0 = 0 < b_1 < ... < b_K = max_ctx
    candidates: list[Candidate]
    build_s: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    missing: tuple[tuple[int, int], ...] = ()

    @property
    def K(self) -> int:
        return len(self.boundaries) - 1

    @property
    def complete(self) -> bool:
        return not self.missing


def breakpoints(n_min: int, segments: int, headroom: float, max_extra: int = 32) -> list[int]:
    """Integer breakpoints from ``n_min`` to ``min(ceil(n_min (1 + headroom)), n_min +
    max_extra)`` (the densely evaluated part of a range), at most ``segments + 1`` of them."""
    n_max = max(n_min, min(math.ceil(n_min * (1.0 + headroom)), n_min + max_extra))
    if segments <= 0 or n_max == n_min:
        return [n_min]
    span = n_max - n_min
    return sorted({n_min + round(span * q / segments) for q in range(segments + 1)})


# ------------------------------------------------------------------------------------------
# instance ranges that provably hold the optimum

_PAD = np.int64(1) << np.int64(60)  # padding count in the per-column tables
_T_CAP = 1 << 40  # no pool has this many instances


class _ServeOracle:
    """Exact watts of some columns of a :class:`~fleetopt.sizing.servemodel.ServeFamily`, and
    the one lower bound on an instance's watts that needs no assumption: its GPUs at idle."""

    def __init__(self, fam: ServeFamily, cols: np.ndarray) -> None:
        self.fam, self.cols = fam, np.asarray(cols, dtype=np.int64)
        self.slots = fam.slots[self.cols].astype(float)

    def exact(self, idx: np.ndarray, N: np.ndarray, floor: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.fam.power_w(self.cols[idx], N.astype(float)), np.zeros(len(N))

    def inst_w(self, idx: np.ndarray, batch: np.ndarray) -> np.ndarray:
        c = self.cols[idx]
        return self.fam.gpus[c] * self.fam.idle_w[c]


class _PaperOracle:
    """``paper`` accounting: watts in closed form, cheap enough to evaluate at every count."""

    def __init__(self, pm: Any) -> None:
        self.pm = pm
        self.slots = np.array([float(pm.slots)])

    def exact(self, idx: np.ndarray, N: np.ndarray, floor: bool) -> tuple[np.ndarray, np.ndarray]:
        N = N.astype(float)
        return self.pm.power_w(N), self.pm.paper_batch(N)

    def inst_w(self, idx: np.ndarray, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.pm.profile.instance_power_w(batch, "paper"), dtype=float) \
            * np.ones(len(idx))


@dataclass
class _Ranges:
    """Per column: evaluated counts and exact watts (rows sorted, padded), the proven
    ``n_max``, and the lower-bound pieces ``W(N) >= kappa N`` on ``[a, c]`` inside it."""

    N: np.ndarray  # C x M counts (``_PAD`` after the last)
    W: np.ndarray  # C x M exact watts (inf padding)
    n_max: np.ndarray  # C
    piece_col: np.ndarray
    piece_a: np.ndarray
    piece_c: np.ndarray
    piece_kappa: np.ndarray
    points: int = 0  # counts evaluated exactly
    unproven_gaps: int = 0  # gaps the refinement left with a lower bound below the threshold


def _proven_ranges(oracle: Any, n0: np.ndarray, headroom: float, max_extra: int, *,
                   dense_to_cap: bool = False, rounds: int = 10, sub: int = 8) -> _Ranges:
    """Instance ranges ``[n0, n_max]`` outside which no count can lower a pool's watts.

    A count ``N`` can be dropped when some smaller count ``N' < N`` of the same candidate has
    no more exact watts: ``N'`` then also has fewer dollars and GPUs, so it is at least as good
    in every plan and under every limit. With ``W(N) = N * w(b(N))`` (``w`` the non-decreasing
    instance watts, ``b`` the operating batch), ``docs/formulation.md`` §5 proves:

    * ``W(N) >= N * w(0)`` (the power curve's floor), so every ``N > T = W_d / w(0)`` is
      dominated, with ``W_d`` the least watts of the densely evaluated counts;
    * for ``u < N < v``, with ``beta_v <= b(N')`` for all ``N' <= v`` and ``X_v = v beta_v``:
      ``b(N) >= min(s, X_v / N)``, hence on a piece ``[a, c]`` of the gap ``W(N) >= kappa N``
      with ``kappa = w(min(s, X_v / c))`` (``paper`` accounting's batch; with ``dense_to_cap``
      every count up to ``T`` is evaluated and no gap remains).

    Counts are evaluated densely over ``[n0, n0 + min(ceil(headroom n0), max_extra)]`` (all of
    ``[n0, T]`` with ``dense_to_cap``), then at ``n0 + step 2^j`` up to ``T``; a gap whose lower
    bound is below the least exact watts at or before its left end is bisected, ``rounds``
    times at most. ``n_max`` is the largest count not shown dominated (an evaluated count).
    """
    C = len(n0)
    n0 = np.asarray(n0, dtype=np.int64)
    cols = np.arange(C)
    n_hi = np.maximum(n0, np.minimum(np.ceil(n0 * (1.0 + headroom)).astype(np.int64),
                                     n0 + max_extra))
    off = np.arange(int((n_hi - n0).max()) + 1)
    grid = n0[:, None] + off[None, :]
    keep = grid <= n_hi[:, None]
    ci = np.broadcast_to(cols[:, None], grid.shape)[keep]
    Nd = grid[keep]
    Wd, _ = oracle.exact(ci, Nd, False)
    least = np.full(C, np.inf)
    np.minimum.at(least, ci, Wd)
    floor_w = oracle.inst_w(cols, np.zeros(C))
    with np.errstate(divide="ignore", invalid="ignore"):
        T = np.where(least <= 0, n_hi, np.where(floor_w > 0, np.floor(
            least / np.maximum(floor_w, 1e-300) * (1.0 + 1e-12)), _T_CAP))
    T = np.minimum(T, _T_CAP).astype(np.int64)
    col_l, N_l, W_l, B_l = [ci], [Nd], [Wd], [np.zeros(len(Nd))]
    extra_c: list[np.ndarray] = []
    extra_n: list[np.ndarray] = []
    if dense_to_cap:
        top = np.maximum(T, n_hi)
        width = int((top - n_hi).max())
        for lo in range(1, width + 1, 4096):
            g = n_hi[:, None] + np.arange(lo, min(lo + 4096, width + 1))[None, :]
            m = g <= top[:, None]
            extra_c.append(np.broadcast_to(cols[:, None], g.shape)[m])
            extra_n.append(g[m])
    else:
        step = n_hi - n0 + 1
        v = n0 + 2 * step
        while True:
            m = v < T
            if not m.any():
                break
            extra_c.append(cols[m])
            extra_n.append(v[m])
            v = n0 + 2 * (v - n0)
        m = T > n_hi
        extra_c.append(cols[m])
        extra_n.append(T[m])
    points = len(Nd)
    new_c = np.concatenate(extra_c) if extra_c else np.zeros(0, dtype=np.int64)
    new_n = np.concatenate(extra_n) if extra_n else np.zeros(0, dtype=np.int64)
    slots = oracle.slots
    k = np.arange(sub)
    for rnd in range(rounds + 1):
        if len(new_c):
            w, bf = oracle.exact(new_c, new_n, not dense_to_cap)
            col_l.append(new_c)
            N_l.append(new_n)
            W_l.append(w)
            B_l.append(bf)
            points += len(new_c)
        col, N, W, B = (np.concatenate(x) for x in (col_l, N_l, W_l, B_l))
        col_l, N_l, W_l, B_l = [col], [N], [W], [B]
        order = np.lexsort((N, col))
        col, N, W, B = col[order], N[order], W[order], B[order]
        start = np.searchsorted(col, cols)
        pos = np.arange(len(col)) - start[col]
        M = int(pos.max()) + 1
        N2 = np.full((C, M), _PAD, dtype=np.int64)
        W2 = np.full((C, M), np.inf)
        B2 = np.zeros((C, M))
        N2[col, pos], W2[col, pos], B2[col, pos] = N, W, B
        PM = np.minimum.accumulate(W2, axis=1)
        u, v = N2[:, :-1], N2[:, 1:]
        gi, gj = np.nonzero((v < _PAD) & (v - u >= 2))
        gu, gv = u[gi, gj], v[gi, gj]
        thr = PM[gi, gj]
        Xv = gv * B2[gi, gj + 1]
        L = gv - gu - 1
        S = np.minimum(sub, L)
        a = gu[:, None] + 1 + (k[None, :] * L[:, None]) // np.maximum(S[:, None], 1)
        c = gu[:, None] + ((k[None, :] + 1) * L[:, None]) // np.maximum(S[:, None], 1)
        pv = k[None, :] < S[:, None]
        blo = np.minimum(slots[gi][:, None], Xv[:, None] / np.maximum(c, 1))
        kappa = oracle.inst_w(np.repeat(gi, sub), blo.ravel()).reshape(blo.shape)
        unproven = (pv & (kappa * a < thr[:, None])).any(axis=1)
        if rnd == rounds or dense_to_cap or not unproven.any():
            break
        new_c = gi[unproven]
        new_n = (gu[unproven] + gv[unproven]) // 2
    prev = np.concatenate([np.full((C, 1), np.inf), PM[:, :-1]], axis=1)
    record = (W2 < prev) & (N2 < _PAD)
    n_max = np.where(record, N2, n0[:, None]).max(axis=1)
    if unproven.any():
        np.maximum.at(n_max, gi[unproven], gv[unproven])
    inside = gv <= n_max[gi]
    sel = pv & inside[:, None]
    return _Ranges(N2, W2, n_max, np.broadcast_to(gi[:, None], a.shape)[sel], a[sel], c[sel],
                   kappa[sel], points, int((unproven & inside).sum()))


def _pivot_lines(bps: list[int], ns: np.ndarray, ws: np.ndarray, pa: np.ndarray,
                 pc: np.ndarray, pk: np.ndarray) -> tuple[tuple[int, int, float, float], ...]:
    """Per segment ``[A, B]`` of breakpoints (evaluated counts), the line through the exact
    watts at its lower end (the lower of ``W(A)``, ``W(B)``), as steep as it can be while
    staying below every exact value and every lower-bound piece ``kappa N`` in the segment."""
    if len(bps) == 1:
        w = float(ws[np.searchsorted(ns, bps[0])])
        return ((bps[0], bps[0], w, 0.0),)
    out = []
    for A, B in zip(bps[:-1], bps[1:], strict=True):
        wa = float(ws[np.searchsorted(ns, A)])
        wb = float(ws[np.searchsorted(ns, B)])
        m = (ns >= A) & (ns <= B)
        xs, ys = [ns[m].astype(float)], [ws[m]]
        o = (pc >= A) & (pa <= B)
        if o.any():
            lo = np.maximum(pa[o], A).astype(float)
            hi = np.minimum(pc[o], B).astype(float)
            xs += [lo, hi]
            ys += [pk[o] * lo, pk[o] * hi]
        x, y = np.concatenate(xs), np.concatenate(ys)
        if wb <= wa:
            t = x < B
            beta = float(np.max((wb - y[t]) / (B - x[t])))
            alpha = wb - beta * B
        else:
            t = x > A
            beta = float(np.min((y[t] - wa) / (x[t] - A)))
            alpha = wa - beta * A
        out.append((int(A), int(B), float(alpha), beta))
    return tuple(out)


def under_segments(
    pts: list[int], exact: np.ndarray | list[float]
) -> tuple[tuple[int, int, float, float], ...]:
    """Per segment, a line below ``exact`` at every integer in it, exact at its lower end.

    ``exact[i]`` is the watts at ``pts[0] + i``.
    """
    ex = np.asarray(exact, dtype=float)
    ns = np.arange(pts[0], pts[0] + len(ex))
    empty = np.zeros(0)
    return _pivot_lines(list(pts), ns, ex, empty, empty, empty)


def _curve(n0: int, n_max: int, ns: np.ndarray, ws: np.ndarray, pa: np.ndarray, pc: np.ndarray,
           pk: np.ndarray, segments: int) -> dict[str, Any]:
    """Breakpoints, exact watts and model segments of one candidate from its proven range.

    A range of one count (every larger count is dominated: the usual case, each extra instance
    adding at least its idle watts) is that single exact point, without any linearisation.
    """
    if n_max == n0:
        w = float(ws[0])
        return {"n_points": (n0,), "exact_n": (n0,), "power_exact_w": (w,),
                "segs": ((n0, n0, w, 0.0),)}
    m = ns <= n_max
    ns, ws = ns[m], ws[m]
    targets = [n0 + round((n_max - n0) * q / segments) for q in range(segments + 1)]
    idx = np.clip(np.searchsorted(ns, targets), 0, len(ns) - 1)
    left = np.clip(idx - 1, 0, len(ns) - 1)
    pick = np.where(np.abs(ns[left] - targets) <= np.abs(ns[idx] - targets), left, idx)
    bps = sorted({int(x) for x in ns[pick]} | {n0, n_max, int(ns[int(np.argmin(ws))])})
    return {"n_points": tuple(bps), "exact_n": tuple(int(x) for x in ns),
            "power_exact_w": tuple(float(x) for x in ws),
            "segs": _pivot_lines(bps, ns, ws, pa, pc, pk)}


def _curves(rg: _Ranges, n0: np.ndarray, segments: int) -> list[dict[str, Any]]:
    """:func:`_curve` for every column of a :class:`_Ranges`."""
    order = np.argsort(rg.piece_col, kind="stable")
    pcol = rg.piece_col[order]
    pa, pc, pk = rg.piece_a[order], rg.piece_c[order], rg.piece_kappa[order]
    lo = np.searchsorted(pcol, np.arange(len(n0)), side="left")
    hi = np.searchsorted(pcol, np.arange(len(n0)), side="right")
    out = []
    for j in range(len(n0)):
        a, z = lo[j], hi[j]
        out.append(_curve(int(n0[j]), int(rg.n_max[j]), rg.N[j], rg.W[j], pa[a:z], pc[a:z],
                          pk[a:z], segments))
    return out


def exact_power_table(problem: Problem, c: Candidate) -> dict[int, float]:
    """Exact watts of candidate ``c`` at every count of its range (evaluated where missing)."""
    out = dict(zip(c.exact_n, c.power_exact_w, strict=True))
    missing = [n for n in range(c.n_min, c.n_max + 1) if n not in out]
    if missing:
        pm = pool_model((c.lo, c.hi, c.window), problem.profile(c.deployment), problem.workload,
                        problem.pool_settings(c.lo, c.hi))
        out.update(zip(missing, (float(x) for x in pm.power_w(np.asarray(missing))), strict=True))
    return out


def _check_service_monotone(prof: Any) -> None:
    """The range proof needs iteration times that never fall as the batch grows."""
    spec = getattr(prof, "spec", None)
    if spec is not None and (spec.per_seq_s < 0 or spec.base_iter_s < 0):
        raise FleetoptError(f"profile.{spec.name}",
                            "base_iter_s and per_seq_s must be >= 0 (an iteration cannot get "
                            "faster with more sequences)")


def build_candidates(
    problem: Problem,
    *,
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    max_extra: int = 32,
    prune: bool = True,
    workers: int | None = None,
    deadline: Deadline | None = None,
) -> CandidateSet:
    """Generate, size and prune the candidate pools of ``problem``.

    ``compress`` allows compress bands (windows ``b_m < b_k`` with ``b_k <= gamma b_m``, gamma =
    ``problem.compress_gamma`` or 2). ``segments`` (>= 1) sets the linear pieces per candidate
    whose watts can fall with more instances; ``headroom`` and ``max_extra`` the densely
    evaluated part of each range (the range itself extends as far as the proof needs).
    ``workers`` processes share the deployments (default 1; worker processes start with
    forkserver or spawn, never fork); the result does not depend on it. With a ``deadline``, building stops between batches once it has
    passed: arcs between a few spread boundaries come first (a small complete problem), and
    ``missing`` names the ranges left incomplete.
    """
    if segments < 1:
        raise FleetoptError("segments", f"must be >= 1, got {segments}")
    t0 = time.perf_counter()
    b = [0, *problem.candidate_boundaries(), problem.max_ctx]
    deployments = problem.deployments()
    if workers is None:
        # In-process by default. Workers start with forkserver or spawn, never fork (see
        # fleetopt.core.processes.process_context); measured on the 2-core machine, two such
        # workers save nothing on a 64-boundary, 21-deployment build (2,145 candidates: 1.7 s
        # in-process, 1.6 s with a warm forkserver, 2.9 s with spawn), a first pool pays about
        # 1 s to start its server, and a pool re-imports the caller's __main__.
        workers = 1
    stats = {"considered": 0, "empty": 0, "no_slot": 0, "slo_infeasible": 0, "kept": 0,
             "dominated": 0, "extended": 0, "range_points": 0, "unproven_gaps": 0,
             "monotone_fallback": 0, "screened": 0, "probed": 0}
    cands: list[Candidate] = []
    done: set[tuple[int, int]] = {(i, k) for k in range(1, len(b)) for i in range(k)}
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        from fleetopt.core.processes import process_context

        chunks = [deployments[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=process_context()) as ex:
            futs = [ex.submit(_candidates_for, problem, b, ch, compress, segments, headroom,
                              max_extra, True, deadline, prune) for ch in chunks]
            parts = [f.result() for f in futs]
        for part_c, part_s, part_done in parts:
            cands.extend(part_c)
            done &= part_done
            for key, v in part_s.items():
                stats[key] += v
    else:
        cands, part_s, done = _candidates_for(problem, b, deployments, compress, segments,
                                              headroom, max_extra, True, deadline, prune)
        stats.update(part_s)
    order = {d: i for i, d in enumerate(deployments)}
    cands.sort(key=lambda c: (c.k, order[c.deployment], -c.window, c.i))  # worker-independent
    stats["kept"] = len(cands)
    if prune:
        cands = prune_dominated(cands, problem)
        # the screened candidates were dominated too (never sized)
        stats["dominated"] = stats["kept"] - len(cands) + stats["screened"]
        stats["kept"] = len(cands)
    missing = tuple(sorted((i, k) for k in range(1, len(b)) for i in range(k)
                           if (i, k) not in done))
    return CandidateSet(b, cands, time.perf_counter() - t0, stats, missing)


_COARSE = 8  # ranges in the first pass over the boundaries (under a deadline)
_CHUNK_COLS = 512  # pools sized per family at most under a deadline (checked between them)
_FAMILY_COLS = 4096  # pools sized per family at most without one (larger families: fewer,
# longer numpy calls; measured 15-20 % faster on the bench_mip target than 512)


def _jobs(K: int, compress: bool = False, coarse_first: bool = True
          ) -> list[tuple[int, list[int], str]]:
    """``(k, lows, windows)`` in build order: first every arc between ``_COARSE + 1`` evenly
    spread boundaries at its own window (so a complete small problem, plans included, exists
    early), then those arcs' compress windows (``windows``: ``"own"``, ``"compress"`` or
    ``"all"``), then the rest; each pass from the top boundary down. Without ``coarse_first``
    (no deadline: nothing is gained by an early small problem) each upper edge once, with all
    its lower edges and windows, from the top down."""
    if not coarse_first:
        return [(k, list(range(k)), "all") for k in range(K, 0, -1)]
    coarse = sorted({round(K * j / min(K, _COARSE)) for j in range(min(K, _COARSE) + 1)})
    first = [(k, [i for i in coarse if i < k]) for k in reversed(coarse) if k > 0]
    cs = set(coarse)
    rest = [(k, [i for i in range(k) if not (k in cs and i in cs)]) for k in range(K, 0, -1)]
    head: list[tuple[int, list[int], str]] = [(k, lows, "own" if compress else "all")
                                              for k, lows in first]
    if compress:
        head += [(k, lows, "compress") for k, lows in first]
    return head + [(k, lows, "all") for k, lows in rest if lows]


def _candidates_for(
    problem: Problem, b: list[int], deployments: list[Deployment], compress: bool,
    segments: int, headroom: float, max_extra: int, batched: bool = True,
    deadline: Deadline | None = None, screen: bool = False,
) -> tuple[list[Candidate], dict[str, int], set[tuple[int, int]]]:
    """Size every candidate of the given deployments (one worker's share); with ``screen``,
    candidates proven dominated before they are sized are left out (:func:`_batch_family`).
    Without a deadline or compress windows, the pools of :data:`_MERGE_EDGES` consecutive
    upper edges (the top one alone first, so that the next ones start their searches from
    its answers) share one family, each pool at its own window: the same candidates, to
    rounding, in fewer and larger vectorised calls.

    Returns the candidates, counters and the arcs ``(i, k)`` whose candidates were all built
    (every arc unless the deadline passed).
    """
    K = len(b) - 1
    gamma = (problem.compress_gamma or 2.0) if compress else 1.0
    st = problem.settings
    wl = problem.workload
    tot = wl.total_tokens
    stats = {"considered": 0, "empty": 0, "no_slot": 0, "slo_infeasible": 0, "extended": 0,
             "range_points": 0, "unproven_gaps": 0, "monotone_fallback": 0, "screened": 0,
             "probed": 0}
    cands: list[Candidate] = []
    done: set[tuple[int, int]] = set()
    sizer = Sizer(problem)
    # requests with total length <= b[t], for O(1) "does (b_i, b_k] carry traffic?"
    live = wl.weights > 0
    traffic = [int(np.count_nonzero(live & (tot <= x))) for x in b]
    profiles = [(d, sizer.profile(d)) for d in deployments]
    for _, prof in profiles:
        _check_service_monotone(prof)
    memo = _Memo(K + 1, deployments)  # search starts and screening order (_batch_family)
    bounded = deadline is not None and deadline.bounded  # then coarse arcs first, small families
    # without a deadline or compress windows, the pools of consecutive upper edges share
    # families (fewer, larger vectorised calls; every pool at its own window)
    merge = not bounded and gamma == 1.0 and st.accounting == "physical" and batched
    pending: list[tuple[int, list[int], list[tuple[Deployment, Any]]]] = []

    flushed = False

    def flush() -> None:
        nonlocal flushed
        if not pending:
            return
        flushed = True
        ranges = [(i, k) for k, lows, _ in pending for i in lows]
        seen: dict[Deployment, Any] = {}
        for _, _, fam in pending:
            seen.update(fam)
        members = [(d, prof) for d, prof in profiles if d in seen]  # in deployment order
        size_ranges(ranges, max(b[k] for k, _, _ in pending), members, _FAMILY_COLS)
        pending.clear()

    def size_ranges(ranges: list[tuple[int, int]], win: int,
                    members: list[tuple[Deployment, Any]], cols: int) -> bool:
        """Size ``ranges`` on ``members`` in families of at most ``cols`` columns; False when
        the deadline passed between two of them (the rest not sized)."""
        step = max(1, cols // len(members))
        for c0 in range(0, len(ranges), step):
            if c0 and deadline is not None and deadline.expired():
                return False
            cands.extend(_batch_family(problem, sizer, b, ranges[c0:c0 + step], win, members,
                                       segments, headroom, max_extra, stats, memo, screen))
        return True
    for k, allowed, which in _jobs(K, gamma > 1, coarse_first=bounded):
        extra = [b[m] for m in range(1, k) if b[k] <= gamma * b[m] + 1e-9] if gamma > 1 else []
        windows = {"own": [b[k]], "compress": extra, "all": [b[k], *extra]}[which]
        complete = True
        for win in windows:
            if deadline is not None and deadline.expired():
                complete = False
                break
            family: list[tuple[Deployment, Any]] = []  # deployments that hold this window
            for d, prof in profiles:
                if win > prof.max_context:
                    continue
                slots = sizer.slots(d, win)
                for i in allowed:
                    if win <= b[i]:
                        continue  # the window must exceed the range's lower end
                    stats["considered"] += 1
                    if slots < 1:
                        stats["no_slot"] += 1
                    elif traffic[k] - traffic[i] <= 0:
                        # no sampled traffic: a coverage pool of one idle instance
                        stats["empty"] += 1
                        if win == b[k]:
                            cands.append(_coverage(problem, b, i, k, d, prof, sizer))
                if slots >= 1:
                    family.append((d, prof))
            lows = [i for i in allowed if win > b[i] and traffic[k] - traffic[i] > 0]
            if not lows or not family:
                continue
            if st.accounting == "physical" and batched:
                if merge:  # several upper edges' pools in one family (their own windows)
                    if pending and (len(pending) >= (_MERGE_EDGES if flushed else 1)
                                    or _group_cols([*pending, (k, lows, family)])
                                    > _FAMILY_COLS):
                        flush()
                    pending.append((k, lows, family))
                    continue
                if not size_ranges([(i, k) for i in lows], win, family,
                                   _CHUNK_COLS if bounded else _FAMILY_COLS):
                    complete = False
                    break
                continue
            for d, prof in family:
                for i in lows:
                    pm = sizer.model(b[i], b[k], win, d)
                    n_min = pm.min_instances()
                    if n_min is None:
                        stats["slo_infeasible"] += 1
                        # a narrower range (larger lo) may still be feasible; keep going
                        continue
                    n0 = np.array([n_min])
                    if pm.family is not None:
                        curve = _serve_curves(pm.family, np.array([0]), n0, headroom,
                                              max_extra, segments, stats)[0]
                    else:  # paper accounting: closed-form watts at every count
                        rg = _proven_ranges(_PaperOracle(pm), n0, headroom, max_extra,
                                            dense_to_cap=True)
                        _count(stats, rg, n0)
                        curve = _curves(rg, n0, segments)[0]
                    cands.append(Candidate(
                        i=i, k=k, lo=b[i], hi=b[k], window=win, deployment=d,
                        inventory_key=d.gpu, gpus_per_instance=prof.gpus_per_instance,
                        cost_per_instance_hr=prof.instance_cost_per_hr(st.accounting),
                        rate_rps=pm.rate_rps, compressed_share=pm.compressed_share, **curve,
                    ))
        if complete:
            if which != "own":  # an arc is complete once its compress windows are built too
                done.update((i, k) for i in allowed)
        else:
            break
    flush()
    return cands, stats, done


def _slotted(pb: ServeFamily) -> int:
    """Columns of a family that exist as candidates: a KV slot at the pool's window (a
    family over several upper edges has columns for deployments that hold no slot at some
    of their windows; those are counted as ``no_slot``)."""
    return int(np.count_nonzero(pb.slots >= 1))


#: upper edges whose pools share one family at most (:func:`_candidates_for`, no deadline;
#: on the bench_mip target 2 took 15 % less CPU time than 1, and 3 or 4 no less than 1: a search
#: then starts from an answer further up, and the calls grow past the cache)
_MERGE_EDGES = 2


def _group_cols(pending: list[tuple[int, list[int], list[tuple[Deployment, Any]]]]) -> int:
    """Columns of one family over the pending upper edges (ranges x deployments)."""
    deps = {d for _, _, fam in pending for d, _ in fam}
    return sum(len(lows) for _, lows, _ in pending) * len(deps)


#: multiples of ``n_min`` at which :func:`_serve_curves` checks that the watts do not fall
_MONOTONE_CHECK = (1.0, 1.1, 1.2, 1.35, 1.6)


def _serve_curves(fam: ServeFamily, cols: np.ndarray, n0: np.ndarray, headroom: float,
                  max_extra: int, segments: int, stats: dict[str, int]) -> list[dict[str, Any]]:
    """Curves of physical-accounting candidates (``docs/formulation.md`` section 5).

    The serving model's pool watts nearly always rise with the instance count (every instance
    adds its idle watts, and the pool's power above idle follows its work), and then every count
    above ``n_min`` is dominated and the candidate is the single exact point ``n_min``. That is
    checked on every candidate at ``n_min + 1``, at the multiples :data:`_MONOTONE_CHECK` of
    ``n_min`` and at ``2 n_min + 1`` (the watts can dip a few per cent some way above ``n_min``,
    where the operating point changes regime: dips seen lie at 1.1-1.3 ``n_min``); a candidate
    where any of them is below ``W(n_min)`` gets the assumption-free range instead: exact watts
    at every count up to ``T = W(n_min) / (gpus x idle)``, above which ``W(N) >= N gpus idle >
    W(n_min)`` (``candidate_stats["monotone_fallback"]`` counts them). The check is a sample,
    not a proof: a dip between the sampled counts would go unseen."""
    m = len(cols)
    pts = [np.maximum(np.ceil(f * n0), n0 + 1) for f in _MONOTONE_CHECK]
    pts.append(2 * n0 + 1)
    W = fam.power_w(np.concatenate([cols] * (len(pts) + 1)),
                    np.concatenate([n0, *pts]).astype(float))
    Wr = W.reshape(len(pts) + 1, m)
    w0 = Wr[0]
    mono = (Wr[1:] >= w0).all(axis=0)
    stats["range_points"] += (len(pts) + 1) * m
    out: list[dict[str, Any] | None] = [None] * m
    for j in np.flatnonzero(mono):
        w = float(w0[j])
        n = int(n0[j])
        out[j] = {"n_points": (n,), "exact_n": (n,), "power_exact_w": (w,),
                  "segs": ((n, n, w, 0.0),)}
    bad = np.flatnonzero(~mono)
    stats["monotone_fallback"] = stats.get("monotone_fallback", 0) + len(bad)
    if len(bad):
        rg = _proven_ranges(_ServeOracle(fam, cols[bad]), n0[bad], headroom, max_extra,
                            dense_to_cap=True)
        _count(stats, rg, n0[bad])
        for j, curve in zip(bad, _curves(rg, n0[bad], segments), strict=True):
            out[j] = curve
    return [c for c in out if c is not None]


def _count(stats: dict[str, int], rg: _Ranges, n0: np.ndarray) -> None:
    stats["extended"] += int((rg.n_max > n0).sum())
    stats["range_points"] += rg.points
    stats["unproven_gaps"] += rg.unproven_gaps


def prune_dominated(cands: list[Candidate], problem: Problem) -> list[Candidate]:
    """Drop candidates that another candidate of the same range and window beats in every plan.

    All comparisons use the MIP's own (piecewise-linear) watts, so pruning never changes the MIP
    optimum. Without fleet-wide limits the objective separates by pool, so per range and window
    only the best candidate survives. With limits (or the lexicographic objective), ``c'``
    dominates ``c`` of the same range and window, of ANY deployment, when swapping ``c`` (at
    any of its counts) for ``c'`` at its fewest instances can neither break a limit nor raise
    the objective: ``c'`` at ``n_min`` has no more model watts than ``c`` anywhere in its range
    and no more dollars than ``c`` at its fewest, and its GPUs pass :func:`_gpus_swap_ok` (with
    ``max_gpus``, no more GPUs than ``c`` at its fewest; drawing on an inventoried type, the
    same type as ``c`` and no more GPUs; on a type without inventory, nothing else).

    The relation compares figures rounded to 1e-9 (so that it is transitive); candidates that
    dominate each other (equal figures) keep the one earlier in the list, so the survivors are
    the same whatever order the pairs are compared in, and every dropped candidate is
    dominated by a survivor.
    """
    limited = Limits.of(problem).bounded
    groups: dict[tuple[int, int, int], list[int]] = {}
    for idx, c in enumerate(cands):
        groups.setdefault((c.i, c.k, c.window), []).append(idx)
    keep: list[int] = []
    if not limited and problem.objective in ("power", "cost"):
        pm = [c.model_min_w for c in cands]
        c0 = [c.cost_per_hr(c.n_min) for c in cands]
        for group in groups.values():
            if problem.objective == "power":
                keep.append(min(group, key=lambda j: (pm[j], c0[j], j)))
            else:
                keep.append(min(group, key=lambda j: (c0[j], pm[j], j)))
        return [cands[j] for j in sorted(keep)]
    # per candidate, once: model watts at n_min, least model watts, $/hr and GPUs at n_min
    p0 = np.array([round(c.linearized_power_w(c.n_min), 9) for c in cands])
    pmin = np.array([round(c.model_min_w, 9) for c in cands])
    cost0 = np.array([round(c.cost_per_hr(c.n_min), 9) for c in cands])
    gpus0 = np.array([c.gpus(c.n_min) for c in cands])
    inventoried = {g for g, _ in problem.inventory}
    keys = {g: t for t, g in enumerate(sorted({c.inventory_key for c in cands}))}
    key = np.array([keys[c.inventory_key] for c in cands])
    inv = np.array([c.inventory_key in inventoried for c in cands], dtype=bool)
    for group in groups.values():
        g = np.asarray(group)
        # weak[o, j]: swapping j for o is never worse (transitive)
        weak = ((p0[g][:, None] <= pmin[g][None, :]) & (cost0[g][:, None] <= cost0[g][None, :])
                & _gpus_swap_ok(gpus0[g], key[g], inv[g], problem.max_gpus is not None))
        np.fill_diagonal(weak, False)
        # o removes j: o is weakly better and j is not, or both are and o comes first
        earlier = g[:, None] < g[None, :]
        removes = weak & (~weak.T | earlier)
        keep.extend(g[~removes.any(axis=0)].tolist())
    return [cands[j] for j in sorted(keep)]


def _gpus_swap_ok(gpus0: np.ndarray, key: np.ndarray, inventoried: np.ndarray,
                  max_gpus: bool) -> np.ndarray:
    """``ok[o, j]``: putting ``o`` at its fewest instances (``gpus0[o]`` GPUs of type
    ``key[o]``) in place of ``j`` at any of its counts raises no GPU row: the GPU cap (when
    ``max_gpus``) needs ``gpus0[o] <= gpus0[j]``; an inventory row on ``o``'s type
    (``inventoried[o]``) needs ``j`` of the same type and ``gpus0[o] <= gpus0[j]`` (the row of
    ``j``'s type only loses GPUs); a type without inventory has no row."""
    fewer = gpus0[:, None] <= gpus0[None, :]
    same = key[:, None] == key[None, :]
    ok = ~inventoried[:, None] | (same & fewer)
    return ok & fewer if max_gpus else ok


class _Memo:
    """Per (lower edge, deployment): the last ``(n_min, lower bound)`` sized (at another upper
    edge or window; ``n_min = -1``: none met the tests; :data:`_ABSENT`: none sized yet) and the
    last ratio of watts to floor (NaN: none). Only where searches start and the screening
    order come from it, never an answer."""

    def __init__(self, lows: int, deployments: list[Deployment]) -> None:
        self.index = {d: j for j, d in enumerate(deployments)}
        self.n = np.full((lows, len(deployments)), _ABSENT, dtype=np.int64)
        self.lb = np.ones((lows, len(deployments)), dtype=np.int64)
        self.ratio = np.full((lows, len(deployments)), math.nan)


#: ``_Memo.n`` where nothing was sized yet
_ABSENT = -3


def _batch_family(problem: Problem, sizer: Sizer, b: list[int], ranges: list[tuple[int, int]],
                  win: int, family: list[tuple[Deployment, Any]], segments: int, headroom: float,
                  max_extra: int, stats: dict[str, int], memo: _Memo | None = None,
                  screen: bool = False) -> list[Candidate]:
    """Size the candidates ``(b_i, b_k]``, ``(i, k)`` in ``ranges``, of every deployment in
    ``family`` at once (:meth:`Sizer.families`): at window ``win`` when every range has the
    same upper edge, else each at its own window ``b_k`` (``win`` their largest).

    ``memo`` holds, per lower edge and deployment, the last ``(n_min, lower bound)`` sized (at
    another upper edge or window); it only picks where each search starts (``lower bound x
    n_min / its lower bound``; -1 where none met the tests), never its answer
    (:meth:`ServeFamily.min_instances`), and is updated here.

    ``screen`` (candidates that :func:`prune_dominated` would drop need not be sized): per
    range, the :data:`_SCREEN_FIRST` deployments expected to draw the least are sized first
    (their watts floors, :meth:`ServeFamily.watts_floor`, proven lower bounds on a pool's watts
    at every count from its lower-bound count up, times the ratio of watts to floor last seen
    for that lower edge and deployment in ``memo``: an order only); a candidate whose floors,
    dollars and GPUs at its lower-bound count are beaten by one of them
    (:func:`_screen_counts`) is dominated at any count and is not sized; one that would be
    dominated from some count ``N_t`` up is tested once at ``N_t - 1``, and if it fails there
    its fewest instances are at least ``N_t``: dominated too, and if it passes that count is
    its sizing's first known pass. The rest are sized as usual. Every candidate dropped so is
    dominated in exact watts by a sized one, so the MIP optimum is unchanged
    (``docs/formulation.md`` section 5)."""
    st = problem.settings
    out = []
    lows = [i for i, _ in ranges]
    ks = [k for _, k in ranges]
    one = len(set(ks)) == 1
    for members, pb in sizer.families([b[i] for i in lows], max(b[k] for k in ks), win,
                                      [d for d, _ in family], sized_only=True, defer=screen,
                                      his=None if one else [b[k] for k in ks]):
        guess = np.zeros(pb.ncols, dtype=np.int64)
        feas = np.flatnonzero(pb.feasible)
        lb = np.zeros(pb.ncols, dtype=np.int64)
        lb[feas] = pb.lower_bound(feas)
        if memo is not None:  # (lower edge, deployment) of each feasible column
            at = (np.asarray(lows, dtype=np.int64)[pb.lc[feas]],
                  np.array([memo.index[d] for d, _ in members], dtype=np.int64)[pb.dep[feas]])
            got, got_lb = memo.n[at], memo.lb[at]
            guess[feas] = np.where(got == _ABSENT, 0, np.where(
                got > 0, np.round(lb[feas] * got / got_lb), -1)).astype(np.int64)
        cost_i = np.array([prof.instance_cost_per_hr(st.accounting) for _, prof in members],
                          dtype=float)[pb.dep]
        if screen and len(feas):
            seen = memo.ratio[at] if memo is not None else np.full(len(feas), math.nan)
            n_min, curves, ratio = _screened_sizing(problem, pb, members, feas, lb, guess,
                                                    cost_i, seen, headroom, max_extra,
                                                    segments, stats)
            if memo is not None and ratio:
                rc = np.fromiter(ratio, dtype=np.int64, count=len(ratio))
                r_at = np.searchsorted(feas, rc)
                memo.ratio[at[0][r_at], at[1][r_at]] = np.fromiter(ratio.values(), dtype=float,
                                                                    count=len(ratio))
        else:
            n_min = np.full(pb.ncols, -1, dtype=np.int64)
            curves = {}
            stats["slo_infeasible"] += _slotted(pb) - len(feas)  # no count can meet the tests
            _size(pb, feas, guess, n_min, curves, headroom, max_extra, segments, stats)
        if memo is not None:
            upd = n_min[feas] != _UNSIZED
            memo.n[at[0][upd], at[1][upd]] = n_min[feas][upd]
            memo.lb[at[0][upd], at[1][upd]] = lb[feas][upd]
        for col in sorted(curves):
            d, prof = members[int(pb.dep[col])]
            i, k = ranges[int(pb.lc[col])]
            out.append(Candidate(
                i=i, k=k, lo=b[i], hi=b[k], window=win if one else b[k], deployment=d,
                inventory_key=d.gpu,
                gpus_per_instance=prof.gpus_per_instance, cost_per_instance_hr=float(cost_i[col]),
                rate_rps=float(pb.rate_rps[col]), compressed_share=float(pb.compressed_share[col]),
                **curves[col],
            ))
    return out


#: deployments per range sized before the others are screened against them (``_batch_family``;
#: on the bench_mip target 4 left the fewest to size and test: 1 screens too few, since the
#: dollars and GPU conditions need a sized pool no dearer than the one dropped)
_SCREEN_FIRST = 4
#: ``n_min`` of a column left unsized by the screen
_UNSIZED = -2


def _screened_sizing(problem: Problem, pb: ServeFamily, members: list[tuple[Deployment, Any]],
                     feas: np.ndarray, lb: np.ndarray, guess: np.ndarray, cost_i: np.ndarray,
                     seen: np.ndarray, headroom: float, max_extra: int, segments: int,
                     stats: dict[str, int]
                     ) -> tuple[np.ndarray, dict[int, dict[str, Any]], dict[int, float]]:
    """The screened sizing of :func:`_batch_family`: ``(n_min, curves, ratio)`` with ``n_min``
    per column (``-1``: no count meets the tests, :data:`_UNSIZED`: dropped as dominated
    unsized), the curves of the sized columns and their watts over their floors (``seen``:
    those ratios from before, per feasible column, NaN where none: the sizing order)."""
    n_min = np.full(pb.ncols, -1, dtype=np.int64)
    curves: dict[int, dict[str, Any]] = {}
    stats["slo_infeasible"] += _slotted(pb) - len(feas)  # no count can meet the tests
    Ns, L = pb.watts_floor(feas, lb[feas])  # row r: column feas[r] (feas is sorted)
    gpi = pb.gpus.astype(np.int64)
    inventoried = {g for g, _ in problem.inventory}
    gpu_of = [d.gpu for d, _ in members]
    inv = np.array([g in inventoried for g in gpu_of], dtype=bool)[pb.dep]
    key = np.unique(gpu_of, return_inverse=True)[1][pb.dep]
    limited = Limits.of(problem).bounded or problem.objective not in ("power", "cost")
    by_cost = problem.objective == "cost" and not limited

    def size(cols: np.ndarray, g: np.ndarray) -> None:
        _size(pb, cols, g, n_min, curves, headroom, max_extra, segments, stats)

    # phase 1: per lower edge, the deployments expected to draw the least
    fill = float(np.nanmedian(seen)) if np.isfinite(seen).any() else 1.0
    order = np.lexsort((L[:, 0] * np.where(np.isfinite(seen), seen, fill), pb.lc[feas]))
    lcs = pb.lc[feas][order]
    rank = np.arange(len(order)) - np.searchsorted(lcs, lcs, side="left")
    first = np.zeros(len(feas), dtype=bool)
    first[order[rank < _SCREEN_FIRST]] = True
    size(feas[first], guess)
    rest = feas[~first]
    if not len(rest):
        return n_min, curves, _ratios(curves, L, feas)
    # the sized candidates' figures at their fewest instances
    sized = np.array(sorted(curves), dtype=np.int64)
    p0 = np.array([_segs_at(curves[c]["segs"], int(n_min[c])) for c in sized])
    pmin = np.array([_segs_min(curves[c]["segs"]) for c in sized])
    cost0 = cost_i[sized] * n_min[sized]
    gpus0 = gpi[sized] * n_min[sized]
    rl = np.searchsorted(feas, rest)
    n_t = _screen_counts(pb, rest, sized, Ns[rl], L[rl], lb[rest], p0, pmin, cost0, gpus0,
                         cost_i, gpi, inv, key, limited, by_cost, problem.max_gpus is not None)
    drop = n_t <= lb[rest]
    stats["screened"] += int(drop.sum())
    n_min[rest[drop]] = _UNSIZED
    probe = ~drop & (n_t < np.iinfo(np.int64).max)
    known = np.zeros(pb.ncols, dtype=np.int64)
    if probe.any():
        # one test at n_t - 1: failing it puts the fewest instances at n_t or more (dominated)
        pc = rest[probe]
        stats["probed"] += len(pc)
        passed = pb.slo_ok(pc, (n_t[probe] - 1).astype(float))
        fail = pc[~passed]
        stats["screened"] += len(fail)
        n_min[fail] = _UNSIZED
        known[pc[passed]] = n_t[probe][passed] - 1  # the sizing starts from this pass
    left = rest[n_min[rest] != _UNSIZED]
    if len(left):
        _size(pb, left, guess, n_min, curves, headroom, max_extra, segments, stats, known)
    return n_min, curves, _ratios(curves, L, feas)


def _size(pb: ServeFamily, cols: np.ndarray, guess: np.ndarray, n_min: np.ndarray,
          curves: dict[int, dict[str, Any]], headroom: float, max_extra: int, segments: int,
          stats: dict[str, int], passes: np.ndarray | None = None) -> None:
    """The fewest instances of the columns ``cols`` (into ``n_min``, -1: none) and the curves
    of those that have some (into ``curves``); ``passes``: a count per column known to pass
    (0: none; :meth:`ServeFamily.min_instances`)."""
    got = pb.min_instances(guess=guess, only=cols, passes=passes)
    ok = got[cols] >= 0
    stats["slo_infeasible"] += int((~ok).sum())
    n_min[cols] = got[cols]
    good = cols[ok]
    if len(good):
        curves.update(zip(good.tolist(), _serve_curves(pb, good, got[good], headroom,
                                                       max_extra, segments, stats),
                          strict=True))


def _ratios(curves: dict[int, dict[str, Any]], L: np.ndarray, feas: np.ndarray
            ) -> dict[int, float]:
    """Watts at the fewest instances over the floor at the lower-bound count, per column
    (``L``'s rows are the sorted columns ``feas``)."""
    rows = np.searchsorted(feas, np.fromiter(curves, dtype=np.int64, count=len(curves)))
    return {c: v["power_exact_w"][0] / max(float(L[r, 0]), 1e-300)
            for (c, v), r in zip(curves.items(), rows, strict=True)}


def _screen_counts(pb: ServeFamily, rest: np.ndarray, sized: np.ndarray, Ns: np.ndarray,
                   L: np.ndarray, lb: np.ndarray, p0: np.ndarray, pmin: np.ndarray,
                   cost0: np.ndarray, gpus0: np.ndarray, cost_i: np.ndarray, gpi: np.ndarray,
                   inv: np.ndarray, key: np.ndarray, limited: bool, by_cost: bool,
                   max_gpus: bool) -> np.ndarray:
    """Per unsized column of ``rest``: the least count ``n_t`` from which a sized candidate of
    its range (``sized``) dominates it in every plan, whatever its own count (int64 max: none).

    With fleet-wide limits (:func:`prune_dominated`'s relation): ``o`` dominates ``j`` at ``j``'s
    fewest instances ``n`` when ``o``'s model watts at its own fewest are below ``j``'s floor at
    ``n`` (strictly: then ``j`` cannot dominate ``o``), ``o``'s dollars are at most ``n`` times
    ``j``'s per instance and its GPUs pass :func:`_gpus_swap_ok` against ``n`` of ``j``'s. Without
    limits only the best of a range survives: ``j``'s floor above the least model watts (by
    power), or its dollars above the least dollars (by cost). Each condition holds from some
    count up, so the least count where all do is computed per pair and the least over ``o``
    taken."""
    big = np.iinfo(np.int64).max
    out = np.full(len(rest), big, dtype=np.int64)
    lc_r, lc_s = pb.lc[rest], pb.lc[sized]
    # every (unsized r, sized o) pair of one range
    so_order = np.argsort(lc_s, kind="stable")
    lcs = lc_s[so_order]
    lo_i = np.searchsorted(lcs, lc_r, side="left")
    cnt = np.searchsorted(lcs, lc_r, side="right") - lo_i
    r_of = np.repeat(np.arange(len(rest)), cnt)
    if not len(r_of):
        return out
    o_of = so_order[np.repeat(lo_i, cnt) + (np.arange(len(r_of)) - np.repeat(np.cumsum(cnt) - cnt,
                                                                           cnt))]
    j_of = rest[r_of]
    if by_cost:  # dollars strictly above the least (by a margin that survives rounding)
        least = np.full(len(rest), np.inf)
        np.minimum.at(least, r_of, cost0[o_of])
        has = np.isfinite(least)
        n_c = np.floor(least[has] / cost_i[rest[has]] + 1e-6) + 1.0
        out[has] = np.maximum(n_c, lb[has]).astype(np.int64)
        return out
    if limited:
        thr = p0[o_of]
    else:  # the least model watts of the range
        least = np.full(len(rest), np.inf)
        np.minimum.at(least, r_of, pmin[o_of])
        thr = least[r_of]
    # the least grid count whose floor exceeds the threshold (strictly)
    above = L[r_of] > thr[:, None]
    anyv = above.any(axis=1)
    idx = np.argmax(above, axis=1)
    n_w = np.where(anyv, np.ceil(Ns[r_of, idx] - 1e-9), np.inf)
    if limited:
        # the least n with round(n x dollars per instance, 9) >= round(o's dollars, 9), as
        # prune_dominated compares them; GPUs are whole numbers
        c0 = cost0[o_of]
        ci = cost_i[j_of]
        n_c = np.maximum(np.ceil(c0 / ci - 1e-9), 1.0)
        n_c = np.where(np.round(n_c * ci, 9) >= np.round(c0, 9), n_c, n_c + 1.0)
        g_need = (-(-gpus0[o_of] // gpi[j_of])).astype(float)
        so = sized[o_of]
        ok_key = ~inv[so] | (key[so] == key[j_of])
        n_g = np.where(inv[so] | max_gpus, g_need, 0.0)
        n_g = np.where(ok_key, n_g, np.inf)
        n_w = np.maximum.reduce([n_w, n_c, n_g])
    least_n = np.full(len(rest), np.inf)
    np.minimum.at(least_n, r_of, n_w)
    fin = np.isfinite(least_n)
    out[fin] = np.maximum(least_n[fin], lb[fin]).astype(np.int64)
    return out


def _coverage(problem: Problem, b: list[int], i: int, k: int, d: Deployment, prof: Any,
              sizer: Sizer | None = None) -> Candidate:
    """A pool over a range with no sampled requests: one instance, so the range is served."""
    acct = problem.settings.accounting
    ph = sizer.physics(d) if sizer is not None and acct == "physical" else None
    w1 = idle_instance_w(prof, problem.settings, ph)
    return Candidate(
        i=i, k=k, lo=b[i], hi=b[k], window=b[k], deployment=d, inventory_key=d.gpu,
        gpus_per_instance=prof.gpus_per_instance, cost_per_instance_hr=prof.instance_cost_per_hr(acct),
        rate_rps=0.0, compressed_share=0.0, n_points=(1,), exact_n=(1,), power_exact_w=(w1,),
        segs=((1, 1, w1, 0.0),),
    )
