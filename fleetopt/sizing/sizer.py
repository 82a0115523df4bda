"""THE sizer: every pool any planner, the evaluator or a study sizes goes through :class:`Sizer`.

A pool is ``(lo, hi, window, deployment)``: the requests of total length in ``(lo, hi]``, a KV
window, a deployment. Sizing it means its fewest instances that meet the SLO and the utilisation
cap (:meth:`fleetopt.sizing.poolmodel.PoolModel.min_instances`), with its watts, dollars and
GPUs there. The :class:`Sizer` of a problem

* resolves each deployment's profile once (:meth:`Sizer.profile`);
* builds the pools of one upper edge and window (or of several upper edges, each at its own
  window) together, as one :class:`~fleetopt.sizing.servemodel.ServeFamily` over all their
  deployments
  (:meth:`Sizer.families`; the instances' physics stack, or are evaluated per deployment inside
  the family), sharing the routed request mix;
* sizes pools in batches (:meth:`Sizer.prefetch`, physical accounting) or one at a time
  (:meth:`Sizer.size`, which also says why a pool cannot be sized), caching every answer.

Its users: :func:`fleetopt.evaluation.size_fleet`, the baselines, the MIP's candidates
(:mod:`fleetopt.sizing.candidates`), the explanations of infeasibility and the validation study.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.profiles import Deployment, Profile
from fleetopt.problem.fleet import PoolSpec
from fleetopt.sizing.family import family_mix
from fleetopt.sizing.poolmodel import PoolModel
from fleetopt.sizing.servemodel import ServeFamily, physics_of, stack_physics

__all__ = ["SizedPool", "Sizer", "pool_model"]

#: why a pool could not be sized (:attr:`SizedPool.why`)
WHY_WINDOW, WHY_NO_SLOT, WHY_SLO = "window", "no_slot", "slo"


def pool_model(spec: PoolSpec | tuple[int, int, int], profile: Profile, workload: Any,
               settings: Any) -> PoolModel:
    """The :class:`PoolModel` of the requests routed to ``(ctx_lo, ctx_hi]`` with window
    ``window`` (a :class:`PoolSpec`, or ``(lo, hi, window)``)."""
    if isinstance(spec, PoolSpec):
        lo, hi, window = spec.ctx_lo, spec.ctx_hi, spec.window
    else:
        lo, hi, window = spec
    tot = workload.total_tokens
    m = (tot > lo) & (tot <= hi)
    w = workload.weights[m]
    return PoolModel(profile, workload.input_tokens[m], workload.output_tokens[m], w,
                     workload.rate_rps * float(w.sum()), window, settings)


@dataclass(frozen=True)
class SizedPool:
    """One pool at its smallest SLO-meeting instance count (``instances=None``: none; then
    ``why`` is ``"window"``, ``"no_slot"`` or ``"slo"`` and ``reason`` says it in words)."""

    ctx_lo: int
    ctx_hi: int
    window_tokens: int
    deployment: Deployment
    gpu_key: str  # canonical GPU / profile name (inventory key)
    instances: int | None
    power_w: float
    cost_per_hr: float
    gpus_physical: int
    share: float  # of the workload's requests routed here
    compressed_share: float  # of this pool's requests
    input_tokens_cut: float  # mean prompt tokens cut per request of this pool
    reason: str = ""
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.instances is not None

    def spec(self) -> PoolSpec:
        return PoolSpec.on(self.deployment, self.ctx_lo, self.ctx_hi, int(self.instances or 0),
                           self.window_tokens)


Key = tuple[int, int, int, Deployment]


class Sizer:
    """Sizes the pools of one problem; caches per ``(lo, hi, window, deployment)``."""

    def __init__(self, problem: Any) -> None:
        self.problem = problem
        self._profiles: dict[Deployment, Profile] = {}
        self._pools: dict[Key, SizedPool] = {}
        self._models: dict[Key, PoolModel] = {}
        self._mixes: dict[tuple[int, int, tuple[int, ...], tuple[int, ...] | None],
                          dict[str, Any]] = {}
        self._physics: dict[Deployment, Any] = {}
        self._stacks: dict[tuple[Deployment, ...], Any] = {}  # stacked physics per member list
        self._slots: dict[tuple[Deployment, int], int] = {}  # reserved KV slots at a window
        self.models_built = 0  # pool models and families built (a measure of the work done)

    # --- profiles and families --------------------------------------------------------
    def profile(self, d: Deployment) -> Profile:
        """The profile of ``d`` (resolved once); a deployment the model does not fit is an
        error on ``deployment``."""
        prof = self._profiles.get(d)
        if prof is None:
            prof = self.problem.profile(d)
            err = prof.fit_error()
            if err:
                raise FleetoptError("deployment", err)
            self._profiles[d] = prof
        return prof

    def physics(self, d: Deployment) -> Any:
        """The instance physics of ``d`` (:func:`fleetopt.sizing.servemodel.physics_of`, with
        the settings' engine overrides), resolved once."""
        ph = self._physics.get(d)
        if ph is None:
            ph = physics_of(self.profile(d), self.problem.settings)
            self._physics[d] = ph
        return ph

    def mix(self, lows: Sequence[int], hi: int, window: int,
            his: Sequence[int] | None = None) -> dict[str, Any]:
        """The deployment-independent part of the pools ``(lo, hi]``, ``lo`` in ``lows``, at
        ``window`` (:func:`fleetopt.sizing.family.family_mix`; ``his``: each pool's own upper
        edge), with each pool's design-rate factor (``peak_factor``,
        :meth:`~fleetopt.problem.problem.Problem.pool_peak_factor`) when the factors are per
        pool; cached for the current upper edge only (callers visit upper edges one after
        another)."""
        his_t = None if his is None else tuple(int(x) for x in his)
        key = (int(hi), int(window), tuple(int(x) for x in lows), his_t)
        got = self._mixes.get(key)
        if got is None:
            if any(k[0] != key[0] for k in self._mixes):
                self._mixes.clear()
            wl = self.problem.workload
            got = family_mix(wl.input_tokens, wl.output_tokens, wl.weights, wl.rate_rps,
                             list(key[2]), key[0], key[1],
                             None if his_t is None else list(his_t))
            if self.problem.per_pool_peak_factors:  # each pool at its own factor
                tops = his_t if his_t is not None else (key[0],) * len(key[2])
                got["peak_factor"] = np.array([self.problem.pool_peak_factor(lo, top)
                                               for lo, top in zip(key[2], tops, strict=True)],
                                              dtype=float)
            self._mixes[key] = got
        return got

    def families(self, lows: Sequence[int], hi: int, window: int,
                 deployments: Sequence[Deployment], sized_only: bool = False,
                 defer: bool = False, his: Sequence[int] | None = None
                 ) -> list[tuple[list[tuple[Deployment, Profile]], ServeFamily]]:
        """The pools ``(lo, hi]`` (``lo`` in ``lows``) at ``window`` on ``deployments``, as
        families with their members ``[(deployment, profile)]`` (one family: the deployments'
        physics are stacked inside it). Physical accounting only; the deployments must hold a
        KV slot at ``window``. Column ``c`` of a family is member ``fam.dep[c]`` at lower edge
        ``lows[fam.lc[c]]``. ``sized_only``: only feasible columns will be sized and priced
        (``ServeFamily(sized_only=True)``: no tables for the others beyond no decoders);
        ``defer``: none beyond no decoders until asked (``ServeFamily(defer=True)``).

        ``his``: pools of several upper edges in one family, ``(lows[l], his[l]]``, each at its
        own window ``his[l]`` (``hi`` and ``window`` their largest): ``window`` compresses no
        request of any of them, so they share the routed requests; a deployment without a KV
        slot at a pool's window (or whose context is shorter) has no slot there (an infeasible
        column)."""
        members = [(d, self.profile(d)) for d in deployments]
        if not members:
            return []
        if his is not None and (max(his) != hi or hi != window):
            raise ValueError("pools of several upper edges share one family at their own "
                             "windows: hi = window = max(his)")
        mix = self.mix(lows, hi, window, his)
        phys = [self.physics(d) for d, _ in members]
        key = tuple(d for d, _ in members)
        stacked = self._stacks.get(key)
        if stacked is None:
            stacked = stack_physics(phys)
            self._stacks[key] = stacked
        if his is None:
            slots: Any = [self.slots(d, window) for d, _ in members]
        else:  # per deployment and pool: the slots at the pool's own window
            uw, at = np.unique(np.asarray(his, dtype=np.int64), return_inverse=True)
            slots = np.array([[self.slots(d, int(w)) if w <= prof.max_context else 0
                               for w in uw] for d, prof in members],
                             dtype=np.int64)[:, at.reshape(-1)]
        fam = ServeFamily(phys, mix, self.problem.settings, slots,
                          self.problem.settings.hit_share, stacked=stacked,
                          sized_only=sized_only, defer=defer)
        self.models_built += 1
        return [(members, fam)]

    def slots(self, d: Deployment, window: int) -> int:
        """``profile(d).slots(window)``, computed once per deployment and window."""
        key = (d, int(window))
        n = self._slots.get(key)
        if n is None:
            n = self._slots[key] = int(self.profile(d).slots(key[1]))
        return n

    def model(self, lo: int, hi: int, window: int, d: Deployment) -> PoolModel:
        """The :class:`PoolModel` of one pool (built once)."""
        key = (int(lo), int(hi), int(window), d)
        pm = self._models.get(key)
        if pm is None:
            pm = pool_model((key[0], key[1], key[2]), self.profile(d), self.problem.workload,
                            self.problem.pool_settings(key[0], key[1]))
            self._models[key] = pm
            self.models_built += 1
        return pm

    # --- sizing -----------------------------------------------------------------------
    def prefetch(self, ranges: Iterable[tuple[int, int, int]], deps: Sequence[Deployment]) -> None:
        """Size many pools at once: per (upper edge, window), every lower edge and deployment in
        :meth:`families` (physical accounting; the same formulas as one pool at a time). Pools
        it cannot size are left to :meth:`size`, which says why."""
        p = self.problem
        if p.settings.accounting != "physical":
            return
        groups: dict[tuple[int, int], set[int]] = {}
        for lo, hi, window in ranges:
            groups.setdefault((int(hi), int(window)), set()).add(int(lo))
        acct = p.settings.accounting
        for (hi, window), lows_set in groups.items():
            lows = sorted(lows_set)
            usable = [d for d in deps if window <= self.profile(d).max_context
                      and self.slots(d, window) >= 1]
            for members, fam in self.families(lows, hi, window, usable, sized_only=True):
                n = fam.min_instances()
                cols = np.flatnonzero(n >= 0)
                power = fam.power_w(cols, n[cols].astype(float)) if len(cols) else np.zeros(0)
                for col, pw in zip(cols, power, strict=True):
                    d, prof = members[int(fam.dep[col])]
                    ni = int(n[col])
                    key = (lows[int(fam.lc[col])], hi, window, d)
                    self._pools[key] = SizedPool(
                        key[0], hi, window, d, prof.gpu, ni, float(pw),
                        ni * prof.instance_cost_per_hr(acct), ni * int(prof.gpus_per_instance),
                        float(fam.share[col]), float(fam.compressed_share[col]),
                        float(fam.input_tokens_cut[col]))

    def size(self, lo: int, hi: int, window: int, d: Deployment) -> SizedPool:
        """One pool at its fewest SLO-meeting instances (cached; ``instances=None`` with the
        reason when no count meets the SLO or the deployment has no KV slot at the window)."""
        key = (int(lo), int(hi), int(window), d)
        hit = self._pools.get(key)
        if hit is None:
            hit = self._size(key)
            self._pools[key] = hit
        return hit

    def _size(self, key: Key) -> SizedPool:
        lo, hi, window, d = key
        p = self.problem
        prof = self.profile(d)

        def fail(why: str, reason: str, pm: PoolModel | None = None) -> SizedPool:
            return SizedPool(lo, hi, window, d, prof.gpu, None, math.inf, math.inf, 0,
                             pm.share if pm else 0.0, 0.0, 0.0, reason, why)

        if window > prof.max_context:
            return fail(WHY_WINDOW, f"window {window} exceeds the model's context "
                        f"{prof.max_context}")
        pm = self.model(lo, hi, window, d)
        if pm.slots < 1:
            return fail(WHY_NO_SLOT, f"{prof.label()} has no KV slot at a {window}-token window",
                        pm)
        n = pm.min_instances()
        if n is None:
            return fail(WHY_SLO, f"{prof.label()} cannot meet P99 TTFT "
                        f"{p.settings.ttft_p99_ms:g} ms at any size for ({lo}, {hi}]", pm)
        m = pm.metrics([n])
        return SizedPool(
            lo, hi, window, d, prof.gpu, int(n), float(m["power_w"][0]),
            float(m["cost_per_hr"][0]), int(n) * int(prof.gpus_per_instance), pm.share,
            pm.compressed_share, pm.input_tokens_cut,
        )
