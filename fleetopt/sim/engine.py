"""The event loop: pools of instances with KV slots, chunked prefill and continuous batching.

Mechanism (``docs/simulation.md``):

* each instance has ``slots`` KV slots; a request holds one from admission to its last token;
* a pool keeps ONE FCFS queue; an arriving request goes straight to an instance when the queue
  is empty and some instance has a free slot (``least_loaded``: fewest sequences in flight;
  ``round_robin``: the next instance in turn with a free slot), otherwise it joins the queue;
  when a slot frees, the head of the queue is admitted on that instance;
* on admission a request prefills for ``prefill(l_in, n, Lbar)`` seconds at the instance's
  batch ``n`` (sequences in flight, itself included) and mean context ``Lbar`` at that moment;
  its first token leaves at the end of prefill (TTFT = wait + prefill);
* then it decodes ``l_out`` tokens: every decoding sequence advances one token per iteration
  and one iteration takes ``decode(n, Lbar)`` with ``n`` the sequences in flight (prefilling
  ones included: their chunks ride in the same iterations) and ``Lbar`` their mean context.

Event-driven: between two events of an instance its batch is fixed, so its cumulative
iteration count ``K`` grows at ``1 / t_iter``; a sequence that started decoding at ``K0``
finishes at ``K = K0 + l_out``. Each instance keeps a heap of its sequences' finishing ``K``
and has at most one live completion event in the global heap (older ones are invalidated
lazily by a per-instance version number). Iteration time is re-evaluated at every event of
the instance (context drift between events is ignored).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DISPATCH_POLICIES", "EngineOutput", "EnginePool", "run"]

# event kinds (ties at equal times resolve in this order)
_SNAP, _PREFILL_END, _COMPLETE = 0, 1, 2
DISPATCH_POLICIES = ("least_loaded", "round_robin")


@dataclass(frozen=True)
class EnginePool:
    """What the event loop needs about one pool."""

    instances: int
    slots: int
    decode: Callable[[float, float], float]
    prefill: Callable[[float, float, float], float]
    power_w: Sequence[float]  # instance watts at batch 0..slots


@dataclass
class EngineOutput:
    """Per-request times and per-instance integrals over the measurement window."""

    admit_s: NDArray[np.float64]
    first_token_s: NDArray[np.float64]
    done_s: NDArray[np.float64]
    instance: NDArray[np.int64]
    energy_j: NDArray[np.float64]  # per instance, within [t0, t1]
    tokens: NDArray[np.float64]  # output tokens generated per instance within [t0, t1]
    batch_s: NDArray[np.float64]  # integral of sequences in flight per instance within [t0, t1]
    events: int
    snap_s: NDArray[np.float64] | None = None  # times of evenly spaced snapshots over [t0, t1]
    snap_energy_j: NDArray[np.float64] | None = None  # cumulative energy per (snapshot, instance)


def run(
    arrival_s: Sequence[float] | NDArray[Any],
    input_tokens: Sequence[int] | NDArray[Any],
    output_tokens: Sequence[int] | NDArray[Any],
    pool_of: Sequence[int] | NDArray[Any],
    pools: Sequence[EnginePool],
    window_s: tuple[float, float],
    dispatch: str = "least_loaded",
    snapshots: int = 2,
) -> EngineOutput:
    """Simulate requests (sorted by arrival) through ``pools`` until every one has finished."""
    if dispatch not in DISPATCH_POLICIES:
        raise ValueError(f"dispatch must be one of {DISPATCH_POLICIES}, got {dispatch!r}")
    rr = dispatch == "round_robin"
    heappush, heappop = heapq.heappush, heapq.heappop
    arr = [float(x) for x in arrival_s]
    lin = [int(x) for x in input_tokens]
    lout = [int(x) for x in output_tokens]
    pof = [int(x) for x in pool_of]
    nreq = len(arr)

    # --- instances (global index), grouped by pool
    first: list[int] = []
    n_inst = 0
    for p in pools:
        first.append(n_inst)
        n_inst += p.instances
    DEC: list[Callable[[float, float], float]] = []
    PRE: list[Callable[[float, float, float], float]] = []
    PW: list[Sequence[float]] = []
    for p in pools:
        pw = [float(x) for x in p.power_w]
        for _ in range(p.instances):
            DEC.append(p.decode)
            PRE.append(p.prefill)
            PW.append(pw)
    K = [0.0] * n_inst  # cumulative iterations (virtual clock)
    TL = [0.0] * n_inst  # time of last advance
    TI = [0.0] * n_inst  # seconds per iteration since TL (valid when ND > 0)
    NF = [0] * n_inst  # sequences in flight (slot holders)
    ND = [0] * n_inst  # of which decoding
    COFF = [0.0] * n_inst  # sum over decoding seqs of (l_in - K0): their context = COFF + ND*K
    PREL = [0.0] * n_inst  # sum of prompt lengths of prefilling sequences
    DH: list[list[tuple[float, int]]] = [[] for _ in range(n_inst)]  # (K at finish, request)
    VER = [0] * n_inst
    EN = [0.0] * n_inst  # cumulative joules
    TK = [0.0] * n_inst  # cumulative output tokens
    BS = [0.0] * n_inst  # cumulative batch-seconds

    # --- per pool dispatch state
    queues: list[deque[int]] = [deque() for _ in pools]
    slots = [p.slots for p in pools]
    # least loaded: buckets[pool][level] = instances with NF == level; POS = index in bucket
    buckets = [[list(range(first[k], first[k] + p.instances))] + [[] for _ in range(p.slots)]
               for k, p in enumerate(pools)]
    POS = [0] * n_inst
    for b in buckets:
        for j, i in enumerate(b[0]):
            POS[i] = j
    minlvl = [0 if p.instances > 0 else p.slots for p in pools]
    rrptr = [0] * len(pools)
    IPOOL = [k for k, p in enumerate(pools) for _ in range(p.instances)]

    admit = [0.0] * nreq
    ftok = [0.0] * nreq
    done = [0.0] * nreq
    where = [-1] * nreq

    heap: list[tuple[float, int, int, int]] = []
    t0, t1 = window_s
    n_snap = max(2, int(snapshots))
    snap_t = [t0 + (t1 - t0) * j / (n_snap - 1) for j in range(n_snap)]
    for j, ts in enumerate(snap_t):
        heappush(heap, (ts, _SNAP, 0, j))
    snaps: list[tuple[list[float], list[float], list[float]]] = []
    inf = float("inf")
    events = 0

    def advance(i: int, t: float) -> None:
        dt = t - TL[i]
        if dt > 0.0:
            nf = NF[i]
            EN[i] += PW[i][nf] * dt
            BS[i] += nf * dt
            nd = ND[i]
            if nd:
                dk = dt / TI[i]
                K[i] += dk
                TK[i] += nd * dk
            TL[i] = t

    def reschedule(i: int, t: float) -> None:
        VER[i] += 1
        nd = ND[i]
        if nd:
            nf = NF[i]
            k = K[i]
            ti = DEC[i](nf, (COFF[i] + nd * k + PREL[i]) / nf)
            TI[i] = ti
            heappush(heap, (t + (DH[i][0][0] - k) * ti, _COMPLETE, i, VER[i]))

    def start(i: int, r: int, t: float) -> None:
        """Admit request ``r`` on instance ``i`` (already advanced to ``t``)."""
        nf = NF[i] + 1
        NF[i] = nf
        li = lin[r]
        PREL[i] += li
        ctx = (COFF[i] + ND[i] * K[i] + PREL[i]) / nf
        admit[r] = t
        where[r] = i
        heappush(heap, (t + PRE[i](li, nf, ctx), _PREFILL_END, i, r))

    def move(i: int, old: int, new: int) -> None:
        """Least-loaded bookkeeping: instance ``i`` goes from load ``old`` to ``new``."""
        b = buckets[IPOOL[i]]
        lst = b[old]
        j = POS[i]
        last = lst.pop()
        if last != i:
            lst[j] = last
            POS[last] = j
        dst = b[new]
        POS[i] = len(dst)
        dst.append(i)

    ai = 0
    while True:
        ta = arr[ai] if ai < nreq else inf
        if heap and heap[0][0] <= ta:
            t, kind, i, x = heappop(heap)
            events += 1
            if kind == _COMPLETE:
                if x != VER[i]:
                    continue
                advance(i, t)
                dh = DH[i]
                if K[i] < dh[0][0]:
                    K[i] = dh[0][0]
                kk = K[i] + 1e-7
                freed = 0
                while dh and dh[0][0] <= kk:
                    kf, r = heappop(dh)
                    done[r] = t
                    COFF[i] -= lin[r] - (kf - lout[r])
                    freed += 1
                ND[i] -= freed
                NF[i] -= freed
                if not ND[i]:
                    COFF[i] = 0.0  # clear rounding residue
                pk = IPOOL[i]
                q = queues[pk]
                admitted = 0
                while q and admitted < freed:
                    start(i, q.popleft(), t)
                    admitted += 1
                if admitted < freed and not rr:
                    old = NF[i] + freed - admitted
                    move(i, old, NF[i])
                    if NF[i] < minlvl[pk]:
                        minlvl[pk] = NF[i]
                reschedule(i, t)
            elif kind == _PREFILL_END:
                advance(i, t)
                r = x
                ftok[r] = t
                li = lin[r]
                PREL[i] -= li
                k = K[i]
                COFF[i] += li - k
                ND[i] += 1
                heappush(DH[i], (k + lout[r], r))
                reschedule(i, t)
            else:  # snapshot of the window integrals
                for j in range(n_inst):
                    advance(j, t)
                snaps.append((EN[:], TK[:], BS[:]))
            continue
        if ai >= nreq:
            break
        # arrival
        r = ai
        ai += 1
        events += 1
        pk = pof[r]
        q = queues[pk]
        if q:
            q.append(r)
            continue
        s = slots[pk]
        if rr:
            f = first[pk]
            n = pools[pk].instances
            i = -1
            for step in range(n):
                j = f + (rrptr[pk] + step) % n
                if NF[j] < s:
                    i = j
                    rrptr[pk] = (rrptr[pk] + step + 1) % n
                    break
            if i < 0:
                q.append(r)
                continue
        else:
            lv = minlvl[pk]
            if lv >= s:
                q.append(r)
                continue
            i = buckets[pk][lv][-1]
            move(i, lv, lv + 1)
            if not buckets[pk][lv]:
                b = buckets[pk]
                while lv < s and not b[lv]:
                    lv += 1
                minlvl[pk] = lv
        advance(i, ta)
        start(i, r, ta)
        reschedule(i, ta)

    # fix minlvl for pools whose lowest bucket emptied through admissions from the queue is
    # not needed: queue admissions keep NF unchanged on the freeing instance.
    while len(snaps) < n_snap:  # window beyond the last event: close it at its own time
        for j in range(n_inst):
            advance(j, max(snap_t[len(snaps)], TL[j]))
        snaps.append((EN[:], TK[:], BS[:]))
    (e0, k0, b0), (e1, k1, b1) = snaps[0], snaps[-1]
    return EngineOutput(
        admit_s=np.asarray(admit), first_token_s=np.asarray(ftok), done_s=np.asarray(done),
        instance=np.asarray(where, dtype=np.int64),
        energy_j=np.asarray(e1) - np.asarray(e0), tokens=np.asarray(k1) - np.asarray(k0),
        batch_s=np.asarray(b1) - np.asarray(b0), events=events,
        snap_s=np.asarray(snap_t), snap_energy_j=np.asarray([sn[0] for sn in snaps]),
    )
