"""Deployments and their performance profiles.

A :class:`Deployment` names hardware (a GPU type or a calibrated profile), a tensor-parallel
degree and precisions. :func:`resolve` turns it, with a model and the physics parameters,
into a :class:`Profile`: the object every evaluator, solver and the simulator ask for slots,
iteration time, prefill time, power and price. Two kinds exist:

* :class:`ComputedProfile`: the roofline of :mod:`fleetopt.physics` from catalog specs;
* :class:`CalibratedProfile`: fixed published constants (``1w-law-h100``: the paper's H100
  profile for Llama-3.1-70B at TP=8, ``docs/reproduction.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.physics import kv as kvm
from fleetopt.physics.catalog import CalibratedSpec, Catalog, GPUSpec, ModelSpec, default_catalog
from fleetopt.physics.power import PowerCurve, gpu_power_w
from fleetopt.physics.prefill import n_chunks, prefill_flops
from fleetopt.physics.step import decode_iteration_s, roofline_terms

__all__ = ["ACCOUNTING_MODES", "CALIBRATED_KV_DTYPE", "CalibratedProfile", "ComputedProfile",
           "Deployment", "PhysicsParams", "Profile", "resolve"]

ACCOUNTING_MODES = ("physical", "paper")
#: the KV-cache precision of every calibrated profile (its KV blocks are fixed constants)
CALIBRATED_KV_DTYPE = "fp16"


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


@dataclass(frozen=True)
class Deployment:
    """Hardware for one pool: GPU type or calibrated profile, TP degree, precisions."""

    gpu: str
    tp: int = 8
    dtype: str = "fp16"
    kv_dtype: str = "fp16"

    def label(self) -> str:
        return f"{self.gpu} TP{self.tp} {self.dtype}"


class Profile:
    """Performance of one deployment serving one model (abstract)."""

    kind: str
    gpu: str
    tp: int
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
        return Deployment(self.gpu, self.tp, self.dtype, self.kv_dtype)

    def label(self) -> str:
        return self.deployment().label()


@dataclass(frozen=True)
class ComputedProfile(Profile):
    """Roofline profile computed from a GPU spec, a model spec and :class:`PhysicsParams`."""

    gpu_spec: GPUSpec
    model: ModelSpec
    tp: int
    dtype: str = "fp16"
    kv_dtype: str = "fp16"
    params: PhysicsParams = field(default_factory=PhysicsParams)
    kind: str = "computed"
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

    def __post_init__(self) -> None:
        m, g, p = self.model, self.gpu_spec, self.params
        wb = kvm.dtype_bytes(self.dtype)
        expert_b = m.expert_params_b * 1e9 * wb / self.tp
        total_b = m.params_total_b * 1e9 * wb / self.tp
        kvb = kvm.kv_bytes_per_token_per_gpu(
            layers=m.layers, kv_heads=m.kv_heads, head_dim=m.head_dim, tp=self.tp,
            kv_dtype=self.kv_dtype, attention=m.attention, kv_lora_rank=m.kv_lora_rank,
            qk_rope_head_dim=m.qk_rope_head_dim,
        )
        budget = kvm.kv_budget_bytes(
            hbm_bytes=g.hbm_gb * 1e9, weight_bytes_per_gpu=total_b,
            memory_utilization=p.memory_utilization, reserve_bytes=p.reserve_gb * 1e9,
        )
        derived = {
            "weight_bytes_per_gpu": total_b,
            "dense_bytes": total_b - expert_b,
            "expert_bytes": expert_b,
            "kv_bytes_per_token": kvb,
            "kv_budget_bytes": budget,
            "flops_per_token_base": 2.0 * m.params_active_b * 1e9 / self.tp,
            # QK^T and PV: 2 matmuls x 2 FLOPs x (query heads x head_dim) per cached token per layer
            "attn_flops_per_ctx_token": 4.0 * m.layers * m.attention_heads * m.head_dim / self.tp,
            "peak_flops": g.peak_flops(self.dtype),
            "bandwidth": g.hbm_bw_tb_s * 1e12,
        }
        for k, v in derived.items():
            object.__setattr__(self, k, v)

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
        need = self.weight_bytes_per_gpu / 1e9
        if self.kv_budget_bytes <= 0:
            return (
                f"{self.model.name} needs {need:.1f} GB of weights per GPU at TP={self.tp} "
                f"{self.dtype}, has {usable:.1f} GB usable on {self.gpu}; " + self._fit_advice()
            )
        return None

    def _fit_advice(self) -> str:
        """The deployments of this GPU on which the weights would fit (advice one can follow)."""
        p, m, g = self.params, self.model, self.gpu_spec
        usable = g.hbm_gb * 1e9 * p.memory_utilization - p.reserve_gb * 1e9
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
    if deployment.tp not in (1, 2, 4, 8, 16):
        raise FleetoptError(tp_field, f"TP degree must be one of 1, 2, 4, 8, 16, got "
                            f"{deployment.tp}")
    if cat.is_profile(deployment.gpu):
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
    prof = ComputedProfile(gpu_spec=gspec, model=mspec, tp=deployment.tp, dtype=dt,
                           kv_dtype=kvd, params=params or PhysicsParams())
    return prof
