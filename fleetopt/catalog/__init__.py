"""Catalogs of GPUs, LLMs and calibrated profiles, shipped as TOML and extensible by the user.

The shipped files are ``gpus.toml`` and ``models.toml`` beside this module; calibrated
profiles are defined in :mod:`fleetopt.profiles`. A user's own TOML file may add or
override entries with ``[gpu.NAME]``, ``[model.NAME]`` and ``[profile.NAME]`` tables of the
same fields (``docs/catalog.md``). Names are case-insensitive and aliases are accepted.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from fleetopt.errors import FleetoptError, unknown_name
from fleetopt.models.power import PowerCurve


@dataclass(frozen=True)
class GPUSpec:
    """One GPU type. Numbers are per GPU; TFLOPS are dense (no sparsity)."""

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
    display: str = ""
    source: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


_GPU_KEYS = {f.name for f in fields(GPUSpec)}
_MODEL_KEYS = {f.name for f in fields(ModelSpec)}


def _gpu_from_table(name: str, t: dict[str, Any], where: str) -> GPUSpec:
    t = dict(t)
    try:
        power = PowerCurve(
            idle_w=float(t.pop("power_idle_w")),
            plateau_w=float(t.pop("power_plateau_w")),
            slope=float(t.pop("power_slope")),
            midpoint_log2=float(t.pop("power_midpoint_log2")),
            quality=str(t.pop("power_quality", "projected")),
            source=str(t.pop("power_source", "")),
        )
        unknown = set(t) - _GPU_KEYS
        if unknown:
            raise FleetoptError(f"{where}.{name}", f"unknown keys {sorted(unknown)}")
        t["aliases"] = tuple(t.get("aliases", ()))
        return GPUSpec(name=name, power=power, **t)
    except KeyError as e:
        raise FleetoptError(f"{where}.{name}", f"missing key {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, FleetoptError):
            raise
        raise FleetoptError(f"{where}.{name}", str(e)) from None


def _model_from_table(name: str, t: dict[str, Any], where: str) -> ModelSpec:
    t = dict(t)
    unknown = set(t) - _MODEL_KEYS
    if unknown:
        raise FleetoptError(f"{where}.{name}", f"unknown keys {sorted(unknown)}")
    t["aliases"] = tuple(t.get("aliases", ()))
    try:
        return ModelSpec(name=name, **t)
    except TypeError as e:
        raise FleetoptError(f"{where}.{name}", str(e)) from None


def _read_toml(path: Path | Any, field_name: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FleetoptError(field_name, f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetoptError(field_name, f"{path} is not valid TOML: {e}") from None


class _Registry(dict):
    """Case-insensitive name -> spec mapping that also accepts aliases."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._alias: dict[str, str] = {}

    def add(self, name: str, spec: Any, aliases: tuple[str, ...] = ()) -> None:
        self[name] = spec
        for a in (name, *aliases):
            self._alias[a.lower()] = name

    def canonical(self, name: str, field_name: str) -> str:
        key = self._alias.get(str(name).lower())
        if key is None:
            raise unknown_name(field_name, str(name), self.keys(), self.kind)
        return key

    def get_spec(self, name: str, field_name: str) -> Any:
        return self[self.canonical(name, field_name)]


@dataclass
class Catalog:
    """GPUs, models and calibrated profiles available to a problem."""

    gpus: _Registry = field(default_factory=lambda: _Registry("GPU"))
    models: _Registry = field(default_factory=lambda: _Registry("model"))
    profiles: _Registry = field(default_factory=lambda: _Registry("calibrated profile"))

    @classmethod
    def default(cls) -> Catalog:
        """The shipped catalog (a fresh copy: safe to extend)."""
        cat = cls()
        base = resources.files("fleetopt.catalog")
        gdata = tomllib.loads(base.joinpath("gpus.toml").read_text())
        for name, t in gdata.items():
            spec = _gpu_from_table(name, t, "gpus.toml")
            cat.gpus.add(name, spec, spec.aliases)
        _apply_power_fits(cat)
        mdata = tomllib.loads(base.joinpath("models.toml").read_text())
        for name, t in mdata.items():
            spec = _model_from_table(name, t, "models.toml")
            cat.models.add(name, spec, spec.aliases)
        from fleetopt.profiles import builtin_calibrated

        for spec in builtin_calibrated():
            cat.profiles.add(spec.name, spec, spec.aliases)
        return cat

    def extend_from_file(self, path: str | Path, field_name: str = "catalog") -> Catalog:
        """Add or override entries from a user TOML file (``[gpu.X]``, ``[model.X]``, ``[profile.X]``)."""
        data = _read_toml(Path(path), field_name)
        known = {"gpu", "model", "profile"}
        bad = set(data) - known
        if bad:
            raise FleetoptError(
                field_name, f"{path}: unknown top-level tables {sorted(bad)}; use [gpu.NAME], "
                "[model.NAME] or [profile.NAME]"
            )
        for name, t in data.get("gpu", {}).items():
            spec = _gpu_from_table(name, t, f"{field_name}.gpu")
            self.gpus.add(name, spec, spec.aliases)
        for name, t in data.get("model", {}).items():
            spec = _model_from_table(name, t, f"{field_name}.model")
            self.models.add(name, spec, spec.aliases)
        if data.get("profile"):
            from fleetopt.profiles import calibrated_from_table

            for name, t in data["profile"].items():
                spec = calibrated_from_table(name, t, f"{field_name}.profile")
                self.profiles.add(name, spec, spec.aliases)
        return self

    def gpu(self, name: str, field_name: str = "gpu") -> GPUSpec:
        return self.gpus.get_spec(name, field_name)

    def model(self, name: str, field_name: str = "model.name") -> ModelSpec:
        return self.models.get_spec(name, field_name)

    def is_profile(self, name: str) -> bool:
        return str(name).lower() in self.profiles._alias

    def hardware_names(self) -> list[str]:
        """Every name accepted where a GPU is expected: GPU types and calibrated profiles."""
        return sorted(self.gpus) + sorted(self.profiles)


def _apply_power_fits(cat: Catalog) -> None:
    """Overlay the ML.ENERGY-fitted power curves (``data/power_fits.json``) on the GPU specs."""
    from dataclasses import replace

    path = resources.files("fleetopt.data").joinpath("power_fits.json")
    if not path.is_file():
        return
    fits = json.loads(path.read_text()).get("fits", {})
    for gname, fit in fits.items():
        key = cat.gpus._alias.get(gname.lower())
        if key is None:
            continue
        spec: GPUSpec = cat.gpus[key]
        curve = PowerCurve(
            idle_w=fit["idle_w"], plateau_w=fit["plateau_w"], slope=fit["slope"],
            midpoint_log2=fit["midpoint_log2"], quality=fit.get("quality", "fitted"),
            source=f"fit to ML.ENERGY leaderboard v3 ({fit.get('n_points', '?')} points, "
            f"median APE {fit.get('median_ape_pct', float('nan')):.1f} %), docs/data.md",
        )
        cat.gpus.add(key, replace(spec, power=curve), spec.aliases)


_DEFAULT: Catalog | None = None


def default_catalog() -> Catalog:
    """The shipped catalog, loaded once (treat as read-only; copy with ``Catalog.default()``)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Catalog.default()
    return _DEFAULT
