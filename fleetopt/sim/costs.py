"""The seam between a deployment's profile and the iteration engine: its step cost and limits.

The simulator asks a :class:`~fleetopt.physics.profiles.Profile` for two things, both here and
nowhere else:

* :func:`profile_step_cost`: the :class:`~fleetopt.sim.iteration.StepCost` of one instance
  (the time and energy of one iteration of a given mix of decode sequences, their cached
  context, prefill tokens, prefill attention pairs and the KV the chunks read; the instance's
  idle power);
* :func:`instance_limits`: its engine limits (:class:`~fleetopt.sim.iteration.InstanceLimits`:
  token budget, sequence cap, paged KV capacity in blocks, or reserved slots at a window).

A :class:`~fleetopt.physics.profiles.ComputedProfile` (a catalog GPU) gives the package's one
iteration model: :class:`~fleetopt.sim.profile_cost.ProfileStepCost` (``profile.step.step_s``
of the mix, the activity power model for the energy) and
:func:`~fleetopt.sim.profile_cost.profile_limits` (the profile's ``token_budget``,
``max_seqs`` and ``kv_capacity_tokens`` in blocks of ``block_tokens``, or
``profile.slots(window)``). Nothing else in the simulator depends on which step cost it is
given.

The :class:`CalibratedStepCost` of a :class:`~fleetopt.physics.profiles.CalibratedProfile`
(published constants, ``t(n, L) = W + H * n * L / ref``) writes the same law per iteration
(each sequence's cached context read once, each prefill chunk a sequence of its length).
"""

from __future__ import annotations

from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.power import gpu_power_w
from fleetopt.physics.profiles import CalibratedProfile, ComputedProfile, Profile
from fleetopt.sim.iteration import KV_ALLOCATIONS, InstanceLimits, StepCost
from fleetopt.sim.profile_cost import ProfileStepCost, profile_limits

__all__ = ["CalibratedStepCost", "describe_cost", "instance_limits", "profile_step_cost"]


def profile_step_cost(profile: Profile, accounting: str = "physical") -> StepCost:
    """The step cost of one instance of ``profile`` (watts counted per ``accounting``:
    ``physical`` every GPU of the instance, ``paper`` one)."""
    if isinstance(profile, ComputedProfile):
        return ProfileStepCost(profile, accounting)
    if isinstance(profile, CalibratedProfile):
        return CalibratedStepCost(profile, accounting)
    raise FleetoptError("profiles", f"{type(profile).__name__} has no step cost for the "
                        "simulator; give a computed or calibrated profile, or engines=[(cost, "
                        "limits), ...]")


def instance_limits(profile: Profile, kv_allocation: str = "paged",
                    window_tokens: int | None = None) -> InstanceLimits:
    """The engine limits of one instance of ``profile``: paged KV (its whole KV capacity in
    blocks) or ``reserved`` slots at ``window_tokens`` (``profile.slots(window)``)."""
    if kv_allocation not in KV_ALLOCATIONS:
        raise FleetoptError("physics.kv_allocation", f"must be one of "
                            f"{', '.join(KV_ALLOCATIONS)}, got {kv_allocation!r}")
    if kv_allocation == "reserved" and window_tokens is None:
        raise FleetoptError("window_tokens", "reserved KV needs the slots' window")
    if isinstance(profile, ComputedProfile):
        _check_room(profile, kv_allocation, window_tokens, int(profile.kv_capacity_tokens),
                    int(profile.block_tokens))
        return profile_limits(profile, kv_allocation, window_tokens)
    if not isinstance(profile, CalibratedProfile):
        raise FleetoptError("profiles", f"{type(profile).__name__} has no engine limits for "
                            "the simulator; give engines=[(cost, limits), ...]")
    s = profile.spec
    block = int(s.block_tokens)
    capacity = int(s.kv_blocks) * block
    slots = _check_room(profile, kv_allocation, window_tokens, capacity, block)
    seqs = max(1, int(s.max_slot_tokens // s.ref_ctx_tokens))
    budget = int(s.chunk_tokens) + seqs  # one full chunk beside a full decode batch
    if kv_allocation == "paged":
        return InstanceLimits(token_budget=budget, max_seqs=seqs, kv_allocation="paged",
                              kv_capacity_tokens=capacity, block_tokens=block)
    return InstanceLimits(token_budget=max(budget, slots), max_seqs=min(seqs, slots),
                          kv_allocation="reserved", block_tokens=block, slots=slots,
                          window_tokens=int(window_tokens or 0))


def _check_room(profile: Profile, kv_allocation: str, window_tokens: int | None,
                capacity_tokens: int, block_tokens: int) -> int:
    """The reserved slots at the window (0 for paged KV), after checking that the instance has
    room for one block (paged) or one slot (reserved): one clear line naming the fleet field."""
    if kv_allocation == "paged":
        if capacity_tokens < block_tokens:
            raise FleetoptError("fleet.gpu", f"{profile.label()} has no room for KV cache (the "
                                "model's weights fill its memory)")
        return 0
    slots = int(profile.slots(int(window_tokens or 0)))
    if slots < 1:
        raise FleetoptError("fleet.window_tokens", f"{profile.label()} has no KV slot for a "
                            f"{window_tokens}-token window")
    return slots


class _CurvePower:
    """Instance watts at a number of running sequences, from the logistic curve (memoised per
    count: the curve is evaluated once per distinct batch, by ``physics.power``)."""

    __slots__ = ("curve", "gpus", "_w")

    def __init__(self, profile: Profile, accounting: str) -> None:
        self.curve = profile.power
        self.gpus = int(profile.gpus_counted(accounting))
        self._w: dict[int, float] = {}

    def watts(self, n: int) -> float:
        w = self._w.get(n)
        if w is None:
            w = self.gpus * float(gpu_power_w(self.curve, float(n)))
            self._w[n] = w
        return w


class CalibratedStepCost:
    """The step cost of a :class:`CalibratedProfile`: ``W + H * (K_d + K_p + P) / ref``.

    The profile's law ``t(n, L) = W + H * n * L / ref`` charges every sequence of the batch its
    context ``L`` once per iteration, and a prefilling prompt rides in the iterations as one
    more sequence; per iteration that is the decoders' cached tokens ``K_d`` plus, for each
    prefill chunk, the tokens it reads and writes (``K_p + P``). Energy: the logistic power
    curve at the running sequences. No compute/memory split (the profile has none).
    """

    __slots__ = ("base", "slope", "power", "idle_w")

    def __init__(self, profile: CalibratedProfile, accounting: str = "physical") -> None:
        s = profile.spec
        self.base = float(s.base_iter_s)
        self.slope = float(s.per_seq_s) / float(s.ref_ctx_tokens)
        self.power = _CurvePower(profile, accounting)
        self.idle_w = self.power.watts(0)

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float:
        return self.base + self.slope * (decode_ctx_tokens + prefill_ctx_tokens + prefill_tokens)

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float:
        return self.power.watts(decode_seqs + (1 if prefill_tokens else 0)) * step_s


def describe_cost(cost: Any) -> str:
    """A short name of a step cost (for the run's record)."""
    name = type(cost).__name__
    return "iteration-model" if name == "ProfileStepCost" else \
        "calibrated" if name == "CalibratedStepCost" else name

