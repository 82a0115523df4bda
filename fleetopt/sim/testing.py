"""Reference step costs for tests and benchmarks of the iteration-level simulator.

The real per-iteration physics (``fleetopt.physics``) will implement the same
:class:`~fleetopt.sim.iteration.StepCost` protocol; these stand-ins let the engine be tested and
benchmarked on its own:

* :class:`ConstantStepCost`: every iteration takes the same time (closed-form queueing checks);
* :class:`RooflineStepCost`: a fixed cost plus the larger of a memory term and a compute term
  of the step's mix, with plausible numbers for Llama-3.1-70B (fp16) on one H100-SXM TP8
  instance (per GPU: 17.6 GB of weights streamed at 2.3 TB/s achieved, 17.5 GFLOP per token at
  600 TFLOP/s achieved, 40 KiB of KV per token, 3 ms fixed per step);
* :func:`h100_tp8_llama70b_limits`: matching engine limits (paged KV, 16-token blocks,
  ``max_num_batched_tokens`` 8192, ``max_num_seqs`` 256, ~1.25 M tokens of KV).

These are NOT calibrated physics: they exist so that the engine's mechanism (token budget,
chunking, batching, preemption) has a step cost that depends on the mix, as a real one does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetopt.sim.iteration import InstanceLimits

__all__ = ["ATTN_FLOPS_PER_PAIR_PER_GPU", "KV_BYTES_PER_TOKEN_PER_GPU", "ConstantStepCost",
           "RooflineStepCost", "h100_tp8_llama70b_limits"]

# Llama-3.1-70B: 80 layers, d_model 8192, 8 KV heads of 128: attention does 4 * d_model FLOPs
# per (query, key) pair per layer (QK^T and AV); KV is 2 * 80 * 8 * 128 * 2 B = 320 KiB/token.
_LAYERS, _D_MODEL, _TP = 80, 8192, 8
ATTN_FLOPS_PER_PAIR_PER_GPU = 4.0 * _D_MODEL * _LAYERS / _TP
KV_BYTES_PER_TOKEN_PER_GPU = 2 * _LAYERS * 8 * 128 * 2 / _TP


@dataclass(frozen=True)
class ConstantStepCost:
    """Every iteration takes ``iteration_s`` and draws ``busy_w``; ``idle_w`` otherwise."""

    iteration_s: float = 0.01
    busy_w: float = 1000.0
    idle_w: float = 100.0

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float:
        return self.iteration_s

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float:
        return self.busy_w * step_s


@dataclass(frozen=True)
class RooflineStepCost:
    """``fixed_s + max(memory term, compute term)`` of the step's mix (one TP instance).

    * memory: weights + the decoders' KV reads + the prefill's KV writes, per GPU, over the
      achieved memory bandwidth;
    * compute: (decode + prefill tokens) x FLOPs per token, plus attention pairs (each decoder
      attends to its cached context and itself; prefill pairs as given) x FLOPs per pair, per
      GPU, over the achieved FLOP rate;
    * power per GPU: ``idle + (max - idle) * min(1, compute share + mem_power_weight * memory
      share)`` of the step; the instance draws ``gpus`` times that.

    The prefill chunks' KV reads (``prefill_ctx_tokens``) are not part of this stand-in.
    """

    fixed_s: float = 3e-3
    weight_bytes_per_gpu: float = 17.6e9
    mem_bytes_per_s: float = 2.3e12
    kv_bytes_per_token_per_gpu: float = KV_BYTES_PER_TOKEN_PER_GPU
    flops_per_token_per_gpu: float = 17.5e9
    attn_flops_per_pair_per_gpu: float = ATTN_FLOPS_PER_PAIR_PER_GPU
    flops_per_s: float = 600e12
    gpus: int = 8
    gpu_idle_w: float = 90.0
    gpu_max_w: float = 700.0
    mem_power_weight: float = 0.45
    _memo: list[Any] = field(default_factory=lambda: [None, None], init=False, repr=False,
                             compare=False, hash=False)

    @property
    def idle_w(self) -> float:
        return self.gpus * self.gpu_idle_w

    def step_split_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                     prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> tuple[float, float]:
        """(compute term, memory term) in seconds (the last mix's terms are memoised: the
        engine asks for the time, the energy and the split of each step in turn)."""
        key = (decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs)
        memo = self._memo
        if memo[0] == key:
            hit: tuple[float, float] = memo[1]
            return hit
        mem = (self.weight_bytes_per_gpu
               + (decode_ctx_tokens + prefill_tokens) * self.kv_bytes_per_token_per_gpu
               ) / self.mem_bytes_per_s
        cmp = ((decode_seqs + prefill_tokens) * self.flops_per_token_per_gpu
               + (decode_ctx_tokens + decode_seqs + prefill_pairs)
               * self.attn_flops_per_pair_per_gpu) / self.flops_per_s
        memo[0], memo[1] = key, (cmp, mem)
        return cmp, mem

    def step_s(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
               prefill_pairs: float, prefill_ctx_tokens: float = 0.0) -> float:
        cmp, mem = self.step_split_s(decode_seqs, decode_ctx_tokens, prefill_tokens,
                                     prefill_pairs)
        return self.fixed_s + (cmp if cmp > mem else mem)

    def step_energy_j(self, decode_seqs: int, decode_ctx_tokens: float, prefill_tokens: int,
                      prefill_pairs: float, step_s: float,
                      prefill_ctx_tokens: float = 0.0) -> float:
        cmp, mem = self.step_split_s(decode_seqs, decode_ctx_tokens, prefill_tokens,
                                     prefill_pairs)
        act = (cmp + self.mem_power_weight * mem) / step_s if step_s > 0 else 0.0
        if act > 1.0:
            act = 1.0
        watts = self.gpus * (self.gpu_idle_w + (self.gpu_max_w - self.gpu_idle_w) * act)
        return watts * step_s


def h100_tp8_llama70b_limits(kv_capacity_tokens: int = 1_250_000, token_budget: int = 8192,
                             max_seqs: int = 256, block_tokens: int = 16) -> InstanceLimits:
    """Paged-KV limits of an H100 TP8 Llama-70B instance (80 GB x 8, ~90 % usable, 17.6 GB of
    weights per GPU and some activation memory leave ~50 GB per GPU: ~1.25 M tokens)."""
    return InstanceLimits(token_budget=token_budget, max_seqs=max_seqs, kv_allocation="paged",
                          kv_capacity_tokens=kv_capacity_tokens, block_tokens=block_tokens)
