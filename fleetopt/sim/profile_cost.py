"""The simulator's step cost from a computed profile: the package's one iteration model.

:class:`ProfileStepCost` implements :class:`~fleetopt.sim.iteration.StepCost` (and
:class:`~fleetopt.sim.iteration.SplitStepCost`) from a
:class:`~fleetopt.physics.profiles.ComputedProfile`:

* step time: ``profile.step.step_s(D, K_d, P, A_p, K_p)`` (the scalar fast path of
  :mod:`fleetopt.physics.iteration`);
* energy of a step: ``gpus x P_gpu(activity of that step) x step time``, with ``P_gpu`` the
  profile's :class:`~fleetopt.physics.power.ActivityPower` (``scalar_step_power_w``);
* idle power: ``gpus x idle_w`` (an instance that runs no iteration);
* the compute / memory split: the step's compute-bound and memory-bound terms.

``gpus`` follows the accounting (``physical``: every GPU of the instance). :func:`profile_limits`
gives the matching engine limits (token budget, sequence cap, paged KV capacity, or reserved
slots at a window).
"""

from __future__ import annotations

from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.iteration import StepTerms
from fleetopt.sim.iteration import InstanceLimits

__all__ = ["ProfileStepCost", "profile_limits"]


def _computed(profile: Any) -> Any:
    if getattr(profile, "step", None) is None or getattr(profile, "power_model", None) is None:
        raise FleetoptError("pool.cost", f"{profile.label()} is a {profile.kind} profile: the "
                            "step cost needs a computed profile (a catalog GPU)")
    return profile


class ProfileStepCost:
    """The :class:`~fleetopt.sim.iteration.StepCost` of a computed profile (module docstring).

    The last step's terms are memoised: the engine asks for the time, the energy and the split
    of each step in turn."""

    __slots__ = ("profile", "step", "power", "gpus", "idle_w", "_key", "_terms")

    def __init__(self, profile: Any, accounting: str = "physical") -> None:
        p = _computed(profile)
        self.profile = p
        self.step = p.step
        self.power = p.power_model
        self.gpus = int(p.gpus_counted(accounting))
        self.idle_w = float(self.gpus * p.idle_w)
        self._key: tuple[float, ...] | None = None
        self._terms: StepTerms | None = None

    def terms(self, decode_seqs: float, decode_ctx_tokens: float, prefill_tokens: float,
              prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> StepTerms:
        """The step's :class:`~fleetopt.physics.iteration.StepTerms` (floats; memoised)."""
        key = (decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
               prefill_ctx_tokens)
        cached = self._terms
        if cached is not None and key == self._key:
            return cached
        terms: StepTerms = self.step.scalar_terms(*key)
        self._terms = terms
        self._key = key
        return terms

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float:
        return float(self.terms(decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
                                prefill_ctx_tokens).t_step)

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float:
        te = self.terms(decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
                        prefill_ctx_tokens)
        return self.gpus * self.power.scalar_step_power_w(te, self.step) * step_s

    def step_split_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                     prefill_pairs: float,
                     prefill_ctx_tokens: float = 0.0) -> tuple[float, float]:
        """(compute-bound terms, memory-bound terms) of the step, seconds."""
        te = self.terms(decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
                        prefill_ctx_tokens)
        return float(te.t_cmp), float(te.t_mem)


def profile_limits(profile: Any, kv_allocation: str = "paged",
                   window_tokens: int | None = None) -> InstanceLimits:
    """The engine limits of a computed profile's instance: its token budget and sequence cap,
    and paged KV (``kv_capacity_tokens`` in blocks of ``block_tokens``) or ``reserved`` slots
    at ``window_tokens`` (``profile.slots(window)``)."""
    p = _computed(profile)
    if kv_allocation == "paged":
        return InstanceLimits(token_budget=p.token_budget, max_seqs=p.max_seqs,
                              kv_allocation="paged", kv_capacity_tokens=p.kv_capacity_tokens,
                              block_tokens=p.block_tokens)
    if window_tokens is None:
        raise FleetoptError("window_tokens", "reserved KV needs the slots' window")
    return InstanceLimits(token_budget=p.token_budget, max_seqs=p.max_seqs,
                          kv_allocation="reserved", block_tokens=p.block_tokens,
                          slots=p.slots(int(window_tokens)), window_tokens=int(window_tokens))
