"""KV-cache memory: bytes per token per GPU, KV budget per GPU, slots at a context window.

Formulas
--------
* GQA (grouped-query attention): each token stores K and V for every layer and KV head:
  ``2 * layers * kv_heads_per_gpu * head_dim * kv_bytes``. Under tensor parallelism the KV
  heads are sharded across the TP ranks, ``kv_heads_per_gpu = ceil(kv_heads / tp)``; when
  ``tp > kv_heads`` each rank keeps a replica of one head (``kv_heads_per_gpu = 1``).
* MLA (multi-head latent attention, DeepSeek): one compressed latent of
  ``kv_lora_rank + qk_rope_head_dim`` elements per layer and token, replicated on every
  TP rank (it is not split by head).
* KV budget per GPU: ``hbm_bytes * memory_utilization - weight_shard_bytes - reserve_bytes``.
* Paged KV capacity (tokens a GPU's KV budget holds in whole blocks of ``block_tokens``):
  ``floor(budget / (block_tokens * kv_bytes)) * block_tokens``; an instance holds as many
  tokens as one of its GPUs (every GPU keeps its shard, or a replica, of every token).
* Slots at window ``C`` (sequences that fit when each may grow to ``C`` tokens), with paged
  blocks of ``block_tokens``: ``floor(budget / (block_tokens * kv_bytes)) // ceil(C / block_tokens)``,
  capped at ``max_batch``.
"""

from __future__ import annotations

import math

__all__ = ["BYTES_PER_ELEMENT", "dtype_bytes", "kv_budget_bytes", "kv_bytes_per_token_per_gpu",
           "kv_capacity_tokens", "kv_heads_per_gpu", "slots_at_window"]

BYTES_PER_ELEMENT: dict[str, float] = {"fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of a precision name (fp16, bf16, fp8, int8, int4)."""
    try:
        return BYTES_PER_ELEMENT[dtype.lower()]
    except KeyError:
        raise ValueError(
            f"unknown precision {dtype!r}; use one of {', '.join(BYTES_PER_ELEMENT)}"
        ) from None


def kv_heads_per_gpu(kv_heads: int, tp: int) -> int:
    """KV heads held by one TP rank: sharded, or one replicated head when tp > kv_heads."""
    return max(1, math.ceil(kv_heads / tp))


def kv_bytes_per_token_per_gpu(
    *,
    layers: int,
    kv_heads: int,
    head_dim: int,
    tp: int,
    kv_dtype: str = "fp16",
    attention: str = "gqa",
    kv_lora_rank: int = 0,
    qk_rope_head_dim: int = 0,
) -> float:
    """KV-cache bytes one token occupies on one GPU of a TP group."""
    b = dtype_bytes(kv_dtype)
    if attention == "mla":
        return layers * (kv_lora_rank + qk_rope_head_dim) * b
    return 2.0 * layers * kv_heads_per_gpu(kv_heads, tp) * head_dim * b


def kv_budget_bytes(
    *, hbm_bytes: float, weight_bytes_per_gpu: float, memory_utilization: float = 0.90,
    reserve_bytes: float = 0.0,
) -> float:
    """Bytes left for KV cache on one GPU (may be negative: the model does not fit)."""
    return hbm_bytes * memory_utilization - weight_bytes_per_gpu - reserve_bytes


def kv_capacity_tokens(*, budget_bytes: float, kv_bytes_per_token: float,
                       block_tokens: int = 16) -> int:
    """Tokens of KV the budget holds in whole paged blocks (0 when the budget is negative)."""
    if budget_bytes <= 0:
        return 0
    return int(math.floor(budget_bytes / (block_tokens * kv_bytes_per_token))) * int(block_tokens)


def slots_at_window(
    *, budget_bytes: float, kv_bytes_per_token: float, window_tokens: int,
    block_tokens: int = 16, max_batch: int = 1024,
) -> int:
    """Sequences that fit in the KV budget when each may reach ``window_tokens`` tokens."""
    if budget_bytes <= 0 or window_tokens <= 0:
        return 0
    blocks = math.floor(budget_bytes / (block_tokens * kv_bytes_per_token))
    return int(min(max_batch, blocks // math.ceil(window_tokens / block_tokens)))
