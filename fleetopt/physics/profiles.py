"""Deployments and their performance profiles.

A :class:`Deployment` names hardware (a GPU type or a calibrated profile), a tensor-parallel
degree, expert parallelism and precisions. :func:`resolve` turns it, with a model and the
physics parameters, into a :class:`Profile`: the object every evaluator, solver and the
simulator ask for KV capacity, iteration time, power and price. Two kinds exist:

* :class:`ComputedProfile`: from catalog specs and the shipped calibration. It exposes the
  iteration model of issue 11 (``docs/model.md``): ``step`` (the
  :class:`~fleetopt.physics.iteration.StepCoefficients` of the one step formula),
  ``power_model`` (:class:`~fleetopt.physics.power.ActivityPower`), ``idle_w``,
  ``kv_capacity_tokens`` (paged), ``block_tokens``, ``token_budget`` and ``max_seqs`` (vLLM's
  ``max_num_batched_tokens`` / ``max_num_seqs``) and ``calibration_quality``; and, until the
  pool model moves to the step model, the earlier roofline (``decode_s``, ``prefill_s``,
  ``iter_terms``, ``prefill_terms``, :mod:`fleetopt.physics.step`) and the logistic power
  curve (``power``);
* :class:`CalibratedProfile`: fixed published constants (``1w-law-h100``: the paper's H100
  profile for Llama-3.1-70B at TP=8, ``docs/reproduction.md``).

vLLM V1's ``vllm serve`` defaults per GPU class (``vllm/engine/arg_utils.py``: a GPU with at
least 70 GiB whose name does not contain "a100" -> 8192 batched tokens and 1024 sequences,
otherwise 2048 and 256; :func:`vllm_defaults`) set ``token_budget`` and ``max_seqs`` unless
:class:`PhysicsParams` ``max_num_batched_tokens`` / ``max_num_seqs`` override them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.physics import kv as kvm
from fleetopt.physics.calibration import GPUCalibration, gpu_calibration
from fleetopt.physics.catalog import CalibratedSpec, Catalog, GPUSpec, ModelSpec, default_catalog
from fleetopt.physics.catalog.specs import GIB
from fleetopt.physics.iteration import StepCoefficients, step_coefficients, step_precision
from fleetopt.physics.power import ActivityPower, PowerCurve, gpu_power_w
from fleetopt.physics.prefill import n_chunks, prefill_flops
from fleetopt.physics.step import decode_iteration_s, roofline_terms

__all__ = ["ACCOUNTING_MODES", "CALIBRATED_KV_DTYPE", "VLLM_LARGE_GPU_GIB", "CalibratedProfile",
           "ComputedProfile", "Deployment", "PhysicsParams", "Profile", "check_ep", "resolve",
           "vllm_defaults"]

ACCOUNTING_MODES = ("physical", "paper")
#: the KV-cache precision of every calibrated profile (its KV blocks are fixed constants)
CALIBRATED_KV_DTYPE = "fp16"
#: vLLM V1 gives GPUs with at least this much memory (GiB), A100 excepted, the large defaults
VLLM_LARGE_GPU_GIB = 70.0


def vllm_defaults(gpu: GPUSpec) -> tuple[int, int]:
    """``(max_num_batched_tokens, max_num_seqs)`` of ``vllm serve`` (vLLM V1) on ``gpu``:
    (8192, 1024) for GPUs of at least 70 GiB other than A100 (H100, H200, B200, GB200,
    MI300X), (2048, 256) otherwise (A100, L40S): ``vllm/engine/arg_utils.py``, whose comment
    says large budgets reduce A100 throughput (vLLM PR #17885)."""
    a100 = "a100" in gpu.name.lower() or "a100" in gpu.display.lower()
    if gpu.hbm_gb >= VLLM_LARGE_GPU_GIB and not a100:
        return 8192, 1024
    return 2048, 256


@dataclass(frozen=True)
class PhysicsParams:
    """Documented efficiency and memory parameters of the computed (roofline) profiles."""

    memory_utilization: float = 0.90  # share of HBM the engine may use (vLLM default)
    reserve_gb: float = 2.0  # activations, CUDA graphs, NCCL buffers per GPU
    block_tokens: int = 16  # paged-attention block size
    max_batch: int = 1024  # engine cap on sequences in flight (max_num_seqs)
    mem_efficiency: float = 0.80  # achieved / peak HBM bandwidth
    compute_efficiency: float = 0.50  # achieved / peak tensor FLOP/s in decode
    prefill_efficiency: float = 0.60  # achieved / peak tensor FLOP/s in prefill
    chunk_tokens: int = 1024  # chunked-prefill chunk size
    overhead_s: float = 0.0  # fixed per-iteration overhead (scheduler, launch, TP sync)
    #: vLLM's token budget per iteration and sequence cap; None: the GPU class's default
    #: (:func:`vllm_defaults`)
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_utilization", "mem_efficiency", "compute_efficiency",
                     "prefill_efficiency"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 1):
                raise FleetoptError(f"physics.{name}", f"must be in (0, 1], got {v}")
        for name in ("block_tokens", "max_batch", "chunk_tokens"):
            v = getattr(self, name)
            if v != int(v) or v < 1:
                raise FleetoptError(f"physics.{name}", f"must be a whole number >= 1, got {v}")
        for name in ("reserve_gb", "overhead_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise FleetoptError(f"physics.{name}", f"must be >= 0, got {v}")
        if self.overhead_s > 1.0:
            raise FleetoptError("physics.overhead_s", f"must be at most 1 s per iteration, got "
                                f"{self.overhead_s:g}")
        for name in ("max_num_batched_tokens", "max_num_seqs"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)
                                  or v != int(v) or not 1 <= v <= 10_000_000):
                raise FleetoptError(f"physics.{name}", f"must be a whole number from 1 to "
                                    f"10,000,000, got {v!r}")
        if (self.max_num_batched_tokens is not None and self.max_num_seqs is not None
                and self.max_num_seqs > self.max_num_batched_tokens):
            raise FleetoptError("physics.max_num_seqs", f"must be <= max_num_batched_tokens "
                                f"({self.max_num_batched_tokens}): every running sequence "
                                f"decodes a token each iteration, got {self.max_num_seqs}")


@dataclass(frozen=True)
class Deployment:
    """Hardware for one pool: GPU type or calibrated profile, TP degree, precisions, and expert
    parallelism ``ep`` (mixtures of experts only: vLLM's ``--enable-expert-parallel``, the
    routed experts split over the instance's ``tp`` GPUs, so ``ep`` is 1 or ``tp``;
    :func:`check_ep`)."""

    gpu: str
    tp: int = 8
    dtype: str = "fp16"
    kv_dtype: str = "fp16"
    ep: int = 1

    def label(self) -> str:
        ep = f" EP{self.ep}" if self.ep > 1 else ""
        return f"{self.gpu} TP{self.tp}{ep} {self.dtype}"


def check_ep(model: ModelSpec, tp: int, ep: Any, field_name: str = "fleet.ep",
             gpus: int | None = None) -> int:
    """``ep`` checked against ``model`` and ``tp`` (vLLM ``--enable-expert-parallel``
    semantics): a whole number >= 1; above 1 only for a mixture of experts, dividing its
    routed experts, at most the instance's GPUs, and equal to ``tp`` (vLLM's expert-parallel
    group is TP x DP, and fleetopt's instances have no data parallelism)."""
    if isinstance(ep, bool) or not isinstance(ep, int) or ep < 1:
        raise FleetoptError(field_name, f"must be a whole number >= 1, got {ep!r}")
    if ep == 1:
        return 1
    if not model.is_moe:
        raise FleetoptError(field_name, f"expert parallelism needs a mixture of experts; "
                            f"{model.name} is dense: use ep = 1")
    if model.experts % ep:
        raise FleetoptError(field_name, f"must divide {model.name}'s {model.experts} routed "
                            f"experts, got {ep}")
    g = tp if gpus is None else gpus
    if ep > g:
        raise FleetoptError(field_name, f"must be at most the instance's {g} GPUs, got {ep}")
    if ep != tp:
        raise FleetoptError(field_name, f"vLLM splits the experts over the instance's tp = {tp} "
                            f"GPUs (--enable-expert-parallel: EP = TP x DP, no data "
                            f"parallelism here): use ep = {tp} or 1, got {ep}")
    return ep


class Profile:
    """Performance of one deployment serving one model (abstract)."""

    kind: str
    gpu: str
    tp: int
    ep: int = 1
    dtype: str
    kv_dtype: str
    gpus_per_instance: int
    price_per_gpu_hr: float
    power: PowerCurve
    max_context: int

    def slots(self, window_tokens: int) -> int:
        raise NotImplementedError

    def fit_error(self) -> str | None:
        """Why the model does not fit this deployment (None: it fits)."""
        return None

    def decode_s(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> NDArray[np.float64]:
        raise NotImplementedError

    def prefill_s(
        self, prompt_tokens: ArrayLike, batch: ArrayLike, ctx_tokens: ArrayLike
    ) -> NDArray[np.float64]:
        raise NotImplementedError

    def iter_terms(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        """``(M, C)``: memory and compute time of a decode iteration, without the overhead.

        Every profile satisfies ``decode_s = max(M, C) + overhead_s`` and, with
        ``(k, g) = prefill_terms(l)``, ``prefill_s = k * (max(M, C + g) + overhead_s)``; pool
        models use this to average prefill over a prompt mix in O(log P) per batch value.
        """
        raise NotImplementedError

    def prefill_terms(self, prompt_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        """``(k, g)``: chunks per prompt and the extra compute time each chunk adds."""
        raise NotImplementedError

    overhead_s: float = 0.0

    def gpus_counted(self, accounting: str) -> int:
        """GPUs whose watts and price count per instance: all of them, or one in ``paper`` mode."""
        return 1 if accounting == "paper" else self.gpus_per_instance

    def instance_power_w(self, batch: ArrayLike, accounting: str = "physical") -> Any:
        return self.gpus_counted(accounting) * gpu_power_w(self.power, batch)

    def instance_cost_per_hr(self, accounting: str = "physical") -> float:
        return self.gpus_counted(accounting) * self.price_per_gpu_hr

    def deployment(self) -> Deployment:
        return Deployment(self.gpu, self.tp, self.dtype, self.kv_dtype, self.ep)

    @property
    def moe_ep(self) -> int | None:
        """``ep`` as results report it: for a mixture of experts (1 or ``tp``); None for a
        dense model, which has no experts to shard."""
        return None

    def label(self) -> str:
        return self.deployment().label()


@dataclass(frozen=True)
class ComputedProfile(Profile):
    """A profile computed from a GPU spec, a model spec, the calibration and
    :class:`PhysicsParams` (per GPU of the instance unless a name says otherwise).

    The iteration model: ``step`` (end-to-end :class:`StepCoefficients`: what the pool model and
    the simulator use), ``kernel_step`` (AIConfigurator's kernel-only parameters where AIC covers
    the GPU, else None), ``power_model`` (per-GPU :class:`ActivityPower`), ``idle_w`` (a GPU of an
    instance running no iteration), ``calibration`` and ``calibration_quality`` (``fitted`` |
    ``projected``), ``step_precision``; KV: ``kv_budget_bytes`` (per GPU: ``hbm_gb`` GiB x
    ``memory_utilization`` - resident weights - ``reserve_gb`` GiB), ``kv_capacity_tokens``
    (per instance, whole blocks), ``block_tokens``; engine limits: ``token_budget``
    (``max_num_batched_tokens``), ``max_seqs`` (``max_num_seqs``); ``gpus_per_instance``.
    """

    gpu_spec: GPUSpec
    model: ModelSpec
    tp: int
    dtype: str = "fp16"
    kv_dtype: str = "fp16"
    params: PhysicsParams = field(default_factory=PhysicsParams)
    kind: str = "computed"
    ep: int = 1
    # derived in __post_init__ (per GPU of the TP group)
    weight_bytes_per_gpu: float = field(init=False)
    dense_bytes: float = field(init=False)
    expert_bytes: float = field(init=False)
    kv_bytes_per_token: float = field(init=False)
    kv_budget_bytes: float = field(init=False)
    flops_per_token_base: float = field(init=False)
    attn_flops_per_ctx_token: float = field(init=False)
    peak_flops: float = field(init=False)
    bandwidth: float = field(init=False)
    # the iteration model (issue 11)
    step: StepCoefficients = field(init=False, repr=False)
    kernel_step: StepCoefficients | None = field(init=False, repr=False)
    power_model: ActivityPower = field(init=False, repr=False)
    calibration: GPUCalibration = field(init=False, repr=False)
    step_precision: str = field(init=False)
    idle_w: float = field(init=False)
    kv_capacity_tokens: int = field(init=False)
    token_budget: int = field(init=False)
    max_seqs: int = field(init=False)

    def __post_init__(self) -> None:
        m, g, p = self.model, self.gpu_spec, self.params
        cal = gpu_calibration(g)
        label = Deployment(g.name, self.tp, self.dtype, self.kv_dtype, self.ep).label()
        step, kernel = (None if sp is None else step_coefficients(
            m, g, sp, tp=self.tp, ep=self.ep, dtype=self.dtype, kv_dtype=self.kv_dtype,
            label=label) for sp in (cal.params, cal.kernel_params))
        assert step is not None
        wb = kvm.dtype_bytes(self.dtype)
        expert_b = m.expert_params_b * 1e9 * wb / self.tp
        total_b = m.params_total_b * 1e9 * wb / self.tp
        kvb = float(step.kv_tok)
        resident = float(step.resident_bytes)
        budget = kvm.kv_budget_bytes(
            hbm_bytes=g.hbm_bytes, weight_bytes_per_gpu=resident,
            memory_utilization=p.memory_utilization, reserve_bytes=p.reserve_gb * GIB,
        )
        d_tok, d_seqs = vllm_defaults(g)
        budget_tok = p.max_num_batched_tokens or d_tok
        if p.max_num_seqs is not None and p.max_num_seqs > budget_tok:
            raise FleetoptError("physics.max_num_seqs", f"must be <= the token budget "
                                f"({budget_tok} on {g.name}): every running sequence decodes "
                                f"a token each iteration; raise physics.max_num_batched_tokens "
                                f"or lower max_num_seqs, got {p.max_num_seqs}")
        derived = {
            "weight_bytes_per_gpu": resident,
            "dense_bytes": total_b - expert_b,
            "expert_bytes": expert_b,
            "kv_bytes_per_token": kvb,
            "kv_budget_bytes": budget,
            "flops_per_token_base": 2.0 * m.params_active_b * 1e9 / self.tp,
            # QK^T and PV: 2 matmuls x 2 FLOPs x (query heads x head_dim) per cached token per layer
            "attn_flops_per_ctx_token": 4.0 * m.layers * m.attention_heads * m.head_dim / self.tp,
            "peak_flops": g.peak_flops(self.dtype),
            "bandwidth": g.hbm_bw_tb_s * 1e12,
            "step": step,
            "kernel_step": kernel,
            "power_model": cal.power,
            "calibration": cal,
            "step_precision": step_precision(self.dtype, m),
            "idle_w": float(cal.power.idle_w),
            "kv_capacity_tokens": kvm.kv_capacity_tokens(
                budget_bytes=budget, kv_bytes_per_token=kvb, block_tokens=p.block_tokens),
            "token_budget": int(budget_tok),
            "max_seqs": int(p.max_num_seqs if p.max_num_seqs is not None
                            else min(d_seqs, budget_tok)),
        }
        for k, v in derived.items():
            object.__setattr__(self, k, v)

    @property
    def moe_ep(self) -> int | None:
        return self.ep if self.model.is_moe else None

    @property
    def calibration_quality(self) -> str:
        """``fitted`` (H100-SXM, B200: fitted to ML.ENERGY measurements) or ``projected``."""
        return self.calibration.quality

    @property
    def block_tokens(self) -> int:
        return self.params.block_tokens

    @property
    def gpus(self) -> int:
        """GPUs of one instance (``gpus_per_instance``)."""
        return self.gpus_per_instance

    # Profile attributes resolved from the specs
    @property
    def gpu(self) -> str:  # type: ignore[override]
        return self.gpu_spec.name

    @property
    def gpus_per_instance(self) -> int:  # type: ignore[override]
        return self.tp

    @property
    def price_per_gpu_hr(self) -> float:  # type: ignore[override]
        return self.gpu_spec.price_per_gpu_hr

    @property
    def power(self) -> PowerCurve:  # type: ignore[override]
        return self.gpu_spec.power

    @property
    def max_context(self) -> int:  # type: ignore[override]
        return self.model.max_context

    def fit_error(self) -> str | None:
        """Why the model does not fit on this deployment, and where it would fit; or None."""
        p = self.params
        usable = self.gpu_spec.hbm_gb * p.memory_utilization - p.reserve_gb
        need = self.weight_bytes_per_gpu / GIB
        if self.kv_capacity_tokens < p.block_tokens:
            room = "" if self.kv_budget_bytes <= 0 else " (less than one KV block left)"
            return (
                f"{self.model.name} needs {need:.1f} GiB of weights per GPU at TP={self.tp} "
                f"{self.dtype}, has {usable:.1f} GiB usable on {self.gpu}{room}; "
                + self._fit_advice()
            )
        return None

    def _fit_advice(self) -> str:
        """The deployments of this GPU on which the weights would fit (advice one can follow)."""
        p, m, g = self.params, self.model, self.gpu_spec
        usable = g.hbm_bytes * p.memory_utilization - p.reserve_gb * GIB
        here = kvm.dtype_bytes(self.dtype)
        opts = []
        for dt in dict.fromkeys([self.dtype, "fp8", "int4"]):
            if kvm.dtype_bytes(dt) > here:
                continue
            for t in (1, 2, 4, 8, 16):
                if t <= g.max_tp and m.params_total_b * 1e9 * kvm.dtype_bytes(dt) / t < usable:
                    if (t, dt) != (self.tp, self.dtype):
                        opts.append(f"TP {t} with {dt} weights")
                    break
        if not opts:
            return (f"it fits at no TP up to {g.max_tp} (this GPU's maximum) in any precision; "
                    "use a GPU with more memory")
        return "it would fit at " + " or ".join(opts)

    def slots(self, window_tokens: int) -> int:
        p = self.params
        return kvm.slots_at_window(
            budget_bytes=self.kv_budget_bytes, kv_bytes_per_token=self.kv_bytes_per_token,
            window_tokens=int(window_tokens), block_tokens=p.block_tokens, max_batch=p.max_batch,
        )

    def _iter(self, batch: ArrayLike, ctx: ArrayLike, extra_flops: ArrayLike = 0.0) -> NDArray:
        return decode_iteration_s(batch, ctx, overhead_s=self.params.overhead_s,
                                  extra_flops=extra_flops, **self.roofline_kwargs())

    def decode_s(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> NDArray[np.float64]:
        return self._iter(batch, ctx_tokens)

    @property
    def overhead_s(self) -> float:  # type: ignore[override]
        return self.params.overhead_s

    def roofline_kwargs(self) -> dict[str, Any]:
        """The hardware arguments of :func:`fleetopt.physics.step.roofline_terms`."""
        m, p = self.model, self.params
        return dict(dense_bytes=self.dense_bytes, expert_bytes=self.expert_bytes,
                    experts=m.experts, top_k=m.experts_per_token,
                    kv_bytes_per_token=self.kv_bytes_per_token,
                    flops_per_token_base=self.flops_per_token_base,
                    attn_flops_per_ctx_token=self.attn_flops_per_ctx_token,
                    bandwidth_bytes_s=self.bandwidth, peak_flops=self.peak_flops,
                    mem_efficiency=p.mem_efficiency, compute_efficiency=p.compute_efficiency)

    def iter_terms(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        return roofline_terms(batch, ctx_tokens, **self.roofline_kwargs())

    def prefill_terms(self, prompt_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        p = self.params
        k = n_chunks(prompt_tokens, p.chunk_tokens)
        f = prefill_flops(prompt_tokens, flops_per_token_base=self.flops_per_token_base,
                          attn_flops_per_ctx_token=self.attn_flops_per_ctx_token)
        return k, f / k / (self.peak_flops * p.prefill_efficiency)

    def prefill_s(
        self, prompt_tokens: ArrayLike, batch: ArrayLike, ctx_tokens: ArrayLike
    ) -> NDArray[np.float64]:
        p = self.params
        k = n_chunks(prompt_tokens, p.chunk_tokens)
        f = prefill_flops(
            prompt_tokens, flops_per_token_base=self.flops_per_token_base,
            attn_flops_per_ctx_token=self.attn_flops_per_ctx_token,
        )
        # the chunk's FLOPs run at prefill efficiency: convert to decode-efficiency FLOPs
        f_equiv = f * p.compute_efficiency / p.prefill_efficiency
        return k * self._iter(batch, ctx_tokens, extra_flops=f_equiv / k)


@dataclass(frozen=True)
class CalibratedProfile(Profile):
    """A profile from published constants: ``t(n, L) = W + H * (L / ref) * n``."""

    spec: CalibratedSpec
    kind: str = "calibrated"
    kv_dtype: str = CALIBRATED_KV_DTYPE  # the KV cache its kv_blocks were measured with

    @property
    def gpu(self) -> str:  # type: ignore[override]
        return self.spec.name

    @property
    def tp(self) -> int:  # type: ignore[override]
        return self.spec.tp

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.spec.dtype

    @property
    def gpus_per_instance(self) -> int:  # type: ignore[override]
        return self.spec.tp

    @property
    def price_per_gpu_hr(self) -> float:  # type: ignore[override]
        return self.spec.price_per_gpu_hr

    @property
    def power(self) -> PowerCurve:  # type: ignore[override]
        return self.spec.power

    @property
    def max_context(self) -> int:  # type: ignore[override]
        return self.spec.max_context

    def fit_error(self) -> str | None:
        return None

    def slots(self, window_tokens: int) -> int:
        s = self.spec
        c = int(window_tokens)
        if c <= 0:
            return 0
        return int(min(s.max_slot_tokens // c, s.kv_blocks // math.ceil(c / s.block_tokens)))

    def decode_s(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> NDArray[np.float64]:
        s = self.spec
        n = np.asarray(batch, dtype=float)
        return s.base_iter_s + s.per_seq_s * (np.asarray(ctx_tokens, dtype=float) / s.ref_ctx_tokens) * n

    def prefill_s(
        self, prompt_tokens: ArrayLike, batch: ArrayLike, ctx_tokens: ArrayLike
    ) -> NDArray[np.float64]:
        k = n_chunks(prompt_tokens, self.spec.chunk_tokens)
        return k * self.decode_s(np.maximum(np.asarray(batch, dtype=float), 1.0), ctx_tokens)

    def iter_terms(self, batch: ArrayLike, ctx_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        t = self.decode_s(np.maximum(np.asarray(batch, dtype=float), 1.0), ctx_tokens)
        return t, t

    def prefill_terms(self, prompt_tokens: ArrayLike) -> tuple[NDArray, NDArray]:
        k = n_chunks(prompt_tokens, self.spec.chunk_tokens)
        return k, np.zeros_like(k)


def resolve(
    deployment: Deployment,
    model: str | ModelSpec,
    catalog: Catalog | None = None,
    params: PhysicsParams | None = None,
    field_name: str = "fleet.gpus",
) -> Profile:
    """The :class:`Profile` of ``deployment`` serving ``model``; raises FleetoptError if invalid."""
    cat = catalog or default_catalog()
    mspec = model if isinstance(model, ModelSpec) else cat.model(model)
    # a pool's precisions are its own fields; the problem's are [model] dtype / kv_dtype
    where = field_name.removesuffix(".gpu") if field_name.endswith(".gpu") else "model"
    for fname in ("dtype", "kv_dtype"):
        val = getattr(deployment, fname)
        if not isinstance(val, str):
            raise FleetoptError(f"{where}.{fname}", f"missing: give the {fname} (e.g. \"fp16\")")
        if val.lower() not in kvm.BYTES_PER_ELEMENT:
            raise FleetoptError(
                f"{where}.{fname}",
                f"unknown precision {val!r}; use one of {', '.join(kvm.BYTES_PER_ELEMENT)}",
            )
    dt = deployment.dtype.lower()
    kvd = deployment.kv_dtype.lower()
    tp_field = "fleet.tp" if where == "model" else f"{where}.tp"
    ep_field = "fleet.ep" if where == "model" else f"{where}.ep"
    if deployment.tp not in (1, 2, 4, 8, 16):
        raise FleetoptError(tp_field, f"TP degree must be one of 1, 2, 4, 8, 16, got "
                            f"{deployment.tp}")
    if cat.is_profile(deployment.gpu):
        if deployment.ep != 1:
            raise FleetoptError(ep_field, f"calibrated profiles have no expert parallelism; "
                                f"use ep = 1, got {deployment.ep!r}")
        spec: CalibratedSpec = cat.profiles.get_spec(deployment.gpu, field_name)
        if cat.models.canonical(spec.model, f"profile.{spec.name}.model") != mspec.name:
            raise FleetoptError(
                field_name, f"calibrated profile {spec.name!r} is for model {spec.model!r}, "
                f"not {mspec.name!r}; set [model] name = {spec.model!r} or pick a GPU type"
            )
        return CalibratedProfile(spec=spec)
    gspec = cat.gpu(deployment.gpu, field_name)
    if deployment.tp > gspec.max_tp:
        raise FleetoptError(tp_field, f"{gspec.name} supports TP <= {gspec.max_tp}, got "
                            f"{deployment.tp}")
    ep = check_ep(mspec, deployment.tp, deployment.ep, ep_field)
    prof = ComputedProfile(gpu_spec=gspec, model=mspec, tp=deployment.tp, dtype=dt,
                           kv_dtype=kvd, params=params or PhysicsParams(), ep=ep)
    return prof
