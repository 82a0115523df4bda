"""Catalogs of GPUs, LLMs and calibrated profiles, shipped as TOML and extensible by the user.

The shipped files are ``gpus.toml`` and ``models.toml`` beside this module; the calibrated
profiles are :func:`builtin_calibrated`. A user's own TOML file may add or override entries
with ``[gpu.NAME]``, ``[model.NAME]`` and ``[profile.NAME]`` tables of the same fields
(``docs/catalog.md``). Names are case-insensitive and aliases are accepted.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fleetopt.core.errors import FleetoptError, unknown_name
from fleetopt.core.files import read_toml
from fleetopt.physics.catalog.specs import (
    CalibratedSpec,
    GPUSpec,
    ModelSpec,
    calibrated_from_table,
    gpu_from_table,
    model_from_table,
)
from fleetopt.physics.power import PowerCurve

__all__ = ["Catalog", "builtin_calibrated", "default_catalog"]


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
        base = resources.files("fleetopt.physics.catalog")
        gdata = tomllib.loads(base.joinpath("gpus.toml").read_text())
        for name, t in gdata.items():
            gspec = gpu_from_table(name, t, "gpus.toml")
            cat.gpus.add(name, gspec, gspec.aliases)
        _apply_power_fits(cat)
        mdata = tomllib.loads(base.joinpath("models.toml").read_text())
        for name, t in mdata.items():
            mspec = model_from_table(name, t, "models.toml")
            cat.models.add(name, mspec, mspec.aliases)
        for cspec in builtin_calibrated():
            cat.profiles.add(cspec.name, cspec, cspec.aliases)
        return cat

    def extend_from_file(self, path: str | Path, field_name: str = "catalog") -> Catalog:
        """Add entries from a user TOML file, or override single fields of existing ones.

        ``[gpu.NAME]``, ``[model.NAME]`` and ``[profile.NAME]`` tables: a NAME (or alias) of an
        entry already in the catalog overrides just the fields given (``[gpu.H100-SXM]
        price_per_gpu_hr = 2.10``); a new NAME needs every required field. Every field is
        checked for type and range; errors name ``catalog.gpu.NAME.FIELD``.
        """
        data = read_toml(Path(path), field_name)
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
            spec = gpu_from_table(name, t, f"{field_name}.gpu",
                                   None if key is None else self.gpus[key])
            self.gpus.add(spec.name, spec, spec.aliases, f"{field_name}.gpu.{name}.aliases")
        for name, t in data.get("model", {}).items():
            key = self.models.lookup(name)
            mspec = model_from_table(name, t, f"{field_name}.model",
                                     None if key is None else self.models[key])
            self.models.add(mspec.name, mspec, mspec.aliases,
                            f"{field_name}.model.{name}.aliases")
        if data.get("profile"):
            for name, t in data["profile"].items():
                key = self.profiles.lookup(name)
                cspec = calibrated_from_table(name, t, f"{field_name}.profile",
                                              None if key is None else self.profiles[key])
                self.profiles.add(cspec.name, cspec, cspec.aliases,
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


def builtin_calibrated() -> list[CalibratedSpec]:
    """The calibrated profiles shipped with fleetopt."""
    return [
        CalibratedSpec(
            name="1w-law-h100", model="llama-3.1-70b", tp=8, dtype="fp16",
            base_iter_s=0.004, per_seq_s=0.00032, ref_ctx_tokens=8192,
            kv_blocks=65536, block_tokens=16, max_slot_tokens=256 * 8192, chunk_tokens=1024,
            power=PowerCurve(300.0, 600.0, 1.0, 4.2, "fitted",
                             "published calibrated H100 profile (1/W law paper)"),
            price_per_gpu_hr=4.02,
            source="1/W law paper (arXiv 2603.17280) H100 calibrated profile, via the "
            "inference-fleet-sim configuration; Llama-3.1-70B TP=8 fp16",
            aliases=("1w-law", "paper-h100"),
        )
    ]
