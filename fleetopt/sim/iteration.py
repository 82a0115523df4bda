"""Iteration-level serving simulator: every instance runs its engine scheduler iteration by
iteration, as vLLM V1 and SGLang do (issue 12; ``docs/simulator_engine.md``).

Design note
-----------
The simulator shares with fleetopt's analytical model ONLY the per-iteration cost primitive
(:class:`StepCost`: the time and energy of one iteration of a given mix of decode sequences,
their cached context, prefill tokens and prefill attention pairs). Nothing pool-level is used:
no operating batch, no Erlang C, no TTFT quantile, no prefill service time. Queueing, batch
sizes, chunking, preemptions and the latency distributions emerge from the mechanism:

* :mod:`fleetopt.sim.scheduler`: one instance's scheduler (token budget, chunked prefill,
  paged KV with preemption of the newest sequence and recompute, or reserved slots), kept as
  aggregate state so that an iteration costs O(1) Python work however many sequences run;
* :mod:`fleetopt.sim.dispatch`: each pool's router queue and dispatch policy
  (``least_outstanding_tokens``, ``least_loaded``, ``round_robin``);
* :mod:`fleetopt.sim.prefix_cache`: each instance's LRU over prompt block hashes;
* :mod:`fleetopt.sim.metrics`: percentiles with batch-means confidence intervals, throughput,
  utilisations, energy, replications across seeds.

Event loop. Arrivals come from the (sorted) request stream; each busy instance has exactly one
pending event, the end of its current iteration, in a heap keyed by (time, instance). At an
iteration end the instance emits tokens and retires sequences, its pool's router queue may hand
it its head, and it composes its next iteration at once (or goes idle: idle time is skipped,
never ticked). An arrival handed to an idle instance starts an iteration immediately; one handed
to a busy instance waits in its local queue until the current iteration ends (the engine
schedules at iteration boundaries). Ties at equal times: iteration ends before arrivals, then
lower instance index first. No randomness: the output is a deterministic function of the
request stream (seeded streams give reproducible runs; :func:`poisson_stream`).

Exactness and cost. Tokens, KV blocks, budgets, completions and preemptions are exact
integers (the aggregates are identities; ``debug=True`` re-derives them from the sequences at
every step). Per iteration the Python work is O(1) however many sequences run; per arrival
O(instances of the pool); per admission O(the request's hash blocks).

Measurement. ``window_s = (t0, t1)`` is a window over arrivals: requests arriving in it are the
measured ones (warm-up excluded), and every instance integral (energy, busy time, KV use,
requests in the system, tokens emitted, power-over-time bins) is restricted to it. The run
continues past ``t1`` until every request has finished (or ``until_s``).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.sim.dispatch import POLICIES, Router
from fleetopt.sim.prefix_cache import PrefixCache
from fleetopt.sim.scheduler import InstanceScheduler, RequestState, Window

__all__ = ["DEFAULT_POWER_BINS", "DEFAULT_WARMUP_FRACTION", "KV_ALLOCATIONS", "TRACE_COLUMNS",
           "InstanceIntegrals", "InstanceLimits", "IterationSimOutput", "PoolConfig",
           "RequestRecords", "RequestStream", "SplitStepCost", "StepCost", "default_window",
           "poisson_stream", "simulate_pools"]

KV_ALLOCATIONS = ("paged", "reserved")
DEFAULT_POWER_BINS = 100
DEFAULT_WARMUP_FRACTION = 0.1


@runtime_checkable
class StepCost(Protocol):
    """The per-iteration cost primitive of one instance (the only physics the engine uses).

    * ``decode_seqs``: sequences decoding one token in the step;
    * ``decode_ctx_tokens``: the sum over them of the tokens each has cached (its KV read);
    * ``prefill_tokens``: prompt (or recompute) tokens computed in the step, all chunks;
    * ``prefill_pairs``: attention (query, key) pairs of those chunks: a chunk covering
      positions ``s+1 .. s+c`` adds ``c*s + c*(c+1)/2``;
    * ``prefill_ctx_tokens``: the KV tokens those chunks read, the sum of their start
      positions ``s`` (a chunk continuing a prompt, or starting after a cached prefix).

    ``step_energy_j`` is the whole instance's energy over the step (it receives the step time);
    ``idle_w`` the whole instance's power when it runs no iteration. A cost may also expose
    ``step_split_s(decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
    prefill_ctx_tokens) -> (compute_s, memory_s)`` (:class:`SplitStepCost`): the engine then
    reports the compute/memory busy split. A cost whose methods take no ``prefill_ctx_tokens``
    (the protocol before it was added) still works: the engine then leaves it out
    (:func:`fleetopt.sim.scheduler.adapt_cost`).
    """

    @property
    def idle_w(self) -> float: ...

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float: ...

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float: ...


@runtime_checkable
class SplitStepCost(StepCost, Protocol):
    """A :class:`StepCost` that also reports its compute and memory terms."""

    def step_split_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                     prefill_pairs: float,
                     prefill_ctx_tokens: float = 0.0) -> tuple[float, float]: ...


@dataclass(frozen=True)
class InstanceLimits:
    """One instance's engine limits (plain data).

    ``kv_allocation="paged"``: KV is allocated per block of ``block_tokens`` within
    ``kv_capacity_tokens``, with preemption when it runs out. ``"reserved"``: ``slots`` slots of
    ``window_tokens`` each, one per sequence for its whole life (no preemption).
    ``token_budget`` is vLLM's ``max_num_batched_tokens``, ``max_seqs`` its ``max_num_seqs``.
    """

    token_budget: int = 8192
    max_seqs: int = 256
    kv_allocation: str = "paged"
    kv_capacity_tokens: int = 0
    block_tokens: int = 16
    slots: int = 0
    window_tokens: int = 0

    def __post_init__(self) -> None:
        f = "limits"
        for name in ("token_budget", "max_seqs", "block_tokens"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or v < 1:
                raise FleetoptError(f"{f}.{name}", f"must be an integer >= 1, got {v!r}")
        if self.token_budget < self.max_seqs:
            raise FleetoptError(f"{f}.token_budget", f"must be >= max_seqs ({self.max_seqs}) so "
                                f"every running sequence can decode each step, got "
                                f"{self.token_budget}")
        if self.kv_allocation not in KV_ALLOCATIONS:
            raise FleetoptError(f"{f}.kv_allocation", f"must be one of {', '.join(KV_ALLOCATIONS)},"
                                f" got {self.kv_allocation!r}")
        if self.kv_allocation == "paged":
            if self.kv_capacity_tokens < self.block_tokens:
                raise FleetoptError(f"{f}.kv_capacity_tokens", "paged KV needs a capacity of at "
                                    f"least one block ({self.block_tokens} tokens), got "
                                    f"{self.kv_capacity_tokens}")
            if self.slots or self.window_tokens:
                raise FleetoptError(f"{f}.slots", "slots/window_tokens are for reserved KV; "
                                    "remove them or set kv_allocation='reserved'")
        else:
            if self.slots < 1 or self.window_tokens < 1:
                raise FleetoptError(f"{f}.slots", "reserved KV needs slots >= 1 and "
                                    f"window_tokens >= 1, got {self.slots} and "
                                    f"{self.window_tokens}")
            if self.kv_capacity_tokens:
                raise FleetoptError(f"{f}.kv_capacity_tokens", "is for paged KV; reserved KV "
                                    "holds slots * window_tokens: remove it")

    @property
    def paged(self) -> bool:
        return self.kv_allocation == "paged"

    @property
    def capacity_units(self) -> int:
        """KV blocks (paged) or slots (reserved)."""
        return self.kv_capacity_tokens // self.block_tokens if self.paged else self.slots

    @property
    def capacity_tokens(self) -> int:
        return (self.capacity_units * self.block_tokens if self.paged
                else self.slots * self.window_tokens)


@dataclass(frozen=True)
class PoolConfig:
    """A pool: ``instances`` identical instances with one step cost and one set of limits."""

    instances: int
    cost: StepCost
    limits: InstanceLimits
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.instances, int | np.integer) or self.instances < 0:
            raise FleetoptError("pool.instances", f"must be an integer >= 0, got "
                                f"{self.instances!r}")
        for attr in ("step_s", "step_energy_j"):
            if not callable(getattr(self.cost, attr, None)):
                raise FleetoptError("pool.cost", f"needs a {attr}() method (the StepCost "
                                    "protocol)")
        idle = getattr(self.cost, "idle_w", None)
        if (isinstance(idle, bool) or not isinstance(idle, numbers.Real)
                or not float(idle) >= 0.0):
            raise FleetoptError("pool.cost.idle_w", f"must be a number >= 0, got {idle!r}")
        if not isinstance(self.limits, InstanceLimits):
            raise FleetoptError("pool.limits", "must be an InstanceLimits")


def _flatten_hashes(hash_ids: Any, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    if len(hash_ids) != n:
        raise FleetoptError("requests.hash_ids", f"needs one hash list per request ({n}), got "
                            f"{len(hash_ids)}")
    lens = np.fromiter((len(h) for h in hash_ids), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = (np.concatenate([np.asarray(h, dtype=np.int64) for h in hash_ids])
            if offsets[-1] else np.zeros(0, dtype=np.int64))
    return flat, offsets


@dataclass(frozen=True, eq=False)
class RequestStream:
    """Requests sorted by arrival, each already routed to a pool (``pool_of``).

    ``hash_ids`` (optional): the prompt's block hashes, ``hash_block_tokens`` tokens per block
    (Mooncake: 512), either one integer sequence per request or a flat array with
    ``hash_offsets`` (``n + 1`` offsets; request ``i`` owns ``flat[off[i]:off[i+1]]``).
    """

    arrival_s: NDArray[np.float64]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    pool_of: NDArray[np.int64]
    hash_ids: Any = None
    hash_offsets: NDArray[np.int64] | None = None
    hash_block_tokens: int = 512

    def __post_init__(self) -> None:
        t = np.asarray(self.arrival_s, dtype=np.float64)
        lin = np.asarray(self.input_tokens)
        lout = np.asarray(self.output_tokens)
        pool = np.asarray(self.pool_of)
        n = len(t)
        for name, a in (("input_tokens", lin), ("output_tokens", lout), ("pool_of", pool)):
            if a.shape != (n,):
                raise FleetoptError(f"requests.{name}", f"needs one value per arrival ({n}), "
                                    f"got shape {a.shape}")
            if n and not np.issubdtype(a.dtype, np.integer):
                if not np.all(np.equal(np.mod(a, 1), 0)):
                    raise FleetoptError(f"requests.{name}", "must be integers")
        if n == 0:
            raise FleetoptError("requests", "the stream has no requests")
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise FleetoptError("requests.arrival_s", "must be finite and >= 0")
        if np.any(np.diff(t) < 0):
            raise FleetoptError("requests.arrival_s", "must be sorted (non-decreasing)")
        if np.any(lin < 1) or np.any(lout < 1):
            raise FleetoptError("requests.input_tokens", "input and output lengths must be >= 1")
        if np.any(pool < 0):
            raise FleetoptError("requests.pool_of", "pool indices must be >= 0")
        object.__setattr__(self, "arrival_s", t)
        object.__setattr__(self, "input_tokens", lin.astype(np.int64))
        object.__setattr__(self, "output_tokens", lout.astype(np.int64))
        object.__setattr__(self, "pool_of", pool.astype(np.int64))
        if self.hash_block_tokens < 1:
            raise FleetoptError("requests.hash_block_tokens", "must be >= 1")
        if self.hash_ids is not None:
            if self.hash_offsets is None:
                flat, off = _flatten_hashes(self.hash_ids, n)
            else:
                flat = np.asarray(self.hash_ids, dtype=np.int64)
                off = np.asarray(self.hash_offsets, dtype=np.int64)
                if (off.shape != (n + 1,) or off[0] != 0 or off[-1] != len(flat)
                        or np.any(np.diff(off) < 0)):
                    raise FleetoptError("requests.hash_offsets", "must be n + 1 non-decreasing "
                                        "offsets from 0 to len(hash_ids)")
            object.__setattr__(self, "hash_ids", flat)
            object.__setattr__(self, "hash_offsets", off)
        elif self.hash_offsets is not None:
            raise FleetoptError("requests.hash_offsets", "given without hash_ids")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def hash_lists(self) -> list[list[int]] | None:
        """One Python list of hashes per request (None without hashes)."""
        if self.hash_ids is None or self.hash_offsets is None:
            return None
        flat = self.hash_ids.tolist()
        off = self.hash_offsets.tolist()
        return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


def poisson_stream(input_tokens: ArrayLike, output_tokens: ArrayLike, weights: ArrayLike | None,
                   requests: int, rate_rps: float, seed: int | np.random.Generator,
                   pool_of: Any = None) -> RequestStream:
    """``requests`` Poisson arrivals at ``rate_rps`` with (input, output) lengths drawn from the
    weighted points (``weights=None``: uniform). ``pool_of``: None (one pool), or a function of
    (input, output) arrays returning pool indices (routing by length happens upstream)."""
    if requests < 1:
        raise FleetoptError("requests", f"must be >= 1, got {requests}")
    if not rate_rps > 0:
        raise FleetoptError("rate_rps", f"must be > 0, got {rate_rps}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lin = np.asarray(input_tokens, dtype=np.int64)
    lout = np.asarray(output_tokens, dtype=np.int64)
    p = None if weights is None else np.asarray(weights, dtype=float)
    t = np.cumsum(rng.exponential(1.0 / rate_rps, requests))
    idx = rng.choice(len(lin), size=requests, p=p)
    a, b = lin[idx], lout[idx]
    pool = np.zeros(requests, dtype=np.int64) if pool_of is None else np.asarray(pool_of(a, b))
    return RequestStream(t, a, b, pool)


# ---------------------------------------------------------------------------------- output
@dataclass(frozen=True, eq=False)
class RequestRecords:
    """Per request (index = position in the stream); times in seconds, -1/NaN when unset."""

    arrival_s: NDArray[np.float64]
    pool: NDArray[np.int64]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    instance: NDArray[np.int64]  # global instance index (-1: never dispatched)
    dispatch_s: NDArray[np.float64]  # handed to an instance
    admit_s: NDArray[np.float64]  # first admitted into a batch
    first_token_s: NDArray[np.float64]
    done_s: NDArray[np.float64]
    preemptions: NDArray[np.int64]
    cached_tokens: NDArray[np.int64]  # prompt tokens served by the prefix cache (first admission)
    measured: NDArray[np.bool_]  # arrived within the window

    @property
    def ttft_s(self) -> NDArray[np.float64]:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> NDArray[np.float64]:
        """Mean inter-token time (NaN for one-token outputs)."""
        n = self.output_tokens - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, (self.done_s - self.first_token_s) / np.maximum(n, 1), np.nan)

    @property
    def e2e_s(self) -> NDArray[np.float64]:
        return self.done_s - self.arrival_s

    @property
    def wait_s(self) -> NDArray[np.float64]:
        """Time from arrival to the first admission into a batch."""
        return self.admit_s - self.arrival_s

    @property
    def finished(self) -> NDArray[np.bool_]:
        return np.isfinite(self.done_s)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "arrival_s": self.arrival_s, "pool": self.pool, "instance": self.instance,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "dispatch_s": self.dispatch_s, "admit_s": self.admit_s,
            "first_token_s": self.first_token_s, "done_s": self.done_s, "ttft_s": self.ttft_s,
            "tpot_s": self.tpot_s, "e2e_s": self.e2e_s, "preemptions": self.preemptions,
            "cached_tokens": self.cached_tokens, "measured": self.measured,
        })


@dataclass(frozen=True, eq=False)
class InstanceIntegrals:
    """Per instance (global index; pools' instances are consecutive), within the window."""

    pool: NDArray[np.int64]
    energy_j: NDArray[np.float64]  # iterations' energy + idle power
    busy_s: NDArray[np.float64]  # time running iterations
    idle_s: NDArray[np.float64]
    kv_util_s: NDArray[np.float64]  # integral of used / capacity KV
    in_system_s: NDArray[np.float64]  # integral of requests on the instance (waiting + running)
    batch_s: NDArray[np.float64]  # integral of running sequences (the batch, prefilling included)
    output_tokens: NDArray[np.int64]  # tokens emitted by iterations ending in the window
    prefill_tokens: NDArray[np.int64]  # prefill tokens computed by those iterations
    iterations: NDArray[np.int64]  # iterations ending in the window
    preemptions: NDArray[np.int64]  # preemptions in the window
    compute_term_s: NDArray[np.float64]  # integral of the cost's compute term (NaN: no split)
    memory_term_s: NDArray[np.float64]
    compute_bound_s: NDArray[np.float64]  # busy time of compute-dominated iterations
    preemptions_total: NDArray[np.int64]  # over the whole run
    hit_tokens_total: NDArray[np.int64]  # prefix-cache tokens hit, all admissions, whole run
    lookup_tokens_total: NDArray[np.int64]  # prefill tokens asked for, all admissions
    abandoned_tokens_total: NDArray[np.int64]  # of those, never computed (prefill preempted)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({k: getattr(self, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True, eq=False)
class IterationSimOutput:
    """Everything :func:`simulate_pools` measured (summaries: :mod:`fleetopt.sim.metrics`)."""

    window_s: tuple[float, float]
    policy: str
    pools: tuple[PoolConfig, ...]
    requests: RequestRecords
    instances: InstanceIntegrals
    router_queue_s: NDArray[np.float64]  # per pool: integral of the router queue's length
    snap_s: NDArray[np.float64]  # power-over-time snapshot times over the window (bins + 1)
    snap_energy_j: NDArray[np.float64]  # cumulative energy per (snapshot, pool)
    iterations_total: int
    events: int
    wall_s: float
    stopped_s: float  # time of the last event processed
    trace: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def span_s(self) -> float:
        return self.window_s[1] - self.window_s[0]

    def power_series(self) -> pd.DataFrame:
        """Mean watts of each pool between consecutive snapshots."""
        dt = np.diff(self.snap_s)
        de = np.diff(self.snap_energy_j, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = de / dt[:, None]
        rows = {"t_s": self.snap_s[:-1]}
        for k in range(w.shape[1]):
            rows[f"pool{k}_w"] = w[:, k]
        rows["fleet_w"] = w.sum(axis=1)
        return pd.DataFrame(rows)


TRACE_COLUMNS = ("instance", "start_s", "step_s", "decode_seqs", "decode_ctx_tokens",
                 "prefill_tokens", "prefill_pairs", "prefill_ctx_tokens", "batched_tokens", "kv_used_units",
                 "kv_capacity_units", "running", "preempted", "emitted_tokens", "energy_j")


def default_window(arrival_s: NDArray[np.float64],
                   warmup_fraction: float = DEFAULT_WARMUP_FRACTION) -> tuple[float, float]:
    """From the arrival of the first request after the warm-up fraction to the last arrival."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise FleetoptError("warmup_fraction", f"must be in [0, 1), got {warmup_fraction}")
    n = len(arrival_s)
    t0 = float(arrival_s[min(int(warmup_fraction * n), n - 1)])
    t1 = float(arrival_s[-1])
    return t0, t1 if t1 > t0 else t0 + 1e-9


def _check(stream: RequestStream, pools: Sequence[PoolConfig]) -> None:
    if not pools:
        raise FleetoptError("pools", "give at least one pool")
    for k, p in enumerate(pools):
        if not isinstance(p, PoolConfig):
            raise FleetoptError(f"pools[{k}]", "must be a PoolConfig")
    np_ = len(pools)
    if int(stream.pool_of.max()) >= np_:
        raise FleetoptError("requests.pool_of", f"refers to pool {int(stream.pool_of.max())} but "
                            f"only {np_} pools are given")
    tot = stream.input_tokens + stream.output_tokens - 1  # KV a request holds at its end
    for k, p in enumerate(pools):
        m = stream.pool_of == k
        if not m.any():
            continue
        if p.instances < 1:
            raise FleetoptError(f"pools[{k}].instances", "the pool receives requests but has no "
                                "instances; give it at least one")
        lim = p.limits
        worst = int(tot[m].max())
        if lim.paged:
            if -(-worst // lim.block_tokens) > lim.capacity_units:
                raise FleetoptError(f"pools[{k}].limits.kv_capacity_tokens", f"a request of the "
                                    f"pool needs {worst} tokens of KV, more than the instance's "
                                    f"capacity ({lim.capacity_tokens}); raise it or route the "
                                    "request elsewhere")
        elif worst > lim.window_tokens:
            raise FleetoptError(f"pools[{k}].limits.window_tokens", f"a request of the pool needs "
                                f"{worst} tokens of KV, more than a slot ({lim.window_tokens}); "
                                "compress requests to the window upstream")


def simulate_pools(
    requests: RequestStream,
    pools: Sequence[PoolConfig],
    *,
    policy: str = "least_outstanding_tokens",
    window_s: tuple[float, float] | None = None,
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
    power_bins: int = DEFAULT_POWER_BINS,
    until_s: float | None = None,
    trace_iterations: bool = False,
    debug: bool = False,
) -> IterationSimOutput:
    """Run ``requests`` through ``pools`` iteration by iteration until every request finished.

    * ``policy``: dispatch within a pool (:data:`fleetopt.sim.dispatch.POLICIES`);
    * ``window_s``: the measured window over arrivals (default: after the first
      ``warmup_fraction`` of arrivals to the last arrival);
    * ``power_bins``: intervals of the power-over-time snapshots over the window;
    * ``until_s``: stop processing events after this time (unfinished requests keep NaN
      times; must be >= the window's end); default: run until the last request finishes;
    * ``trace_iterations``: record every iteration (``IterationSimOutput.trace``);
    * ``debug``: re-derive every instance's aggregate state from its sequences at each
      iteration and raise on any disagreement (slow; for tests).
    """
    t_wall = time.perf_counter()
    if policy not in POLICIES:
        raise FleetoptError("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
    if not isinstance(power_bins, int) or power_bins < 1:
        raise FleetoptError("power_bins", f"must be an integer >= 1, got {power_bins!r}")
    pools = tuple(pools)
    _check(requests, pools)
    if window_s is None:
        t0, t1 = default_window(requests.arrival_s, warmup_fraction)
    else:
        t0, t1 = float(window_s[0]), float(window_s[1])
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise FleetoptError("window_s", f"must be finite with t1 > t0, got {window_s!r}")
    until = math.inf if until_s is None else float(until_s)
    if until < t1:
        raise FleetoptError("until_s", f"must be >= the window's end {t1}, got {until_s!r}")

    st = RequestState(requests.input_tokens.tolist(), requests.output_tokens.tolist(),
                      requests.hash_lists())
    trace: list[tuple[Any, ...]] | None = [] if trace_iterations else None
    insts: list[InstanceScheduler] = []
    routers: list[Router] = []
    windows: list[Window] = []
    hb = int(requests.hash_block_tokens)
    for k, p in enumerate(pools):
        lim = p.limits
        win = Window(t0, t1, power_bins)
        windows.append(win)
        mine = []
        for _ in range(p.instances):
            cache = (PrefixCache(lim.capacity_tokens // hb) if st.hashes is not None else None)
            inst = InstanceScheduler(
                len(insts), k, p.cost, paged=lim.paged, block_tokens=lim.block_tokens,
                capacity_units=lim.capacity_units, token_budget=lim.token_budget,
                max_seqs=lim.max_seqs, state=st, window=win, cache=cache,
                hash_block_tokens=hb, trace=trace, debug=debug)
            insts.append(inst)
            mine.append(inst)
        routers.append(Router(k, mine, policy, paged=lim.paged, block_tokens=lim.block_tokens,
                              token_budget=lim.token_budget, state=st, window=win))

    arr = requests.arrival_s.tolist()
    pof = requests.pool_of.tolist()
    n = len(arr)
    heap: list[tuple[float, int]] = []
    ai = 0
    events = 0
    iters = 0
    inf = math.inf
    t_last = 0.0
    while True:
        ta = arr[ai] if ai < n else inf
        if heap and heap[0][0] <= ta:
            t, i = heappop(heap)
            if t > until:
                break
            events += 1
            inst = insts[i]
            inst.finish(t)
            rt = routers[inst.pool]
            if rt.queue:
                rt.on_iteration_end(inst, t)
            te = inst.compose(t)
            if inst.busy:
                iters += 1
                heappush(heap, (te, i))
            t_last = t
            continue
        if ai >= n or ta > until:
            break
        r = ai
        ai += 1
        events += 1
        t_last = ta
        inst = routers[pof[r]].arrive(r, ta)
        if inst is not None and not inst.busy:
            te = inst.compose(ta)
            if inst.busy:
                iters += 1
                heappush(heap, (te, inst.index))
    for inst in insts:
        inst.close()
    for rt in routers:
        rt.close()

    def arr_f(x: list[float]) -> NDArray[np.float64]:
        a = np.asarray(x, dtype=np.float64)
        a[a < 0] = np.nan
        return a

    t_arr = requests.arrival_s
    recs = RequestRecords(
        arrival_s=t_arr, pool=requests.pool_of, input_tokens=requests.input_tokens,
        output_tokens=requests.output_tokens, instance=np.asarray(st.instance, dtype=np.int64),
        dispatch_s=arr_f(st.dispatch_s), admit_s=arr_f(st.admit_s),
        first_token_s=arr_f(st.first_s), done_s=arr_f(st.done_s),
        preemptions=np.asarray(st.preemptions, dtype=np.int64),
        cached_tokens=np.asarray(st.cached, dtype=np.int64),
        measured=(t_arr >= t0) & (t_arr <= t1),
    )
    has_split = [inst.split_s is not None for inst in insts]

    def col(name: str, dtype: Any = np.float64) -> NDArray[Any]:
        return np.asarray([getattr(inst, name) for inst in insts], dtype=dtype)

    nan_unless = np.where(has_split, 1.0, np.nan) if insts else np.zeros(0)
    integ = InstanceIntegrals(
        pool=col("pool", np.int64), energy_j=col("w_energy_j"), busy_s=col("w_busy_s"),
        idle_s=col("w_idle_s"), kv_util_s=col("w_kv_s"), in_system_s=col("w_insys_s"),
        batch_s=col("w_batch_s"),
        output_tokens=col("w_tokens", np.int64), prefill_tokens=col("w_prefill", np.int64),
        iterations=col("w_iters", np.int64), preemptions=col("w_preempt", np.int64),
        compute_term_s=col("w_cterm_s") * nan_unless, memory_term_s=col("w_mterm_s") * nan_unless,
        compute_bound_s=col("w_cbound_s") * nan_unless,
        preemptions_total=col("preemptions_total", np.int64),
        hit_tokens_total=col("hit_tokens", np.int64),
        lookup_tokens_total=col("lookup_tokens", np.int64),
        abandoned_tokens_total=col("abandoned_tokens", np.int64),
    )
    snap_s = t0 + (t1 - t0) * np.arange(power_bins + 1) / power_bins
    bins = np.asarray([w.bins for w in windows], dtype=np.float64).T  # (bins, pools)
    snap_e = np.vstack([np.zeros((1, len(pools))), np.cumsum(bins, axis=0)])
    tr = (pd.DataFrame(trace, columns=list(TRACE_COLUMNS)) if trace is not None else None)
    return IterationSimOutput(
        window_s=(t0, t1), policy=policy, pools=pools, requests=recs, instances=integ,
        router_queue_s=np.asarray([rt.w_queue_s for rt in routers], dtype=np.float64),
        snap_s=snap_s, snap_energy_j=snap_e, iterations_total=iters, events=events,
        wall_s=time.perf_counter() - t_wall, stopped_s=t_last, trace=tr,
    )
