"""The pool model of physical accounting (issue 11): shared iterations, paged KV, TPOT.

A pool is ``N`` identical instances behind a router. Every instance runs iterations (steps):
each carries every running decoder (``D`` of them, one token each) plus prefill chunks up to
the token budget ``B`` (vLLM's ``max_num_batched_tokens``). The cost of a step comes from the
instance (:class:`InstancePhysics`, the ONE step formula of the physics layer); this module
turns it into a pool's operating point, latency tails, KV occupancy and watts
(``docs/model.md``, "The pool model"; ``docs/formulation.md`` section 5 for the MIP).

Per pool: request points ``(lin_i, lout_i)`` with weights ``w_i``, prefix-cache hit share ``h``
(computed prompt tokens ``l'_i = lin_i (1 - h)``, cached ``lin_i - l'_i``), design rate
``Lam = peak_factor x rate`` (the pool's own factor when the mix gives one per pool, ``[slo]
peak_factor = "auto"``; else the settings' one) and ``lam1 = Lam / N`` per instance.

* Decode-only step ``tau_d(D) = step(D, D Lbar, 0, 0, 0)``, ``Lbar = E[(lout-1)(lin + lout/2)]
  / E[lout-1]`` (the context of a decoder averaged over its decode steps).
* Prompt ``i`` runs in ``n_i = ceil(l'_i / c)`` chunks, ``c = B - D``; chunk ``j`` starts at
  ``s_j = (lin_i - l'_i) + j c`` and its step costs ``step(D, D Lbar, size_j, size_j s_j +
  size_j (size_j + 1) / 2, s_j)``; summed over the chunks: ``own_i``. ``extra_i = own_i - n_i
  tau_d`` is what the prompt adds beyond decode-only steps.
* Time share of prompt steps ``f = lam1 sum_i w_i own_i``; steps per second ``r = lam1 sum_i
  w_i n_i + (1 - f) / tau_d``; decoders ``D = lam1 E[lout - 1] / r``: the least fixed point.
* TTFT_i = W + R + own_i: W the wait for a prefill slot (M/G/c over the prefill occupancy
  ``extra``, c = N, Erlang C with the Allen-Cunneen tail), R the residual of the step in
  progress (uniform over a decode step with weight ``1 - f``, over a prompt step with weight
  ``f``), checked with ``P(TTFT > target) <= 1 - q``.
* TPOT (mean inter-token time of a request over its ``n = lout - 1`` decode steps) = ``tau_d +
  X / n``, X compound Poisson: the prompt events overlapping its decode (mean count ``lam1
  (own_i + E[extra] + n / r)``, jumps ``extra_k``), gamma with matched moments; never above a
  full step.
* KV (paged): mean occupancy, and a bound on ``P(in-flight KV tokens > C)`` for the Poisson
  shot noise of per-request holdings (``lin`` during prefill, ``lin + k`` at its k-th decode
  step, rounded up to blocks): Bennett's inequality, then the exact Chernoff bound when
  Bennett's does not suffice; it must be at most ``kv_overflow_prob``. Running sequences vs
  ``max_num_seqs``: Poisson tail, same probability.
* Reserved KV: ``slots`` per instance at the window; admission wait = Erlang C over ``N slots``
  with service = time in system; TTFT adds it.
* Utilisation cap: ``f``, mean KV occupancy / C, ``D / max_seqs`` and the token throughput /
  the full-step capacity ``B / tau_full`` are each <= ``utilization_cap``.
* Watts = ``N gpus [(1 - p0) P_gpu(time-averaged activity) + p0 idle]``, ``p0 = exp(-in
  flight)``, at the MEAN rate.

Vectorised like the MIP needs it: a :class:`ServeFamily` holds many pools (columns = lower
edges x deployments sharing one upper edge and window, or pools of several upper edges at their
own windows) and evaluates arrays of (column,
instance count) pairs. Per column it tabulates the step costs once on a grid of decoder counts
``D`` (fractions of ``min(max_seqs, B - 1)``) and of prompt lengths (a fixed geometric grid, a
request's weight split linearly between its two neighbours); every instance count is then a
closed-form fixed point in a cell of the grid and table look-ups. The grids do not depend on
the family: one pool gets the same numbers alone (:class:`~fleetopt.sizing.poolmodel.PoolModel`)
as in any family. Tables are made non-decreasing in ``D`` (they are, physically), which makes
every test monotone in ``N`` (``docs/formulation.md`` section 5).

THE SEAM with the physics layer is :func:`physics_of` (see :class:`InstancePhysics`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.power import (
    activity_floor_from_parts,
    activity_floor_parts,
    activity_power_floor_w,
    logistic_power_w,
)
from fleetopt.physics.profiles import CalibratedProfile, ComputedProfile, Profile
from fleetopt.physics.queueing import erlang_c
from fleetopt.problem.settings import Settings

__all__ = ["CalibratedPhysics", "ContractPhysics", "InstancePhysics", "KV_ALLOCATIONS",
           "ServeFamily", "idle_instance_w", "lru_hit_share", "physics_of", "prompt_grid",
           "stack_physics"]

F = NDArray[np.float64]
KV_ALLOCATIONS = ("paged", "reserved")

# grid of decoder counts: fractions of D_max = min(max_seqs, B - 1) (0 and powers of 1/2; the
# floors' cell look-up, ServeFamily.watts_floor, reads a count's cell off its binary exponent)
_D_FRACTIONS = np.concatenate([[0.0], 2.0 ** -np.arange(8, -1, -1.0)])
#: prompt-length grid: 1, 2, 4, 8, then geometric from 16 tokens with this many points per
#: doubling
_GRID_PER_DOUBLING = 2
#: full chunks of one prompt evaluated exactly up to this many; beyond, this many sample
#: chunks and the sum of their piecewise-linear interpolation
_CHUNK_SAMPLES = 6
#: share of the prompts arriving during a step that end up in the same next step as a given
#: request (the router spreads arrivals over the instances that can start them); set against
#: the iteration simulator (tests/test_serve_sim.py, docs/model.md)
_CO_SCHEDULED = 0.4
#: the counts at which :meth:`ServeFamily.watts_floor` bounds the watts: the least count times
#: this ratio to the powers 0 .. _FLOOR_STEPS (then unbounded)
_FLOOR_RATIO = 1.08
_FLOOR_STEPS = 32
#: rounds of the decoder bound of :meth:`ServeFamily.watts_floor` (each tightens it)
_FLOOR_ROUNDS = 3
#: decoder rows built beyond the cell that the prompt tables at no decoders put a fixed point
#: in (ServeFamily._ensure_rows; a deferred family builds rows as its tests read them)
_ROW_MARGIN = 1
#: Illinois steps of the operating point's fixed point in its cell (ServeFamily._fixed_point)
_FIXED_POINT_ROUNDS = 10
#: inner counts per bracket and round in a search (ServeFamily.min_instances): 3, or more
#: when fewer than _REFINE_PAIRS / 3 columns are left, up to 15
_REFINE_PAIRS = 96
#: how many rows are first built: the least of these that covers that cell (few distinct
#: builds, each vectorised over its columns)
_ROW_LEVELS = (6, len(_D_FRACTIONS))
#: TPOT classes: output lengths grouped on this grid of decode steps (lout - 1)
_TPOT_BINS = np.unique(np.round(np.concatenate([np.arange(1, 9), 2.0 ** np.arange(3.5, 17, 0.5)])))


# ------------------------------------------------------------------------------------------
# the instance: what the pool model needs of the physics layer

@runtime_checkable
class InstancePhysics(Protocol):
    """What the pool model needs of one deployment's instance (per GPU where it says so).

    One deployment: numbers. Several (:func:`stack_physics`, then :meth:`take`): 1-D arrays,
    one entry per deployment (or per pool column), and :meth:`terms` broadcasts its inputs
    against that LAST axis.

    * ``terms(D, K_d, P, A_p, K_p)``: one step with ``D`` decode tokens whose cached contexts
      sum to ``K_d``, ``P`` prefill tokens with ``A_p`` attention pairs reading ``K_p`` cached
      tokens: a mapping with at least ``t_step`` (seconds), ``flops_bf16eq`` (tensor FLOPs,
      bf16-equivalent, per GPU), ``bytes_mean`` (HBM bytes of the average GPU) and every key
      in ``power_terms``;
    * ``gpu_power_w(rates)``: per-GPU watts of an instance running steps back to back whose
      time-averaged terms are ``rates[k] = sum(term k) / sum(t_step)`` (so ``rates["t_step"]
      = 1``), for the keys in ``power_terms``;
    * ``power_floor_w(D, ctx, flops_per_s=0)``: a proven lower bound on ``gpu_power_w`` of any
      mix of steps that each carry at least ``D`` decoders with ``ctx`` cached tokens each
      (plus any prefill) and whose time-averaged ``flops_bf16eq`` rate is at least
      ``flops_per_s``, broadcast over the deployments (:meth:`ServeFamily.watts_floor` needs
      it). Where ``flops_bf16eq`` is reported it is linear in a step's tokens, decode contexts
      and attention pairs (the step formula's is), which the floor's FLOP rate relies on;
      ``power_floor_parts(D, ctx)`` (a dict of arrays shaped like ``D``) and
      ``power_floor_from(parts, flops_per_s)`` split it (``power_floor_w(D, ctx, f) =
      power_floor_from(power_floor_parts(D, ctx), f)``), so that parts at a few decoder
      counts serve many FLOP rates;
    * ``idle_w``: per-GPU watts of an instance running no step; ``gpus``: GPUs per instance;
    * ``kv_capacity_tokens`` (per instance), ``block_tokens``, ``token_budget`` (vLLM's
      ``max_num_batched_tokens``), ``max_seqs`` (``max_num_seqs``);
    * ``peak_flops`` (dense bf16, per GPU) and ``peak_bw`` (bytes/s per GPU);
    * ``take(idx)``: the deployments ``idx`` of a stacked object.
    """

    gpus: Any
    idle_w: Any
    kv_capacity_tokens: Any
    block_tokens: Any
    token_budget: Any
    max_seqs: Any
    peak_flops: Any
    peak_bw: Any
    power_terms: tuple[str, ...]

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> Mapping[str, F]: ...

    def gpu_power_w(self, rates: Mapping[str, ArrayLike]) -> F: ...

    def power_floor_w(self, D: ArrayLike, ctx: ArrayLike, flops_per_s: ArrayLike = 0.0
                      ) -> F: ...

    def power_floor_parts(self, D: ArrayLike, ctx: ArrayLike) -> dict[str, F]: ...

    def power_floor_from(self, parts: Mapping[str, ArrayLike], flops_per_s: ArrayLike = 0.0
                         ) -> F: ...

    def take(self, idx: ArrayLike) -> InstancePhysics: ...


_LIMIT_FIELDS = ("gpus", "idle_w", "kv_capacity_tokens", "block_tokens", "token_budget",
                 "max_seqs", "peak_flops", "peak_bw")


def _stack_dataclass(items: Sequence[Any]) -> Any:
    """A dataclass whose numeric fields are arrays over ``items`` (other fields must agree)."""
    first = items[0]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        vals = [getattr(x, f.name) for x in items]
        if all(isinstance(v, int | float | np.number | np.ndarray) and not isinstance(v, bool)
               for v in vals):
            out[f.name] = np.asarray([np.asarray(v, dtype=float) for v in vals])
        elif all(v == vals[0] for v in vals):
            out[f.name] = vals[0]
        else:
            raise ValueError(f"{type(first).__name__}.{f.name} differs across deployments")
    return dataclasses.replace(first, **out)


def _array_fields(obj: Any) -> list[str]:
    """The fields of a dataclass that are arrays over deployments (what a take indexes)."""
    return [f.name for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), np.ndarray) and np.ndim(getattr(obj, f.name)) >= 1]


def _take_dataclass(obj: Any, idx: ArrayLike) -> Any:
    i = np.asarray(idx)
    return dataclasses.replace(obj, **{n: getattr(obj, n)[i] for n in _array_fields(obj)})


@dataclasses.dataclass(frozen=True)
class CalibratedPhysics:
    """A calibrated profile (published constants ``t(n, L) = W + H (L / ref) n``) as an
    instance: a step costs ``W + H (K_d + K_p) / ref + W P / chunk_tokens`` (a chunk of
    ``chunk_tokens`` prompt tokens costs one iteration, as in the profile's prefill) and the
    GPUs draw the profile's logistic curve at the time-averaged decode batch."""

    base_s: Any
    per_tok_s: Any  # H / ref: seconds per cached token read
    chunk_tokens: Any
    curve_idle: Any
    curve_plateau: Any
    curve_slope: Any
    curve_mid: Any
    gpus: Any
    idle_w: Any
    kv_capacity_tokens: Any
    block_tokens: Any
    token_budget: Any
    max_seqs: Any
    peak_flops: Any = math.nan
    peak_bw: Any = math.nan
    power_terms: tuple[str, ...] = ("t_step", "batch_s")

    @classmethod
    def of(cls, profile: CalibratedProfile) -> CalibratedPhysics:
        s, pw = profile.spec, profile.power
        return cls(base_s=float(s.base_iter_s), per_tok_s=float(s.per_seq_s) / s.ref_ctx_tokens,
                   chunk_tokens=float(s.chunk_tokens), curve_idle=pw.idle_w,
                   curve_plateau=pw.plateau_w, curve_slope=pw.slope, curve_mid=pw.midpoint_log2,
                   gpus=float(profile.gpus_per_instance), idle_w=float(pw.idle_w),
                   kv_capacity_tokens=float(min(s.kv_blocks * s.block_tokens,
                                                s.max_slot_tokens)),
                   block_tokens=float(s.block_tokens), token_budget=8192.0, max_seqs=1024.0)

    stack = staticmethod(_stack_dataclass)

    def take(self, idx: ArrayLike) -> CalibratedPhysics:
        out: CalibratedPhysics = _take_dataclass(self, idx)
        return out

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> dict[str, F]:
        D = np.asarray(D, dtype=float)
        t = (self.base_s + self.per_tok_s * (np.asarray(K_d, dtype=float)
                                              + np.asarray(K_p, dtype=float))
             + self.base_s * np.asarray(P, dtype=float) / self.chunk_tokens)
        z = np.zeros(np.broadcast(t, D).shape)
        nan = z + math.nan
        # batch_s: decoders x seconds, so that its time average over steps is the mean batch
        return {"t_step": t + z, "batch_s": D * t + z, "flops_bf16eq": nan, "bytes_mean": nan}

    def gpu_power_w(self, rates: Mapping[str, ArrayLike]) -> F:
        b = np.asarray(rates["batch_s"], dtype=float) / np.asarray(rates["t_step"])
        return logistic_power_w(b, self.curve_idle, self.curve_plateau, self.curve_slope,
                                self.curve_mid)

    def power_floor_w(self, D: ArrayLike, ctx: ArrayLike, flops_per_s: ArrayLike = 0.0
                      ) -> F:
        """The curve at ``D``: a mix of steps of at least ``D`` decoders has a time-averaged
        batch of at least ``D``, and the curve does not fall (slope >= 0). (Its watts follow
        the batch alone: ``ctx`` and ``flops_per_s`` do not change them.)"""
        del ctx, flops_per_s
        return logistic_power_w(np.asarray(D, dtype=float), self.curve_idle, self.curve_plateau,
                                self.curve_slope, self.curve_mid)

    def power_floor_parts(self, D: ArrayLike, ctx: ArrayLike) -> dict[str, F]:
        return {"w": self.power_floor_w(D, ctx)}

    def power_floor_from(self, parts: Mapping[str, ArrayLike], flops_per_s: ArrayLike = 0.0
                         ) -> F:
        del flops_per_s
        return np.asarray(parts["w"], dtype=float)


@dataclasses.dataclass(frozen=True)
class ContractPhysics:
    """A profile of the physics contract (``/work/notes/physics_interface.md``: ``step:
    StepCoefficients`` with ``terms(...) -> StepTerms`` and ``stack``, ``power_model:
    ActivityPower`` with ``gpu_power_w(Activity)``, ``physics.power.activity``,
    ``kv_capacity_tokens``, ``token_budget``, ``max_seqs``, ``block_tokens``,
    ``gpus_per_instance``) as an :class:`InstancePhysics`. Written against the contract before
    the physics branch landed: the lead adapts the three marked lines at merge if the final
    names differ."""

    step: Any
    power_model: Any
    gpus: Any
    idle_w: Any
    kv_capacity_tokens: Any
    block_tokens: Any
    token_budget: Any
    max_seqs: Any
    peak_flops: Any
    peak_bw: Any
    #: the fields of the contract's StepTerms the power model reads (time-averaged for it:
    #: :data:`fleetopt.physics.power.ACTIVITY_TERMS`)
    power_terms: tuple[str, ...] = ()

    @classmethod
    def of(cls, profile: Any) -> ContractPhysics:
        from fleetopt.physics.power import ACTIVITY_TERMS

        pm = profile.power_model
        probe = cls._as_dict(profile.step.terms(np.ones(1), np.ones(1)))
        return cls(step=profile.step, power_model=pm,
                   power_terms=tuple(k for k in probe if k in ACTIVITY_TERMS),
                   gpus=float(profile.gpus_per_instance), idle_w=float(pm.idle_w),
                   kv_capacity_tokens=float(profile.kv_capacity_tokens),
                   block_tokens=float(profile.block_tokens),
                   token_budget=float(profile.token_budget), max_seqs=float(profile.max_seqs),
                   peak_flops=float(profile.step.peak_bf16),
                   peak_bw=float(profile.step.bw))

    @staticmethod
    def stack(items: Sequence[ContractPhysics]) -> ContractPhysics:
        steps = [x.step for x in items]
        st = type(steps[0]).stack(steps)
        first = items[0]
        lim: dict[str, Any] = {k: np.asarray([float(getattr(x, k)) for x in items])
                               for k in _LIMIT_FIELDS}
        return dataclasses.replace(
            first, step=st, power_model=type(first.power_model).stack(
                [x.power_model for x in items]), **lim)

    def take(self, idx: ArrayLike) -> ContractPhysics:
        i = np.asarray(idx)
        plan = self._take_plan
        if plan is None:
            lim: dict[str, Any] = {k: np.asarray(getattr(self, k))[i] for k in _LIMIT_FIELDS}
            return dataclasses.replace(
                self, step=_take_dataclass(self.step, idx),
                power_model=_take_dataclass(self.power_model, idx), **lim)
        step_names, pm_names, table = plan
        rows = iter(table[:, i])  # one gather for every per-deployment number
        step = dataclasses.replace(self.step, **{n: next(rows) for n in step_names})
        pm = dataclasses.replace(self.power_model, **{n: next(rows) for n in pm_names})
        return dataclasses.replace(self, step=step, power_model=pm,
                                   **{k: next(rows) for k in _LIMIT_FIELDS})

    @functools.cached_property
    def _take_plan(self) -> tuple[list[str], list[str], F] | None:
        """A stack's per-deployment numbers as one table (a row per field: the step's, the
        power model's, the engine limits), so that :meth:`take` gathers once; None when
        some field is not a 1-D float array over the deployments (then field by field).
        Either way the same numbers."""
        sn, pn = _array_fields(self.step), _array_fields(self.power_model)
        cols = [getattr(self.step, n) for n in sn] + [getattr(self.power_model, n) for n in pn] \
            + [np.asarray(getattr(self, k)) for k in _LIMIT_FIELDS]
        n = len(cols[0]) if cols else 0
        if not n or any(c.ndim != 1 or len(c) != n or c.dtype != np.float64 for c in cols):
            return None
        return sn, pn, np.stack(cols)

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> dict[str, F]:
        return self._as_dict(self.step.terms(D, K_d, P, A_p, K_p))  # contract: StepTerms

    def terms_of(self, keys: Sequence[str], D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0,
                 A_p: ArrayLike = 0.0, K_p: ArrayLike = 0.0) -> dict[str, F]:
        """The terms ``keys`` of :meth:`terms` alone (the same numbers): the step model's own
        ``terms_of`` when it has one (it then skips the terms no one reads)."""
        f = getattr(self.step, "terms_of", None)
        got = self.terms(D, K_d, P, A_p, K_p) if f is None else f(keys, D, K_d, P, A_p, K_p)
        return {k: np.asarray(got[k], dtype=float) for k in keys}

    @staticmethod
    def _as_dict(t: Any) -> dict[str, F]:
        """A StepTerms (frozen dataclass of arrays, or a mapping) as a dict of arrays."""
        d = t if isinstance(t, Mapping) else {f.name: getattr(t, f.name)
                                              for f in dataclasses.fields(t)}
        return {k: np.asarray(v, dtype=float) for k, v in d.items()}

    def gpu_power_w(self, rates: Mapping[str, ArrayLike]) -> F:
        from fleetopt.physics.iteration import StepTerms
        from fleetopt.physics.power import activity

        shape = np.broadcast(*(np.asarray(v, dtype=float) for v in rates.values())).shape
        nan = np.full(shape, math.nan)  # the terms activity() does not read
        avg = StepTerms(**{f.name: np.broadcast_to(np.asarray(rates[f.name], dtype=float), shape)
                           if f.name in self.power_terms else nan
                           for f in dataclasses.fields(StepTerms)})
        return np.asarray(self.power_model.gpu_power_w(activity(avg, self.step)), dtype=float)

    def power_floor_w(self, D: ArrayLike, ctx: ArrayLike, flops_per_s: ArrayLike = 0.0
                      ) -> F:
        """:func:`fleetopt.physics.power.activity_power_floor_w` (contract: the step model's
        coefficients and the activity power model)."""
        return activity_power_floor_w(self.power_model, self.step, D, ctx, flops_per_s)

    def power_floor_parts(self, D: ArrayLike, ctx: ArrayLike) -> dict[str, F]:
        busy, y = activity_floor_parts(self.power_model, self.step, D, ctx)
        return {"busy": busy, "y": y}

    def power_floor_from(self, parts: Mapping[str, ArrayLike], flops_per_s: ArrayLike = 0.0
                         ) -> F:
        return activity_floor_from_parts(self.power_model, self.step, parts["busy"], parts["y"],
                                         flops_per_s)


class _Stacked:
    """Deployments whose physics do not stack: the same protocol, evaluated per deployment."""

    def __init__(self, items: Sequence[Any], idx: NDArray[np.int64] | None = None) -> None:
        self.items = list(items)
        self.idx = np.arange(len(items)) if idx is None else np.asarray(idx)
        terms = set(self.items[0].power_terms)
        for x in self.items[1:]:
            terms |= set(x.power_terms)
        self.power_terms = tuple(sorted(terms))
        for k in _LIMIT_FIELDS:
            setattr(self, k, np.asarray([float(getattr(self.items[i], k)) for i in self.idx]))

    def take(self, idx: ArrayLike) -> _Stacked:
        return _Stacked(self.items, self.idx[np.asarray(idx)])

    def _each(self, fn: Any, shape: tuple[int, ...]) -> dict[str, F]:
        out: dict[str, F] = {}
        for d in np.unique(self.idx):
            m = self.idx == d
            got = fn(self.items[int(d)], m)
            for k, v in got.items():
                if k not in out:
                    out[k] = np.full(shape, math.nan)
                out[k][..., m] = np.broadcast_to(v, shape[:-1] + (int(m.sum()),))
        return out

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> dict[str, F]:
        args = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (D, K_d, P, A_p, K_p)),
                                   np.zeros(len(self.idx)))
        shape = args[0].shape
        out = self._each(lambda ph, m: ph.terms(*(a[..., m] for a in args[:5])), shape)
        # every term any member reports, NaN where a deployment has no such term (a subset
        # of one kind still answers for the others' keys)
        for k in ("t_step", "flops_bf16eq", "bytes_mean", *self.power_terms):
            if k not in out:
                out[k] = np.full(shape, math.nan)
        return out

    def gpu_power_w(self, rates: Mapping[str, ArrayLike]) -> F:
        arr = {k: np.broadcast_to(np.asarray(v, dtype=float), (len(self.idx),))
               for k, v in rates.items()}
        out = self._each(lambda ph, m: {"w": ph.gpu_power_w({k: v[m] for k, v in arr.items()})},
                         (len(self.idx),))
        return out["w"]

    def power_floor_w(self, D: ArrayLike, ctx: ArrayLike, flops_per_s: ArrayLike = 0.0
                      ) -> F:
        return self.power_floor_from(self.power_floor_parts(D, ctx), flops_per_s)

    def power_floor_parts(self, D: ArrayLike, ctx: ArrayLike) -> dict[str, F]:
        d, c = np.broadcast_arrays(np.asarray(D, dtype=float), np.asarray(ctx, dtype=float),
                                   np.zeros(len(self.idx)))[:2]
        return self._each(lambda ph, m: ph.power_floor_parts(d[..., m], c[..., m]), d.shape)

    def power_floor_from(self, parts: Mapping[str, ArrayLike], flops_per_s: ArrayLike = 0.0
                         ) -> F:
        arr = {k: np.asarray(v, dtype=float) for k, v in parts.items()}
        shape = np.broadcast(*arr.values(), np.asarray(flops_per_s, dtype=float),
                             np.zeros(len(self.idx))).shape
        fl = np.broadcast_to(np.asarray(flops_per_s, dtype=float), shape)
        out = self._each(lambda ph, m: {"w": ph.power_floor_from(
            {k: np.broadcast_to(v, shape)[..., m] for k, v in arr.items()}, fl[..., m])}, shape)
        return out["w"]


def stack_physics(items: Sequence[Any]) -> Any:
    """One :class:`InstancePhysics` over ``items`` (arrays over them): the kind's own ``stack``
    when all are of one kind and stack, else a per-deployment wrapper."""
    kinds = {type(x) for x in items}
    if len(kinds) == 1 and hasattr(type(items[0]), "stack"):
        try:
            return type(items[0]).stack(list(items))
        except (ValueError, TypeError):
            pass
    return _Stacked(items)


def physics_of(profile: Profile, settings: Settings | None = None) -> Any:
    """The :class:`InstancePhysics` of a profile: a computed profile's iteration model
    (:class:`ContractPhysics`: ``profile.step``, ``profile.power_model`` and its engine limits,
    which already carry ``[physics] max_num_batched_tokens`` / ``max_num_seqs``), or a
    calibrated profile's published constants (:class:`CalibratedPhysics`). ``settings`` is
    accepted for the callers' symmetry; no setting changes an instance's physics."""
    del settings
    if isinstance(profile, ComputedProfile):
        ph: Any = ContractPhysics.of(profile)
    elif isinstance(profile, CalibratedProfile):
        ph = CalibratedPhysics.of(profile)
    else:
        raise FleetoptError("deployment", f"{type(profile).__name__} has no iteration model "
                            "(step costs and power): physical accounting needs one; use a "
                            "computed or calibrated profile, or paper accounting")
    if float(ph.token_budget) < float(ph.max_seqs):
        raise FleetoptError("physics.max_num_batched_tokens", f"must be >= max_num_seqs "
                            f"({int(ph.max_seqs)}) so every running sequence decodes each step, "
                            f"got {int(ph.token_budget)} on {profile.label()}")
    return ph


def idle_instance_w(profile: Profile, settings: Settings, physics: Any = None) -> float:
    """Watts of one instance running no step: ``paper`` accounting's curve at batch 0 (one
    GPU), else the instance physics' GPUs at idle (``physics``: the profile's
    :func:`physics_of`, when the caller has it)."""
    if settings.accounting == "paper":
        return float(profile.instance_power_w(0.0, "paper"))
    ph = physics_of(profile, settings) if physics is None else physics
    return float(ph.gpus) * float(ph.idle_w)


# ------------------------------------------------------------------------------------------
# grids and helpers

def prompt_grid(lo: float, hi: float) -> F:
    """The fixed prompt-length grid restricted to cover ``[lo, hi]`` (both ends included by a
    grid point at or beyond them): 1, 2, 4, 8, then 16 tokens and geometric, with
    ``_GRID_PER_DOUBLING`` points per doubling (rounded to whole tokens). Its points are the
    same for every range; :func:`_grid_index` gives a point's index in the whole grid."""
    top = max(float(hi), 1.0)
    k = int(math.ceil(_GRID_PER_DOUBLING * math.log2(max(top / 16.0, 1.0)))) + 1
    g = np.unique(np.concatenate([[1.0, 2.0, 4.0, 8.0], np.round(
        16.0 * 2.0 ** (np.arange(k + 1) / _GRID_PER_DOUBLING))]))
    i0 = max(int(np.searchsorted(g, lo, side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(g, hi, side="left")), len(g) - 1)
    return g[i0:i1 + 1]


def _grid_index(x: float) -> int:
    """Index of grid point ``x`` in the whole (unrestricted) prompt grid."""
    return int(np.searchsorted(prompt_grid(1.0, max(float(x), 1.0)), x))


def _interp_index(x: F, grid: F) -> tuple[NDArray[np.int64], F]:
    """Each point's left grid neighbour and its weight toward the right one."""
    if len(grid) == 1:
        return np.zeros(len(x), dtype=np.int64), np.zeros(len(x))
    k = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    return k, np.clip((x - grid[k]) / (grid[k + 1] - grid[k]), 0.0, 1.0)


def _interp_matrix(x: F, grid: F) -> F:
    """``A[i, q]``: weights of point ``x_i`` on the grid (linear, two neighbours)."""
    A = np.zeros((len(x), len(grid)))
    if len(grid) == 1:
        A[:, 0] = 1.0
        return A
    k = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    t = np.clip((x - grid[k]) / (grid[k + 1] - grid[k]), 0.0, 1.0)
    rows = np.arange(len(x))
    A[rows, k] = 1.0 - t
    A[rows, k + 1] += t
    return A


def _wait_tail_uniform(d: F, ell: F, coef: F, theta: F, shift: ArrayLike = 0.0) -> F:
    """``P(W + U > d)``, ``U ~ U(0, ell)``, ``W = 0`` with probability ``1 - sum_m coef_m``, else
    ``shift + E`` with ``P(E > x) sum_m coef_m = sum_m coef_m exp(-theta_m x)`` (a request that
    waits at all waits ``shift`` more). ``d, ell, shift``: any broadcast shape ``S``; ``coef,
    theta``: ``(M,) + S``-broadcastable.

    With ``u(x) = P(U > x)`` (1 for ``x <= 0``), ``x' = max(d - shift, 0)`` and ``m = min(x',
    ell)``: ``P = (1 - sum coef) u(d) + sum coef u(d - shift) + sum_m coef_m (exp(-theta_m (x' -
    m)) - exp(-theta_m x')) / (theta_m ell)`` (``ell -> 0``: the wait's own tail)."""
    d = np.asarray(d, dtype=float)
    ell = np.asarray(ell, dtype=float)
    el = np.maximum(ell, 1e-12)
    ds = d - np.asarray(shift, dtype=float)

    def u(x: F) -> F:
        out: F = np.where(x <= 0.0, 1.0, np.maximum(el - np.maximum(x, 0.0), 0.0) / el)
        return out

    dpos = np.maximum(ds, 0.0)
    m = np.minimum(dpos, el)
    c_all = np.sum(coef, axis=0)
    out = (1.0 - c_all) * u(d) + c_all * u(ds)
    for cm, th in zip(coef, theta, strict=True):
        x = th * el
        far = np.exp(-th * dpos)
        near = np.exp(-th * (dpos - m))
        with np.errstate(invalid="ignore", divide="ignore"):
            part = np.where(x > 1e-9, (near - far) / np.where(x > 1e-9, x, 1.0), far * m / el)
        out = out + cm * part
    return np.minimum(out, 1.0)


def _gamma_tail(shape_k: F, scale: F, x: F) -> F:
    """``P(G > x)`` for a gamma of the given shape and scale (x <= 0: 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(scale > 0, np.maximum(x, 0.0) / np.where(scale > 0, scale, 1.0), np.inf)
        p = special.gammaincc(np.maximum(shape_k, 1e-12), z)
    return np.where(x <= 0, 1.0, np.where(scale > 0, p, 0.0))


def _waits(pw: F, theta: F) -> tuple[F, F]:
    """The wait's tail as exponential components: ``(coef (1, n), theta (1, n))``."""
    return np.atleast_1d(pw)[None, :], np.maximum(np.atleast_1d(theta), 1e-300)[None, :]


def _sum_of_waits(pa: F, ta: F, pw: F, tw: F) -> tuple[F, F]:
    """Two independent waits, each ``(1 - p) delta_0 + p Exp(theta)``: the tail of their sum as
    signed exponential components ``(coef (2, n), theta (2, n))``."""
    tw = np.where(np.abs(tw - ta) < 1e-6 * np.maximum(tw, ta), tw * (1.0 + 1e-3), tw)
    hyp_a = tw / (tw - ta)  # P(Ea + Ew > x) = hyp_a e^{-ta x} + hyp_w e^{-tw x}
    hyp_w = -ta / (tw - ta)
    ca = pa * (1.0 - pw) + pa * pw * hyp_a
    cw = (1.0 - pa) * pw + pa * pw * hyp_w
    return np.vstack([ca, cw]), np.vstack([ta, tw])


#: elements per call of the step formula when tabulating (slices of the leading axis): the
#: formula's many temporaries then stay in cache (elementwise, so the same bits as one call)
_TERMS_CHUNK = 8192


def _terms_of(ph: Any, keys: Sequence[str], *args: ArrayLike) -> dict[str, F]:
    """The terms ``keys`` of ``ph.terms(*args)`` (the physics' ``terms_of`` where it has one:
    the same numbers, without the terms no one reads)."""
    f = getattr(ph, "terms_of", None)
    if f is not None:
        out: dict[str, F] = f(keys, *args)
        return out
    got = ph.terms(*args)
    return {k: np.asarray(got[k]) for k in keys}


def _terms_sliced(ph: Any, keys: Sequence[str], *args: ArrayLike) -> dict[str, F]:
    """The terms ``keys`` of ``ph.terms(*args)``, evaluated on slices of the leading axis of
    the broadcast inputs: the same numbers (every term is elementwise), faster on large
    tables."""
    a = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in args))
    shape = a[0].shape
    inner = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    step = max(1, _TERMS_CHUNK // max(inner, 1))
    if len(shape) < 2 or shape[0] <= step:
        return _terms_of(ph, keys, *a)
    out = {k: np.empty(shape) for k in keys}
    for i in range(0, shape[0], step):
        got = _terms_of(ph, keys, *(x[i:i + step] for x in a))
        for k in keys:
            out[k][i:i + step] = got[k]
    return out


def _rows(d: Mapping[str, Any], sel: NDArray[np.int64]) -> dict[str, Any]:
    """The pairs ``sel`` of a dict of per-pair arrays (first axis; wait components: second)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k in ("coef", "th"):
            out[k] = v[:, sel]
        elif isinstance(v, np.ndarray) and v.ndim >= 1:
            out[k] = v[sel]
        else:
            out[k] = v
    return out


def lru_hit_share(hash_lists: Sequence[Sequence[int]], prompt_tokens: ArrayLike,
                  capacity_blocks: int, block_tokens: int = 512) -> float:
    """Share of prompt tokens a least-recently-used cache of ``capacity_blocks`` hash blocks
    serves, replaying the requests in order (Mooncake ``hash_ids``: one hash per
    ``block_tokens`` tokens of prompt; a request hits the leading run of its blocks that are
    cached, then inserts all of them). The estimate ``[workload] prefix_cache_hit`` takes for a
    pool when the workload's trace carries block hashes (``docs/model.md``)."""
    from collections import OrderedDict

    lens = np.asarray(prompt_tokens, dtype=float)
    cache: OrderedDict[int, None] = OrderedDict()
    hit = 0.0
    cap = max(int(capacity_blocks), 0)
    for hs, ell in zip(hash_lists, lens, strict=True):
        run = 0
        for h in hs:
            if h in cache:
                run += 1
            else:
                break
        hit += min(run * block_tokens, float(ell))
        for h in hs:
            if h in cache:
                cache.move_to_end(h)
            else:
                cache[h] = None
                if len(cache) > cap:
                    cache.popitem(last=False)
    tot = float(lens.sum())
    return hit / tot if tot > 0 else 0.0


class _Entries:
    """Per-(pair, request) terms of the KV exponent (:meth:`ServeFamily._kv_chernoff`), pair-
    major: ``pair`` the pair of each entry (``n`` pairs), and the request's ``oi`` (own time),
    ``w`` (weight), ``a`` (KV held at its first step), ``nd`` (decode steps), ``has`` (nd >
    0)."""

    def __init__(self, pair: NDArray[np.int64], n: int, oi: F, w: F, a: F, nd: F,
                 has: NDArray[np.bool_]) -> None:
        self.pair, self.n, self.oi, self.w, self.a, self.nd, self.has = pair, n, oi, w, a, nd, has

    def rows(self, rows: NDArray[np.int64]) -> _Entries:
        """The entries of the pairs ``rows`` (ascending), renumbered ``0 .. len(rows) - 1``."""
        new = np.full(self.n, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        p = new[self.pair]
        m = p >= 0
        return _Entries(p[m], len(rows), self.oi[m], self.w[m], self.a[m], self.nd[m],
                        self.has[m])


# ------------------------------------------------------------------------------------------
# the family

class ServeFamily:
    """Pools sharing one upper edge and window: columns ``c = d * L + l`` over deployments
    ``d`` (``physics``, one :class:`InstancePhysics` each) and lower edges ``l`` of ``mix``
    (:func:`fleetopt.sizing.family.family_mix`; pool ``l`` may have its own upper edge,
    ``his``). ``hit``: prefix-cache hit share per lower edge (or one for all). ``slots``: KV
    slots per deployment at the window (reserved KV), or per deployment and pool (D x L: each
    pool at its own window; 0 where the deployment cannot hold it)."""

    def __init__(self, physics: Sequence[Any], mix: Mapping[str, Any], settings: Settings,
                 slots: ArrayLike, hit: ArrayLike = 0.0, stacked: Any = None,
                 sized_only: bool = False, defer: bool = False) -> None:
        """``stacked``: ``stack_physics(physics)`` when the caller has it already (the same
        object, so the same numbers). ``sized_only``: the caller sizes and prices feasible
        columns only (:meth:`min_instances`, then the figures of feasible columns): the tables
        of columns that can never meet the tests are left NaN beyond no decoders, where
        ``prefill_ok`` is decided (a feasible column's numbers are the same either way).
        ``defer``: no tables beyond no decoders yet; an operating point builds the decoder
        rows it reads (:meth:`_ensure_rows`), :meth:`complete` every row of the columns the
        caller asks for (the numbers are the same)."""
        st = settings
        self.settings = st
        self.sized_only = bool(sized_only)
        self.defer = bool(defer)
        self.reserved = st.kv_allocation == "reserved"
        self.window = int(mix["window"])
        D_n, L = len(physics), len(mix["lows"])
        self.lows = np.asarray(mix["lows"])
        self.dep = np.repeat(np.arange(D_n), L)
        self.lc = np.tile(np.arange(L), D_n)
        lc = self.lc
        if D_n and stacked is None:
            stacked = stack_physics(list(physics))
        self.phys: Any = stacked.take(self.dep) if D_n else None
        self.share = np.asarray(mix["share"], dtype=float)[lc]
        self.nonempty = self.share > 0
        self.rate_rps = np.asarray(mix["rate_rps"], dtype=float)[lc]
        # design-rate factor per column: the mix's per-pool factors, else the global one
        self.peak = np.broadcast_to(np.asarray(mix.get("peak_factor", st.peak_factor),
                                               dtype=float), (L,))[lc]
        self.compressed_share = np.asarray(mix["compressed_share"], dtype=float)[lc]
        self.input_tokens_cut = np.asarray(mix["input_tokens_cut"], dtype=float)[lc]
        self.mean_output = np.asarray(mix["mean_output"], dtype=float)[lc]
        sl = np.asarray(slots, dtype=np.int64)
        if sl.ndim == 2:  # per deployment and lower edge (pools at their own windows)
            self.slots = sl[self.dep, lc] if D_n else np.zeros(0, dtype=np.int64)
        else:
            self.slots = sl[self.dep] if D_n else np.zeros(0, dtype=np.int64)
        C = len(self.dep)
        self.ncols = C
        lin = np.asarray(mix["lin"], dtype=float)
        lout = np.asarray(mix["lout"], dtype=float)
        Wn = np.asarray(mix["Wn"], dtype=float)  # P x L
        hit_l = np.broadcast_to(np.asarray(hit, dtype=float), (L,)).copy()
        if np.any((hit_l < 0) | (hit_l >= 1)):
            raise FleetoptError("workload.prefix_cache_hit", "must be in [0, 1)")
        self.hit = hit_l[lc]
        self._lin, self._lout, self._Wn = lin, lout, Wn
        if C == 0:
            self.feasible = np.zeros(0, dtype=bool)
            return
        ph: Any = self.phys
        self.B = np.asarray(ph.token_budget, dtype=np.float64) + np.zeros(C)
        self.S = np.asarray(ph.max_seqs, dtype=np.float64) + np.zeros(C)
        self.cap_kv = np.asarray(ph.kv_capacity_tokens, dtype=np.float64) + np.zeros(C)
        self.bt = np.asarray(ph.block_tokens, dtype=np.float64) + np.zeros(C)
        self.gpus = np.asarray(ph.gpus, dtype=np.float64) + np.zeros(C)
        self.idle_w = np.asarray(ph.idle_w, dtype=np.float64) + np.zeros(C)
        dmax = np.minimum(self.S, self.B - 1.0)
        if self.reserved:
            dmax = np.minimum(dmax, self.slots.astype(float))
        self.dmax = np.maximum(dmax, 0.0)
        # --- per lower edge: moments of the mix
        nd = np.maximum(lout - 1.0, 0.0)
        lc_tok = np.maximum(1.0, np.round(lin[:, None] * (1.0 - hit_l[None, :])))  # P x L
        cached = lin[:, None] - lc_tok
        E_dec = nd @ Wn
        with np.errstate(invalid="ignore", divide="ignore"):
            Lbar = np.where(E_dec > 0, (nd * (lin + lout / 2.0)) @ Wn / np.where(
                E_dec > 0, E_dec, 1.0), lin @ Wn)
        E_lc = (Wn * lc_tok).sum(axis=0)
        pairs = (lin[:, None] * (lin[:, None] + 1.0) - cached * (cached + 1.0)) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            ppt = np.where(E_lc > 0, (Wn * pairs).sum(axis=0) / np.where(E_lc > 0, E_lc, 1.0),
                           1.0)
        self.E_dec, self.Lbar, self.E_lc, self.ppt = E_dec[lc], Lbar[lc], E_lc[lc], ppt[lc]
        self.E_dec2 = (nd**2 @ Wn)[lc]
        with np.errstate(invalid="ignore", divide="ignore"):  # remaining tokens of a decoder
            self.rem_dec = np.where(self.E_dec > 0, (self.E_dec2 + self.E_dec)
                                    / (2.0 * np.where(self.E_dec > 0, self.E_dec, 1.0)), 0.0)
        self.dec_share = ((nd > 0) @ Wn)[lc]
        self.E_tok = self.E_lc + self.E_dec  # tokens computed per request
        # --- prompt grid over the family (shared by its columns; each uses its neighbours)
        live = Wn.sum(axis=1) > 0
        lo_l = float(lin[live].min()) if live.any() else 1.0
        hi_l = float(lin[live].max()) if live.any() else 1.0
        grid = prompt_grid(lo_l, hi_l)
        self.grid = grid
        # residual kinds pair grid points by their index in the whole grid (not this range's):
        # a pool gets the same kinds in any family
        self.grid_odd = _grid_index(float(grid[0])) % 2
        A = _interp_matrix(lin, grid)  # P x Q
        self._A = A
        self._ak, self._at = _interp_index(lin, grid)
        self.Wq = (A.T @ Wn)[:, lc].T  # C x Q
        # KV held per request: lin (+ a block, rounded up) during prefill, + k at decode step k
        b1 = self.bt - 1.0  # per column
        WA = A.T @ Wn  # Q x L: sum_i w_i A_iq
        WlA = A.T @ (Wn * lin[:, None])
        Wl2A = A.T @ (Wn * lin[:, None] ** 2)
        self.kv_aq = (WlA[:, lc] + b1[None, :] * WA[:, lc]).T  # sum_i w_i a_i A_iq
        self.kv_a2q = (Wl2A[:, lc] + 2.0 * b1[None, :] * WlA[:, lc]
                       + (b1**2)[None, :] * WA[:, lc]).T
        n1 = nd * (nd + 1.0) / 2.0
        n2 = nd * (nd + 1.0) * (2.0 * nd + 1.0) / 6.0
        m = {k: (v @ Wn)[lc] for k, v in (("nd", nd), ("ndl", nd * lin), ("n1", n1),
                                          ("ndl2", nd * lin**2), ("ln1", lin * nd * (nd + 1.0)),
                                          ("n2", n2))}
        # sum_i w_i [nd a + nd (nd + 1) / 2] and sum_i w_i sum_k (a + k)^2, a = lin + b1
        self.kv_dec = m["ndl"] + b1 * m["nd"] + m["n1"]
        self.kv_dec2 = (m["ndl2"] + 2.0 * b1 * m["ndl"] + b1**2 * m["nd"] + m["ln1"]
                        + b1 * 2.0 * m["n1"] + m["n2"])
        hmax_l = np.where(Wn > 0, lin[:, None] + nd[:, None], 0.0).max(axis=0, initial=0.0)
        self.kv_hmax = hmax_l[lc] + b1
        # TPOT classes by decode steps: weights on the grid per class
        bins = _TPOT_BINS
        bi = np.clip(np.searchsorted(bins, nd, side="left"), 0, len(bins) - 1)
        has = nd > 0
        Bn = len(bins)
        Wd = Wn * has[:, None]  # P x L, decoding requests only
        tp_w = np.zeros((L, Bn))
        tp_nd = np.zeros((L, Bn))
        tp_q = np.zeros((L, Bn, len(grid)))
        for b in np.unique(bi[has]):
            sel = (bi == b) & has
            tp_w[:, b] = Wd[sel].sum(axis=0)
            tp_nd[:, b] = (Wd[sel] * nd[sel, None]).sum(axis=0)
            tp_q[:, b, :] = Wd[sel].T @ A[sel]
        with np.errstate(invalid="ignore", divide="ignore"):
            tot = tp_w.sum(axis=1, keepdims=True)
            self.tp_w = np.where(tot > 0, tp_w / np.where(tot > 0, tot, 1.0), 0.0)[lc]
            self.tp_nd = np.where(tp_w > 0, tp_nd / np.where(tp_w > 0, tp_w, 1.0), 1.0)[lc]
            sq = tp_q.sum(axis=2, keepdims=True)
            # per lower edge (a column reads its own: lower edges x Bn x Q, not C x Bn x Q)
            self.tp_q_l = np.where(sq > 0, tp_q / np.where(sq > 0, sq, 1.0), 0.0)
        # (and, from the tables at no decoders: no count can meet the TTFT target when prefill
        # alone is too slow: prefill_ok, feasible)
        self._build_tables()

    def prefill_floor_s(self, col: int) -> float:
        """The least TTFT target column ``col`` can meet at any size: the quantile of prefill
        alone (no decoders, no wait) that leaves the prefill tail margin."""
        st = self.settings
        w = self.Wq[col]
        own0 = self.own0[col]
        order = np.argsort(own0, kind="stable")
        cum = np.cumsum(w[order])
        k = min(int(np.searchsorted(cum, (1.0 - st.prefill_late_budget) * cum[-1] - 1e-12)),
                len(cum) - 1)
        return float(own0[order][k])

    # --- tables ---------------------------------------------------------------------------
    def _build_tables(self) -> None:
        """Step costs on the (decoders, prompt) grid, per column, non-decreasing in D."""
        ph = self.phys
        Dg = self.dmax[None, :] * _D_FRACTIONS[:, None]  # G x C
        self.Dg = Dg.T.copy()  # C x G
        Kd = Dg * self.Lbar[None, :]
        z = np.zeros_like(Dg)
        keys = tuple(ph.power_terms)
        tkeys = tuple(dict.fromkeys(("t_step", *keys)))  # what the tables read
        dec = _terms_of(ph, tkeys, Dg, Kd, z, z, z)
        tau_d = np.maximum.accumulate(np.asarray(dec["t_step"]), axis=0)
        ctok = np.maximum(self.B[None, :] - Dg, 1.0)  # G x C
        s_full = np.maximum(self.ppt[None, :] - (ctok + 1.0) / 2.0, 0.0)
        # a full-budget step: at no decoders now, the other rows with the prompt rows (finish)
        tau_f = np.full(Dg.shape, math.nan)
        tau_f[0] = _terms_of(ph, ("t_step",), Dg[:1], Kd[:1], ctok[:1],
                             ctok[:1] * self.ppt[None, :], s_full[:1])["t_step"][0]
        # prompts at the grid's lengths, this column's hit share
        lin_q = self.grid
        lq = np.maximum(1.0, np.round(lin_q[:, None] * (1.0 - self.hit[None, :])))  # Q x C
        hq = lin_q[:, None] - lq
        C = len(Dg[0])
        # a prompt's chunks depend on its column only through the deployment (budget), its
        # decoder grid (the deployment's, and with reserved KV the slots at the pool's window)
        # and the hit share: one "kind" per (deployment, decoder grid, hit share), its first
        # column the representative (the same numbers as every column of the kind)
        hit_i = np.unique(self.hit, return_inverse=True)[1].reshape(-1)
        dmax_i = np.unique(self.dmax, return_inverse=True)[1].reshape(-1)
        n_h, n_d = int(hit_i.max(initial=0)) + 1, int(dmax_i.max(initial=0)) + 1
        _, rep, kind = np.unique((self.dep * n_d + dmax_i) * n_h + hit_i, return_index=True,
                                 return_inverse=True)
        kind = kind.reshape(-1)
        ctok_k = ctok[:, rep]  # G x K
        n_k = np.maximum(1.0, np.ceil(lq[:, rep][None, :, :] / ctok_k[:, None, :]))  # G x Q x K
        start_k = hq[:, rep][None] + (n_k - 1.0) * ctok_k[:, None, :]
        size_k = lq[:, rep][None] - (n_k - 1.0) * ctok_k[:, None, :]
        lpairs_k = size_k * start_k + size_k * (size_k + 1.0) / 2.0
        G, Q = n_k.shape[0], len(lin_q)
        # (rows beyond none are written before they are read, column by column: finish)
        own = np.empty((G, Q, C))
        pt = {k: np.empty(Dg.shape) for k in keys}

        def raw_rows(rows: range, units: NDArray[np.int64], unit_kind: NDArray[np.int64]
                     ) -> tuple[dict[str, F], tuple[NDArray[np.int64], ...], dict[str, F]]:
            """The step terms of the prompts at decoder rows ``rows`` on the columns ``units``
            (kinds ``unit_kind``): the last chunk's terms (rows x Q x units) and, per prompt
            beyond one chunk, ``(row, prompt, unit index)`` with the weighted sum of its full
            chunks' terms (exact up to _CHUNK_SAMPLES of them, else that many samples and
            the sum of their piecewise-linear interpolation)."""
            sub_ph = ph if len(units) == C else ph.take(units)
            u_n = len(units)
            # several decoder counts per call while the temporaries stay in cache
            # (elementwise, so the same bits as one at a time)
            per = max(1, _TERMS_CHUNK // max(Q * u_n, 1))
            last: dict[str, F] = {}
            for r0 in range(rows.start, rows.stop, per):
                r1 = min(r0 + per, rows.stop)
                Dr = np.broadcast_to(Dg[r0:r1, None, units], (r1 - r0, Q, u_n))
                got = _terms_of(sub_ph, tkeys, Dr, Dr * self.Lbar[units],
                                size_k[r0:r1][:, :, unit_kind], lpairs_k[r0:r1][:, :, unit_kind],
                                start_k[r0:r1][:, :, unit_kind])
                if r1 - r0 == len(rows):  # one call for every row: its arrays as they are
                    last = {k: np.asarray(got[k]) for k in tkeys}
                    break
                if not last:
                    last = {k: np.empty((len(rows), Q, u_n)) for k in tkeys}
                for k in tkeys:
                    last[k][r0 - rows.start:r1 - rows.start] = got[k]
            gr, qi, ui = np.nonzero(n_k[rows.start:rows.stop][:, :, unit_kind] >= 2.0)
            gi = gr + rows.start
            sums: dict[str, F] = {k: np.zeros(len(gi)) for k in tkeys}
            if not len(gi):
                return last, (gi, qi, ui), sums
            ci = units[ui]
            nf = n_k[gi, qi, unit_kind[ui]] - 1.0  # full chunks, indices 0 .. nf - 1
            J = _CHUNK_SAMPLES
            jv = np.arange(J)[None, :]
            exact = nf[:, None] <= J
            pos_s = np.floor(jv * (nf[:, None] - 1.0) / (J - 1))
            pos = np.where(exact, jv, pos_s)
            seg = np.diff(pos_s, axis=1)  # J - 1 segments (sampled case: lengths >= 1)
            w_s = np.zeros((len(nf), J))
            w_s[:, :-1] += (seg + 1.0) / 2.0
            w_s[:, 1:] += (seg - 1.0) / 2.0
            w_s[:, -1] += 1.0
            wgt = np.where(exact, (jv < nf[:, None]).astype(float), w_s)
            c_e = ctok[gi, ci][:, None]
            s_e = hq[qi, ci][:, None] + pos * c_e
            D_e = Dg[gi, ci][:, None]
            sub = ph.take(ci)
            sub_args = (D_e + 0 * s_e, D_e * self.Lbar[ci][:, None] + 0 * s_e, c_e + 0 * s_e,
                        c_e * s_e + c_e * (c_e + 1.0) / 2.0, s_e)
            # physics of entry e broadcast along the last axis: transpose to (J, M)
            ft = _terms_sliced(sub, tkeys, *(x.T for x in sub_args))
            for k in tkeys:
                sums[k] = (np.asarray(ft[k]).T * wgt).sum(axis=1)
            return last, (gi, qi, ui), sums

        def place_rows(rows: range, cc: NDArray[np.int64], at: NDArray[np.int64] | None,
                       last: dict[str, F], entries: tuple[NDArray[np.int64], ...],
                       sums: dict[str, F], lookup: NDArray[np.int64] | None = None) -> None:
            """``own`` and ``pt`` at decoder rows ``rows`` for the columns ``cc`` from
            :func:`raw_rows` on units (column ``cc[j]`` reads unit ``at[j]``, None: unit ``j``;
            ``lookup``: per (row, prompt, unit) the entry index, when the units are not the
            columns)."""
            wq = self.Wq[cc][None]  # 1 x cc x Q
            own[rows.start:rows.stop, :, cc] = last["t_step"] if at is None else \
                last["t_step"][:, :, at]
            for key in keys:
                # summed over the prompts row by row (products written rows x cc x Q: a
                # contiguous last axis, the same bits in any family)
                src = last[key] if at is None else last[key][:, :, at]
                pt[key][rows.start:rows.stop, cc] = np.multiply(np.swapaxes(src, 1, 2), wq,
                                                                order="C").sum(axis=2)
            gi, qi, ui = entries
            if not len(gi):
                return
            e: Any = slice(None)
            if lookup is None:
                ci = cc[ui]
            else:  # every column of each entry's unit, prompt-ascending per column
                gr, qi, j = np.nonzero(n_k[rows.start:rows.stop][:, :, kind[cc]] >= 2.0)
                gi = gr + rows.start
                ci = cc[j]
                e = lookup[gr, qi, j if at is None else at[j]]
            np.add.at(own, (gi, qi, ci), sums["t_step"][e])
            w_e = self.Wq[ci, qi]
            for key in keys:
                np.add.at(pt[key], (gi, ci), sums[key][e] * w_e)

        def prompt_rows(rows: range, cc: NDArray[np.int64]) -> None:
            """``own`` and ``pt`` at decoder rows ``rows`` for the columns ``cc``."""
            if len(cc) and len(rows):
                last, entries, sums = raw_rows(rows, cc, kind[cc])
                place_rows(rows, cc, None, last, entries, sums)

        # no decoders (what prefill_ok needs), for every column: no cached context either, so
        # each kind's representative gives its columns' numbers
        row0 = range(0, 1)
        last, entries, sums = raw_rows(row0, rep, np.arange(len(rep)))
        lookup = np.full((1, Q, len(rep)), -1, dtype=np.int64)
        lookup[entries] = np.arange(len(entries[0]))
        place_rows(row0, np.arange(C), kind, last, entries, sums, lookup)
        own0 = own[0].T  # C x Q
        self.prefill_late_share = (self.Wq * (own0 > self.settings.slo_s)).sum(axis=1)
        self.prefill_ok = self.prefill_late_share <= self.settings.prefill_late_budget
        self.feasible = self.nonempty & (self.slots >= 1) & self.prefill_ok
        every = np.arange(C)
        # chunks per prompt: kinds x G x Q (a column reads its kind's: nch)
        self._nch_k = np.ascontiguousarray(np.transpose(n_k, (2, 0, 1)))
        self._kind = kind
        self.tau_d = tau_d.T.copy()  # C x G
        self.tau_f = tau_f.T.copy()
        # the most a queued request's first step can add to its own chunk: the rest of a
        # full-budget step, at no decoders (_queued_extra)
        self.queued_cap = np.maximum(self.tau_f[:, :1] - own0 / np.maximum(self._nch_k[kind, 0],
                                                                             1.0),
                                     0.0)
        # row by row (not einsum, whose summation order depends on the family's size): a pool
        # gets the same bits in any family
        self.S_n = np.empty((C, G))
        for gg in range(G):  # (one decoder row at a time: smaller temporaries, the same bits)
            self.S_n[:, gg] = (self._nch_k[kind, gg] * self.Wq).sum(axis=1)
        self.own0 = np.ascontiguousarray(own0)  # = own[:, 0] (no decoders)
        self.S_own0 = (self.own0 * self.Wq).sum(axis=1)  # = S_own[:, 0]
        self.dec_terms = {k: np.asarray(dec[k]).T.copy() for k in keys}  # C x G
        self.power_keys = keys
        self.flops_req = self._flops_per_request(dec, pt, Dg)
        # the decoder counts beyond none: filled column by column (:meth:`complete`)
        # own and ell (C x G x Q) only for the columns with rows built: a slot each, in order
        self._slot = np.full(C, -1, dtype=np.int64)
        self._own_c = np.full((0, G, Q), math.nan)
        self._ell_c = np.full((0, G, Q), math.nan)
        self.S_own = np.full((C, G), math.nan)
        self.pt_terms = {k: np.full((C, G), math.nan) for k in keys}
        self._done = np.zeros(C, dtype=bool)
        self._nrows = np.ones(C, dtype=np.int64)  # decoder rows built per column (row 0: all)

        def finish(cc: NDArray[np.int64], start: int, stop: int) -> None:
            """Decoder rows ``start`` to ``stop - 1`` for the columns ``cc`` (each with rows
            below ``start`` built), then their tables (column by column and row by row: the
            same bits whichever columns and rows are built together; the running maxima in
            ``D`` continue from row ``start - 1``, whose ``own`` already holds them)."""
            prompt_rows(range(start, stop), cc)
            # the full-budget step at these rows, non-decreasing in D from row start - 1
            rs = slice(start, stop)
            c_f = ctok[rs][:, cc]
            full = _terms_of(ph if len(cc) == C else ph.take(cc), ("t_step",), Dg[rs][:, cc],
                             Kd[rs][:, cc], c_f, c_f * self.ppt[cc], s_full[rs][:, cc])
            self.tau_f[cc, start:stop] = np.maximum.accumulate(np.vstack(
                [self.tau_f[cc, start - 1][None, :], np.asarray(full["t_step"])]), axis=0)[1:].T
            sl = self._slots_of(cc)
            sub = np.maximum.accumulate(own[start - 1:stop, :, cc], axis=0)
            own[start:stop, :, cc] = sub[1:]
            self._own_c[sl, start - 1:stop] = np.transpose(sub, (2, 0, 1))
            # length of one step of the prompt (the residual), non-decreasing in D
            ratio = sub / n_k[start - 1:stop, :, kind[cc]]
            if start > 1:
                ratio[0] = self._ell_c[sl, start - 1].T
            self._ell_c[sl, start - 1:stop] = np.transpose(np.maximum.accumulate(ratio, axis=0),
                                                           (2, 0, 1))
            self.S_own[cc, start - 1:stop] = (self._own_c[sl, start - 1:stop]
                                              * self.Wq[cc][:, None, :]).sum(axis=2)
            for key in keys:
                self.pt_terms[key][cc, start - 1:stop] = pt[key][start - 1:stop, cc].T
            self._nrows[cc] = stop
            self._done[cc] = stop == G

        self._finish = finish
        if not self.defer:
            # every column, or (sized_only) the feasible ones (the others keep NaN tables)
            self.complete(np.flatnonzero(self.feasible) if self.sized_only else every)

    def _flops_per_request(self, dec: Mapping[str, F], pt: Mapping[str, F], Dg: F) -> F:
        """Tensor FLOPs per request (per GPU) that every operating point runs at least: its
        prompt's at no decoders (row 0 of the prompt tables) plus one decoder token per decode
        step (``E_dec`` of them, each ``flops(D) / D`` of a decode step). The step formula's
        FLOPs are linear in the step's tokens, decode contexts and attention pairs, so a
        prompt's sum over its chunks is the same however it is chunked, the decoders that ride
        along only add, and at the fixed point ``D r >= lam1 E_dec``: the FLOPs per second of an
        instance at rate ``lam1`` are at least ``lam1`` times this (:meth:`watts_floor`). 0 where
        the physics reports no FLOPs."""
        if "flops_bf16eq" not in self.power_keys:
            return np.zeros(len(Dg[0]))
        d_top = Dg[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_dec = np.where(d_top > 0, np.asarray(dec["flops_bf16eq"])[-1]
                               / np.where(d_top > 0, d_top, 1.0), 0.0)
            fr = np.asarray(pt["flops_bf16eq"])[0] + per_dec * self.E_dec
        out: F = np.where(np.isfinite(fr) & (fr > 0), fr * (1.0 - 1e-9), 0.0)
        return out

    def complete(self, cols: ArrayLike) -> None:
        """Build every row of the tables beyond no decoders for the columns ``cols`` (the rows
        not built yet): a family made with ``defer`` has only the no-decoder tables (what
        :attr:`feasible`, :meth:`lower_bound` and :meth:`watts_floor` read) and the rows its
        operating points have read."""
        cc = np.unique(np.asarray(cols, dtype=np.int64))
        cc = cc[~self._done[cc]]
        self._extend(cc, np.full(len(cc), len(_D_FRACTIONS)))

    def _slots_of(self, cols: NDArray[np.int64]) -> NDArray[np.int64]:
        """The rows of the columns ``cols`` (distinct) in the built ``own`` and ``ell`` tables,
        new ones given the next free rows (the tables grow by doubling; unbuilt rows NaN)."""
        new = cols[self._slot[cols] < 0]
        if len(new):
            n0 = int(self._slot.max(initial=-1)) + 1
            need = n0 + len(new)
            if need > len(self._own_c):
                cap = min(self.ncols, max(need, 2 * len(self._own_c), 64))
                for name in ("_own_c", "_ell_c"):
                    old = getattr(self, name)
                    grown = np.full((cap,) + old.shape[1:], math.nan)
                    grown[:len(old)] = old
                    setattr(self, name, grown)
            self._slot[new] = np.arange(n0, need)
        return self._slot[cols]

    def _full_table(self, compact: F) -> F:
        """A per-slot table as columns x G x Q (NaN where no rows are built)."""
        out = np.full((self.ncols,) + compact.shape[1:], math.nan)
        has = self._slot >= 0
        out[has] = compact[self._slot[has]]
        return out

    @property
    def own(self) -> F:
        """Seconds of each grid prompt's prefill (all its chunks), columns x G x Q, non-
        decreasing in ``D`` (NaN where the decoder rows are not built)."""
        return self._full_table(self._own_c)

    @property
    def ell(self) -> F:
        """Seconds of one step of each grid prompt (the residual), columns x G x Q."""
        return self._full_table(self._ell_c)

    @property
    def nch(self) -> F:
        """Chunks (steps) of each grid prompt, columns x G x Q."""
        out: F = self._nch_k[self._kind]
        return out

    def _extend(self, cols: NDArray[np.int64], upto: NDArray[np.int64]) -> None:
        """Build the decoder rows of the (distinct) columns ``cols`` up to ``upto`` (exclusive,
        per column; those built already are kept)."""
        start = self._nrows[cols]
        more = upto > start
        cols, start, upto = cols[more], start[more], upto[more]
        if not len(cols):
            return
        G = len(_D_FRACTIONS)
        key = start * (G + 1) + upto
        for kk in np.unique(key):
            sel = key == kk
            self._finish(cols[sel], int(kk // (G + 1)), int(kk % (G + 1)))

    def _ensure_rows(self, cols: NDArray[np.int64], lam1: F) -> None:
        """Build (``defer``) the decoder rows that the fixed point of each (column, rate per
        instance) pair reads: every row up to the first at which ``D r(D)`` reaches the pair's
        decoder demand (all of them where none does). A column's rows are the same numbers
        however many are built; the rows first built are those up to the cell where the
        demand is met with the prompt tables at no decoders (``S_own(0) <= S_own(D)``, so that
        cell is never above the true one), and :data:`_ROW_MARGIN` more."""
        G = len(_D_FRACTIONS)
        todo = self._nrows[cols] < G
        if not todo.any():
            return
        c, l1 = cols[todo], lam1[todo]
        need = l1 * self.E_dec[c]
        fresh = self._nrows[c] == 1
        if fresh.any():
            cf, lf = c[fresh], l1[fresh][:, None]
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                h = self.Dg[cf] * (lf * self.S_n[cf] + (1.0 - lf * self.S_own0[cf][:, None])
                                   / self.tau_d[cf]) - need[fresh][:, None]
            pos = h[:, 1:] >= 0.0
            g_lb = np.where(pos.any(axis=1), np.argmax(pos, axis=1), G - 2)
            upto = np.zeros(self.ncols, dtype=np.int64)
            lv = np.asarray(_ROW_LEVELS)
            want = np.minimum(g_lb + 2 + _ROW_MARGIN, G)
            np.maximum.at(upto, cf, lv[np.searchsorted(lv, want)])
            u = np.unique(cf)
            self._extend(u, upto[u])
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            h = self.Dg[c] * self._steps_per_s(l1[:, None], self.S_n[c], self.S_own[c],
                                               self.tau_d[c]) - need[:, None]
        # where no built row reaches the demand yet: every row (the NaN of rows not built
        # compares False, so the fixed point never reads past the built rows)
        short = ~(h[:, 1:] >= 0.0).any(axis=1) & (self._nrows[c] < G)
        if short.any():
            u = np.unique(c[short])
            self._extend(u, np.full(len(u), G))

    # --- the operating point --------------------------------------------------------------
    @staticmethod
    def _steps_per_s(lam1: F, S_n: F, S_own: F, tau_d: F) -> F:
        """Steps per second of an instance at a table point: ``r = lam1 S_n + (1 - lam1 S_own)
        / tau_d`` (the time left by its prompts' own steps runs decode steps)."""
        r: F = lam1 * S_n + (1.0 - lam1 * S_own) / tau_d
        return r

    def _fixed_point(self, cols: NDArray[np.int64], lam1: F) -> tuple[F, NDArray[np.int64], F,
                                                                       NDArray[np.bool_]]:
        """Least ``D`` with ``D r(D) = lam1 E_dec``, ``r = lam1 S_n + (1 - lam1 S_own) /
        tau_d`` (each table linear in its cell): ``(D, cell, t within the cell, found)``.

        ``h(D) = D r(D) - lam1 E_dec`` is negative at ``D = 0``; the first grid point where it
        is not brackets the root, found by regula falsi (Illinois) in the cell."""
        need = lam1 * self.E_dec[cols]
        D = self.Dg[cols]
        r = self._steps_per_s(lam1[:, None], self.S_n[cols], self.S_own[cols], self.tau_d[cols])
        h = D * r - need[:, None]
        G = D.shape[1]
        pos = h[:, 1:] >= 0.0
        found = pos.any(axis=1)
        g = np.where(found, np.argmax(pos, axis=1), G - 2)  # cell [g, g + 1]
        # the cell's ends of D, S_own, S_n and tau_d, one row each (elementwise: the same bits as
        # four arrays, in a quarter of the calls)
        tabs = (self.Dg, self.S_own, self.S_n, self.tau_d)
        E0 = np.stack([x[cols, g] for x in tabs])
        dE = np.stack([x[cols, g + 1] for x in tabs]) - E0

        def hfun(x: F) -> F:
            Dm, So, n, T = E0 + x * dE
            out: F = Dm * self._steps_per_s(lam1, n, So, T) - need
            return out

        # Illinois (regula falsi) on the bracket [lo, hi]: h(lo) < 0 <= h(hi); the upper end
        # is kept, so D never falls below the root. Rows: (end, its h), updated in place
        m = len(cols)
        LO = np.empty((2, m))
        HI = np.empty((2, m))
        LO[0], HI[0] = 0.0, 1.0
        LO[1], HI[1] = hfun(LO[0]), hfun(HI[0])
        lo, f_lo = LO
        hi, f_hi = HI
        XF = np.empty((2, m))
        was_up = np.zeros(m, dtype=bool)  # the last step moved hi (lo: was_dn)
        was_dn = np.zeros(m, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            for _ in range(_FIXED_POINT_ROUNDS):  # a fixed count: a pair's result never depends
                # on the others
                x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
                # (a NaN or infinite x fails both comparisons: lo and hi stay finite)
                XF[0] = np.where((x > lo) & (x < hi), x, 0.5 * (lo + hi))
                XF[1] = hfun(XF[0])
                up = XF[1] >= 0.0
                dn = ~up
                np.multiply(f_lo, 0.5, out=f_lo, where=up & was_up)
                np.multiply(f_hi, 0.5, out=f_hi, where=dn & was_dn)
                np.copyto(HI, XF, where=up)
                np.copyto(LO, XF, where=dn)
                was_up, was_dn = up, dn
        zero = need <= 0
        t = np.where(zero, 0.0, np.where(found, hi, 1.0))
        g = np.where(zero, 0, g)
        Dst = np.where(zero, 0.0, self._lerp(self.Dg, cols, g, t))
        return Dst, g, t, found | zero

    def _lerp(self, tab: F, cols: NDArray[np.int64], g: NDArray[np.int64], t: F) -> F:
        """Linear interpolation of a C x G (or C x G x Q) table at (cell g, fraction t)."""
        lo, hi = tab[cols, g], tab[cols, g + 1]
        tt = t if lo.ndim == 1 else t[:, None]
        out: F = lo + tt * (hi - lo)
        return out

    def operating_point(self, cols_in: ArrayLike, N_in: ArrayLike, design: bool = True
                        ) -> dict[str, Any]:
        """Everything about (column, count) pairs at the design (or mean) rate."""
        cols = np.asarray(cols_in, dtype=np.int64)
        N = np.asarray(N_in, dtype=float)
        lam = self.rate_rps[cols] * (self.peak[cols] if design else 1.0)
        lam1 = lam / N
        if self.defer and not self._done[cols].all():
            self._ensure_rows(cols, lam1)
        D, g, t, found = self._fixed_point(cols, lam1)
        G = self.Dg.shape[1]
        g = np.minimum(g, G - 2)
        sl = self._slot[cols]
        own = self._lerp(self._own_c, sl, g, t)  # pairs x Q
        nch = self._lerp(self._nch_k, self._kind[cols], g, t)
        ell = self._lerp(self._ell_c, sl, g, t)
        tau_d = self._lerp(self.tau_d, cols, g, t)
        tau_f = self._lerp(self.tau_f, cols, g, t)
        S_own = self._lerp(self.S_own, cols, g, t)
        r = self._steps_per_s(lam1, self._lerp(self.S_n, cols, g, t), S_own, tau_d)
        f = lam1 * S_own
        wq = self.Wq[cols]
        extra = np.maximum(own - nch * tau_d[:, None], 0.0)
        stable = found & (f < 1.0) & (r > 0) & (D <= self.dmax[cols] + 1e-9)
        return {"cols": cols, "N": N, "lam": lam, "lam1": lam1, "D": D, "g": g, "t": t,
                "own": own, "nch": nch, "ell": ell, "tau_d": tau_d, "tau_f": tau_f, "f": f, "r": r,
                "wq": wq, "extra": extra, "stable": stable}

    # --- latency --------------------------------------------------------------------------
    def _wait(self, op: dict[str, Any]) -> dict[str, F]:
        """Prefill wait (and, reserved, admission wait) as exponential tail components."""
        N, lam, wq, extra = op["N"], op["lam"], op["wq"], op["extra"]
        ES = (wq * extra).sum(axis=1)
        ES2 = (wq * extra**2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cv2 = np.where(ES > 0, ES2 / np.where(ES > 0, ES, 1.0) ** 2 - 1.0, 0.0)
            pw = np.atleast_1d(erlang_c(N, lam * ES))
            theta = np.where(ES > 0, 2.0 * (N / np.where(ES > 0, ES, 1.0) - lam)
                             / (1.0 + np.maximum(cv2, 0.0)), np.inf)
        pw = np.where(ES > 0, pw, 0.0)
        ok = theta > 0
        mean_w = np.where(pw > 0, pw / np.where(theta > 0, theta, 1.0), 0.0)
        out = {"ES": ES, "pw": pw, "theta": theta, "mean_wait": mean_w, "wait_ok": ok}
        coef, th = _waits(pw, np.where(np.isfinite(theta), theta, 1e300))
        if self.reserved:
            cols = op["cols"]
            s = self.slots[cols].astype(float)
            r = op["r"]
            # time in system once admitted: prefill wait, own steps, decode steps
            own1 = (wq * op["own"]).sum(axis=1)
            own2 = (wq * op["own"] ** 2).sum(axis=1)
            ET = mean_w + own1 + self.E_dec[cols] / r
            ET2 = own2 + 2.0 * own1 * self.E_dec[cols] / r + self.E_dec2[cols] / r**2
            c_a = N * s
            with np.errstate(invalid="ignore", divide="ignore"):
                cv2a = np.maximum(ET2 / np.maximum(ET, 1e-300) ** 2 - 1.0, 0.0)
                pa = np.atleast_1d(erlang_c(c_a, lam * ET))
                ta = 2.0 * (c_a / np.maximum(ET, 1e-300) - lam) / (1.0 + cv2a)
            out.update(pa=pa, theta_a=ta, rho_a=lam * ET / np.maximum(c_a, 1e-300))
            out["wait_ok"] = ok & (ta > 0)
            coef, th = _sum_of_waits(pa, np.maximum(ta, 1e-300), pw,
                                     np.where(np.isfinite(theta), np.maximum(theta, 1e-300),
                                              1e300))
            out["mean_wait"] = mean_w + np.where(pa > 0, pa / np.maximum(ta, 1e-300), 0.0)
        out["coef"], out["th"] = coef, th
        return out

    def _residual(self, op: dict[str, Any]) -> tuple[F, F]:
        """The residual of the step in progress at an arrival: a decode step (time share
        ``1 - f``, length ``tau_d``) or a prompt step of grid prompt ``q`` (time share ``lam1
        w_q own_q``, length ``own_q / n_q``, made non-decreasing in ``D``). Adjacent grid prompts
        (pairs by their index in the whole grid) are merged, each pair at the root-mean-square
        of its lengths weighted by the pool's request weights: half the kinds, and a tail that
        cannot rise with ``N`` (every weight and every length falls). Returns ``(weights, lengths)`` of shape (pairs, kinds), the decode kind first."""
        wq, own = op["wq"], op["own"]
        n, Q = own.shape
        # a zero in front aligns the pairs with the whole grid's, one behind completes the last
        off = int(self.grid_odd)
        K = (off + Q + 1) // 2
        buf = np.zeros((3, n, 2 * K))
        pi, ell2, w = buf
        pi[:, off:off + Q] = op["lam1"][:, None] * wq * own
        ell2[:, off:off + Q] = wq * op["ell"] ** 2
        w[:, off:off + Q] = wq
        Wk = np.empty((n, K + 1))
        Lk = np.empty((n, K + 1))
        f = np.clip(op["f"], 0.0, 1.0)
        Wk[:, 0] = 1.0 - f
        Lk[:, 0] = op["tau_d"]
        tot = pi.sum(axis=1)
        share = np.where(tot > 0, f / np.where(tot > 0, tot, 1.0), 0.0)
        Wk[:, 1:] = pi.reshape(n, K, 2).sum(axis=2) * share[:, None]
        # root-mean-square length over the pair, weighted by the column's request weights
        # (fixed): each member's length falls with N, so does the pair's
        ws = w.reshape(n, K, 2).sum(axis=2)
        Lk[:, 1:] = np.sqrt(ell2.reshape(n, K, 2).sum(axis=2) / np.maximum(ws, 1e-300))
        # a prompt step also carries the prompts that arrived during the step before it:
        # lam1 tau_d of them on average (a decode step before it), each adding about this
        # prompt's time beyond a decode-only step at no decoders, at most a full-budget step
        # (every factor falls with N)
        cols = op["cols"]
        m = (op["lam1"] * op["tau_d"])[:, None]
        grown = Lk[:, 1:] + m * np.maximum(Lk[:, 1:] - self.tau_d[cols, :1], 0.0)
        Lk[:, 1:] = np.maximum(Lk[:, 1:], np.minimum(grown, op["tau_f"][:, None]))
        return Wk, Lk

    def ttft_terms(self, op: dict[str, Any], wait: dict[str, F]) -> dict[str, Any]:
        """What ``P(TTFT > t)`` needs at any ``t`` (:meth:`ttft_exceed`), computed once: the
        residual kinds ``(Wk, Lk)``, the co-scheduled extra per kind (``_co_rate`` per second
        of the step in progress: prompts that arrive during it share the next step's budget),
        the queued extra per prompt (``_queued_extra``), and the (pair, kind, prompt) entries
        where both weights are positive (elsewhere the probability is multiplied by 0, so the
        sums are the same numbers), with each factor gathered at them."""
        Wk, Lk = self._residual(op)
        co_rate = self._co_rate(op, wait)
        co = co_rate[:, None] * Lk  # pairs x kinds
        queued = self._queued_extra(op, wait)  # pairs x Q
        wq = op["wq"]
        pi, ki, qi = np.nonzero((Wk > 0)[:, :, None] & (wq > 0)[:, None, :])
        return {"Wk": Wk, "Lk": Lk, "co_rate": co_rate, "queued": queued,
                "at": (pi, ki, qi), "own": op["own"][pi, qi], "co": co[pi, ki],
                "L": Lk[pi, ki], "coef": wait["coef"][:, pi], "th": wait["th"][:, pi],
                "shift": queued[pi, qi]}

    def ttft_exceed(self, op: dict[str, Any], wait: dict[str, F], t_s: ArrayLike,
                    terms: dict[str, Any] | None = None) -> F:
        """``P(TTFT > t)`` per pair (``t``: one per pair or one for all); ``terms``:
        :meth:`ttft_terms` of ``op`` and ``wait`` when the caller has them."""
        t = np.broadcast_to(np.asarray(t_s, dtype=float), op["N"].shape)
        tt = self.ttft_terms(op, wait) if terms is None else terms
        Wk, wq = tt["Wk"], op["wq"]
        pi, ki, qi = tt["at"]
        # P(TTFT > t | kind k, prompt q), pairs x kinds x Q, at the entries that count
        pk = np.zeros(Wk.shape + wq.shape[1:])
        pk[pi, ki, qi] = _wait_tail_uniform((t[pi] - tt["own"]) - tt["co"], tt["L"], tt["coef"],
                                            tt["th"], tt["shift"])
        p = (Wk[:, :, None] * pk).sum(axis=1)
        out = (wq * p).sum(axis=1)
        return np.where(op["stable"] & wait["wait_ok"], np.minimum(out, 1.0), 1.0)

    def _queued_extra(self, op: dict[str, Any], wait: dict[str, F]) -> F:
        """Extra time, pairs x Q, of the first step of a request that had to wait: an instance
        that frees takes prompts from the queue while its budget lasts, so a queued request's
        first step also carries the prompts queued with it, ``rho / (1 - rho)`` of them on
        average (the queue behind a wait, ``rho = lam1 E[extra]``) at ``E[extra]`` each, at
        most a full-budget step: ``min(rho / (1 - rho) E[extra], tau_f(0) - own_q(0) /
        n_q(0))`` (the cap at no decoders: a constant of the column)."""
        rho = np.clip(op["lam1"] * wait["ES"], 0.0, 1.0 - 1e-9)
        cols = op["cols"]
        out: F = np.minimum((rho / (1.0 - rho) * wait["ES"])[:, None], self.queued_cap[cols])
        return out

    def _co_rate(self, op: dict[str, Any], wait: dict[str, F]) -> F:
        """Extra prefill time per second of the step in progress that a request's first step
        carries: the prompts that arrive during it and are scheduled with it, ``lam1 E[extra]``
        times the share the router sends to the same instance. A router that balances
        outstanding tokens sends a prompt where they are fewest; a prompt's own tokens then
        steer the next ones away unless the instance's decoders hold many more
        (``_CO_SCHEDULED x O / (O + E[l'])``, ``O = D x`` the mean remaining decode tokens of a
        running decoder)."""
        cols = op["cols"]
        o = op["D"] * self.rem_dec[cols]
        share = _CO_SCHEDULED * o / np.maximum(o + self.E_lc[cols], 1e-300)
        out: F = share * op["lam1"] * wait["ES"]
        return out

    def _quantile(self, fn: Any, lo: F, hi: F, q: float, iterations: int = 50) -> F:
        """Least t with fn(t) <= 1 - q by bisection between lo and hi (hi grown until it holds)."""
        tail = 1.0 - q
        hi = hi.copy()
        for _ in range(60):
            bad = fn(hi) > tail + 1e-12
            if not bad.any():
                break
            hi = np.where(bad, hi * 2.0 + 1e-3, hi)
        lo = lo.copy()
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            big = fn(mid) > tail
            lo = np.where(big, mid, lo)
            hi = np.where(big, hi, mid)
        return hi

    def _tpot(self, op: dict[str, Any], wait: dict[str, F]) -> dict[str, F]:
        """Per TPOT class: the gamma law of the extra time its decode steps take."""
        cols = op["cols"]
        tq = self.tp_q_l[self.lc[cols]]  # pairs x Bn x Q
        own_b = (tq * op["own"][:, None, :]).sum(axis=2)  # row by row: batch-independent
        nd = self.tp_nd[cols]  # pairs x Bn
        e1 = (op["wq"] * op["extra"]).sum(axis=1)
        e2 = (op["wq"] * op["extra"] ** 2).sum(axis=1)
        lam1 = op["lam1"]
        # the prompts that arrive during its own prefill (and one step of extra) are an excess
        # over the time average; the steps that carry them bring more: a busy period,
        # amplified by 1 / (1 - rho) with rho = lam1 E[extra] (< f < 1 where stable)
        amp = 1.0 / np.maximum(1.0 - lam1 * e1, 1e-9)
        cnt = lam1[:, None] * ((own_b + e1[:, None]) * amp[:, None] + nd / op["r"][:, None])
        mean_x = cnt * e1[:, None]
        var_x = cnt * e2[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.where(var_x > 0, mean_x**2 / np.where(var_x > 0, var_x, 1.0), 1.0)
            sc = np.where(mean_x > 0, var_x / np.where(mean_x > 0, mean_x, 1.0), 0.0)
        return {"own_b": own_b, "nd": nd, "mean_x": mean_x, "var_x": var_x, "k": k, "sc": sc,
                "w": self.tp_w[cols]}

    def tpot_exceed(self, op: dict[str, Any], tp: dict[str, F], t_s: ArrayLike) -> F:
        """``P(mean inter-token time > t)`` over the pool's decoding requests."""
        t = np.broadcast_to(np.asarray(t_s, dtype=float), op["N"].shape)
        x = tp["nd"] * (t - op["tau_d"])[:, None]
        p = _gamma_tail(tp["k"], tp["sc"], x)
        p = np.where((t >= op["tau_f"])[:, None], 0.0, p)
        out = (tp["w"] * p).sum(axis=1)
        return np.where(op["stable"], out, 1.0)

    # --- KV -------------------------------------------------------------------------------
    def _kv(self, op: dict[str, Any]) -> dict[str, F]:
        cols = op["cols"]
        lam1, r, own = op["lam1"], op["r"], op["own"]
        mean = lam1 * ((self.kv_aq[cols] * own).sum(axis=1) + self.kv_dec[cols] / r)
        var = lam1 * ((self.kv_a2q[cols] * own).sum(axis=1) + self.kv_dec2[cols] / r)
        cap = self.cap_kv[cols]
        H = np.maximum(self.kv_hmax[cols], 1.0)
        u = cap - mean
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            x = u * H / np.maximum(var, 1e-300)
            psi = (1.0 + x) * np.log1p(x) - x
            log_b = np.where(u > 0, -(var / H**2) * psi, 0.0)
        bound = np.exp(log_b)
        return {"kv_mean": mean, "kv_var": var, "kv_bound": bound, "kv_util": mean / cap}

    def _kv_chernoff(self, op: dict[str, Any], sel: NDArray[np.int64],
                     verdict_only: bool = False) -> F:
        """The exact Chernoff bound on ``P(KV > C)`` for the pairs ``sel`` (golden section over
        theta; the exponent is convex).

        ``verdict_only``: only whether each bound is ``<= kv_overflow_prob`` matters. The best
        exponent of the search never rises from one round to the next (golden section keeps
        the better of its two points), so a pair whose bound is already at most the
        probability passes whatever the remaining rounds give: it leaves the search, and its
        returned bound (the current one) may exceed the full search's, never on the wrong
        side of the probability. A pair leaves only when its exponent is not NaN at the
        bracket's upper end either (every term of it rises with theta, so it is then NaN
        nowhere in the bracket, and no later round can turn the result into NaN, which the
        full search reads as a bound of 1)."""
        cols = op["cols"][sel]
        lam1, r = op["lam1"][sel], op["r"][sel]
        cap = self.cap_kv[cols]
        H = np.maximum(self.kv_hmax[cols], 1.0)
        # the exponent is a sum over each pair's requests: only those its pool routes (weight >
        # 0) add to it, so it is summed over them alone, as entries (pair, request) in
        # request order per pair (a pair's bits never depend on the other pairs or requests)
        lcc = self.lc[cols]
        pe, re_ = np.nonzero(self._Wn[:, lcc].T > 0)
        ww = self._Wn[re_, lcc[pe]]
        k, t = self._ak[re_], self._at[re_]  # each request's two grid neighbours
        own_s = op["own"][sel]
        oi = own_s[pe, k] * (1.0 - t) + own_s[pe, np.minimum(k + 1, own_s.shape[1] - 1)] * t
        aa = self._lin[re_] + self.bt[cols][pe] - 1.0
        nd = np.maximum(self._lout[re_] - 1.0, 0.0)
        has = nd > 0
        ent = _Entries(pe, len(sel), oi, ww, aa, nd, has)

        def expo(th: F, rows: NDArray[np.int64] | None = None) -> F:
            e = ent if rows is None else ent.rows(rows)
            la, rr, cc = (lam1, r, cap) if rows is None else (lam1[rows], r[rows], cap[rows])
            tt = th[e.pair]
            with np.errstate(over="ignore", invalid="ignore"):
                pre = e.oi * np.expm1(tt * e.a)
                geo = np.where(e.has, np.exp(tt * (e.a + 1.0)) * np.expm1(tt * e.nd)
                               / np.expm1(th)[e.pair], 0.0)
                dec = (geo - e.nd) / rr[e.pair]
                tot = np.bincount(e.pair, weights=e.w * (pre + dec), minlength=e.n)
                return la * tot - th * cc

        lo = np.full(len(sel), 1e-12)
        hi = 60.0 / H
        # any theta gives a valid bound; the normal approximation's theta is usually enough
        kv = self._kv(_rows(op, sel))
        th0 = np.clip((cap - kv["kv_mean"]) / np.maximum(kv["kv_var"], 1e-300), lo, hi)
        b0 = expo(th0)
        out = np.exp(np.minimum(b0, 0.0))
        rest = np.flatnonzero(b0 > math.log(self.settings.kv_overflow_prob))
        if not len(rest):
            return out
        sel, lo, hi, b0 = sel[rest], lo[rest], hi[rest], b0[rest]
        ent = ent.rows(rest)
        lam1, r, cap = lam1[rest], r[rest], cap[rest]
        gr = (math.sqrt(5.0) - 1.0) / 2.0
        x1, x2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
        f1, f2 = expo(x1), expo(x2)
        eps = self.settings.kv_overflow_prob
        for _ in range(12):  # any theta gives a valid bound: the search only tightens it
            if verdict_only:
                cur = np.minimum(np.minimum(np.minimum(f1, f2), b0), 0.0)
                done = np.exp(np.nan_to_num(cur, nan=0.0)) <= eps
                if done.any():
                    # and no later round can make the result NaN (which reads as a bound of
                    # 1): every term of the exponent rises with theta, so one that is not NaN
                    # at the bracket's upper end is NaN nowhere inside it
                    di = np.flatnonzero(done)
                    done[di[np.isnan(expo(hi[di], di))]] = False
                if done.any():
                    out[rest[done]] = np.exp(np.nan_to_num(cur[done], nan=0.0))
                    keep = ~done
                    if not keep.any():
                        return out
                    rest, lo, hi, b0, x1, x2, f1, f2 = (v[keep] for v in (
                        rest, lo, hi, b0, x1, x2, f1, f2))
                    ent = ent.rows(np.flatnonzero(keep))
                    lam1, r, cap = lam1[keep], r[keep], cap[keep]
            left = f1 < f2  # the minimum lies in [lo, x2]
            hi = np.where(left, x2, hi)
            lo = np.where(left, lo, x1)
            xn = np.where(left, hi - gr * (hi - lo), lo + gr * (hi - lo))
            fn = expo(xn)
            x1, x2, f1, f2 = (np.where(left, xn, x2), np.where(left, x1, xn),
                              np.where(left, fn, f2), np.where(left, f1, fn))
        best = np.minimum(np.minimum(np.minimum(f1, f2), b0), 0.0)
        out[rest] = np.exp(np.nan_to_num(best, nan=0.0))
        return out

    # --- the sizing test ------------------------------------------------------------------
    def _tests(self, cols_in: ArrayLike, N: ArrayLike, full: bool = False) -> dict[str, Any]:
        """Every sizing test at (column, count) pairs; with ``full`` every figure of every
        pair, else the verdict: the expensive tails only where every test before them passed
        (TTFT, then TPOT, then the exact KV Chernoff bound, the dearest; a failed pair reports
        ``ok = False`` and its later tails NaN or unrefined)."""
        st = self.settings
        op = self.operating_point(cols_in, N, design=True)
        wait = self._wait(op)
        cap = st.utilization_cap + 1e-12
        cols = op["cols"]
        kv = self._kv(op)
        tok_util = op["lam1"] * self.E_tok[cols] * op["tau_f"] / self.B[cols]
        dec_util = op["D"] / self.S[cols]
        run_mean = op["D"] + op["f"]
        seq_tail = special.pdtrc(self.S[cols], run_mean)
        eps = st.kv_overflow_prob
        ok = (op["stable"] & wait["wait_ok"] & self.feasible[cols]
              & (op["f"] <= cap) & (dec_util <= cap) & (tok_util <= cap)
              & (seq_tail <= eps))
        ok &= (wait["rho_a"] <= cap) if self.reserved else (kv["kv_util"] <= cap)
        tail = 1.0 - st.quantile + 1e-12
        late = np.full(len(cols), np.nan)
        tp = None
        kv_bound = np.zeros(len(cols)) if self.reserved else kv["kv_bound"].copy()
        if not full:
            # the verdict only: the tails cheapest first, each where every test so far passed
            # (a pair's figures never depend on the other pairs of the call)
            sel = np.flatnonzero(ok)
            if len(sel):
                sub, wsub = _rows(op, sel), _rows(wait, sel)
                late[sel] = self.ttft_exceed(sub, wsub, st.slo_s)
                ok[sel] &= late[sel] <= tail
                if st.tpot_p99_ms is not None:
                    keep = np.flatnonzero(ok[sel])
                    sub, wsub = _rows(sub, keep), _rows(wsub, keep)
                    tex = self.tpot_exceed(sub, self._tpot(sub, wsub), st.tpot_p99_ms / 1000.0)
                    ok[sel[keep]] &= tex <= tail
            if not self.reserved:
                need = np.flatnonzero(ok & (kv_bound > eps))
                if len(need):
                    kv_bound[need] = np.minimum(kv_bound[need],
                                                self._kv_chernoff(op, need, verdict_only=True))
                ok &= kv_bound <= eps
            return {"ok": ok, "op": op, "wait": wait, "kv": kv, "kv_bound": kv_bound,
                    "tok_util": tok_util, "dec_util": dec_util, "seq_tail": seq_tail, "tp": tp}
        sel = np.arange(len(cols))
        if not self.reserved:
            need = sel[kv_bound[sel] > eps]
            if len(need):
                kv_bound[need] = np.minimum(kv_bound[need], self._kv_chernoff(op, need))
            ok &= kv_bound <= eps
        if len(sel):
            sub = _rows(op, sel)
            wsub = _rows(wait, sel)
            late[sel] = self.ttft_exceed(sub, wsub, st.slo_s)
            tps = self._tpot(sub, wsub)
            if st.tpot_p99_ms is not None:
                tex = self.tpot_exceed(sub, tps, st.tpot_p99_ms / 1000.0)
                ok[sel] &= tex <= tail
            tp = tps
        ok &= late <= tail
        return {"ok": ok, "op": op, "wait": wait, "kv": kv, "kv_bound": kv_bound,
                "tok_util": tok_util, "dec_util": dec_util, "seq_tail": seq_tail, "tp": tp}

    def ttft_ccdf(self, col: int, N: float, t_s: ArrayLike) -> F:
        """``P(TTFT > t)`` of column ``col`` at ``N`` instances for every ``t`` in ``t_s``."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        op = self.operating_point(np.full(len(t), col), np.full(len(t), float(N)))
        return self.ttft_exceed(op, self._wait(op), t)

    def slo_ok(self, cols: ArrayLike, N: ArrayLike) -> NDArray[np.bool_]:
        """Does each (column, count) pair meet every sizing test (``docs/model.md``)?"""
        N = np.asarray(N, dtype=float)
        out = np.zeros(N.shape, dtype=bool)
        pos = N >= 1
        if pos.any():
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                out[pos] = self._tests(np.asarray(cols)[pos], N[pos])["ok"]
        return out

    def lower_bound(self, cols: ArrayLike) -> NDArray[np.int64]:
        """Fewest instances any test allows (necessary conditions at zero decoders): every
        count below it fails a utilisation cap, since the tables are non-decreasing in ``D``
        and ``D >= 0``."""
        cols = np.asarray(cols, dtype=np.int64)
        st = self.settings
        cap = st.utilization_cap
        lam = self.rate_rps[cols] * self.peak[cols]
        a = lam * self.S_own0[cols] / cap
        b = lam * self.E_dec[cols] * self.tau_d[cols, 0] / (cap * self.S[cols])
        c = lam * self.E_tok[cols] * self.tau_f[cols, 0] / (cap * self.B[cols])
        n = np.ceil(np.maximum(np.maximum(a, b), c) - 1e-9)
        return np.maximum(n, 1).astype(np.int64)

    def watts_floor(self, cols_in: ArrayLike, N_in: ArrayLike) -> tuple[F, F]:
        """Proven lower bounds on the pool watts (:meth:`power_w`) of columns ``cols`` at every
        count from ``N`` (>= 1) up, from the no-decoder and decode-step tables alone (no
        sizing).

        Returns ``(Ns, L)``, both (columns x ``_FLOOR_STEPS + 1``): counts ``Ns[:, j] = N
        _FLOOR_RATIO^j`` and ``L[:, j]``, non-decreasing in ``j``, with ``power_w(c, n) >=
        L[c, j]`` for every ``n >= Ns[c, j]`` at which the pool is stable at its mean rate (every
        count that meets the tests is). On each interval ``[a, b]`` of the counts (the
        last one unbounded): an instance's steps per second are at most ``R = lam1 S_n,max +
        (1 - lam1 S_own(0))^+ / tau_d(D)``, so it holds at least ``D_lb = (lam / b) E_dec / R``
        decoders (``R`` at ``lam1 = lam / b``, ``tau_d`` at the previous ``D_lb``, from 0:
        :data:`_FLOOR_ROUNDS` rounds), and every step of its mix has at least the grid count
        below ``D_lb`` (the tables interpolate between grid counts); it runs at least ``(lam /
        b)`` :attr:`flops_req` tensor FLOPs per second (work conservation; the time-averaged
        FLOP rate of a stable point, whose step time averages to at most one second per
        second); each GPU then draws at least the physics' ``power_floor_w`` there, and ``N (1
        - p0) >= a (1 - exp(-c / a))``
        with ``c = lam (S_own(0) + E_dec / R)`` (requests in flight, Little; ``R`` refined like
        ``D_lb``). So ``W >= a G idle + a (1 - exp(-c / a)) G (floor - idle)`` on the interval,
        the floor at the FLOP rate of ``lam / b``; and, since ``N (1 - exp(-c / N))`` and ``N
        (floor(lam / N) - idle)`` both rise with ``N``, also ``W >= a G idle + (1 - exp(-c / b))
        a G (floor - idle)`` with the floor at the rate of ``lam / a``. ``L`` is the least of the
        larger figure over the intervals from ``j`` on (``docs/formulation.md`` section 5)."""
        cols = np.asarray(cols_in, dtype=np.int64)
        N0 = np.maximum(np.asarray(N_in, dtype=float), 1.0)
        M = _FLOOR_STEPS
        Ns = N0[:, None] * _FLOOR_RATIO ** np.arange(M + 1, dtype=float)[None, :]
        a = Ns
        b = np.concatenate([Ns[:, 1:], np.full((len(cols), 1), np.inf)], axis=1)
        lam = self.rate_rps[cols][:, None]
        E = self.E_dec[cols][:, None]
        Sn = self.S_n[cols, -1][:, None]
        So = self.S_own0[cols][:, None]
        Dg = self.Dg[cols]  # C' x G, increasing
        td = self.tau_d[cols]
        rows = np.arange(len(cols))[:, None]
        G = Dg.shape[1]

        def r_max(lam1: F, tau: F) -> F:  # steps per second at most, decoders at least D
            return lam1 * Sn + np.maximum(1.0 - lam1 * So, 0.0) / tau

        dmax = self.dmax[cols][:, None]
        inv_dmax = np.where(dmax > 0, 1.0 / np.where(dmax > 0, dmax, 1.0), 0.0)
        td_flat = td.ravel()
        base = rows * G
        # the grid is 0 and the powers 2^(i - G + 1) of dmax (_D_FRACTIONS), so the cell of D
        # and the place in it come from the binary exponent of x = D / dmax: x = m 2^e, m in
        # [1/2, 1), lies in [2^(e - 1), 2^e), the cell from grid count e + G - 2

        def tau_at(D: F) -> F:  # the decode table at D (linear in its cell, non-decreasing)
            x = D * inv_dmax
            m, e = np.frexp(x)
            first = x < _D_FRACTIONS[1]  # the cell [0, dmax / 2^(G - 2)]
            g = np.where(first, 0, np.minimum(e + (G - 2), G - 2))
            t = np.where(first, x / _D_FRACTIONS[1], np.where(e >= 1, 1.0, 2.0 * m - 1.0))
            i = base + g
            t0 = np.take(td_flat, i)
            out: F = t0 + t * (np.take(td_flat, i + 1) - t0)
            return out

        # D(N) r(D) = lam1 E_dec with r <= r_max(lam1, tau_d(D)), and lam1 E / r_max(lam1, .)
        # rises with lam1: on [a, b] every D(N) is at least the value at lam1 = lam / b; each
        # round below is a valid bound given the previous one, and never lower
        lam_b, lam_a = lam / b, lam / a
        tau = np.broadcast_to(td[:, :1], a.shape)
        D_lb = np.zeros(a.shape)
        need_b, rn_b, rf_b = lam_b * E, lam_b * Sn, np.maximum(1.0 - lam_b * So, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            for _ in range(_FLOOR_ROUNDS):  # (r_max(lam_b, tau) = rn_b + rf_b / tau)
                D_lb = np.minimum(np.maximum(D_lb, np.nan_to_num(need_b / (rn_b + rf_b / tau),
                                                                 nan=0.0, posinf=np.inf)),
                                  dmax)
                tau = tau_at(D_lb)
        R1 = np.maximum(r_max(lam_a, tau), r_max(lam_b, tau))  # r at most, on [a, b]
        # the grid count strictly below D_lb (by a margin: rows from it up carry the mix)
        x = D_lb * (1.0 - 1e-9) * inv_dmax
        m, e = np.frexp(x)  # the last grid count below x: e + G - 3 (one less at m = 1/2)
        gs = np.where(x <= _D_FRACTIONS[1], 0,
                      np.minimum(e + (G - 2) - (m == 0.5), G - 1)).astype(np.int64)
        # every step of the mix carries at least D_f = Dg[gs] decoders, and the GPU runs at
        # least lam1 flops_req FLOPs per second: the floor's parts at each grid count, once
        # per column, then at D_f for the FLOP rates at both ends of the interval
        ph = self.phys.take(cols)
        parts = ph.power_floor_parts(Dg.T, self.Lbar[cols])  # G x C' each
        at = {k: np.take(np.asarray(v, dtype=float).T.ravel(), base + gs).T
              for k, v in parts.items()}  # (M + 1) x C'
        fr = self.flops_req[cols][:, None]
        idle = self.idle_w[cols][:, None]
        gpus = self.gpus[cols][:, None]
        dP_b, dP_a = (np.maximum(np.asarray(ph.power_floor_from(at, (lam_x * fr).T),
                                            dtype=float).T - idle, 0.0)
                      for lam_x in (lam_b, lam_a))
        c = lam * (So + E / R1)
        # N (1 - p0) (P - idle) >= N (1 - exp(-c / N)) h(lam / N), h(x) the floor's watts above
        # idle at x FLOPs-rate units: N (1 - exp(-c / N)) rises with N (at least its value at
        # a), and so does N h(lam / N) (h is the larger of a constant and a concave function
        # that is >= 0 at 0, so h(x) / x falls with x): two bounds on [a, b]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            busy_n = a * -np.expm1(-c / a)
            busy_b = -np.expm1(-c / b)
        busy_part = np.maximum(np.where(np.isfinite(busy_n), busy_n, 0.0) * dP_b,
                               np.where(np.isfinite(busy_b), busy_b, 0.0) * a * dP_a)
        lb = a * gpus * idle + busy_part * gpus
        L = np.minimum.accumulate(lb[:, ::-1], axis=1)[:, ::-1]
        return Ns, L * (1.0 - 1e-9)

    def min_instances(self, limit: int = 1_000_000, guess: ArrayLike | None = None,
                      only: ArrayLike | None = None, passes: ArrayLike | None = None
                      ) -> NDArray[np.int64]:
        """Per column, the fewest instances meeting every test (-1 where none or empty).

        Every test is monotone in the count (``docs/formulation.md`` section 5, S1), so the
        answer is the least passing count above a count known to fail, whatever counts are
        tried on the way: the search below only chooses WHICH counts to test, never what a
        test says (a pair's verdict never depends on the other pairs of a call). Per column it
        keeps the largest count known to fail (``lower_bound - 1`` to start) and the least known
        to pass. ``guess`` (a count per column, e.g. the answer of a similar pool; 0 or absent:
        none; negative: expected to fail at the limit) picks the first counts: ``g`` and ``g -
        1`` where there is a guess, else ``limit`` (a column that fails with practically
        unlimited instances never passes) and the lower bound. A column whose guess fails is
        then tested at ``limit`` too; every column still open gallops up from its last failure
        (steps 1 or 4, 16, ...) until a count passes, and narrows its bracket with 3 inner
        counts per round. Every open column is tested in the same vectorised call (few calls:
        numpy's per-call cost dominates small ones). ``only``: these columns alone (the feasible
        ones among them; default every feasible column). ``passes``: a count per column known
        to pass the tests (0: none), e.g. from an earlier test of the same pool: it is the
        least known pass from the start, a guess above it is lowered to it, and a guess equal
        to it is not tested again (the answer is the same: the tests are deterministic)."""
        out = np.full(self.ncols, -1, dtype=np.int64)
        if only is None:
            cols = np.flatnonzero(self.feasible)
        else:
            sel = np.asarray(only, dtype=np.int64)
            cols = np.unique(sel[self.feasible[sel]])
        if not len(cols):
            return out
        m = len(cols)
        lb = self.lower_bound(cols)
        lo = lb - 1  # a count known to fail (a necessary test fails)
        g0 = np.zeros(m, dtype=np.int64) if guess is None else np.asarray(
            guess, dtype=np.int64)[cols]
        known = np.zeros(m, dtype=np.int64) if passes is None else np.minimum(
            np.asarray(passes, dtype=np.int64)[cols], limit)
        # a known pass above the last known failure: a guess at most it (none: it)
        kp = known > lo
        g0 = np.where(kp & ((g0 <= 0) | (g0 > known)), known, g0)
        guessed = g0 > 0
        g = np.minimum(np.where(g0 > lo, g0, lb), limit)
        g1 = g - 1
        has1 = guessed & (g1 > lo)
        # the limit is tested now where there is no guess, else once the guess fails (a
        # column that passes somewhere below the limit passes at the limit)
        lim = np.flatnonzero(~guessed)
        at_known = kp & (g == known)  # passes there already: not tested again
        # (a negative guess: expected to fail at the limit)
        gi = np.flatnonzero((g0 >= 0) & ~at_known)
        ok = self.slo_ok(np.concatenate([cols[lim], cols[gi], cols[has1]]),
                         np.concatenate([np.full(len(lim), limit), g[gi], g1[has1]]
                                        ).astype(float))
        lim_ok = np.zeros(m, dtype=bool)  # passes at the limit (so far: not known to fail)
        lim_ok[lim] = ok[:len(lim)]
        lim_known = ~guessed
        ok_g = at_known.copy()
        ok_g[gi] = ok[len(lim):len(lim) + len(gi)]
        ok_g1 = np.zeros(m, dtype=bool)
        ok_g1[has1] = ok[len(lim) + len(gi):]
        tried = g0 >= 0
        live = np.where(lim_known, lim_ok, True)
        hi = np.where(ok_g, np.where(ok_g1, g1, g), -1).astype(np.int64)  # least known pass
        hi = np.where(kp & (hi < 0), known, hi)  # a guess below the known pass failed
        lo = np.where(ok_g, np.where(has1 & ~ok_g1, g1, lo), np.where(tried, g, lo))
        # galloping: no count passed yet; the next step from the last failure
        step = np.where(tried & (g == lb), 4, 1).astype(np.int64)
        gal = live & (hi < 0)
        live &= ~(gal & (lo >= limit))
        gal &= live
        # a passing guess is usually within a few counts of the answer: its inner counts are
        # 1, 2 and 4 below it, then 8, 16 and 32 below the least pass, and so on while every
        # one passes (the others spread theirs evenly over their bracket)
        near = ok_g.copy()
        wid = np.ones(m, dtype=np.int64)
        while True:
            ref = live & (hi > 0) & (hi - lo > 1)
            if not (gal.any() or ref.any()):
                break
            li = np.flatnonzero(gal & ~lim_known)
            gi = np.flatnonzero(gal)
            ng = np.minimum(lo[gi] + step[gi], limit)
            ri = np.flatnonzero(ref)
            # more inner counts when few columns are left (a call's fixed cost dominates)
            k = int(np.clip(_REFINE_PAIRS // max(len(ri), 1), 3, 15))
            below = 2 ** np.arange(k - 1, -1, -1, dtype=np.int64)
            span = hi[ri] - lo[ri]
            pts = lo[ri][:, None] + np.maximum(
                1, (span[:, None] * np.arange(1, k + 1)[None, :]) // (k + 1))
            nr = near[ri]
            pts[nr] = np.maximum(hi[ri][nr][:, None] - wid[ri][nr][:, None] * below[None, :],
                                 lo[ri][nr][:, None] + 1)
            pts = np.minimum(pts, hi[ri][:, None] - 1)
            # each distinct inner count once (a narrow bracket repeats some: ascending, so a
            # repeat takes the verdict of the count before it)
            fresh = np.ones(pts.shape, dtype=bool)
            fresh[:, 1:] = pts[:, 1:] != pts[:, :-1]
            ok = self.slo_ok(np.concatenate([cols[li], cols[gi], np.repeat(cols[ri], k)[
                fresh.ravel()]]), np.concatenate([np.full(len(li), limit), ng,
                                                  pts[fresh]]).astype(float))
            okl = ok[:len(li)]
            okg = ok[len(li):len(li) + len(gi)]
            src = np.maximum.accumulate(np.where(fresh.ravel(), np.arange(fresh.size), 0))
            okr = ok[len(li) + len(gi):][np.cumsum(fresh.ravel())[src] - 1].reshape(pts.shape)
            lim_known[li] = True
            live[li[~okl]] = False
            hi[gi[okg]] = ng[okg]
            lo[gi[~okg]] = ng[~okg]
            step[gi] *= 4
            gal[gi[okg]] = False
            gal[gi[~okg & (ng >= limit)]] = False
            gal &= live
            if len(ri):
                still = nr & okr.all(axis=1)  # every inner count passed: further below next
                wid[ri[still]] *= 2 ** k
                near[ri[~still]] = False
                anyok = okr.any(axis=1)
                first = np.argmax(okr, axis=1)
                rows = np.arange(len(ri))
                new_hi = np.where(anyok, pts[rows, first], hi[ri])
                # the largest failing inner count below the new upper end
                fail_below = np.where(~okr & (pts < new_hi[:, None]), pts, -1).max(axis=1)
                lo[ri] = np.maximum(lo[ri], fail_below)
                hi[ri] = new_hi
        act = live & (hi > 0)
        out[cols[act]] = hi[act]
        return out

    # --- power and the report -------------------------------------------------------------
    def power_w(self, cols: ArrayLike, N: ArrayLike) -> F:
        """Pool watts at the MEAN rate for (column, count) pairs."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return self._power(self.operating_point(cols, N, design=False))[0]

    def _power(self, op: dict[str, Any]) -> tuple[F, F]:
        cols, g, t = op["cols"], op["g"], op["t"]
        N = op["N"]
        ph = self.phys.take(cols)
        f = np.clip(op["f"], 0.0, 1.0)
        rates = {}
        for k in self.power_keys:
            dec = self._lerp(self.dec_terms[k], cols, g, t) / op["tau_d"]
            pr = op["lam1"] * self._lerp(self.pt_terms[k], cols, g, t)
            pr = np.where(op["f"] > 1.0, pr / np.maximum(op["f"], 1e-300), pr)
            rates[k] = (1.0 - f) * dec + pr
        pg = np.asarray(ph.gpu_power_w(rates), dtype=float)
        inflight = op["lam1"] * ((op["wq"] * op["own"]).sum(axis=1)
                                 + self.E_dec[cols] / np.maximum(op["r"], 1e-300))
        p0 = np.where(op["stable"], np.exp(-inflight), 0.0)
        idle = self.idle_w[cols]
        watts = N * self.gpus[cols] * ((1.0 - p0) * pg + p0 * idle)
        return np.where(N >= 1, watts, 0.0), pg

    def evaluate(self, cols_in: ArrayLike, N_in: ArrayLike) -> dict[str, F]:
        """Every reported figure of (column, count) pairs (``PoolResult``'s new fields)."""
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return self._evaluate(cols_in, N_in)

    def _evaluate(self, cols_in: ArrayLike, N_in: ArrayLike) -> dict[str, F]:
        st = self.settings
        cols = np.asarray(cols_in, dtype=np.int64)
        N = np.asarray(N_in, dtype=float)
        T = self._tests(cols, N, full=True)
        op, wait, tp = T["op"], T["wait"], T["tp"]
        stable = op["stable"] & wait["wait_ok"]
        tt = self.ttft_terms(op, wait)
        Wk, Lk, co_rate = tt["Wk"], tt["Lk"], tt["co_rate"]
        q = st.quantile
        own_max = op["own"].max(axis=1) if op["own"].shape[1] else np.zeros(len(cols))
        hi0 = own_max + Lk.max(axis=1) * (1.0 + co_rate) + 1e-3
        p99 = self._quantile(lambda x: self.ttft_exceed(op, wait, x, tt), np.zeros(len(cols)),
                             hi0, q)
        p99 = np.where(stable, p99, np.inf)
        # the wait alone (reported): its q-quantile
        coef, th = wait["coef"], wait["th"]
        p99w = self._quantile(lambda x: (coef * np.exp(-th * x[None, :])).sum(axis=0),
                              np.zeros(len(cols)), np.full(len(cols), 1e-3), q)
        p99w = np.where(stable, p99w, np.inf)
        tau_d, tau_f = op["tau_d"], op["tau_f"]
        dec_any = tp["w"].sum(axis=1) > 0
        p99t = self._quantile(lambda x: self.tpot_exceed(op, tp, x), tau_d.copy(),
                              np.maximum(tau_f, tau_d) + 1e-9, q)
        p99t = np.where(stable & dec_any, p99t, np.where(dec_any, np.inf, math.nan))
        per_b = np.minimum(tp["mean_x"] / np.maximum(tp["nd"], 1.0),
                           np.maximum(tau_f - tau_d, 0.0)[:, None])
        mean_tpot = tau_d + (tp["w"] * per_b).sum(axis=1)
        mean_tpot = np.where(stable & dec_any, mean_tpot, np.where(dec_any, np.inf, math.nan))
        # time to last token: TTFT + decode time (mean exact; tail moment-matched per class)
        e_res = (Wk * Lk * (0.5 + co_rate[:, None])).sum(axis=1)
        e_ttft = wait["mean_wait"] + e_res + (op["wq"] * op["own"]).sum(axis=1) + np.clip(
            wait["coef"].sum(axis=0), 0.0, 1.0) * (op["wq"] * tt["queued"]).sum(axis=1)
        mean_ttlt = e_ttft + self.E_dec[cols] * tau_d + self.dec_share[cols] * (
            tp["w"] * tp["mean_x"]).sum(axis=1)
        th_w = np.where(np.isfinite(wait["theta"]) & (wait["theta"] > 1e-100),
                        wait["theta"], np.inf)
        var_w = np.where(np.isfinite(th_w), (2.0 * wait["pw"] - wait["pw"] ** 2)
                         / np.where(np.isfinite(th_w), th_w, 1.0) ** 2, 0.0)
        shift = tp["own_b"] + e_res[:, None] + tp["nd"] * tau_d[:, None]
        mx = wait["mean_wait"][:, None] + tp["mean_x"]
        vx = var_w[:, None] + tp["var_x"]
        with np.errstate(invalid="ignore", divide="ignore"):
            kk = np.where(vx > 0, mx**2 / np.where(vx > 0, vx, 1.0), 1.0)
            ss = np.where(mx > 0, vx / np.where(mx > 0, mx, 1.0), 0.0)

        def ttlt_exceed(x: F) -> F:
            return (tp["w"] * _gamma_tail(kk, ss, x[:, None] - shift)).sum(axis=1)

        hi_l = (shift + mx + 10.0 * np.sqrt(vx)).max(axis=1) + 1e-3
        p99l = self._quantile(ttlt_exceed, np.zeros(len(cols)), hi_l, q)
        p99l = np.where(stable & dec_any, p99l, np.where(dec_any, np.inf, p99))
        # power, batch and tokens at the mean rate
        opm = self.operating_point(cols, N, design=False)
        watts, pg = self._power(opm)
        m1 = tau_d + op["lam1"] / np.maximum(op["r"], 1e-300) * (
            (op["wq"] * op["extra"]).sum(axis=1))
        util = np.maximum.reduce([op["f"], T["dec_util"], T["tok_util"],
                                  wait["rho_a"] if self.reserved else T["kv"]["kv_util"]])
        return {
            "ok": T["ok"], "stable": stable, "p99_ttft_ms": p99 * 1e3, "p99_wait_ms": p99w * 1e3,
            "p99_tpot_ms": p99t * 1e3, "mean_tpot_ms": mean_tpot * 1e3,
            "p99_ttlt_ms": p99l * 1e3, "mean_ttlt_ms": np.where(stable, mean_ttlt, np.inf) * 1e3,
            "prefill_share": op["f"],
            "kv_util": np.where(stable, T["kv"]["kv_util"], np.inf),
            "kv_overflow_bound": np.where(stable, T["kv_bound"], 1.0),
            "decode_util": T["dec_util"], "token_util": T["tok_util"],
            "utilization": np.where(stable, util, np.inf),
            "mean_step_ms": np.where(stable, m1 * 1e3, np.inf),
            "mean_batch": opm["D"], "power_w": watts, "gpu_power_w": pg,
            "design_batch": op["D"],
        }
