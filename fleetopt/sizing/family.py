"""Many pools at once: a family shares one upper edge and KV window (or several upper edges,
each pool at its own window).

The MIP's candidates, the baselines' searches and the explanations size pools in families
``(lo_l, hi]`` that share a window and the requests below ``hi`` (the MIP's candidates also
``(lo_l, hi_l]`` at windows ``hi_l``: no request of any of them is compressed, so they share
the requests below the largest ``hi_l``). :func:`family_mix` is the
deployment-independent part (the routed, compressed, weighted request points); the pool model
itself is :class:`fleetopt.sizing.servemodel.ServeFamily` (physical accounting), which one pool
at a time (:class:`~fleetopt.sizing.poolmodel.PoolModel`) uses too. (A *family* of pools, not a
batch: in this package a batch is the sequences an instance has in flight.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.physics.compression import compress

__all__ = ["NotStackable", "family_mix", "weighted_quantile"]


class NotStackable(ValueError):
    """These profiles cannot share one family."""


def weighted_quantile(values: NDArray, weights: NDArray, q: float) -> float:
    """Smallest value whose cumulative weight reaches ``q`` (discrete distribution)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1] - 1e-12)), len(cum) - 1)])


def family_mix(input_tokens: NDArray, output_tokens: NDArray, weights: NDArray,
               total_rate_rps: float, lows: list[int], hi: int, window: int,
               his: list[int] | None = None) -> dict[str, Any]:
    """The deployment-independent part of a family of pools ``(lo_l, hi]`` at ``window``:
    the requests routed below ``hi``, compressed to the window, weighted per lower edge
    (columns of ``Wn``, each summing to 1 where the pool carries traffic). ``his``: each
    pool's own upper edge instead (pools ``(lo_l, his_l]``, every ``his_l <= hi``)."""
    tot = np.asarray(input_tokens) + np.asarray(output_tokens)
    keep = (tot <= hi) & (np.asarray(weights) > 0)
    lin, lout, over = compress(np.asarray(input_tokens)[keep], np.asarray(output_tokens)[keep],
                               int(window))
    w = np.asarray(weights, dtype=float)[keep]
    lows_a = np.asarray(lows)
    W = w[:, None] * (tot[keep][:, None] > lows_a[None, :])  # P x L
    if his is not None:
        W = W * (tot[keep][:, None] <= np.asarray(his)[None, :])
    share = W.sum(axis=0)
    Wn = np.divide(W, share, out=np.zeros_like(W), where=share > 0)
    mean_output = lout @ Wn
    with np.errstate(divide="ignore", invalid="ignore"):
        ctx = np.where(mean_output > 0, (lout * (lin + lout / 2.0)) @ Wn / mean_output, 0.0)
    cut = (np.asarray(input_tokens)[keep] - lin).astype(float) @ Wn  # prompt tokens cut
    return {"lin": lin, "lout": lout, "lows": lows_a, "Wn": Wn, "share": share,
            "rate_rps": total_rate_rps * share, "compressed_share": (Wn * over[:, None]).sum(axis=0),
            "input_tokens_cut": cut, "mean_output": mean_output, "ctx": ctx,
            "window": int(window)}
