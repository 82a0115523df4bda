"""The seam between a deployment's profile and the iteration engine: its step cost and limits.

The simulator asks a :class:`~fleetopt.physics.profiles.Profile` for two things, both here and
nowhere else:

* :func:`profile_step_cost`: the :class:`~fleetopt.sim.iteration.StepCost` of one instance
  (the time and energy of one iteration of a given mix of decode sequences, their cached
  context, prefill tokens and prefill attention pairs; the instance's idle power);
* :func:`instance_limits`: its engine limits (:class:`~fleetopt.sim.iteration.InstanceLimits`:
  token budget, sequence cap, paged KV capacity in blocks, or reserved slots at a window).

TEMPORARY (issue 12, until issue 11's physics lands). For a
:class:`~fleetopt.physics.profiles.ComputedProfile` both functions build their result from
TODAY's profile: :class:`TemporaryRooflineCost` re-expresses the profile's decode and prefill
roofline terms (``fleetopt.physics.step``, ``fleetopt.physics.prefill``) per iteration, and the
energy follows the profile's logistic power curve; :func:`instance_limits` derives the KV
capacity from the profile's KV budget and takes vLLM V1's ``vllm serve`` defaults for the token
budget and sequence cap. When ``physics/iteration.py`` and ``sim/profile_cost.py`` (branch
``i11-physics``) are merged, the two ``ComputedProfile`` branches below become::

    return ProfileStepCost(profile, accounting)              # profile_step_cost
    return profile_limits(profile, kv_allocation, window)    # instance_limits

and :class:`TemporaryRooflineCost` and :func:`_vllm_defaults` go. Nothing else in the simulator
depends on which step cost it is given.

The :class:`CalibratedStepCost` of a :class:`~fleetopt.physics.profiles.CalibratedProfile`
(published constants, ``t(n, L) = W + H * n * L / ref``) stays: it writes the same law per
iteration (each sequence's cached context read once, each prefill chunk a sequence of its
length).
"""

from __future__ import annotations

from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.power import gpu_power_w
from fleetopt.physics.profiles import CalibratedProfile, ComputedProfile, Profile
from fleetopt.sim.iteration import KV_ALLOCATIONS, InstanceLimits, StepCost

__all__ = ["CalibratedStepCost", "TemporaryRooflineCost", "describe_cost", "instance_limits",
           "profile_step_cost"]

#: vLLM V1 ``vllm serve`` defaults: GPUs of at least this much memory (GB), A100 excepted, get
#: 8192 batched tokens and 1024 sequences, others 2048 and 256 (``vllm/engine/arg_utils.py``)
_LARGE_GPU_GB = 70.0


def profile_step_cost(profile: Profile, accounting: str = "physical") -> StepCost:
    """The step cost of one instance of ``profile`` (watts counted per ``accounting``:
    ``physical`` every GPU of the instance, ``paper`` one)."""
    if isinstance(profile, ComputedProfile):
        return TemporaryRooflineCost(profile, accounting)  # -> ProfileStepCost at the merge
    if isinstance(profile, CalibratedProfile):
        return CalibratedStepCost(profile, accounting)
    raise FleetoptError("profiles", f"{type(profile).__name__} has no step cost for the "
                        "simulator; give a computed or calibrated profile, or engines=[(cost, "
                        "limits), ...]")


def instance_limits(profile: Profile, kv_allocation: str = "paged",
                    window_tokens: int | None = None) -> InstanceLimits:
    """The engine limits of one instance of ``profile``: paged KV (its whole KV budget in
    blocks) or ``reserved`` slots at ``window_tokens`` (``profile.slots(window)``)."""
    if kv_allocation not in KV_ALLOCATIONS:
        raise FleetoptError("physics.kv_allocation", f"must be one of "
                            f"{', '.join(KV_ALLOCATIONS)}, got {kv_allocation!r}")
    if kv_allocation == "reserved" and window_tokens is None:
        raise FleetoptError("window_tokens", "reserved KV needs the slots' window")
    if isinstance(profile, ComputedProfile):  # -> profile_limits(...) at the merge
        budget, seqs = _vllm_defaults(profile)
        seqs = min(seqs, int(profile.params.max_batch))
        block = int(profile.params.block_tokens)
        per_token = float(profile.kv_bytes_per_token)
        capacity = int(max(profile.kv_budget_bytes, 0.0) // (per_token * block)) * block
    elif isinstance(profile, CalibratedProfile):
        s = profile.spec
        block = int(s.block_tokens)
        seqs = max(1, int(s.max_slot_tokens // s.ref_ctx_tokens))
        budget = int(s.chunk_tokens) + seqs  # one full chunk beside a full decode batch
        capacity = int(s.kv_blocks) * block
    else:
        raise FleetoptError("profiles", f"{type(profile).__name__} has no engine limits for "
                            "the simulator; give engines=[(cost, limits), ...]")
    if kv_allocation == "paged":
        if capacity < block:
            raise FleetoptError("fleet.gpu", f"{profile.label()} has no room for KV cache (the "
                                "model's weights fill its memory)")
        return InstanceLimits(token_budget=budget, max_seqs=seqs, kv_allocation="paged",
                              kv_capacity_tokens=capacity, block_tokens=block)
    slots = int(profile.slots(int(window_tokens or 0)))
    if slots < 1:
        raise FleetoptError("fleet.window_tokens", f"{profile.label()} has no KV slot for a "
                            f"{window_tokens}-token window")
    return InstanceLimits(token_budget=max(budget, slots), max_seqs=min(seqs, slots),
                          kv_allocation="reserved", block_tokens=block, slots=slots,
                          window_tokens=int(window_tokens or 0))


def _vllm_defaults(profile: ComputedProfile) -> tuple[int, int]:
    """TEMPORARY: ``(max_num_batched_tokens, max_num_seqs)`` of ``vllm serve`` on the GPU
    (issue 11 moves this rule into the profile)."""
    g = profile.gpu_spec
    if g.hbm_gb >= _LARGE_GPU_GB and "a100" not in g.name.lower():
        return 8192, 1024
    return 2048, 256


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


class TemporaryRooflineCost:
    """TEMPORARY step cost of a :class:`ComputedProfile` (module docstring): today's roofline
    per iteration, in Python floats.

    For ``D`` decoders holding ``K_d`` cached tokens in all, ``P`` prefill tokens with ``A``
    attention pairs and (once the engine passes it) ``K_p`` KV tokens read by the chunks, per
    GPU of the instance:

    * memory: ``(W(D + P) + (K_d + K_p + P) * kv_bytes) / (bandwidth * mem_efficiency)``:
      the streamed weights (for a mixture of experts, the experts ``D + P`` tokens touch:
      ``physics.step.streamed_weight_bytes``), the KV read and the chunks' KV written;
    * compute: ``(D * F + K_d * a) / (peak * compute_efficiency) + (P * F + A * a) / (peak *
      prefill_efficiency)``, ``F`` the FLOPs per token and ``a`` the attention FLOPs per
      (query, key) pair (``physics.step.roofline_terms``, ``physics.prefill.prefill_flops``);
    * step time ``max(memory, compute) + overhead_s``; energy the logistic power curve at the
      running sequences (decoders, plus one when a prefill chunk runs) times the step time;
      idle power the curve at zero sequences.

    A decode-only step equals ``profile.decode_s(D, K_d / D)`` (tested).
    """

    __slots__ = ("dense", "expert", "keep", "moe", "kvb", "fb", "attn", "mem_rate",
                 "dec_rate", "pre_rate", "overhead", "power", "idle_w", "_key", "_val")

    def __init__(self, profile: ComputedProfile, accounting: str = "physical") -> None:
        m, pp = profile.model, profile.params
        self.dense = float(profile.dense_bytes)
        self.expert = float(profile.expert_bytes)
        self.moe = int(m.experts) > 0
        self.keep = 1.0 - int(m.experts_per_token) / int(m.experts) if self.moe else 0.0
        self.kvb = float(profile.kv_bytes_per_token)
        self.fb = float(profile.flops_per_token_base)
        self.attn = float(profile.attn_flops_per_ctx_token)
        self.mem_rate = float(profile.bandwidth) * pp.mem_efficiency
        self.dec_rate = float(profile.peak_flops) * pp.compute_efficiency
        self.pre_rate = float(profile.peak_flops) * pp.prefill_efficiency
        self.overhead = float(pp.overhead_s)
        self.power = _CurvePower(profile, accounting)
        self.idle_w = self.power.watts(0)
        self._key: tuple[float, ...] | None = None
        self._val = (0.0, 0.0)

    def step_split_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                     prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> tuple[float, float]:
        """(compute term, memory term) of the step, seconds (the last mix is memoised: the
        engine asks for the time, the energy and the split of each step in turn)."""
        key = (decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs, prefill_ctx_tokens)
        if key == self._key:
            return self._val
        n = decode_seqs + prefill_tokens
        if self.moe:
            w = self.dense + self.expert * (1.0 - self.keep ** (n if n > 1 else 1))
        else:
            w = self.dense + self.expert
        mem = (w + (decode_ctx_tokens + prefill_ctx_tokens + prefill_tokens) * self.kvb) \
            / self.mem_rate
        cmp = (decode_seqs * self.fb + decode_ctx_tokens * self.attn) / self.dec_rate \
            + (prefill_tokens * self.fb + prefill_pairs * self.attn) / self.pre_rate
        self._key, self._val = key, (cmp, mem)
        return cmp, mem

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float:
        cmp, mem = self.step_split_s(decode_seqs, decode_ctx_tokens, prefill_tokens,
                                     prefill_pairs, prefill_ctx_tokens)
        return (cmp if cmp > mem else mem) + self.overhead

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float:
        return self.power.watts(decode_seqs + (1 if prefill_tokens else 0)) * step_s


class CalibratedStepCost:
    """The step cost of a :class:`CalibratedProfile`: ``W + H * (K_d + K_p + P) / ref``.

    The profile's law ``t(n, L) = W + H * n * L / ref`` charges every sequence of the batch its
    context ``L`` once per iteration, and a prefilling prompt rides in the iterations as one
    more sequence; per iteration that is the decoders' cached tokens ``K_d`` plus, for each
    prefill chunk, the tokens it reads and writes (``K_p + P``). Energy: the logistic power
    curve at the running sequences, as for :class:`TemporaryRooflineCost`. No compute/memory
    split (the profile has none).
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
    return "temporary-roofline" if name == "TemporaryRooflineCost" else \
        "calibrated" if name == "CalibratedStepCost" else name

