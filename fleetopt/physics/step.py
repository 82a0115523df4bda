"""Decode iteration time as a roofline, and mixture-of-experts weight streaming.

One decode iteration advances every sequence in flight by one token. Its time is

``t(n, L) = max(t_mem, t_compute) + overhead_s``

* ``t_mem = (W(n) + n * L * kv_bytes_per_token) / (bandwidth * mem_efficiency)``: the
  weight shard streamed once per iteration plus the KV cache of the batch read once;
* ``t_compute = n * flops_per_token / (peak_flops * compute_efficiency)``, with
  ``flops_per_token = 2 * active_params / tp + 4 * layers * heads * head_dim / tp * L``
  (the matrix multiplies plus attention over ``L`` cached tokens);
* ``W(n)``: for a dense model the whole shard; for a mixture of experts the dense part plus
  the expected share of routed experts that a batch of ``n`` tokens touches,
  ``E * (1 - (1 - k/E)^n)`` distinct experts per layer out of ``E`` (top-``k`` routing,
  independent uniform choice), so a batch of a few dozen sequences streams nearly all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.physics.routing import routed_share

__all__ = ["decode_iteration_s", "expected_expert_fraction", "roofline_terms",
           "streamed_weight_bytes"]


def expected_expert_fraction(batch: ArrayLike, experts: int, top_k: int) -> NDArray[np.float64]:
    """Expected fraction of an MoE layer's routed experts touched by ``batch`` tokens."""
    n = np.asarray(batch, dtype=float)
    if experts <= 0:
        return np.ones_like(np.maximum(n, 0.0))
    p: NDArray[np.float64] = routed_share(1.0 - top_k / experts, 0.0, 0.0, n, least=0.0)[0]
    return p


def streamed_weight_bytes(
    batch: ArrayLike, *, dense_bytes: float | NDArray[np.float64],
    expert_bytes: float | NDArray[np.float64], experts: int, top_k: int
) -> NDArray[np.float64]:
    """Weight bytes one GPU streams per iteration at ``batch`` tokens (dense + touched experts)."""
    return dense_bytes + expert_bytes * expected_expert_fraction(batch, experts, top_k)


def roofline_terms(
    batch: ArrayLike,
    mean_ctx_tokens: ArrayLike,
    *,
    dense_bytes: ArrayLike,
    expert_bytes: ArrayLike,
    experts: int,
    top_k: int,
    kv_bytes_per_token: ArrayLike,
    flops_per_token_base: ArrayLike,
    attn_flops_per_ctx_token: ArrayLike,
    bandwidth_bytes_s: ArrayLike,
    peak_flops: ArrayLike,
    mem_efficiency: float,
    compute_efficiency: float,
    extra_flops: ArrayLike = 0.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(t_mem, t_compute)`` of one iteration; hardware parameters may be arrays (broadcast)."""
    n = np.asarray(batch, dtype=float)
    ctx = np.asarray(mean_ctx_tokens, dtype=float)
    w = streamed_weight_bytes(
        np.maximum(n, 1.0), dense_bytes=np.asarray(dense_bytes, dtype=float),
        expert_bytes=np.asarray(expert_bytes, dtype=float), experts=experts, top_k=top_k,
    )
    t_mem = (w + n * ctx * np.asarray(kv_bytes_per_token)) / (
        np.asarray(bandwidth_bytes_s) * mem_efficiency)
    flops = n * (np.asarray(flops_per_token_base) + np.asarray(attn_flops_per_ctx_token) * ctx) \
        + np.asarray(extra_flops)
    t_cmp = flops / (np.asarray(peak_flops) * compute_efficiency)
    return t_mem, t_cmp


def decode_iteration_s(
    batch: ArrayLike,
    mean_ctx_tokens: ArrayLike,
    *,
    overhead_s: float = 0.0,
    **hardware: Any,
) -> NDArray[np.float64]:
    """Seconds for one iteration over ``batch`` sequences of mean context ``mean_ctx_tokens``.

    ``hardware`` are the keyword arguments of :func:`roofline_terms` (``extra_flops`` adds work
    done in the same iteration, e.g. a prefill chunk).
    """
    t_mem, t_cmp = roofline_terms(batch, mean_ctx_tokens, **hardware)
    return np.maximum(t_mem, t_cmp) + overhead_s
