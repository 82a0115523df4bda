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
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.physics.routing import routed_share

# ``terms`` and ``coefficients`` below are fleetopt.physics.iteration's StepTerms and
# StepCoefficients (not imported: the catalog imports this module, iteration the catalog)
StepTerms = Any
StepCoefficients = Any

__all__ = ["POWER_QUALITIES", "Activity", "ActivityPower", "PowerCurve", "activity",
           "activity_floor_from_parts", "activity_floor_parts", "activity_power_floor_w",
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
    """Time-averaged activity of a step or a mix of steps, per GPU (arrays or floats);
    :func:`activity` computes it from step terms.

    ``u_c`` tensor FLOP/s over the bf16 peak; ``u_m`` HBM bytes/s over peak (average GPU);
    time shares: ``f_fixed`` all fixed costs (``f_floor + f_floor_x + f_seq``), ``f_comm``
    all-reduces, ``f_floor`` bf16-level kernel floors, ``f_floor_x`` the precision's floor above
    it, ``f_seq`` per-sequence work, ``f_idle`` host-bound (no GPU work).
    """

    u_c: Any
    u_m: Any
    f_fixed: Any = 0.0
    f_comm: Any = 0.0
    f_floor: Any = 0.0
    f_floor_x: Any = 0.0
    f_seq: Any = 0.0
    f_idle: Any = 0.0


_NP = SimpleNamespace(maximum=np.maximum, minimum=np.minimum, exp=np.exp)
_PY = SimpleNamespace(maximum=max, minimum=min, exp=math.exp)


def _activity(terms: Any, inv: Any, peak_bf16: Any, bw: Any) -> tuple[Any, ...]:
    """THE activity of ``terms`` (``inv = 1 / t_step``, 0 for an empty step), for arrays and
    floats alike, in the order of :class:`Activity`'s fields: ``(u_c, u_m, f_fixed, f_comm,
    f_floor, f_floor_x, f_seq, f_idle)``."""
    flx = terms.t_floor_x * inv
    return (terms.flops_bf16eq * inv / peak_bf16, terms.bytes_mean * inv / bw,
            terms.t_fixed * inv, terms.t_comm * inv, terms.t_floor * inv - flx, flx,
            terms.t_seqwork * inv, 1.0 - terms.t_gpu * inv)


#: the step terms :func:`activity` reads (a mix of steps needs only these totals)
ACTIVITY_TERMS = ("t_step", "t_floor_x", "flops_bf16eq", "bytes_mean", "t_floor", "t_seqwork",
                  "t_gpu", "t_fixed", "t_comm")


def activity(terms: StepTerms, coefficients: StepCoefficients) -> Activity:
    """The :class:`Activity` of ``terms`` (one step, or a mix of steps summed with
    :meth:`~fleetopt.physics.iteration.StepTerms.total`: ratios of totals are time averages)
    on the deployment of ``coefficients`` (broadcast: stacked coefficients work). A step of no
    time is all idle."""
    t = np.asarray(terms.t_step, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(t > 0, 1.0 / np.where(t > 0, t, 1.0), 0.0)
    arr = SimpleNamespace(**{k: np.asarray(getattr(terms, k), dtype=float) for k in
                             ACTIVITY_TERMS[1:]})
    return Activity(*_activity(arr, inv, np.asarray(coefficients.peak_bf16),
                               np.asarray(coefficients.bw)))


def _gpu_power(m: Any, xp: Any, u_c: Any, u_m: Any, f_floor: Any, f_floor_x: Any, f_seq: Any,
               f_idle: Any) -> Any:
    """THE busy_sat formula (module docstring), for arrays (``xp`` numpy) and floats."""
    s_lo = xp.minimum(xp.maximum(f_floor + f_idle, 0.0), 1.0)
    busy = 1.0 - s_lo
    x = m.b0 + (m.b_c * u_c + m.b_m * u_m + m.b_x * f_floor_x + m.b_s * f_seq) \
        / xp.maximum(busy, 1e-9)
    p_busy = m.idle_w + (m.tdp_w - m.idle_w) * (1.0 - xp.exp(-xp.maximum(x, 0.0)))
    return m.idle_w + busy * (p_busy - m.idle_w)


_ACTIVITY_COEFS = ("b0", "b_c", "b_m", "b_x", "b_s")


def activity_power_floor_w(m: Any, c: StepCoefficients, decoders: ArrayLike,
                           ctx_per_decoder: ArrayLike, flops_per_s: ArrayLike = 0.0
                           ) -> NDArray[np.float64]:
    """A proven lower bound on the per-GPU watts of :class:`ActivityPower` ``m`` (numeric fields
    scalars or arrays) on the deployment(s) ``c`` over ANY step, or any mix of steps (the
    :func:`activity` of their total), in which every step carries at least ``decoders`` decode
    tokens with ``ctx_per_decoder`` cached tokens each (``K_d = D ctx``, the serving model's
    steps), plus any prefill chunks, and whose tensor FLOPs per second of step time
    (``flops_bf16eq / t_step`` of the total) are at least ``flops_per_s`` (default 0: no
    such knowledge). Broadcast against stacked coefficients.

    Why it holds (the step formula of :mod:`fleetopt.physics.iteration`; every term but the
    routed experts' streamed share is non-decreasing in every input, and that share is at
    least ``p(T) >= p(D)``):

    * busy share: a step's busy time over its length, ``(A + t_floor_x) / max(A + t_floor,
      t_host)`` with ``A = t_gpu - t_floor``, rises with ``A``, and ``A`` is at least the decode
      step's at ``D`` (experts at ``p``, no straggler); a mix's busy share is a weighted
      mean of its steps';
    * activity ``Y = b_c U_c + b_m U_m + b_x f_floor_x + b_s f_seq`` is the step's work over its
      length: at least the decode step's work at ``D``, plus a non-negative amount per extra
      decoder, prefill token, attention pair and cached prefill token; the length is at most
      the decode step's (all experts streamed) plus at most a fixed time per such unit (the
      all-reduce's per-token slope bounded through ``bw(m) >= min(bw_ar, bw_ar_hi)``). So
      every step's ``Y``, and any mix's, is at least the least of those ratios (mediants);
      and ``Y >= b_c U_c >= b_c flops_per_s / peak_bf16`` (every term of ``Y`` is >= 0);
    * then ``P = idle + (tdp - idle) g(busy, Y)`` with ``g(s, Y) = s (1 - exp(-b0 - Y / s))``,
      which rises with ``Y`` and with ``s`` (``dg/ds = 1 - exp(-b0 - z) (1 + z) >= 0``, ``z = Y /
      s``, as ``e^z >= 1 + z``): so ``P >= idle + (tdp - idle) g(busy_lb, Y_lb)``.
    """
    busy, y = activity_floor_parts(m, c, decoders, ctx_per_decoder)
    return activity_floor_from_parts(m, c, busy, y, flops_per_s)


def activity_floor_parts(m: Any, c: StepCoefficients, decoders: ArrayLike,
                         ctx_per_decoder: ArrayLike) -> tuple[NDArray[np.float64],
                                                              NDArray[np.float64]]:
    """The decoder-dependent parts of :func:`activity_power_floor_w`: ``(busy, y)``, lower
    bounds on the busy share and on the activity ``Y`` of any mix of steps that each carry at
    least ``decoders`` decoders of ``ctx_per_decoder`` cached tokens (its docstring says why)."""
    f = {k: np.asarray(getattr(c, k), dtype=float) for k in (
        "keep_prob", "z_ep", "inv_experts_per_gpu", "c_we", "c_cd_dec", "c_cd_pre", "c_ce",
        "c_kv", "c_ad", "c_ap", "c_elem", "t_seq", "f_tok_bf16eq", "f_dec", "f_pre", "e_tok",
        "kv_tok", "peak_bf16", "bw", "n_ar_layers", "ar_factor", "msg_bytes_per_token", "bw_ar",
        "bw_ar_span", "t_floor", "t_floor_x", "t_host")}
    D = np.asarray(decoders, dtype=float)
    ctx = np.asarray(ctx_per_decoder, dtype=float)
    t = SimpleNamespace(**c.terms_of(("t_gpu", "flops_bf16eq", "bytes_mean", "t_seqwork"), D,
                                     D * ctx))
    p, share = routed_share(f["keep_prob"], f["z_ep"], f["inv_experts_per_gpu"], D)
    t_gpu = np.asarray(t.t_gpu, dtype=float)
    A = t_gpu - f["t_floor"] - f["c_we"] * (share - p)
    x, F, h = f["t_floor_x"], f["t_floor"], f["t_host"]
    with np.errstate(divide="ignore", invalid="ignore"):
        busy = np.minimum(np.minimum(1.0, (A + x) / (A + F)),
                          np.where(h > 0, (A + x) / np.where(h > 0, h, 1.0), np.inf))
    busy = np.clip(busy, 0.0, 1.0)
    mm = SimpleNamespace(**{k: np.asarray(getattr(m, k), dtype=float) for k in
                            ("idle_w", "tdp_w", *_ACTIVITY_COEFS)})
    pk, bw = f["peak_bf16"], f["bw"]
    work0 = (mm.b_c * np.asarray(t.flops_bf16eq) / pk + mm.b_m * np.asarray(t.bytes_mean) / bw
             + mm.b_x * x + mm.b_s * np.asarray(t.t_seqwork))
    len0 = np.maximum(t_gpu + f["c_we"] * (1.0 - share), h)
    bw_lo = np.minimum(f["bw_ar"], f["bw_ar"] + f["bw_ar_span"])
    comm = (f["n_ar_layers"] * f["ar_factor"] * f["msg_bytes_per_token"]
            * (1.0 / bw_lo + np.maximum(-f["bw_ar_span"], 0.0) / (4.0 * bw_lo**2)))
    units = (  # (work, at most this much time) per extra unit
        (mm.b_c * (f["f_tok_bf16eq"] + f["f_dec"] * ctx) / pk
         + mm.b_m * (f["e_tok"] + f["kv_tok"] * ctx) / bw + mm.b_s * f["t_seq"],
         f["c_cd_dec"] + f["c_ce"] + np.maximum(f["c_kv"], f["c_ad"]) * ctx + f["c_elem"]
         + f["t_seq"] + comm),  # a decoder
        (mm.b_c * f["f_tok_bf16eq"] / pk + mm.b_m * (f["e_tok"] + f["kv_tok"]) / bw,
         f["c_cd_pre"] + f["c_ce"] + f["c_kv"] + f["c_elem"] + comm),  # a prefill token
        (mm.b_c * f["f_pre"] / pk, f["c_ap"]),  # an attention pair
        (mm.b_m * f["kv_tok"] / bw, f["c_kv"]),  # a cached prefill token read
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(len0 > 0, work0 / np.where(len0 > 0, len0, 1.0), np.inf)
        for wk, tm in units:
            y = np.minimum(y, np.where(tm > 0, wk / np.where(tm > 0, tm, 1.0), np.inf))
    y = np.where(np.isfinite(y), np.maximum(y, 0.0), 0.0)
    return np.asarray(busy, dtype=float), np.asarray(y, dtype=float)


def activity_floor_from_parts(m: Any, c: StepCoefficients, busy: ArrayLike, y: ArrayLike,
                              flops_per_s: ArrayLike = 0.0) -> NDArray[np.float64]:
    """:func:`activity_power_floor_w` from :func:`activity_floor_parts`' ``(busy, y)`` (the same
    numbers; parts taken at some decoder counts serve many FLOP rates)."""
    mm = SimpleNamespace(**{k: np.asarray(getattr(m, k), dtype=float) for k in
                            ("idle_w", "tdp_w", "b0", "b_c")})
    busy = np.asarray(busy, dtype=float)
    fl = np.asarray(flops_per_s, dtype=float)
    y = np.maximum(np.asarray(y, dtype=float), mm.b_c * np.where(
        np.isfinite(fl) & (fl > 0), fl, 0.0) / np.asarray(c.peak_bf16, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(busy > 0, y / np.where(busy > 0, busy, 1.0), 0.0)
    out = mm.idle_w + (mm.tdp_w - mm.idle_w) * busy * (1.0 - np.exp(-mm.b0 - z))
    return np.asarray(out, dtype=float)


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
        m = SimpleNamespace(**{k: np.asarray(getattr(self, k), dtype=float) for k in
                               ("idle_w", "tdp_w", *_ACTIVITY_COEFS)})
        return np.asarray(_gpu_power(m, _NP, *(np.asarray(getattr(act, k), dtype=float) for k in
                                                ("u_c", "u_m", "f_floor", "f_floor_x", "f_seq",
                                                 "f_idle"))), dtype=float)

    def step_power_w(self, terms: StepTerms, coefficients: StepCoefficients) -> NDArray[np.float64]:
        """``gpu_power_w(activity(terms, coefficients))``."""
        return self.gpu_power_w(activity(terms, coefficients))

    def scalar_step_power_w(self, terms: StepTerms, coefficients: StepCoefficients) -> float:
        """:meth:`step_power_w` of one step with float terms (``scalar_terms``) and a single
        deployment's coefficients: the scalar fast path (the same formulas)."""
        t = terms.t_step
        inv = 1.0 / t if t > 0 else 0.0
        u_c, u_m, _, _, f_fl, f_flx, f_seq, f_idle = _activity(
            terms, inv, coefficients.peak_bf16, coefficients.bw)
        return float(_gpu_power(self, _PY, u_c, u_m, f_fl, f_flx, f_seq, f_idle))

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
