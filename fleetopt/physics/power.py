"""Per-GPU power: what the iteration does (the activity model), and the logistic batch curve.

**Activity model** (:class:`ActivityPower`, the ``busy_sat`` form fitted to ML.ENERGY,
``docs/model.md``). A step (or a mix of steps, time-averaged) splits into low-power time and
busy time. Low-power time is the share of the step in the bf16-level kernel floors
(``f_floor``: launch gaps, latency-bound tiny kernels) plus the host-bound share (``f_idle``:
the GPU waits for the scheduler); the GPU draws its idle power there. In the busy rest the draw
rises with what the GPU does per second of busy time and saturates at the power limit::

  s_lo   = f_floor + f_idle
  x      = b0 + (b_c U_c + b_m U_m + b_x f_floor_x + b_s f_seq) / (1 - s_lo)
  P_busy = idle_w + (tdp_w - idle_w) (1 - exp(-x))
  P      = s_lo idle_w + (1 - s_lo) P_busy

with ``U_c`` = achieved tensor FLOP/s over the bf16 peak (fp8 FLOPs at the bf16/fp8 rate
ratio), ``U_m`` = achieved HBM bytes/s over peak (the average GPU), ``f_floor_x`` the time in
the precision's floor above the bf16 one (block-FP8 dequantising kernels: compute-busy),
``f_seq`` per-sequence work (:func:`activity` computes all of them from
:class:`~fleetopt.physics.iteration.StepTerms`). ``b0, b_c, b_m, b_x, b_s >= 0`` are
dimensionless, fitted per GPU; ``idle_w`` (a GPU running no kernel) and ``tdp_w`` are fixed.
So ``idle_w <= P <= tdp_w`` always, and a GPU that runs no iteration draws ``idle_w``.

**Logistic curve** (:class:`PowerCurve`: calibrated profiles and ``paper`` accounting):
``P(n) = idle_w + (plateau_w - idle_w) / (1 + exp(-slope * (log2(max(n, 1)) - midpoint_log2)))``
with ``n`` sequences in flight on the instance; bounded by ``[idle_w, plateau_w]``,
non-decreasing for ``slope >= 0``. H100 and B200 curves are fitted to ML.ENERGY
(``scripts/derive_data.py``, ``docs/data.md``); the rest are projections, labelled as such.

Quality labels (``quality``): ``measured`` (one's own telemetry), ``fitted`` (a fit to
published measurements of that GPU), ``projected`` (no measurement of that GPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# ``terms`` and ``coefficients`` below are fleetopt.physics.iteration's StepTerms and
# StepCoefficients (not imported: the catalog imports this module, iteration the catalog)
StepTerms = Any
StepCoefficients = Any

__all__ = ["POWER_QUALITIES", "Activity", "ActivityPower", "PowerCurve", "activity",
           "gpu_power_w", "logistic_power_w"]

#: the quality labels of power models and calibrations
POWER_QUALITIES = ("measured", "fitted", "projected")


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


# ------------------------------------------------------------------------------ activity


@dataclass(frozen=True)
class Activity:
    """Time-averaged activity of a step or a mix of steps, per GPU (arrays or floats).

    ``u_c`` tensor FLOP/s over the bf16 peak; ``u_m`` HBM bytes/s over peak (average GPU);
    time shares: ``f_floor`` bf16-level kernel floors, ``f_floor_x`` the precision's floor above
    it, ``f_seq`` per-sequence work, ``f_idle`` host-bound (no GPU work), ``f_fixed`` all fixed
    costs (``f_floor + f_floor_x + f_seq``), ``f_comm`` all-reduces.
    """

    u_c: Any
    u_m: Any
    f_floor: Any
    f_floor_x: Any
    f_seq: Any
    f_idle: Any
    f_fixed: Any
    f_comm: Any


def activity(terms: StepTerms, coefficients: StepCoefficients) -> Activity:
    """The :class:`Activity` of ``terms`` (one step, or a mix of steps summed with
    :meth:`~fleetopt.physics.iteration.StepTerms.total`: ratios of totals are time averages)
    on the deployment of ``coefficients`` (broadcast: stacked coefficients work)."""
    t = np.asarray(terms.t_step, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(t > 0, 1.0 / np.where(t > 0, t, 1.0), 0.0)
    fl = np.asarray(terms.t_floor, dtype=float)
    flx = np.asarray(terms.t_floor_x, dtype=float)
    return Activity(
        u_c=np.asarray(terms.flops_bf16eq) * inv / np.asarray(coefficients.peak_bf16),
        u_m=np.asarray(terms.bytes_mean) * inv / np.asarray(coefficients.bw),
        f_floor=(fl - flx) * inv, f_floor_x=flx * inv,
        f_seq=np.asarray(terms.t_seqwork) * inv,
        f_idle=np.where(t > 0, 1.0 - np.asarray(terms.t_gpu) * inv, 1.0),
        f_fixed=np.asarray(terms.t_fixed) * inv, f_comm=np.asarray(terms.t_comm) * inv)


_ACTIVITY_COEFS = ("b0", "b_c", "b_m", "b_x", "b_s")


@dataclass(frozen=True)
class ActivityPower:
    """The fitted per-GPU power model of a GPU (``busy_sat`` form, module docstring).

    ``idle_w``: a GPU running no kernel (also the draw of floor and host-bound time);
    ``tdp_w``: the power limit; ``b0, b_c, b_m, b_x, b_s``: dimensionless, >= 0. Fields may be
    arrays after :meth:`stack`. ``quality``: measured | fitted | projected (of the coefficients);
    ``idle_quality`` likewise for ``idle_w``; ``source`` says where they come from.
    """

    idle_w: Any
    tdp_w: Any
    b0: Any = 0.0
    b_c: Any = 0.0
    b_m: Any = 0.0
    b_x: Any = 0.0
    b_s: Any = 0.0
    quality: str | tuple[str, ...] = "projected"
    idle_quality: str | tuple[str, ...] = "projected"
    source: str | tuple[str, ...] = ""

    def __post_init__(self) -> None:
        if np.ndim(self.idle_w) == 0:
            if not (math.isfinite(self.idle_w) and 0 <= self.idle_w <= self.tdp_w):
                raise ValueError(f"activity power needs 0 <= idle_w <= tdp_w, got "
                                 f"{self.idle_w}, {self.tdp_w}")
            for k in _ACTIVITY_COEFS:
                v = getattr(self, k)
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"activity power coefficient {k} must be >= 0, got {v}")
            for q in (self.quality, self.idle_quality):
                if q not in POWER_QUALITIES:
                    raise ValueError(f"power quality must be one of {POWER_QUALITIES}, got {q!r}")

    def gpu_power_w(self, act: Activity) -> NDArray[np.float64]:
        """Watts of ONE GPU at the (time-averaged) activity ``act``; within
        ``[idle_w, tdp_w]``."""
        lo = np.asarray(self.idle_w, dtype=float)
        cap = np.asarray(self.tdp_w, dtype=float)
        s_lo = np.clip(np.asarray(act.f_floor) + np.asarray(act.f_idle), 0.0, 1.0)
        busy = 1.0 - s_lo
        x = self.b0 + (self.b_c * np.asarray(act.u_c) + self.b_m * np.asarray(act.u_m)
                       + self.b_x * np.asarray(act.f_floor_x)
                       + self.b_s * np.asarray(act.f_seq)) / np.maximum(busy, 1e-9)
        p_busy = lo + (cap - lo) * (1.0 - np.exp(-np.maximum(x, 0.0)))
        return np.asarray(lo + busy * (p_busy - lo), dtype=float)

    def step_power_w(self, terms: StepTerms, coefficients: StepCoefficients) -> NDArray[np.float64]:
        """``gpu_power_w(activity(terms, coefficients))``."""
        return self.gpu_power_w(activity(terms, coefficients))

    @classmethod
    def stack(cls, models: Sequence[ActivityPower]) -> ActivityPower:
        """Many GPUs' models as one (numeric fields 1-D arrays, one entry per model), to
        broadcast against stacked step coefficients."""
        ms = list(models)
        if not ms:
            raise ValueError("stack needs at least one ActivityPower")
        kw: dict[str, Any] = {f.name: np.array([getattr(m, f.name) for m in ms], dtype=float)
                              for f in fields(cls) if f.name not in ("quality", "idle_quality",
                                                                     "source")}
        for k in ("quality", "idle_quality", "source"):
            kw[k] = tuple(str(getattr(m, k)) for m in ms)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
