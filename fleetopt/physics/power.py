"""Per-GPU power as a logistic curve in log2(batch).

``P(n) = idle_w + (plateau_w - idle_w) / (1 + exp(-slope * (log2(max(n, 1)) - midpoint_log2)))``

``n`` is the number of sequences in flight on the instance the GPU belongs to (every
GPU of a tensor-parallel group sees the same batch). The curve is bounded by
``[idle_w, plateau_w]`` and non-decreasing in ``n`` for ``slope >= 0``. Parameters for
H100 and B200 are fitted to ML.ENERGY measurements (``scripts/derive_data.py``,
``docs/data.md``); the rest are projections, labelled as such in the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["PowerCurve", "gpu_power_w", "logistic_power_w"]


@dataclass(frozen=True)
class PowerCurve:
    """Parameters of the logistic per-GPU power curve."""

    idle_w: float
    plateau_w: float
    slope: float
    midpoint_log2: float
    quality: str = "projected"  # measured | fitted | projected
    source: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.idle_w <= self.plateau_w):
            raise ValueError(
                f"power curve needs 0 <= idle_w <= plateau_w, got {self.idle_w}, {self.plateau_w}"
            )
        if self.slope < 0:
            raise ValueError(f"power curve slope must be >= 0, got {self.slope}")


def logistic_power_w(batch: ArrayLike, idle_w: ArrayLike, plateau_w: ArrayLike,
                     slope: ArrayLike, midpoint_log2: ArrayLike) -> NDArray[np.float64]:
    """The logistic curve with (possibly array) parameters, broadcast against ``batch``."""
    n = np.maximum(np.asarray(batch, dtype=float), 1.0)
    x = -np.asarray(slope) * (np.log2(n) - np.asarray(midpoint_log2))
    with np.errstate(over="ignore"):  # exp overflows to inf far below the midpoint: idle watts
        return np.asarray(idle_w) + (np.asarray(plateau_w) - np.asarray(idle_w)) / (1.0 + np.exp(x))


def gpu_power_w(curve: PowerCurve, batch: ArrayLike) -> NDArray[np.float64] | float:
    """Watts drawn by ONE GPU at ``batch`` sequences in flight (scalar or array)."""
    out = logistic_power_w(batch, curve.idle_w, curve.plateau_w, curve.slope, curve.midpoint_log2)
    return float(out) if np.ndim(out) == 0 else out
