"""Fitting a request into a KV window: the compression model of compress bands.

A pool whose KV window is smaller than its upper edge serves the longer requests in a degraded
form (``docs/model.md``, compression model): :func:`compress` truncates the prompt and keeps the
output (physical accounting, the simulator's routing, ``over_max_ctx = "truncate"``);
:func:`compress_paper` is the published planner's rule (``paper`` accounting).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["compress", "compress_paper"]


def compress(
    lin: NDArray, lout: NDArray, window: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Fit requests into ``window`` tokens by truncating the prompt (output kept when it fits).

    A request with ``l_in + l_out > window`` keeps its output (capped at ``window - 1``) and its
    prompt is cut to ``window - l_out``.
    """
    lin = np.asarray(lin, dtype=np.int64)
    lout = np.asarray(lout, dtype=np.int64)
    over = lin + lout > window
    lout2 = np.where(over, np.minimum(lout, window - 1), lout)
    lin2 = np.where(over, np.maximum(1, window - lout2), lin)
    return lin2, lout2, over


def compress_paper(
    lin: NDArray, lout: NDArray, window: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The published planner's compression: an over-long request becomes exactly ``window``
    tokens, input ``floor(window * share_in)`` (at least 1), output the rest (at least 1)."""
    lin = np.asarray(lin, dtype=np.int64)
    lout = np.asarray(lout, dtype=np.int64)
    over = lin + lout > window
    share_in = lin / np.maximum(lin + lout, 1)
    lin_c = np.clip(np.floor(window * share_in + 1e-9).astype(np.int64), 1, max(window - 1, 1))
    lin2 = np.where(over, lin_c, lin)
    lout2 = np.where(over, np.maximum(1, window - lin_c), lout)
    return lin2, lout2, over
