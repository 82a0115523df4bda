"""Catalogs of GPUs, LLMs and calibrated profiles, shipped as TOML and extensible by the user.

The shipped files are ``gpus.toml`` and ``models.toml`` beside this module; calibrated
profiles are defined in :mod:`fleetopt.profiles`. A user's own TOML file may add or
override entries with ``[gpu.NAME]``, ``[model.NAME]`` and ``[profile.NAME]`` tables of the
same fields (``docs/catalog.md``). Names are case-insensitive and aliases are accepted.
"""

from __future__ import annotations

import difflib
import json
import math
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
    "shared_experts": _I_NONNEG, "display": _STR, "source": _STR, "aliases": Rule("names"),
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


def _gpu_from_table(name: str, t: Any, where: str, base: GPUSpec | None = None) -> GPUSpec:
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


def _model_from_table(name: str, t: Any, where: str, base: ModelSpec | None = None) -> ModelSpec:
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
    return ModelSpec(name=base.name if base is not None else name, **rec)


def _read_toml(path: Path | Any, field_name: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FleetoptError(field_name, f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetoptError(field_name, f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise FleetoptError(field_name, f"{path} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FleetoptError(field_name, f"cannot read {path}: {e.strerror or e}") from None


class _Registry(dict):
    """Case-insensitive name -> spec mapping that also accepts aliases."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._alias: dict[str, str] = {}

    def add(self, name: str, spec: Any, aliases: tuple[str, ...] = (),
            field_name: str | None = None) -> None:
        for a in (name, *aliases):
            other = self._alias.get(a.lower())
            if other is not None and other != name:
                raise FleetoptError(field_name or f"{self.kind}.{name}",
                                    f"{a!r} already names the {self.kind} {other!r}; "
                                    "choose another name or alias")
        self[name] = spec
        for a in (name, *aliases):
            self._alias[a.lower()] = name

    def lookup(self, name: str) -> str | None:
        """The canonical name of ``name`` (or an alias), or None."""
        return self._alias.get(str(name).lower())

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
        """Add entries from a user TOML file, or override single fields of existing ones.

        ``[gpu.NAME]``, ``[model.NAME]`` and ``[profile.NAME]`` tables: a NAME (or alias) of an
        entry already in the catalog overrides just the fields given (``[gpu.H100-SXM]
        price_per_gpu_hr = 2.10``); a new NAME needs every required field. Every field is
        checked for type and range; errors name ``catalog.gpu.NAME.FIELD``.
        """
        data = _read_toml(Path(path), field_name)
        known = {"gpu", "model", "profile"}
        bad = set(data) - known
        if bad:
            raise FleetoptError(
                field_name, f"{path}: unknown top-level tables {sorted(bad)}; use [gpu.NAME], "
                "[model.NAME] or [profile.NAME]"
            )
        for kind in ("gpu", "model", "profile"):
            if not isinstance(data.get(kind, {}), dict):
                raise FleetoptError(f"{field_name}.{kind}", f"use [{kind}.NAME] tables, got "
                                    f"{kind} = {data[kind]!r}")
        for name, t in data.get("gpu", {}).items():
            key = self.gpus.lookup(name)
            spec = _gpu_from_table(name, t, f"{field_name}.gpu",
                                   None if key is None else self.gpus[key])
            self.gpus.add(spec.name, spec, spec.aliases, f"{field_name}.gpu.{name}.aliases")
        for name, t in data.get("model", {}).items():
            key = self.models.lookup(name)
            spec = _model_from_table(name, t, f"{field_name}.model",
                                     None if key is None else self.models[key])
            self.models.add(spec.name, spec, spec.aliases, f"{field_name}.model.{name}.aliases")
        if data.get("profile"):
            from fleetopt.profiles import calibrated_from_table

            for name, t in data["profile"].items():
                key = self.profiles.lookup(name)
                spec = calibrated_from_table(name, t, f"{field_name}.profile",
                                             None if key is None else self.profiles[key])
                self.profiles.add(spec.name, spec, spec.aliases,
                                  f"{field_name}.profile.{name}.aliases")
        self._check_names_disjoint(field_name)
        return self

    def _check_names_disjoint(self, field_name: str) -> None:
        """A name must not be both a GPU type and a calibrated profile."""
        clash = set(self.gpus._alias) & set(self.profiles._alias)
        if clash:
            raise FleetoptError(field_name, f"{sorted(clash)[0]!r} names both a GPU and a "
                                "calibrated profile; rename one")

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
