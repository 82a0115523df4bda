"""Chunked prefill time.

A prompt of ``l`` tokens is processed in ``ceil(l / chunk)`` chunks, each riding in one
iteration beside the decode batch (chunked prefill as in vLLM / SGLang). Its FLOPs per GPU are

``F(l) = 2 * active_params / tp * l + attn_flops_per_ctx_token * l^2 / 2``

(the matrix multiplies, plus causal attention whose cost grows with the square of the prompt).
Each chunk's iteration is a roofline of the decode batch's memory traffic against the batch's
compute plus the chunk's share of ``F(l)``, so

``prefill_s = n_chunks * max(t_mem(n, L), t_compute(n, L) + F(l) / n_chunks / (peak * eff))``.

Long prompts are compute-bound (the attention term grows quadratically); short prompts at a
large decode batch are bound by the iteration they join.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["n_chunks", "prefill_flops"]


def n_chunks(prompt_tokens: ArrayLike, chunk_tokens: int) -> NDArray[np.float64]:
    """Number of prefill chunks (iterations) for a prompt: ``ceil(l / chunk)``, at least 1."""
    return np.maximum(1.0, np.ceil(np.asarray(prompt_tokens, dtype=float) / chunk_tokens))


def prefill_flops(
    prompt_tokens: ArrayLike, *, flops_per_token_base: float, attn_flops_per_ctx_token: float
) -> NDArray[np.float64]:
    """Per-GPU FLOPs to prefill a prompt: linear layers plus causal attention (l^2 / 2 pairs)."""
    lt = np.asarray(prompt_tokens, dtype=float)
    return flops_per_token_base * lt + attn_flops_per_ctx_token * lt * lt / 2.0
