"""The iteration (step) time of a serving instance: the ONE formula (issue 11).

One engine iteration ("step") of an instance carries

* ``D`` decode tokens (one per running sequence) whose cached contexts sum to ``K_d``;
* ``P`` prefill tokens (chunks) with ``A_p`` causal attention pairs (a chunk over positions
  ``s+1 .. s+c`` has ``c s + c (c+1)/2``, :func:`chunk_pairs`) that read ``K_p`` cached tokens
  of KV (``s`` for a chunk starting at ``s``).

An instance is ``g = max(tp, ep)`` GPUs running vLLM: tensor parallelism ``tp``, and for a
mixture of experts optionally expert parallelism (``--enable-expert-parallel``: attention
TP-sharded over the ``tp`` GPUs, the routed experts split over the same ``ep = tp`` GPUs).
Everything below is per GPU; ``q`` runs over the weight precisions of the deployment
(``bf16``; ``fp8`` per-tensor/channel scales; ``fp8_block`` 128x128 block scales; ``int8`` and
``int4`` weight-only); ``T = D + P``, ``L`` layers::

  t_step  = max(t_gpu, t_host)                     host work overlaps the GPU (vLLM V1 async)
  t_gpu   = t_gemm + t_attn + t_elem + t_comm + t_fixed
  t_gemm  = max( sum_q Wd_q / (BW eta_bw[q]),                           dense GEMMs: bytes
                 sum_q Fd_q (D / eta_cd[q] + P / eta_cp[q]) / PEAK[q] )           or math
          + max( We_qe s(T) / (BW eta_moe[qe]),                         routed experts: bytes
                 Fe_qe T / (eta_mc[qe] PEAK[qe]) )                                or math
  t_attn  = max( kv_tok (K_d + K_p + P) / (BW eta_kv),                  KV read and write
                 (f_dec K_d / eta_ad + f_pre A_p / eta_ap) / PEAK[bf16] )         or math
  t_elem  = e_tok T / (BW eta_bw[bf16])                                 norms, activation
  t_comm  = n_ar L (2 (g-1)/g m / bw(m) + lat_ar),   m = T hidden a      TP all-reduces
            bw(m) = bw_ar + (bw_ar_hi - bw_ar) m / (m + m_ar)            bus bandwidth
  t_fixed = t0 + t_layer[q_w] L + t_seq D            kernel floors, per-sequence work
  s(T)    = min(1, p + z_ep sqrt(p (1 - p) / n)),  p = 1 - (1 - k/E)^max(T, 1)

Symbols (all computed by :func:`step_coefficients` from the catalog and the calibration):

* ``Wd_q``: the dense weight shard in precision ``q`` (attention, dense FFN, shared experts,
  routers, norms, LM head; the input embedding is a gather: neither streamed nor multiplied),
  ``/ tp``; ``Fd_q = 2 x`` its parameters per token. An FP8 (or int) checkpoint's quantised
  linears are in ``q``, the LM head stays bf16; ``fp8_scope = "ffn"`` (Meta's
  Llama-3.1-405B-FP8) keeps attention and the first/last layer's FFN in bf16 too.
* ``We_qe``: the routed-expert bytes resident on one GPU (``P_exp b / ep``, or ``/ tp`` as
  1/tp-width slices of every expert when ``ep = 1``); ``s(T)`` the share the critical GPU
  streams: each expert is touched with ``p`` (independent uniform top-``k`` routing of ``T``
  tokens over ``E`` experts), and under EP the step waits for the GPU that touched the most of
  its ``n = E/ep`` experts (``z_ep`` = E[max of ``ep`` standard normals]; 0 without EP).
  ``Fe_qe = 2 P_exp (k/E) / g`` per token (balanced); ``eta_mc`` absorbs the grouped GEMM's
  efficiency including load imbalance.
* ``kv_tok``: KV bytes per token per GPU, GQA ``2 L ceil(kv_heads/tp) hd b_kv``, MLA ``L (r +
  rope) b_kv`` (the latent is replicated on every rank).
* ``f_dec``, ``f_pre``: attention FLOPs per (query, cached token) pair per GPU. GQA ``4 L (H/tp)
  hd``; MLA decode in the absorbed form ``2 L (H/tp) (2 r + rope)`` (4.25x the GQA count at
  DeepSeek-V3's sizes), MLA prefill decompressed ``2 L (H/tp) (nope + rope + v)``.
* ``e_tok = (8 hidden L + 3 (I/tp) L_dense) a``: elementwise bytes per token (two fused
  add+RMSNorm passes, the SiLU gate of dense layers), ``a = 2`` (bf16 activations).
* ``n_ar = 2`` all-reduces per layer (after attention, after the FFN / expert combine) when
  ``g > 1``, else 0.
* ``BW``, ``PEAK[q]``: catalog peak bandwidth and dense tensor FLOP/s (fp8 at the fp8 rate on
  GPUs with fp8 tensor cores; int and fp8-without-tensor-cores at the bf16 rate).
* ``eta_*``, ``t0``, ``t_layer``, ``t_seq``, ``t_host``, ``bw_ar``, ``bw_ar_hi``, ``m_ar``,
  ``lat_ar``: :class:`StepParams`, fitted per GPU (x precision) to ML.ENERGY measurements and
  AIConfigurator kernel estimates (``fleetopt/data/calibration.json``, ``docs/model.md``).

Two evaluation paths share this code: :meth:`StepCoefficients.terms` (numpy, broadcast over
arrays; coefficients may be :meth:`stacked <StepCoefficients.stack>` across deployments along
the last axis) and :meth:`StepCoefficients.step_s` (plain floats, a few microseconds, for the
simulator). Both run :func:`_formula` with a namespace of ``maximum``/``minimum``/``sqrt``: numpy
for arrays, builtins and :mod:`math` for floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.physics import kv as kvm
from fleetopt.physics.catalog.specs import GPUSpec, ModelSpec
from fleetopt.physics.routing import routed_share, z_ep

__all__ = ["ACT_BYTES", "PRECISIONS", "PRECISION_BYTES", "ByPrecision", "StepCoefficients",
           "StepParams", "StepTerms", "chunk_pairs", "expert_fraction", "routed_share",
           "step_coefficients",
           "step_precision", "z_ep"]

#: weight precisions of the step model: bf16 (also fp16), fp8 with per-tensor/channel scales,
#: fp8 with 128x128 block scales, and weight-only int8 / int4 (bf16 compute)
PRECISIONS = ("bf16", "fp8", "fp8_block", "int8", "int4")
PRECISION_BYTES: dict[str, float] = {q: kvm.dtype_bytes("fp8" if q == "fp8_block" else q)
                                     for q in PRECISIONS}
#: bytes per activation element (bf16)
ACT_BYTES = 2.0
Num = Any  # a float, or an array (stacked coefficients, broadcast inputs)


def expert_fraction(tokens: ArrayLike, experts: int, top_k: int,
                    ep: int = 1) -> NDArray[np.float64]:
    """``s(T)``: share of a GPU's resident routed experts the critical GPU streams in a step of
    ``tokens`` tokens (``max(T, 1)``; 1 for a dense model)."""
    t = np.asarray(tokens, dtype=float)
    if experts <= 0:
        return np.ones_like(np.maximum(t, 1.0))
    share: NDArray[np.float64] = routed_share(1.0 - top_k / experts, z_ep(ep), ep / experts,
                                              t)[1]
    return share


def chunk_pairs(start: ArrayLike, length: ArrayLike) -> NDArray[np.float64]:
    """Causal attention pairs of a prefill chunk over positions ``start+1 .. start+length``."""
    s = np.asarray(start, dtype=float)
    c = np.asarray(length, dtype=float)
    return c * s + c * (c + 1.0) / 2.0


# ------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class ByPrecision:
    """A parameter with one value per weight precision; a missing precision falls back
    (``fp8_block`` -> ``fp8`` -> ``bf16``; ``int8``, ``int4`` -> ``bf16``)."""

    bf16: float
    fp8: float | None = None
    fp8_block: float | None = None

    def get(self, q: str) -> float:
        if q == "fp8_block" and self.fp8_block is not None:
            return self.fp8_block
        if q in ("fp8", "fp8_block") and self.fp8 is not None:
            return self.fp8
        return self.bf16

    @classmethod
    def of(cls, v: Any) -> ByPrecision:
        """From a number (every precision) or a ``{"bf16": .., "fp8": .., "fp8_block": ..}``."""
        if isinstance(v, ByPrecision):
            return v
        if isinstance(v, Mapping):
            return cls(float(v["bf16"]), *(None if v.get(k) is None else float(v[k])
                                           for k in ("fp8", "fp8_block")))
        return cls(float(v))

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("bf16", self.bf16), ("fp8", self.fp8),
                                  ("fp8_block", self.fp8_block)) if v is not None}


#: the largest efficiency accepted (a fraction of a catalog peak)
MAX_EFFICIENCY = 1.5
_PER_PRECISION = ("eta_bw", "eta_moe", "eta_cd", "eta_cp", "eta_mc", "t_layer")
_BOUNDED = ("eta_kv", "eta_ad", "eta_ap")


@dataclass(frozen=True)
class StepParams:
    """The fitted efficiencies and costs of one GPU (x precision): fractions of the catalog
    peaks, seconds, bytes/s and bytes (``docs/model.md`` lists the fitted values)."""

    eta_bw: ByPrecision  # dense weight streaming
    eta_moe: ByPrecision  # routed-expert weight streaming
    eta_cd: ByPrecision  # dense GEMM math, decode tokens
    eta_cp: ByPrecision  # dense GEMM math, prefill tokens
    eta_mc: ByPrecision  # grouped expert GEMM math
    t_layer: ByPrecision  # kernel floors per layer, s
    eta_kv: float  # KV cache read/write
    eta_ad: float  # decode attention math
    eta_ap: float  # prefill attention math
    t0: float  # fixed floor per step, s
    t_host: float  # host (scheduler, output) work per step, overlapped, s
    t_seq: float  # per-sequence work per step (sampling, logits processing), s
    bw_ar: float  # all-reduce bus bandwidth of small messages, bytes/s
    bw_ar_hi: float  # ... of large messages, bytes/s
    m_ar: float  # message size half-way between the two, bytes
    lat_ar: float  # latency per all-reduce, s

    def __post_init__(self) -> None:
        # efficiencies are fractions of the catalog's peaks: > 0, and at most MAX_EFFICIENCY
        # (slightly above 1 is possible where a datasheet peak is conservative)
        for name in _PER_PRECISION:
            v = getattr(self, name)
            for q, x in v.to_dict().items():
                ok = x >= 0 if name == "t_layer" else 0 < x <= MAX_EFFICIENCY
                if not (math.isfinite(x) and ok):
                    raise ValueError(f"step parameter {name}[{q}] = {x!r} out of range")
        for name in _BOUNDED:
            x = getattr(self, name)
            if not (math.isfinite(x) and 0 < x <= MAX_EFFICIENCY):
                raise ValueError(f"step parameter {name} = {x!r} must be in (0, "
                                 f"{MAX_EFFICIENCY:g}]")
        for name in ("t0", "t_host", "t_seq", "lat_ar"):
            x = getattr(self, name)
            if not (math.isfinite(x) and x >= 0):
                raise ValueError(f"step parameter {name} = {x!r} must be >= 0")
        for name in ("bw_ar", "bw_ar_hi", "m_ar"):
            x = getattr(self, name)
            if not (math.isfinite(x) and x > 0):
                raise ValueError(f"step parameter {name} = {x!r} must be > 0")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepParams:
        """From a calibration table's ``params`` (unknown keys, e.g. the AIC fit's category
        floors ``tau_*``, are ignored)."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                raise ValueError(f"step parameters lack {f.name!r}")
            kw[f.name] = (ByPrecision.of(d[f.name]) if f.name in _PER_PRECISION
                          else float(d[f.name]))
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (getattr(self, f.name).to_dict() if f.name in _PER_PRECISION
                         else getattr(self, f.name)) for f in fields(self)}


# ------------------------------------------------------------------------------ the formula

_NP = SimpleNamespace(maximum=np.maximum, minimum=np.minimum, sqrt=np.sqrt)
_PY = SimpleNamespace(maximum=max, minimum=min, sqrt=math.sqrt)


@dataclass(frozen=True)
class StepTerms:
    """The terms of one step (seconds, bytes and FLOPs per GPU): arrays from
    :meth:`StepCoefficients.terms`, floats from :meth:`StepCoefficients.scalar_terms`.

    ``t_mem`` sums the memory-bound terms (weights, experts, KV, elementwise), ``t_cmp`` the
    compute-bound ones (GEMM and attention math); ``t_step = max(t_gpu, t_host)`` with ``t_gpu =
    max(weights, GEMM) + max(experts, expert GEMM) + max(KV, attention) + t_elem + t_comm +
    t_fixed``. ``t_floor`` is the kernel-floor part of ``t_fixed`` (``t0 + t_layer L``),
    ``t_floor_x`` the precision's floor above the bf16 one (block-FP8 dequantising kernels),
    ``t_seqwork = t_seq D``. ``bytes`` is what the critical GPU moves from HBM, ``bytes_mean``
    the average GPU (under EP), ``flops_bf16eq`` tensor FLOPs with fp8 ones counted at the
    bf16/fp8 peak ratio (so ``flops_bf16eq / PEAK[bf16]`` is tensor-busy time at peak).
    """

    t_step: Num
    t_gpu: Num
    t_host: Num
    t_gemm: Num
    t_attn: Num
    t_elem: Num
    t_comm: Num
    t_fixed: Num
    t_floor: Num
    t_floor_x: Num
    t_seqwork: Num
    t_mem: Num
    t_cmp: Num
    bytes: Num
    bytes_mean: Num
    flops_bf16eq: Num

    def total(self, weights: ArrayLike | None = None, axis: int | None = None) -> StepTerms:
        """The sum over steps (weighted by ``weights``, e.g. how often each step occurs) along
        ``axis`` (default: all): the time-weighted totals whose ratios are time averages
        (:func:`fleetopt.physics.power.activity` of a mix of steps)."""
        out = {}
        for f in fields(self):
            v = np.asarray(getattr(self, f.name), dtype=float)
            if weights is not None:
                v = v * np.asarray(weights, dtype=float)
            out[f.name] = np.sum(v, axis=axis)
        return StepTerms(**out)


def _formula(c: StepCoefficients, xp: Any, D: Num, K_d: Num, P: Num, A_p: Num,
             K_p: Num, full: bool = True) -> tuple[Any, ...]:
    """THE step formula (module docstring), written once for numpy arrays and for floats.
    ``full=False`` leaves out the three terms no time or power figure reads (``t_mem``,
    ``t_cmp``, ``bytes``: None); the others are the same numbers."""
    T = D + P
    if c.dense:  # keep_prob = 1: no expert is ever touched (p = share = 0 exactly)
        p: Num = 0.0
        share: Num = 0.0
    else:
        p, share = routed_share(c.keep_prob, c.z_ep, c.inv_experts_per_gpu, T, xp)
    t_wd = c.c_wd
    t_cd = D * c.c_cd_dec + P * c.c_cd_pre
    t_we = c.c_we * share
    t_ce = 0.0 if c.no_expert_math else T * c.c_ce
    kv = K_d + K_p + P
    t_kv = c.c_kv * kv
    t_ca = c.c_ad * K_d + c.c_ap * A_p
    t_elem = c.c_elem * T
    m = T * c.msg_bytes_per_token
    bw = c.bw_ar + c.bw_ar_span * m / (m + c.m_ar)
    t_comm = c.n_ar_layers * (c.ar_factor * m / bw + c.lat_ar)
    t_seqwork = c.t_seq * D
    t_fixed = c.t_floor + t_seqwork
    # (no routed expert anywhere: both expert terms are 0 and add nothing)
    t_gemm = xp.maximum(t_wd, t_cd) if c.no_expert_math else (xp.maximum(t_wd, t_cd)
                                                               + xp.maximum(t_we, t_ce))
    t_attn = xp.maximum(t_kv, t_ca)
    t_gpu = t_gemm + t_attn + t_elem + t_comm + t_fixed
    t_step = xp.maximum(t_gpu, c.t_host)
    kv_bytes = c.kv_tok * kv
    e_bytes = c.e_tok * T
    if full:
        t_mem, t_cmp = t_wd + t_we + t_kv + t_elem, t_cd + t_ce + t_ca
        b = c.w_dense + c.w_exp * share + kv_bytes + e_bytes
    else:
        t_mem = t_cmp = b = None
    return (t_step, t_gpu, t_gemm, t_attn, t_elem, t_comm, t_fixed, t_seqwork, t_mem, t_cmp, b,
            c.w_dense + c.w_exp * p + kv_bytes + e_bytes,
            c.f_tok_bf16eq * T + c.f_dec * K_d + c.f_pre * A_p)


#: the fields of :class:`StepTerms` in the order :func:`_formula` returns them (the constants
#: ``t_host``, ``t_floor`` and ``t_floor_x`` are the coefficients themselves)
_FORMULA_FIELDS = ("t_step", "t_gpu", "t_gemm", "t_attn", "t_elem", "t_comm", "t_fixed",
                   "t_seqwork", "t_mem", "t_cmp", "bytes", "bytes_mean", "flops_bf16eq")
_CONSTANT_FIELDS = ("t_host", "t_floor", "t_floor_x")
#: what ``_formula(full=False)`` leaves out
_OPTIONAL_FIELDS = frozenset(("t_mem", "t_cmp", "bytes"))
_ALL_FIELDS = tuple(f.name for f in fields(StepTerms))


_NUMERIC_FIELDS = (
    # physical per-GPU terms
    "w_dense", "w_exp", "resident_bytes", "f_tok_bf16eq", "kv_tok", "f_dec", "f_pre", "e_tok",
    "layers", "hidden", "gpus", "tp", "ep", "experts", "top_k", "bw", "peak_bf16",
    # routing
    "keep_prob", "z_ep", "inv_experts_per_gpu",
    # folded time coefficients (seconds per unit)
    "c_wd", "c_cd_dec", "c_cd_pre", "c_we", "c_ce", "c_kv", "c_ad", "c_ap", "c_elem",
    # communication
    "n_ar_layers", "ar_factor", "msg_bytes_per_token", "bw_ar", "bw_ar_span", "m_ar", "lat_ar",
    # fixed costs
    "t_floor", "t_floor_x", "t_seq", "t_host",
)


@dataclass(frozen=True)
class StepCoefficients:
    """Per-GPU constants of one deployment: model terms x hardware peaks x fitted efficiencies
    (:func:`step_coefficients`). Numeric fields are floats, or 1-D arrays (one entry per
    deployment) after :meth:`stack`.

    Physical terms: ``w_dense`` dense weight bytes streamed per step, ``w_exp`` resident routed-
    expert bytes, ``resident_bytes`` every weight byte held (embedding included),
    ``f_tok_bf16eq`` linear FLOPs per token (bf16-equivalent), ``kv_tok`` KV bytes per token,
    ``f_dec``/``f_pre`` attention FLOPs per pair, ``e_tok`` elementwise bytes per token,
    ``layers``, ``hidden``, ``gpus``, ``tp``, ``ep``, ``experts``, ``top_k``, ``bw`` (bytes/s),
    ``peak_bf16`` (FLOP/s). Routing: ``keep_prob = 1 - k/E`` (1: dense), ``z_ep``,
    ``inv_experts_per_gpu = ep/E``. Folded coefficients (seconds per byte-free unit):
    ``c_wd`` the weight stream, ``c_cd_dec``/``c_cd_pre`` dense math per decode/prefill token,
    ``c_we`` all resident experts streamed, ``c_ce`` expert math per token, ``c_kv`` per KV
    token, ``c_ad``/``c_ap`` per decode/prefill pair, ``c_elem`` per token. Communication:
    ``n_ar_layers = n_ar L``, ``ar_factor = 2 (g-1)/g``, ``msg_bytes_per_token = hidden a``,
    ``bw_ar``, ``bw_ar_span = bw_ar_hi - bw_ar``, ``m_ar``, ``lat_ar``. Fixed: ``t_floor = t0 +
    t_layer[q_w] L``, ``t_floor_x``, ``t_seq``, ``t_host``. Descriptive: ``precision`` (the
    weight precision ``q_w``), ``label``.
    """

    w_dense: Num
    w_exp: Num
    resident_bytes: Num
    f_tok_bf16eq: Num
    kv_tok: Num
    f_dec: Num
    f_pre: Num
    e_tok: Num
    layers: Num
    hidden: Num
    gpus: Num
    tp: Num
    ep: Num
    experts: Num
    top_k: Num
    bw: Num
    peak_bf16: Num
    keep_prob: Num
    z_ep: Num
    inv_experts_per_gpu: Num
    c_wd: Num
    c_cd_dec: Num
    c_cd_pre: Num
    c_we: Num
    c_ce: Num
    c_kv: Num
    c_ad: Num
    c_ap: Num
    c_elem: Num
    n_ar_layers: Num
    ar_factor: Num
    msg_bytes_per_token: Num
    bw_ar: Num
    bw_ar_span: Num
    m_ar: Num
    lat_ar: Num
    t_floor: Num
    t_floor_x: Num
    t_seq: Num
    t_host: Num
    precision: str | tuple[str, ...] = "bf16"
    label: str | tuple[str, ...] = ""

    @property
    def stacked(self) -> bool:
        return np.ndim(self.c_wd) > 0

    @cached_property
    def dense(self) -> bool:
        """Every deployment dense (``keep_prob = 1``): the step formula skips expert routing,
        whose terms are then exactly 0."""
        return bool(np.all(np.asarray(self.keep_prob) == 1.0))

    @cached_property
    def no_expert_math(self) -> bool:
        """Every deployment dense with no expert coefficients (``c_we = c_ce = 0``): the step
        formula's expert terms are exactly 0 and it skips them (the same numbers)."""
        return self.dense and bool(np.all(np.asarray(self.c_we) == 0.0)
                                   and np.all(np.asarray(self.c_ce) == 0.0))

    def __len__(self) -> int:
        """Deployments in a stack (1 for a single deployment)."""
        return int(np.size(self.c_wd))

    @classmethod
    def stack(cls, coefficients: Sequence[StepCoefficients]) -> StepCoefficients:
        """One object for many deployments: every numeric field a 1-D array (one entry per
        deployment, in order), so :meth:`terms` broadcasts it against inputs of shape
        ``(..., deployments)``. The formula has no structural branches (dense, MoE, with or
        without communication are the same arithmetic), so any deployments stack."""
        cs = list(coefficients)
        if not cs:
            raise ValueError("stack needs at least one StepCoefficients")
        if any(c.stacked for c in cs):
            raise ValueError("stack single deployments, not stacks")
        kw: dict[str, Any] = {n: np.array([getattr(c, n) for c in cs], dtype=float)
                              for n in _NUMERIC_FIELDS}
        kw["precision"] = tuple(str(c.precision) for c in cs)
        kw["label"] = tuple(str(c.label) for c in cs)
        return cls(**kw)

    def __getitem__(self, i: int) -> StepCoefficients:
        """Deployment ``i`` of a stack (as a single deployment with float fields)."""
        if not self.stacked:
            raise TypeError("not a stack")
        kw: dict[str, Any] = {n: float(np.asarray(getattr(self, n))[i]) for n in _NUMERIC_FIELDS}
        prec, lab = self.precision, self.label
        kw["precision"] = prec[i] if isinstance(prec, tuple) else prec
        kw["label"] = lab[i] if isinstance(lab, tuple) else lab
        return StepCoefficients(**kw)

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> StepTerms:
        """Every term of the steps ``(D, K_d, P, A_p, K_p)`` (numpy, broadcast; with stacked
        coefficients the last axis of the inputs is the deployment)."""
        return StepTerms(**self.terms_of(_ALL_FIELDS, D, K_d, P, A_p, K_p))

    def terms_of(self, keys: Sequence[str], D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0,
                 A_p: ArrayLike = 0.0, K_p: ArrayLike = 0.0) -> dict[str, NDArray[np.float64]]:
        """The terms ``keys`` of :meth:`terms` alone, as a dict (the same numbers; a table
        that reads a few terms skips the others' arithmetic)."""
        a = [np.asarray(x, dtype=float) for x in (D, K_d, P, A_p, K_p)]
        r = _formula(self, _NP, a[0], a[1], a[2], a[3], a[4],
                     full=not _OPTIONAL_FIELDS.isdisjoint(keys))
        # every field gets the inputs' full shape, NaN where an input is NaN or infinite (then
        # t_gpu, which reads every input and coefficient, is NaN or infinite: its zero is NaN)
        shape = np.broadcast_shapes(*(x.shape for x in a), np.shape(self.c_wd))
        zero = np.asarray(r[_FORMULA_FIELDS.index("t_gpu")]) * 0.0
        if zero.shape != shape:
            zero = zero + np.zeros(shape)
        # (no NaN: a field of the full shape is its own number; the others are broadcast)
        return self._fields(r, zero, keys, None if np.isnan(zero).any() else shape)

    def scalar_terms(self, D: float, K_d: float, P: float = 0.0, A_p: float = 0.0,
                     K_p: float = 0.0) -> StepTerms:
        """:meth:`terms` of one step with plain floats (single deployments only)."""
        return StepTerms(**self._fields(_formula(self, _PY, float(D), float(K_d), float(P),
                                                 float(A_p), float(K_p)), 0.0, _ALL_FIELDS))

    def step_s(self, D: float, K_d: float, P: float = 0.0, A_p: float = 0.0,
               K_p: float = 0.0) -> float:
        """Seconds of one step, plain floats: the scalar fast path of :meth:`terms`."""
        return float(_formula(self, _PY, D, K_d, P, A_p, K_p)[0])

    def _fields(self, r: tuple[Any, ...], zero: Num, keys: Sequence[str],
                clean: tuple[int, ...] | None = None) -> dict[str, Any]:
        """The terms ``keys`` of a :func:`_formula` result, each broadcast by ``zero``;
        ``clean``: the full shape, when ``zero`` has no NaN (a field of that shape is then
        returned as it is: adding 0 changes nothing)."""
        val = dict(zip(_FORMULA_FIELDS, r, strict=True))
        for k in _CONSTANT_FIELDS:
            val[k] = getattr(self, k)
        if clean is None:
            return {k: val[k] + zero for k in keys}
        return {k: val[k] if np.shape(val[k]) == clean else val[k] + zero for k in keys}

    def prefill_s(self, prompt_tokens: int, chunk_tokens: int, decode_seqs: float = 0.0,
                  decode_ctx_tokens: float = 0.0) -> float:
        """Seconds to prefill one prompt alone in chunks of ``chunk_tokens`` (each chunk one
        step, sharing it with ``decode_seqs`` decoders holding ``decode_ctx_tokens``)."""
        if prompt_tokens < 1 or chunk_tokens < 1:
            raise ValueError("prompt_tokens and chunk_tokens must be >= 1")
        n = -(-int(prompt_tokens) // int(chunk_tokens))
        s = np.arange(n, dtype=float) * chunk_tokens
        c = np.minimum(float(chunk_tokens), prompt_tokens - s)
        t = self.terms(decode_seqs + 0.0 * c, decode_ctx_tokens + 0.0 * c, c,
                       chunk_pairs(s, c), s).t_step
        return float(np.sum(t))


# ------------------------------------------------------------------------------ building


def step_precision(dtype: str, model: ModelSpec) -> str:
    """The step model's weight precision of a deployment dtype on ``model``: fp16/bf16 ->
    ``bf16``; fp8 -> ``fp8`` or ``fp8_block`` by the checkpoint's ``fp8_scheme``; int8/int4."""
    d = dtype.lower()
    if d in ("fp16", "bf16"):
        return "bf16"
    if d == "fp8":
        return "fp8_block" if model.fp8_scheme == "block" else "fp8"
    if d in ("int8", "int4"):
        return d
    raise FleetoptError("model.dtype", f"the step model has no weight precision {dtype!r}; use "
                        "fp16, bf16, fp8, int8 or int4")


def _peaks(gpu: GPUSpec) -> dict[str, float]:
    bf16 = gpu.fp16_tflops * 1e12
    fp8 = gpu.fp8_tflops * 1e12 if gpu.fp8_tflops > 0 else bf16
    return {"bf16": bf16, "fp8": fp8, "fp8_block": fp8, "int8": bf16, "int4": bf16}


def step_coefficients(model: ModelSpec, gpu: GPUSpec, params: StepParams, *, tp: int,
                      ep: int = 1, dtype: str = "bf16", kv_dtype: str = "bf16",
                      label: str = "") -> StepCoefficients:
    """The :class:`StepCoefficients` of ``model`` on ``tp`` GPUs of type ``gpu`` (``ep``: 1, or
    ``tp`` for vLLM's expert parallelism of a mixture of experts) with weights in ``dtype`` and
    KV cache in ``kv_dtype``, at the fitted ``params`` of that GPU."""
    m = model
    tp = int(tp)
    ep = int(ep)
    if ep != 1 and (not m.is_moe or ep != tp):
        raise FleetoptError("ep", f"expert parallelism needs a mixture of experts and ep = tp "
                            f"({tp}), got ep={ep} for {m.name}")
    q_w = step_precision(dtype, m)
    L, h, H, kvh, hd, V = (m.layers, float(m.hidden_size), float(m.attention_heads),
                           float(m.kv_heads), float(m.head_dim), float(m.vocab_size))
    E, k = m.experts, m.experts_per_token
    g = max(tp, ep)
    P_total = m.params_total_b * 1e9
    P_exp = m.expert_params_b * 1e9 if E > 0 else 0.0
    P_emb = V * h
    P_head = V * h
    mla = m.attention == "mla"
    if mla:
        r, rope = float(m.kv_lora_rank), float(m.qk_rope_head_dim)
        nope, v_hd, ql = float(m.nope_head_dim), float(m.value_head_dim), float(m.q_lora_rank)
        q_proj = h * ql + ql * H * (nope + rope) if ql > 0 else h * H * (nope + rope)
        attn_per_layer = q_proj + h * (r + rope) + r * H * (nope + v_hd) + H * v_hd * h
    else:
        attn_per_layer = h * (H + 2 * kvh) * hd + H * hd * h
    P_attn = L * attn_per_layer
    P_ffn = max(P_total - P_emb - P_head - P_exp - P_attn, 0.0)  # dense FFN, shared experts,
    # routers, norms
    quant = q_w != "bf16"
    if quant and q_w in ("fp8", "fp8_block") and m.fp8_scope == "ffn":
        share8 = max(L - 2, 0) / L
        comps = [(P_attn, "bf16"), (P_ffn * share8, q_w), (P_ffn * (1 - share8), "bf16"),
                 (P_head, "bf16")]
    else:
        comps = [(P_attn, q_w), (P_ffn, q_w), (P_head, "bf16")]
    exp_q = q_w
    peak = _peaks(gpu)
    bw = gpu.hbm_bw_tb_s * 1e12
    w_dense = 0.0
    c_wd = c_cd_dec = c_cd_pre = 0.0
    f_bf16eq = 0.0
    for p_, q in comps:
        if p_ <= 0:
            continue
        wb = p_ * PRECISION_BYTES[q] / tp
        ft = 2.0 * p_ / tp
        w_dense += wb
        c_wd += wb / (bw * params.eta_bw.get(q))
        c_cd_dec += ft / (params.eta_cd.get(q) * peak[q])
        c_cd_pre += ft / (params.eta_cp.get(q) * peak[q])
        f_bf16eq += ft * peak["bf16"] / peak[q]
    w_exp = c_we = c_ce = 0.0
    if E > 0:
        w_exp = P_exp * PRECISION_BYTES[exp_q] / (ep if ep > 1 else tp)
        fe = 2.0 * P_exp * (k / E) / g
        c_we = w_exp / (bw * params.eta_moe.get(exp_q))
        c_ce = fe / (params.eta_mc.get(exp_q) * peak[exp_q])
        f_bf16eq += fe * peak["bf16"] / peak[exp_q]
    try:
        kv_tok = kvm.kv_bytes_per_token_per_gpu(
            layers=L, kv_heads=m.kv_heads, head_dim=m.head_dim, tp=tp, kv_dtype=kv_dtype,
            attention=m.attention, kv_lora_rank=m.kv_lora_rank,
            qk_rope_head_dim=m.qk_rope_head_dim)
    except ValueError as e:
        raise FleetoptError("model.kv_dtype", str(e)) from None
    if mla:
        f_dec = 2.0 * L * (H / tp) * (2 * r + rope)
        f_pre = 2.0 * L * (H / tp) * (nope + rope + v_hd)
    else:
        f_dec = f_pre = 4.0 * L * (H / tp) * hd
    dense_layers = L - m.moe_layers if E > 0 else L
    e_tok = (L * 8.0 * h + dense_layers * 3.0 * m.intermediate_size / tp) * ACT_BYTES
    t_layer_w = params.t_layer.get(q_w)
    emb_bytes = P_emb * PRECISION_BYTES["bf16"] / tp  # vocab-parallel embedding: resident
    return StepCoefficients(
        w_dense=w_dense, w_exp=w_exp, resident_bytes=w_dense + w_exp + emb_bytes,
        f_tok_bf16eq=f_bf16eq, kv_tok=kv_tok, f_dec=f_dec, f_pre=f_pre, e_tok=e_tok,
        layers=float(L), hidden=h, gpus=float(g), tp=float(tp), ep=float(ep), experts=float(E),
        top_k=float(k), bw=bw, peak_bf16=peak["bf16"],
        keep_prob=1.0 - k / E if E > 0 else 1.0, z_ep=z_ep(ep),
        inv_experts_per_gpu=ep / E if E > 0 else 0.0,
        c_wd=c_wd, c_cd_dec=c_cd_dec, c_cd_pre=c_cd_pre, c_we=c_we, c_ce=c_ce,
        c_kv=kv_tok / (bw * params.eta_kv), c_ad=f_dec / (params.eta_ad * peak["bf16"]),
        c_ap=f_pre / (params.eta_ap * peak["bf16"]),
        c_elem=e_tok / (bw * params.eta_bw.get("bf16")),
        n_ar_layers=2.0 * L if g > 1 else 0.0, ar_factor=2.0 * (g - 1) / g,
        msg_bytes_per_token=h * ACT_BYTES, bw_ar=params.bw_ar,
        bw_ar_span=params.bw_ar_hi - params.bw_ar, m_ar=params.m_ar, lat_ar=params.lat_ar,
        t_floor=params.t0 + t_layer_w * L,
        t_floor_x=max(t_layer_w - params.t_layer.get("bf16"), 0.0) * L,
        t_seq=params.t_seq, t_host=params.t_host, precision=q_w, label=label,
    )

