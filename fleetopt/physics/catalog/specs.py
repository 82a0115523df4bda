"""The catalog's records: GPU, model and calibrated-profile specs, and their validated fields.

Every field of a catalog table (shipped TOML or a user's) is checked against a :class:`Rule`
(:func:`validated_record`); ``*_from_table`` build the frozen specs. No profile is imported
here: :mod:`fleetopt.physics.profiles` turns specs into profiles, one way.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, fields
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.physics import kv as kvm
from fleetopt.physics.power import PowerCurve

__all__ = ["FP8_SCHEMES", "FP8_SCOPES", "GIB", "GPU_RULES", "MODEL_RULES", "POWER_RULES",
           "PROFILE_RULES", "TP_DEGREES",
           "CalibratedSpec", "GPUSpec", "ModelSpec", "Rule", "calibrated_from_table",
           "gpu_from_table", "model_from_table", "power_fields", "validated_record"]


#: bytes in one of the catalog's memory units: vendors' "80 GB", "141 GB", "180 GB", "186 GB" HBM
#: sizes are binary (GiB-sized: an H100 80GB reports 81,559 MiB, a B200 183,359 MiB, a GB200
#: 189,471 MiB in nvidia-smi), so ``hbm_gb`` (and every memory size fleetopt prints) is GiB
GIB = float(2 ** 30)
#: FP8 checkpoint formats (``fp8_scheme``): per-tensor / per-channel scales, or 128x128 blocks
FP8_SCHEMES = ("tensor", "block")
#: which linears an FP8 checkpoint quantises (``fp8_scope``): all but the LM head, or only the
#: FFN of layers 1..L-2 (Meta's Llama-3.1-405B-Instruct-FP8)
FP8_SCOPES = ("linear", "ffn")


@dataclass(frozen=True)
class GPUSpec:
    """One GPU type. Numbers are per GPU; TFLOPS are dense (no sparsity); ``hbm_gb`` is GiB
    (:data:`GIB`: vendors' memory sizes are binary)."""

    name: str
    hbm_gb: float
    hbm_bw_tb_s: float
    fp16_tflops: float
    fp8_tflops: float
    tdp_w: float
    price_per_gpu_hr: float
    power: PowerCurve
    int4_tflops: float = 0.0
    max_tp: int = 8
    display: str = ""
    interconnect: str = ""
    price_source: str = ""
    spec_source: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def hbm_bytes(self) -> float:
        """Device memory in bytes (``hbm_gb`` GiB)."""
        return self.hbm_gb * GIB

    def peak_flops(self, dtype: str) -> float:
        """Peak dense FLOP/s for matmuls with weights in ``dtype`` (fp8 falls back to fp16)."""
        if dtype == "fp8" and self.fp8_tflops > 0:
            return self.fp8_tflops * 1e12
        return self.fp16_tflops * 1e12


@dataclass(frozen=True)
class ModelSpec:
    """One LLM's architecture (from its HF config)."""

    name: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    params_total_b: float
    params_active_b: float
    max_context: int
    attention: str = "gqa"
    intermediate_size: int = 0
    vocab_size: int = 0
    experts: int = 0
    experts_per_token: int = 0
    moe_layers: int = 0
    expert_params_b: float = 0.0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    moe_intermediate_size: int = 0
    shared_experts: int = 0
    #: MLA only: the query's low-rank dimension (0: no query compression) and the per-head
    #: no-rope query/key and value dimensions (0: ``head_dim``)
    q_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    #: the FP8 checkpoint's scales (``FP8_SCHEMES``) and the linears it quantises (``FP8_SCOPES``)
    fp8_scheme: str = "tensor"
    fp8_scope: str = "linear"
    #: where the FP8 scheme and scope come from (the checkpoint named)
    fp8_source: str = ""
    display: str = ""
    source: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def nope_head_dim(self) -> int:
        """MLA: the no-rope query/key dimension per head (``head_dim`` unless given)."""
        return self.qk_nope_head_dim or self.head_dim

    @property
    def value_head_dim(self) -> int:
        """MLA: the value dimension per head (``head_dim`` unless given)."""
        return self.v_head_dim or self.head_dim


@dataclass(frozen=True)
class CalibratedSpec:
    """Published constants of a calibrated profile (see reproduction notes in the docs)."""

    name: str
    model: str
    tp: int
    dtype: str
    base_iter_s: float  # W: per-iteration time at zero KV traffic
    per_seq_s: float  # H: extra time per sequence at ref_ctx tokens of mean context
    ref_ctx_tokens: int
    kv_blocks: int
    block_tokens: int
    max_slot_tokens: int  # slots <= max_slot_tokens // window
    chunk_tokens: int
    power: PowerCurve
    price_per_gpu_hr: float
    max_context: int = 131072
    source: str = ""
    aliases: tuple[str, ...] = ()



# ------------------------------------------------------------------------------------------
# validated records: every field of a catalog table is checked for type and range


@dataclass(frozen=True)
class Rule:
    """Type and range of one catalog field (``kind``: float, int, str, names or choice)."""

    kind: str
    required: bool = False
    gt: float | None = None
    ge: float | None = None
    choices: tuple[Any, ...] = ()
    le: float = 1e9  # no catalog number is larger (beyond, the physics overflows) ...
    tiny: float = 1e-9  # ... and no positive (``gt``) one smaller

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) if isinstance(c, str) else str(c)
                                         for c in self.choices)
        if self.kind == "str":
            return "a string"
        if self.kind == "names":
            return "a list of strings"
        what = "a whole number" if self.kind == "int" else "a number"
        if self.gt is not None:
            return f"{what} > {self.gt:g} (from {self.gt + self.tiny:g} to {self.le:g})"
        if self.ge is not None:
            return f"{what} >= {self.ge:g} (at most {self.le:g})"
        return f"{what} of magnitude at most {self.le:g}"

    def check(self, value: Any, field_name: str) -> Any:
        """``value`` converted to the field's type; a FleetoptError naming ``field_name``."""
        bad = FleetoptError(field_name, f"must be {self.describe()}, got {value!r}")
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad
            return value
        if self.kind == "names":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v
                                                             for v in value):
                raise bad
            return tuple(value)
        if self.kind == "choice":
            key = value.lower() if isinstance(value, str) else value
            if isinstance(value, bool) or key not in self.choices:
                raise bad
            return key
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise bad
        if self.kind == "int":
            if value != int(value):
                raise bad
            value = int(value)
        else:
            value = float(value)
        if (self.gt is not None and not value >= self.gt + self.tiny) or \
                (self.ge is not None and not value >= self.ge) or abs(value) > self.le:
            raise bad
        return value


TP_DEGREES = (1, 2, 4, 8, 16)
_F_POS = Rule("float", True, gt=0)
_F_NONNEG = Rule("float", True, ge=0)
_I_POS = Rule("int", True, ge=1)
_I_NONNEG = Rule("int", ge=0)
_STR = Rule("str")

#: the power-curve fields shared by GPUs and calibrated profiles (``PowerCurve``)
POWER_RULES: dict[str, Rule] = {
    "power_idle_w": _F_NONNEG,
    "power_plateau_w": _F_POS,
    "power_slope": _F_NONNEG,
    "power_midpoint_log2": Rule("float", True),
    "power_quality": Rule("choice", choices=("measured", "fitted", "projected")),
    "power_source": _STR,
}
GPU_RULES: dict[str, Rule] = {
    "hbm_gb": _F_POS, "hbm_bw_tb_s": _F_POS, "fp16_tflops": _F_POS, "fp8_tflops": _F_NONNEG,
    "tdp_w": _F_POS, "price_per_gpu_hr": _F_NONNEG, "int4_tflops": Rule("float", ge=0),
    "max_tp": Rule("choice", choices=TP_DEGREES), "display": _STR, "interconnect": _STR,
    "price_source": _STR, "spec_source": _STR, "aliases": Rule("names"), **POWER_RULES,
}
MODEL_RULES: dict[str, Rule] = {
    "layers": _I_POS, "hidden_size": _I_POS, "attention_heads": _I_POS, "kv_heads": _I_POS,
    "head_dim": _I_POS, "params_total_b": _F_POS, "params_active_b": _F_POS,
    "max_context": _I_POS, "attention": Rule("choice", choices=("gqa", "mla")),
    "intermediate_size": _I_NONNEG, "vocab_size": _I_NONNEG, "experts": _I_NONNEG,
    "experts_per_token": _I_NONNEG, "moe_layers": _I_NONNEG,
    "expert_params_b": Rule("float", ge=0), "kv_lora_rank": _I_NONNEG,
    "qk_rope_head_dim": _I_NONNEG, "moe_intermediate_size": _I_NONNEG,
    "shared_experts": _I_NONNEG, "q_lora_rank": _I_NONNEG, "qk_nope_head_dim": _I_NONNEG,
    "v_head_dim": _I_NONNEG, "fp8_scheme": Rule("choice", choices=FP8_SCHEMES),
    "fp8_scope": Rule("choice", choices=FP8_SCOPES), "fp8_source": _STR,
    "display": _STR, "source": _STR, "aliases": Rule("names"),
}


def _close(key: str, known: list[str]) -> str:
    m = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {m[0]!r}?)" if m else ""


def validated_record(kind: str, name: str, table: Any, rules: dict[str, Rule], where: str,
                     base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of one catalog entry, each checked against ``rules``.

    ``base`` holds the current fields of an entry of that name (a shipped or earlier entry):
    ``table`` then overrides single fields of it. A new entry (``base`` None) needs every
    required field. Errors name ``WHERE.NAME.FIELD``.
    """
    f = f"{where}.{name}"
    if not isinstance(table, dict):
        raise FleetoptError(f, f"must be a table of fields ([{where.rsplit('.', 1)[-1]}.{name}]), "
                            f"got {table!r}")
    unknown = [k for k in table if k not in rules]
    if unknown:
        k = unknown[0]
        if isinstance(table[k], dict):
            sec = where.rsplit(".", 1)[-1]
            raise FleetoptError(f, f"a name with a dot must be quoted: [{sec}.\"{name}.{k}\"]")
        raise FleetoptError(f"{f}.{k}", f"unknown {kind} field{_close(k, list(rules))}; known: "
                            f"{', '.join(rules)}")
    out = {k: rules[k].check(v, f"{f}.{k}") for k, v in table.items()}
    if base is None:
        missing = [k for k, r in rules.items() if r.required and k not in table]
        if missing:
            raise FleetoptError(f, f"{name!r} is not in the catalog, so a new {kind} needs every "
                                f"required field; missing: {', '.join(missing)}")
        return out
    return {**base, **out}


def _check_power(rec: dict[str, Any], f: str) -> None:
    if rec["power_plateau_w"] < rec["power_idle_w"]:
        raise FleetoptError(f"{f}.power_plateau_w", f"must be >= power_idle_w "
                            f"({rec['power_idle_w']:g}), got {rec['power_plateau_w']:g}")


def power_from_record(rec: dict[str, Any], quality: str) -> PowerCurve:
    """The :class:`PowerCurve` of a validated record (pops its ``power_*`` fields)."""
    return PowerCurve(idle_w=rec.pop("power_idle_w"), plateau_w=rec.pop("power_plateau_w"),
                      slope=rec.pop("power_slope"), midpoint_log2=rec.pop("power_midpoint_log2"),
                      quality=rec.pop("power_quality", quality), source=rec.pop("power_source", ""))


def power_fields(p: PowerCurve) -> dict[str, Any]:
    """A power curve as the ``power_*`` fields of a catalog table."""
    return {"power_idle_w": p.idle_w, "power_plateau_w": p.plateau_w, "power_slope": p.slope,
            "power_midpoint_log2": p.midpoint_log2, "power_quality": p.quality,
            "power_source": p.source}


def _note_power_override(rec: dict[str, Any], table: dict[str, Any], where: str) -> None:
    """An overridden power number without a new power_source says so in the source."""
    changed = [k for k in table if k.startswith("power_") and k not in ("power_quality",
                                                                         "power_source")]
    if changed and "power_source" not in table:
        rec["power_source"] = f"{', '.join(changed)} overridden in {where}; rest: " + \
            str(rec.get("power_source", ""))


def _gpu_fields(spec: GPUSpec) -> dict[str, Any]:
    d = {f.name: getattr(spec, f.name) for f in fields(GPUSpec) if f.name not in ("name", "power")}
    return {**d, **power_fields(spec.power)}


def gpu_from_table(name: str, t: Any, where: str, base: GPUSpec | None = None) -> GPUSpec:
    rec = validated_record("GPU", name, t, GPU_RULES, where,
                           None if base is None else _gpu_fields(base))
    f = f"{where}.{name}"
    _check_power(rec, f)
    if base is not None:
        _note_power_override(rec, t, where)
    power = power_from_record(rec, "projected")
    return GPUSpec(name=base.name if base is not None else name, power=power, **rec)


def _model_fields(spec: ModelSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in fields(ModelSpec) if f.name != "name"}


def model_from_table(name: str, t: Any, where: str, base: ModelSpec | None = None) -> ModelSpec:
    rec = validated_record("model", name, t, MODEL_RULES, where,
                           None if base is None else _model_fields(base))
    f = f"{where}.{name}"
    if rec["params_active_b"] > rec["params_total_b"]:
        raise FleetoptError(f"{f}.params_active_b", f"must be <= params_total_b "
                            f"({rec['params_total_b']:g}), got {rec['params_active_b']:g}")
    if rec.get("expert_params_b", 0.0) >= rec["params_total_b"]:
        raise FleetoptError(f"{f}.expert_params_b", f"must be < params_total_b "
                            f"({rec['params_total_b']:g}), got {rec['expert_params_b']:g}")
    if rec["kv_heads"] > rec["attention_heads"]:
        raise FleetoptError(f"{f}.kv_heads", f"must be <= attention_heads "
                            f"({rec['attention_heads']}), got {rec['kv_heads']}")
    if rec.get("experts_per_token", 0) > rec.get("experts", 0):
        raise FleetoptError(f"{f}.experts_per_token", f"must be <= experts "
                            f"({rec.get('experts', 0)}), got {rec['experts_per_token']}")
    if rec.get("attention", "gqa") == "mla" and rec.get("kv_lora_rank", 0) < 1:
        raise FleetoptError(f"{f}.kv_lora_rank", "an MLA model needs kv_lora_rank >= 1")
    if rec.get("experts", 0) > 0 and rec.get("experts_per_token", 0) < 1:
        raise FleetoptError(f"{f}.experts_per_token", "a mixture of experts needs "
                            "experts_per_token >= 1")
    if rec.get("experts", 0) > 0 and not rec.get("expert_params_b", 0.0) > 0:
        raise FleetoptError(f"{f}.expert_params_b", "a mixture of experts needs "
                            "expert_params_b > 0 (the routed experts' parameters)")
    if rec.get("experts", 0) > 0 and not 1 <= rec.get("moe_layers", 0) <= rec["layers"]:
        raise FleetoptError(f"{f}.moe_layers", f"must be from 1 to layers ({rec['layers']}) "
                            f"for a mixture of experts, got {rec.get('moe_layers', 0)}")
    return ModelSpec(name=base.name if base is not None else name, **rec)


PROFILE_RULES: dict[str, Rule] = {
    "model": Rule("str", True), "tp": Rule("choice", True, choices=TP_DEGREES),
    "dtype": Rule("choice", True, choices=tuple(kvm.BYTES_PER_ELEMENT)),
    "base_iter_s": _F_POS, "per_seq_s": _F_NONNEG, "ref_ctx_tokens": _I_POS,
    "kv_blocks": _I_POS, "block_tokens": _I_POS, "max_slot_tokens": _I_POS,
    "chunk_tokens": _I_POS, "price_per_gpu_hr": _F_NONNEG,
    "max_context": Rule("int", ge=1), "source": _STR, "aliases": Rule("names"),
    **POWER_RULES,
}


def calibrated_from_table(name: str, t: Any, where: str,
                          base: CalibratedSpec | None = None) -> CalibratedSpec:
    """A calibrated profile from a ``[profile.NAME]`` TOML table (``base``: the entry of that
    name already in the catalog, whose fields the table overrides one by one)."""
    prev = None
    if base is not None:
        prev = {f.name: getattr(base, f.name) for f in fields(CalibratedSpec)
                if f.name not in ("name", "power")}
        prev.update(power_fields(base.power))
    rec = validated_record("calibrated profile", name, t, PROFILE_RULES, where, prev)
    _check_power(rec, f"{where}.{name}")
    power = power_from_record(rec, "measured")
    return CalibratedSpec(name=base.name if base is not None else name, power=power, **rec)
