"""One serving instance's engine scheduler, iteration by iteration (vLLM V1 semantics).

The global event loop (:mod:`fleetopt.sim.iteration`) calls, for each instance,
:meth:`InstanceScheduler.compose` at the start of an iteration (it decides the iteration's mix,
allocates KV, preempts if needed and returns the iteration's end time from the step-cost
primitive) and :meth:`InstanceScheduler.finish` at its end (it emits tokens, retires finished
sequences and frees their KV). Between the two the instance's state does not change except that
the router may append a request to its local waiting queue (:meth:`enqueue`).

One iteration, in order:

1. every RUNNING sequence that has finished its prefill decodes one token (one token of budget
   each; ``token_budget >= max_seqs`` is validated, so decodes always fit);
2. the (at most one) running sequence still prefilling gets a chunk
   ``min(remaining prefill tokens, remaining budget)``;
3. paged KV: the iteration's new blocks (decoders whose length sits on a block boundary, plus
   the chunk's blocks) must fit in the free blocks; otherwise the NEWEST running sequence is
   preempted (KV freed, re-queued at the FRONT of the waiting queue to recompute its prompt and
   the tokens it had generated), repeatedly, until they fit;
4. if nothing was preempted, WAITING requests are admitted in FCFS order while budget remains,
   ``running < max_seqs`` and KV allows (paged: the blocks of the tokens the request will hold
   after this iteration, cached prefix included; reserved: a free slot); a request's first chunk
   is ``min(prefill tokens not cached, remaining budget)``;
5. iteration time and energy come from the :class:`~fleetopt.sim.iteration.StepCost` of the mix
   ``(decode sequences, their cached context tokens, prefill tokens, prefill attention pairs,
   prefill KV tokens read)``; the last is the sum of the chunks' start positions (a continued
   prompt's tokens already in KV, or a new request's cached prefix).

At the end of the iteration every decoder emits one token, every sequence whose prefill
completed emits its first (or, after a recompute, its next) token, and sequences that reached
their output length retire.

Why at most one sequence is ever mid-prefill: budget is granted in admission order and a chunk
shorter than the remaining prefill uses up the budget, so nothing after it gets any; hence the
mid-prefill sequence is always the newest running one (the first victim of a preemption).

Aggregate state (per-iteration work O(1) in the number of running sequences). A sequence that
completes its prefill of ``Q`` tokens in iteration ``k`` with ``g`` tokens delivered decodes in
iterations ``k+1 .. k+O-g`` and, before iteration ``m``, holds ``off + m`` tokens of KV with
``off = Q - k - 1``. Hence:

* the step's cached context ``sum(off) + n_decode * m`` (``soff`` keeps ``sum(off)``);
* the decoders needing a new block in iteration ``m`` are those with ``(off + m) % B == 0``:
  a counter per residue class ``(-off) mod B`` (``cnt``) gives their number as ``cnt[m % B]``;
* a heap of finishing iteration indices ``k + O - g`` retires sequences (stale entries of
  preempted sequences are skipped by an epoch number);
* an insertion-ordered dict of running request ids gives the newest running sequence
  (``popitem``) and O(1) removal.

Tokens, blocks and completions are exact integers; nothing is approximated.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.sim.prefix_cache import PrefixCache

__all__ = ["InstanceScheduler", "RequestState", "Window", "adapt_cost"]


def _takes(fn: Callable[..., Any], n: int) -> bool:
    """Whether ``fn`` accepts ``n`` positional arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(pos) >= n


def adapt_cost(cost: Any) -> tuple[Callable[..., float], Callable[..., float],
                                   Callable[..., tuple[float, float]] | None]:
    """``(step_s, step_energy_j, step_split_s or None)`` of ``cost``, each taking the prefill
    KV tokens read (``prefill_ctx_tokens``) as its last argument; a cost written before that
    argument existed is wrapped to leave it out."""
    step, energy = cost.step_s, cost.step_energy_j
    split = getattr(cost, "step_split_s", None)
    if not _takes(step, 5):
        step = (lambda f: lambda nd, ctx, p, a, kp: f(nd, ctx, p, a))(step)
    if not _takes(energy, 6):
        energy = (lambda f: lambda nd, ctx, p, a, dt, kp: f(nd, ctx, p, a, dt))(energy)
    if split is not None and not _takes(split, 5):
        split = (lambda f: lambda nd, ctx, p, a, kp: f(nd, ctx, p, a))(split)
    return step, energy, split


class RequestState:
    """Per-request state shared by all instances (parallel Python lists, by request index).

    ``gen`` is the number of output tokens delivered; for a decoding sequence it is only
    refreshed when the sequence is preempted or retires (otherwise ``dg + (m - dk)`` after
    iteration ``m``). Times are -1.0 until set.
    """

    __slots__ = ("prompt", "output", "hashes", "gen", "epoch", "doff", "dg", "dk",
                 "dispatch_s", "admit_s", "first_s", "done_s", "instance", "preemptions",
                 "cached")

    def __init__(self, prompt: list[int], output: list[int],
                 hashes: list[list[int]] | None) -> None:
        n = len(prompt)
        self.prompt = prompt
        self.output = output
        self.hashes = hashes
        self.gen = [0] * n
        self.epoch = [0] * n
        self.doff = [0] * n
        self.dg = [0] * n
        self.dk = [0] * n
        self.dispatch_s = [-1.0] * n
        self.admit_s = [-1.0] * n
        self.first_s = [-1.0] * n
        self.done_s = [-1.0] * n
        self.instance = [-1] * n
        self.preemptions = [0] * n
        self.cached = [0] * n  # prompt tokens served by the prefix cache at first admission


class Window:
    """The measurement window ``[t0, t1]`` and its power-over-time bins (shared by a pool)."""

    __slots__ = ("t0", "t1", "nbins", "bin_s", "bins")

    def __init__(self, t0: float, t1: float, nbins: int) -> None:
        self.t0 = t0
        self.t1 = t1
        self.nbins = nbins
        self.bin_s = (t1 - t0) / nbins if t1 > t0 else 1.0
        self.bins = [0.0] * nbins  # joules per bin

    def spread(self, a: float, b: float, watts: float) -> None:
        """Add ``watts`` over ``[a, b]`` (already clipped to the window) to the bins."""
        t0, w, bins, last = self.t0, self.bin_s, self.bins, self.nbins - 1
        ia = int((a - t0) / w)
        ib = int((b - t0) / w)
        if ia > last:
            ia = last
        if ib > last:
            ib = last
        if ia == ib:
            bins[ia] += watts * (b - a)
            return
        for j in range(ia, ib + 1):
            lo = t0 + j * w
            hi = lo + w
            if j == ia:
                lo = a
            if j == ib:
                hi = b
            if hi > lo:
                bins[j] += watts * (hi - lo)


class InstanceScheduler:
    """The scheduler, KV allocator and window integrals of one instance."""

    __slots__ = (
        # configuration
        "index", "pool", "step_s", "energy_j", "split_s", "idle_w", "paged", "B", "cap",
        "budget", "max_seqs", "hash_block_tokens", "cache", "st", "win", "trace", "debug",
        # scheduler state
        "running", "waiting", "pf", "pf_done", "pf_len", "completing", "nd", "soff", "cnt",
        "fheap", "used", "k", "outstanding", "busy", "idle_since", "insys_n", "insys_t",
        "wait_tok", "wait_units",
        # counters over the whole run
        "preemptions_total", "hit_tokens", "lookup_tokens", "abandoned_tokens",
        # integrals over the window
        "w_energy_j", "w_busy_s", "w_idle_s", "w_kv_s", "w_insys_s", "w_tokens", "w_prefill",
        "w_iters", "w_preempt", "w_cterm_s", "w_mterm_s", "w_cbound_s", "w_batch_s",
    )

    def __init__(
        self, index: int, pool: int, cost: Any, *, paged: bool, block_tokens: int,
        capacity_units: int, token_budget: int, max_seqs: int, state: RequestState,
        window: Window, cache: PrefixCache | None = None, hash_block_tokens: int = 512,
        trace: list[tuple[Any, ...]] | None = None, debug: bool = False,
    ) -> None:
        self.index = index
        self.pool = pool
        step, energy, split = adapt_cost(cost)
        self.step_s: Callable[..., float] = step
        self.energy_j: Callable[..., float] = energy
        self.split_s: Callable[..., tuple[float, float]] | None = split
        self.idle_w = float(cost.idle_w)
        self.paged = paged
        self.B = block_tokens if paged else 1
        self.cap = capacity_units  # blocks (paged) or slots (reserved)
        self.budget = token_budget
        self.max_seqs = max_seqs
        self.hash_block_tokens = hash_block_tokens
        self.cache = cache
        self.st = state
        self.win = window
        self.trace = trace
        self.debug = debug
        self.running: dict[int, None] = {}
        self.waiting: deque[int] = deque()
        self.wait_tok = 0  # prefill tokens (prompt + tokens to recompute) of the waiting requests
        self.wait_units = 0  # KV units of their first chunks (paged) or slots (reserved)
        self.pf = -1  # the running request still prefilling, or -1
        self.pf_done = 0  # its prefill tokens already in KV (cached prefix included)
        self.pf_len = 0  # its prefill length (prompt + tokens delivered before a preemption)
        self.completing: list[int] = []  # requests whose prefill completes this iteration
        self.nd = 0  # decoding sequences
        self.soff = 0  # sum of their offsets: cached context before iteration m = soff + nd*m
        self.cnt = [0] * self.B  # decoders by residue class (-off) mod B
        self.fheap: list[tuple[int, int, int]] = []  # (finishing iteration, request, epoch)
        self.used = 0  # KV units in use
        self.k = 0  # index of the current (or next) iteration
        self.outstanding = 0  # prefill tokens + output tokens still to process
        self.busy = False
        self.idle_since = float("-inf")
        self.insys_n = 0  # requests dispatched here and not finished
        self.insys_t = float("-inf")
        self.preemptions_total = 0
        self.hit_tokens = 0
        self.lookup_tokens = 0
        self.abandoned_tokens = 0  # prefill tokens never computed: their prefill was preempted
        self.w_energy_j = 0.0
        self.w_busy_s = 0.0
        self.w_idle_s = 0.0
        self.w_kv_s = 0.0  # integral of used / capacity
        self.w_insys_s = 0.0  # integral of requests in the instance (waiting + running)
        self.w_tokens = 0  # output tokens emitted in the window
        self.w_prefill = 0  # prefill tokens computed by iterations ending in the window
        self.w_iters = 0
        self.w_preempt = 0
        self.w_cterm_s = 0.0  # integral of the compute term (if the cost exposes the split)
        self.w_mterm_s = 0.0  # integral of the memory term
        self.w_cbound_s = 0.0  # busy time of iterations whose compute term dominates
        self.w_batch_s = 0.0  # integral of the running sequences (the batch)

    # ------------------------------------------------------------------ router interface
    def can_take(self, units: int) -> bool:
        """The router's test: would this instance's next iteration start a request needing
        ``units`` KV units for its first chunk? It must have a sequence slot and KV room beyond
        the requests already waiting on it, and token budget left after the decoders, the
        prefill in progress and the waiting prompts (with ``max_seqs = 1``: only when empty)."""
        pending = self.wait_tok + (self.pf_len - self.pf_done if self.pf >= 0 else 0)
        return (len(self.running) + len(self.waiting) < self.max_seqs
                and self.cap - self.used - self.wait_units >= units
                and pending < self.budget - self.nd)

    def _first_units(self, r: int) -> int:
        """KV units of request ``r``'s first chunk (the router's ``units``)."""
        if not self.paged:
            return 1
        q = self.st.prompt[r] + self.st.gen[r]
        c = q if q < self.budget else self.budget
        return -(-c // self.B)

    def _wait_add(self, r: int, sign: int) -> None:
        self.wait_tok += sign * (self.st.prompt[r] + self.st.gen[r])
        self.wait_units += sign * self._first_units(r)

    def enqueue(self, r: int, t: float) -> None:
        """The router hands request ``r`` to this instance at time ``t``."""
        st = self.st
        self.waiting.append(r)
        self._wait_add(r, 1)
        self.outstanding += st.prompt[r] + st.output[r]
        st.dispatch_s[r] = t
        st.instance[r] = self.index
        self._insys(t, 1)

    def _insys(self, t: float, delta: int) -> None:
        w = self.win
        a = self.insys_t if self.insys_t > w.t0 else w.t0
        b = t if t < w.t1 else w.t1
        if b > a:
            self.w_insys_s += self.insys_n * (b - a)
        self.insys_t = t
        self.insys_n += delta

    # ------------------------------------------------------------------ one iteration
    def compose(self, t: float) -> float:
        """Start iteration ``k`` at time ``t``: its end time, or -1.0 if there is nothing to run
        (the instance goes idle until the router hands it a request)."""
        if self.debug:
            self.check_invariants()
        m = self.k
        B = self.B
        paged = self.paged
        nd = self.nd
        budget = self.budget - nd
        need = self.cnt[m % B] if paged else 0  # decoders crossing a block boundary
        pf = self.pf
        chunk = 0
        pf_need = 0
        if pf >= 0:
            s = self.pf_done
            chunk = self.pf_len - s
            if chunk > budget:
                chunk = budget
            if paged:
                pf_need = -(-(s + chunk) // B) + (-s // B)  # ceil((s+c)/B) - ceil(s/B)
        preempted = 0
        total = need + pf_need
        if total > self.cap - self.used:
            total, preempted = self._preempt(t, m, total, pf_need)
            nd = self.nd
            budget = self.budget - nd
            pf = self.pf
            if pf < 0:
                chunk = 0
        self.used += total

        ptok = 0
        pairs = 0
        kp = 0  # KV tokens the chunks read: the sum of their start positions
        completing = self.completing
        if chunk > 0:
            s = self.pf_done
            ptok = chunk
            pairs = chunk * s + chunk * (chunk + 1) // 2
            kp = s
            budget -= chunk
            if s + chunk == self.pf_len:
                completing.append(pf)
                self.pf = -1
            else:
                self.pf_done = s + chunk
        hits = 0
        waiting = self.waiting
        if waiting and budget > 0 and (not preempted or (nd == 0 and ptok == 0)):
            st = self.st
            P, G = st.prompt, st.gen
            running = self.running
            cache = self.cache
            hb = self.hash_block_tokens
            cap = self.cap
            nrun = len(running)
            ms = self.max_seqs
            while waiting and budget > 0 and nrun < ms:
                r = waiting[0]
                p = P[r]
                q = p + G[r]
                h = 0
                hs = None
                if cache is not None:
                    hs = st.hashes[r] if st.hashes is not None else None
                    if hs:
                        h = cache.match(hs) * hb
                        if h > p:
                            h = p
                        if h > q - 1:
                            h = q - 1
                c = q - h
                if c > budget:
                    c = budget
                if paged:
                    nb = -(-(h + c) // B)
                    if nb > cap - self.used:
                        break
                    self.used += nb
                else:
                    if self.used >= cap:
                        break
                    self.used += 1
                waiting.popleft()
                self._wait_add(r, -1)
                running[r] = None
                nrun += 1
                if hs:
                    cache.insert(hs)  # type: ignore[union-attr]
                if st.admit_s[r] < 0.0:
                    st.admit_s[r] = t
                    st.cached[r] = h
                self.hit_tokens += h
                self.lookup_tokens += q
                hits += h
                ptok += c
                pairs += c * h + c * (c + 1) // 2
                kp += h
                budget -= c
                if h + c == q:
                    completing.append(r)
                else:
                    self.pf = r
                    self.pf_done = h + c
                    self.pf_len = q
        if nd == 0 and ptok == 0:
            self.busy = False
            self.idle_since = t
            return -1.0
        self.outstanding -= ptok + hits
        ctx = self.soff + nd * m
        dt = self.step_s(nd, ctx, ptok, pairs, kp)
        if not dt > 0.0:
            raise FleetoptError("pool.cost", f"step_s must return a time > 0, got {dt!r} for "
                                f"decode_seqs={nd}, decode_ctx_tokens={ctx}, "
                                f"prefill_tokens={ptok}, prefill_pairs={pairs}, "
                                f"prefill_ctx_tokens={kp}")
        e = self.energy_j(nd, ctx, ptok, pairs, dt, kp)
        te = t + dt
        if not self.busy:
            self._idle_until(t)
            self.busy = True
        w = self.win
        if te > w.t0 and t < w.t1:
            self._account(t, te, dt, e, nd, ctx, ptok, pairs, kp)
        if w.t0 <= te <= w.t1:
            self.w_tokens += nd + len(completing)
            self.w_prefill += ptok
            self.w_iters += 1
        if self.trace is not None:
            self.trace.append((self.index, t, dt, nd, ctx, ptok, pairs, kp, nd + ptok, self.used,
                               self.cap, len(self.running), preempted, nd + len(completing), e))
        return te

    def _account(self, t: float, te: float, dt: float, e: float, nd: int, ctx: int,
                 ptok: int, pairs: int, kp: int) -> None:
        """Add the part of iteration ``[t, te]`` inside the window to the integrals."""
        w = self.win
        a = t if t > w.t0 else w.t0
        b = te if te < w.t1 else w.t1
        span = b - a
        if span <= 0.0:
            return
        frac = span / dt
        self.w_energy_j += e * frac
        self.w_busy_s += span
        self.w_kv_s += self.used / self.cap * span
        self.w_batch_s += len(self.running) * span
        w.spread(a, b, e / dt)
        if self.split_s is not None:
            c_s, m_s = self.split_s(nd, ctx, ptok, pairs, kp)
            self.w_cterm_s += c_s * frac
            self.w_mterm_s += m_s * frac
            if c_s >= m_s:
                self.w_cbound_s += span

    def _idle_until(self, t: float) -> None:
        """Close the idle interval ``[idle_since, t]`` (idle power, clipped to the window)."""
        w = self.win
        a = self.idle_since if self.idle_since > w.t0 else w.t0
        b = t if t < w.t1 else w.t1
        if b > a:
            self.w_idle_s += b - a
            self.w_energy_j += self.idle_w * (b - a)
            w.spread(a, b, self.idle_w)

    def _preempt(self, t: float, m: int, total: int, pf_need: int) -> tuple[int, int]:
        """Preempt the newest running sequences until ``total`` new KV units fit.

        Returns the remaining new units and the number of preemptions."""
        st = self.st
        B = self.B
        w = self.win
        count = 0
        while total > self.cap - self.used:
            r, _ = self.running.popitem()  # the newest running sequence
            if r == self.pf:
                s = self.pf_done
                self.used -= -(-s // B)
                total -= pf_need
                self.pf = -1
                self.outstanding += s  # its computed prefill must be redone
                self.abandoned_tokens += self.pf_len - s
            else:
                if self.debug:
                    assert self.pf < 0, "the mid-prefill sequence must be the newest"
                off = st.doff[r]
                self.used -= -(-(off + m) // B)
                key = (-off) % B
                self.cnt[key] -= 1
                if key == m % B:
                    total -= 1
                self.nd -= 1
                self.soff -= off
                st.epoch[r] += 1
                g = st.dg[r] + (m - 1 - st.dk[r])
                st.gen[r] = g
                self.outstanding += st.prompt[r] + g  # recompute prompt + delivered tokens
            st.preemptions[r] += 1
            self.waiting.appendleft(r)
            self._wait_add(r, 1)
            count += 1
            self.preemptions_total += 1
            if w.t0 <= t <= w.t1:
                self.w_preempt += 1
        return total, count

    def finish(self, t: float) -> None:
        """End iteration ``k`` at time ``t``: emit tokens, retire finished sequences."""
        m = self.k
        st = self.st
        emitted = self.nd
        done_n = 0
        fh = self.fheap
        paged = self.paged
        B = self.B
        running = self.running
        if fh and fh[0][0] <= m:
            EP, OUT = st.epoch, st.output
            while fh and fh[0][0] <= m:
                _, r, ep = heappop(fh)
                if ep != EP[r]:
                    continue  # preempted since
                off = st.doff[r]
                if paged:
                    self.used -= -(-(off + m + 1) // B)
                    self.cnt[(-off) % B] -= 1
                else:
                    self.used -= 1
                self.nd -= 1
                self.soff -= off
                del running[r]
                st.done_s[r] = t
                st.gen[r] = OUT[r]
                done_n += 1
        completing = self.completing
        if completing:
            P, OUT, G, EP = st.prompt, st.output, st.gen, st.epoch
            for r in completing:
                emitted += 1
                g0 = G[r]
                g = g0 + 1
                if st.first_s[r] < 0.0:
                    st.first_s[r] = t
                q = P[r] + g0
                G[r] = g
                if g == OUT[r]:
                    self.used -= -(-q // B) if paged else 1
                    del running[r]
                    st.done_s[r] = t
                    done_n += 1
                else:
                    off = q - m - 1
                    st.doff[r] = off
                    st.dg[r] = g
                    st.dk[r] = m
                    if paged:
                        self.cnt[(-off) % B] += 1
                    self.nd += 1
                    self.soff += off
                    heappush(fh, (m + OUT[r] - g, r, EP[r]))
            completing.clear()
        self.outstanding -= emitted
        if done_n:
            self._insys(t, -done_n)
        self.k = m + 1

    def close(self) -> None:
        """End of the run: an idle instance draws idle power to the end of the window."""
        if not self.busy:
            self._idle_until(float("inf"))
        w = self.win
        self._insys(max(self.insys_t, w.t1), 0)

    # ------------------------------------------------------------------ debugging
    def check_invariants(self) -> None:
        """Recompute the aggregates from the sequences (O(running)); raise if they disagree."""
        st = self.st
        m = self.k
        B = self.B
        dec = [r for r in self.running if r != self.pf]
        assert self.nd == len(dec), (self.nd, len(dec))
        assert self.soff == sum(st.doff[r] for r in dec)
        if self.paged:
            cnt = [0] * B
            for r in dec:
                cnt[(-st.doff[r]) % B] += 1
            assert cnt == self.cnt, "residue counters"
            used = sum(-(-(st.doff[r] + m) // B) for r in dec)
            if self.pf >= 0:
                used += -(-self.pf_done // B)
            assert used == self.used, (used, self.used)
        else:
            assert self.used == len(self.running)
        assert self.used <= self.cap
        assert len(self.running) <= self.max_seqs
        out = 0
        for r in self.waiting:
            out += st.prompt[r] + st.output[r]
        for r in dec:
            out += st.output[r] - (st.dg[r] + (m - 1 - st.dk[r]))
        if self.pf >= 0:
            r = self.pf
            out += (self.pf_len - self.pf_done) + st.output[r] - st.gen[r]
        assert out == self.outstanding, (out, self.outstanding)
        assert self.insys_n == len(self.running) + len(self.waiting)
