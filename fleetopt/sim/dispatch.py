"""Dispatch across a pool's instances: the pool's router queue and its policies.

Each pool keeps ONE FCFS router queue. An arriving request, if the router queue is empty, goes
at once to the best instance, by the policy, among those whose next iteration would start it
(:meth:`InstanceScheduler.can_take`): a sequence slot (running + waiting < ``max_seqs``), KV room
for its first chunk beyond the requests already waiting there (paged: the blocks of
``min(prompt, token_budget)`` tokens; reserved: a free slot), and token budget left after the
decoders, the prefill in progress and the prompts already waiting. If none can, or the router
queue is not empty (FCFS: no overtaking), it joins the router queue. Whenever an instance's
iteration completes, the router queue's head is handed to that instance, repeatedly, as long as
it can take it (only that instance's state changed, so no other instance became able).

Policies (ties go to the lowest instance index):

* ``least_outstanding_tokens`` (default): fewest prompt + output tokens still to be processed
  on the instance (its waiting and running requests; a preemption adds the recompute back);
* ``least_loaded``: fewest requests in flight on the instance (waiting + running);
* ``round_robin``: the eligible instance next in cyclic order after the last one chosen.

With ``max_seqs = 1`` an instance can start a request only when it is empty, so the pool is a
c-server FCFS queue (M/G/c under Poisson arrivals): the closed-form check of the engine.
Selection scans the pool's instances: O(instances) per arrival, O(1) per iteration end.
"""

from __future__ import annotations

from collections import deque
from operator import attrgetter

from fleetopt.sim.scheduler import InstanceScheduler, RequestState, Window

__all__ = ["POLICIES", "Router"]

POLICIES = ("least_outstanding_tokens", "least_loaded", "round_robin")
_OUTSTANDING = attrgetter("outstanding")
_IN_FLIGHT = attrgetter("insys_n")


class Router:
    """The router queue and dispatch policy of one pool."""

    __slots__ = ("pool", "insts", "policy", "queue", "rr_next", "paged", "B", "budget", "st",
                 "win", "q_t", "w_queue_s", "dispatched")

    def __init__(self, pool: int, insts: list[InstanceScheduler], policy: str, *, paged: bool,
                 block_tokens: int, token_budget: int, state: RequestState,
                 window: Window) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.pool = pool
        self.insts = insts
        self.policy = policy
        self.queue: deque[int] = deque()
        self.rr_next = 0  # round robin: position to start the next search from
        self.paged = paged
        self.B = block_tokens
        self.budget = token_budget
        self.st = state
        self.win = window
        self.q_t = float("-inf")
        self.w_queue_s = 0.0  # integral of the router queue's length over the window
        self.dispatched = 0

    def units(self, r: int) -> int:
        """KV units the first chunk of request ``r`` needs at least."""
        if not self.paged:
            return 1
        p = self.st.prompt[r]
        c = p if p < self.budget else self.budget
        return -(-c // self.B)

    def _queue_change(self, t: float) -> None:
        """Integrate the queue's length up to ``t`` (call before the queue changes)."""
        w = self.win
        a = self.q_t if self.q_t > w.t0 else w.t0
        b = t if t < w.t1 else w.t1
        if b > a:
            self.w_queue_s += len(self.queue) * (b - a)
        self.q_t = t

    def arrive(self, r: int, t: float) -> InstanceScheduler | None:
        """Request ``r`` arrives at ``t``: the instance it was handed to, or None (queued)."""
        q = self.queue
        if not q:
            inst = self.select(self.units(r))
            if inst is not None:
                inst.enqueue(r, t)
                self.dispatched += 1
                return inst
        self._queue_change(t)
        q.append(r)
        return None

    def on_iteration_end(self, inst: InstanceScheduler, t: float) -> None:
        """``inst`` finished an iteration: hand it the router queue's head if it can start it."""
        q = self.queue
        while q and inst.can_take(self.units(q[0])):  # as many as its next iteration starts
            self._queue_change(t)
            inst.enqueue(q.popleft(), t)
            self.dispatched += 1

    def close(self) -> None:
        self._queue_change(max(self.q_t, self.win.t1))

    def select(self, units: int) -> InstanceScheduler | None:
        """The policy's choice among the instances that could start a request now."""
        insts = self.insts
        if self.policy == "round_robin":
            n = len(insts)
            j0 = self.rr_next
            for step in range(n):
                j = j0 + step
                if j >= n:
                    j -= n
                inst = insts[j]
                if inst.can_take(units):
                    self.rr_next = j + 1 if j + 1 < n else 0
                    return inst
            return None
        key = _OUTSTANDING if self.policy == "least_outstanding_tokens" else _IN_FLIGHT
        # fast path: the overall best (lowest index among ties) can usually start the request
        inst = min(insts, key=key)
        if inst.can_take(units):
            return inst
        best: InstanceScheduler | None = None
        bv = 0
        if self.policy == "least_outstanding_tokens":
            for inst in insts:
                if not inst.can_take(units):
                    continue
                v = inst.outstanding
                if best is None or v < bv:
                    best, bv = inst, v
        else:  # least_loaded
            for inst in insts:
                if not inst.can_take(units):
                    continue
                v = inst.insys_n
                if best is None or v < bv:
                    best, bv = inst, v
        return best
