"""A planning problem: workload, model, SLO, allowed hardware and fleet-wide limits.

Built from Python or from a TOML config (``docs/config.md``)::

    [workload]   name = "azure" | trace = "x.csv" | cdf = "x.json";  rate = 1000
    [model]      name = "llama-3.1-70b";  dtype = "fp16"  (or a list of allowed weight precisions)
    [slo]        ttft_p99_ms = 500;  quantile = 0.99;  peak_factor = 1.0 | "auto"
    [fleet]      gpus = ["H100-SXM"];  tp = [8];  max_pools = 4;  max_ctx = 65536
                 utilization_cap = 0.85;  boundaries = [...];  compress_gamma = 2.0;  max_gpus = ...
                 [[fleet.pool]] ctx_lo, ctx_hi, gpu, tp, instances  (a fleet to evaluate)
    [budget]     cost_per_hr = 800
    [inventory]  H100-SXM = 512
    [objective]  minimize = "power" | "cost" | "power_then_cost"
    [accounting] mode = "physical" | "paper"
    [physics]    any PhysicsParams field
    catalog = "my_catalog.toml"

Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from fleetopt.catalog import Catalog, default_catalog
from fleetopt.errors import FleetoptError
from fleetopt.fleet import Fleet
from fleetopt.poolmodel import Settings
from fleetopt.profiles import Deployment, PhysicsParams, Profile, resolve
from fleetopt.workload import Workload, builtin, from_cdf_file, from_trace_file

OBJECTIVES = ("power", "cost", "power_then_cost")
_SECTIONS = {"workload", "model", "slo", "fleet", "budget", "inventory", "objective",
             "accounting", "physics", "catalog", "name", "description"}
_KEYS = {
    "workload": {"name", "trace", "cdf", "rate", "input_fraction"},
    "model": {"name", "dtype", "kv_dtype"},
    "slo": {"ttft_p99_ms", "quantile", "peak_factor", "prefill_tail_share"},
    "budget": {"cost_per_hr"},
    "objective": {"minimize"},
    "accounting": {"mode"},
}


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything a solver needs; validated on construction."""

    workload: Workload
    model: str = "llama-3.1-70b"
    settings: Settings = field(default_factory=Settings)
    gpus: tuple[str, ...] = ("H100-SXM",)
    tp: tuple[int, ...] = (8,)
    dtypes: tuple[str, ...] = ("fp16",)
    kv_dtype: str = "fp16"
    max_pools: int = 4
    max_ctx: int | None = None
    boundaries: tuple[int, ...] | None = None
    compress_gamma: float | None = None
    budget_per_hr: float | None = None
    inventory: tuple[tuple[str, int], ...] = ()
    max_gpus: int | None = None
    objective: str = "power"
    catalog: Catalog = field(default_factory=default_catalog)
    physics: PhysicsParams = field(default_factory=PhysicsParams)
    fleet: Fleet | None = None
    name: str = ""

    def __post_init__(self) -> None:
        cat = self.catalog
        object.__setattr__(self, "model", cat.models.canonical(self.model, "model.name"))
        gpus = []
        for g in self.gpus:
            if cat.is_profile(g):
                gpus.append(cat.profiles.canonical(g, "fleet.gpus"))
            else:
                gpus.append(cat.gpus.canonical(g, "fleet.gpus"))
        if not gpus:
            raise FleetoptError("fleet.gpus", "list at least one GPU type or calibrated profile")
        object.__setattr__(self, "gpus", tuple(dict.fromkeys(gpus)))
        if not self.tp or any(t not in (1, 2, 4, 8, 16) for t in self.tp):
            raise FleetoptError("fleet.tp", f"TP degrees must be among 1, 2, 4, 8, 16, got {list(self.tp)}")
        if not self.dtypes:
            raise FleetoptError("model.dtype", "list at least one weight precision")
        if not isinstance(self.max_pools, int) or self.max_pools < 1:
            raise FleetoptError("fleet.max_pools", f"must be a whole number >= 1, got {self.max_pools}")
        mspec = cat.model(self.model)
        max_ctx = self.max_ctx if self.max_ctx is not None else _default_max_ctx(
            self.workload.max_total_tokens, mspec.max_context)
        if max_ctx > mspec.max_context:
            raise FleetoptError(
                "fleet.max_ctx", f"{max_ctx} tokens exceeds {self.model}'s maximum context "
                f"{mspec.max_context}; lower it"
            )
        if max_ctx < self.workload.max_total_tokens:
            raise FleetoptError(
                "fleet.max_ctx", f"{max_ctx} tokens is below the workload's longest request "
                f"({self.workload.max_total_tokens} tokens); raise it (<= {mspec.max_context})"
            )
        object.__setattr__(self, "max_ctx", int(max_ctx))
        if self.boundaries is not None:
            try:
                vals = [float(x) for x in self.boundaries]
            except (TypeError, ValueError):
                raise FleetoptError("fleet.boundaries", "must be a list of token counts, e.g. "
                                    "[1024, 4096]") from None
            if any(v != int(v) for v in vals):
                raise FleetoptError("fleet.boundaries", "token counts must be whole numbers")
            b = sorted({int(v) for v in vals})
            if any(x <= 0 or x >= max_ctx for x in b):
                raise FleetoptError("fleet.boundaries", f"boundaries must lie in (0, max_ctx={max_ctx})")
            object.__setattr__(self, "boundaries", tuple(b))
        if self.compress_gamma is not None and not 1.0 <= self.compress_gamma <= 2.0:
            raise FleetoptError("fleet.compress_gamma", f"must be in [1, 2], got {self.compress_gamma}")
        if self.budget_per_hr is not None and not (self.budget_per_hr > 0):
            raise FleetoptError("budget.cost_per_hr", f"must be > 0, got {self.budget_per_hr}")
        inv = []
        for g, n in self.inventory:
            key = cat.profiles.canonical(g, f"inventory.{g}") if cat.is_profile(g) else \
                cat.gpus.canonical(g, f"inventory.{g}")
            if not isinstance(n, int) or n < 0:
                raise FleetoptError(f"inventory.{g}", f"must be a whole number of GPUs >= 0, got {n!r}")
            inv.append((key, n))
        object.__setattr__(self, "inventory", tuple(inv))
        if self.max_gpus is not None and self.max_gpus < 1:
            raise FleetoptError("fleet.max_gpus", f"must be >= 1, got {self.max_gpus}")
        if self.objective not in OBJECTIVES:
            raise FleetoptError("objective.minimize", f"must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if not self.deployments():
            raise FleetoptError("fleet.gpus", self._no_fit_message())

    # --- derived -----------------------------------------------------------------------
    @property
    def inventory_map(self) -> dict[str, int]:
        return dict(self.inventory)

    def profile(self, d: Deployment) -> Profile:
        return resolve(d, self.model, self.catalog, self.physics)

    def deployments(self) -> list[Deployment]:
        """Allowed deployments on which the model fits (calibrated profiles have their own TP)."""
        out: list[Deployment] = []
        for g in self.gpus:
            if self.catalog.is_profile(g):
                spec = self.catalog.profiles[g]
                out.append(Deployment(g, spec.tp, spec.dtype, self.kv_dtype))
                continue
            gspec = self.catalog.gpus[g]
            for t in self.tp:
                if t > gspec.max_tp:
                    continue
                for dt in self.dtypes:
                    d = Deployment(g, t, dt, self.kv_dtype)
                    if self.profile(d).fit_error() is None:
                        out.append(d)
        return list(dict.fromkeys(out))

    def _no_fit_message(self) -> str:
        msgs = []
        for g in self.gpus:
            if self.catalog.is_profile(g):
                continue
            for t in self.tp:
                for dt in self.dtypes:
                    err = self.profile(Deployment(g, t, dt, self.kv_dtype)).fit_error()
                    if err:
                        msgs.append(err)
        return "the model fits on none of the allowed deployments: " + "; ".join(msgs[:3])

    def candidate_boundaries(self) -> list[int]:
        """Context boundaries the solver may place pool edges at (excluding 0 and max_ctx)."""
        if self.boundaries is not None:
            return list(self.boundaries)
        return default_boundaries(self.workload, self.max_ctx)

    def with_(self, **changes: Any) -> Problem:
        """A copy with some fields changed (re-validated)."""
        return replace(self, **changes)

    def summary(self) -> dict[str, Any]:
        return {
            "workload": self.workload.name, "rate_rps": self.workload.rate_rps,
            "model": self.model, "ttft_p99_ms": self.settings.ttft_p99_ms,
            "utilization_cap": self.settings.utilization_cap,
            "accounting": self.settings.accounting, "gpus": list(self.gpus), "tp": list(self.tp),
            "dtypes": list(self.dtypes), "max_pools": self.max_pools, "max_ctx": self.max_ctx,
            "budget_per_hr": self.budget_per_hr, "inventory": dict(self.inventory),
            "max_gpus": self.max_gpus, "objective": self.objective,
            "compress_gamma": self.compress_gamma,
        }


def _default_max_ctx(longest: int, model_max: int) -> int:
    """Smallest power of two >= the longest request, at most the model's maximum."""
    p = 1 << max(0, math.ceil(math.log2(max(longest, 2))))
    return min(max(p, 2048), model_max) if longest <= model_max else longest


def default_boundaries(workload: Workload, max_ctx: int, quantiles: int = 10) -> list[int]:
    """Workload quantile knots (rounded to 256 tokens) merged with powers of two and midpoints."""
    pts: set[int] = set()
    p = 512
    while p < max_ctx:
        pts.add(p)
        mid = p + p // 2
        if mid < max_ctx:
            pts.add(mid)
        p *= 2
    for i in range(1, quantiles):
        q = workload.quantile_total(i / quantiles)
        r = int(round(q / 256.0)) * 256
        if 256 <= r < max_ctx:
            pts.add(r)
    for q in (0.95, 0.99):
        r = int(math.ceil(workload.quantile_total(q) / 256.0)) * 256
        if 256 <= r < max_ctx:
            pts.add(r)
    return sorted(pts)


# ------------------------------------------------------------------------------------------
# TOML configs


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _num(section: dict[str, Any], key: str, field_name: str, kind: type = float) -> Any:
    v = section[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FleetoptError(field_name, f"must be a number, got {v!r}")
    if kind is int:
        if float(v) != int(v):
            raise FleetoptError(field_name, f"must be a whole number, got {v!r}")
        return int(v)
    return float(v)


def _peak_factor(slo: dict[str, Any], workload: Workload) -> float:
    """``[slo] peak_factor``: a number >= 1, or "auto" (estimated from the workload's trace)."""
    v = slo.get("peak_factor", 1.0)
    if isinstance(v, str):
        if v.lower() != "auto":
            raise FleetoptError("slo.peak_factor", f"must be a number >= 1 or \"auto\", got {v!r}")
        from fleetopt.burst import auto_peak_factor

        return auto_peak_factor(workload)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FleetoptError("slo.peak_factor", f"must be a number >= 1 or \"auto\", got {v!r}")
    return float(v)


def _shipped_tomls() -> list[str]:
    d = resources.files("fleetopt.examples")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))


def example_names() -> list[str]:
    """Shipped planning configs (the sweep examples, which name a base config, are not among them)."""
    return [n for n in _shipped_tomls() if not n.startswith("sweep")]


def sweep_example_names() -> list[str]:
    """Shipped SWEEP.toml examples for ``fleetopt study sweep``."""
    return [n for n in _shipped_tomls() if n.startswith("sweep")]


def resolve_config_path(arg: str | Path) -> Path:
    """A config path, or the name of a shipped example (``fleetopt catalog`` lists them)."""
    p = Path(arg)
    if p.is_file():
        return p
    names = _shipped_tomls()
    key = {n.lower(): n for n in names}.get(str(arg).lower().removesuffix(".toml"))
    if key is not None:
        with resources.as_file(resources.files("fleetopt.examples").joinpath(f"{key}.toml")) as q:
            return Path(q)
    raise FleetoptError(
        "CONFIG", f"no such file {str(arg)!r} and no shipped example of that name; examples: "
        f"{', '.join(names)}"
    )


def load_config(path: str | Path, **overrides: Any) -> Problem:
    """Build a :class:`Problem` from a TOML config file (or a shipped example's name)."""
    p = resolve_config_path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise FleetoptError("CONFIG", f"{p} is not valid TOML: {e}") from None
    return problem_from_dict(data, base_dir=p.parent, name=p.stem, **overrides)


def problem_from_dict(data: dict[str, Any], base_dir: Path | None = None, name: str = "",
                      **overrides: Any) -> Problem:
    """Build a :class:`Problem` from a parsed config dictionary."""
    base = base_dir or Path.cwd()
    unknown = set(data) - _SECTIONS
    if unknown:
        raise FleetoptError(
            "CONFIG", f"unknown sections {sorted(unknown)}; known: {', '.join(sorted(_SECTIONS))}"
        )
    for sec in ("workload", "model", "slo", "fleet", "budget", "inventory", "objective",
                "accounting", "physics"):
        if sec in data and not isinstance(data[sec], dict):
            raise FleetoptError(sec, f"[{sec}] must be a table")
    for sec, known in _KEYS.items():
        bad = set(data.get(sec, {})) - known
        if bad:
            raise FleetoptError(sec, f"unknown keys {sorted(bad)}; known: {', '.join(sorted(known))}")

    catalog = default_catalog()
    if "catalog" in data:
        catalog = Catalog.default().extend_from_file(base / str(data["catalog"]), "catalog")

    # workload
    wl = data.get("workload")
    if not wl:
        raise FleetoptError("workload", "missing [workload] with name|trace|cdf and rate")
    sources = [k for k in ("name", "trace", "cdf") if k in wl]
    if len(sources) != 1:
        raise FleetoptError("workload", "give exactly one of name, trace or cdf")
    rate = _num(wl, "rate", "workload.rate") if "rate" in wl else None
    if rate is not None and not rate > 0:
        raise FleetoptError("workload.rate", f"arrival rate must be > 0 req/s, got {rate}")
    if sources[0] == "name":
        workload = builtin(str(wl["name"]), rate if rate is not None else 1000.0)
    elif sources[0] == "trace":
        workload = from_trace_file(base / str(wl["trace"]), rate)
    else:
        if rate is None:
            raise FleetoptError("workload.rate", "a CDF workload needs rate (req/s)")
        workload = from_cdf_file(base / str(wl["cdf"]), rate,
                                 _num(wl, "input_fraction", "workload.input_fraction")
                                 if "input_fraction" in wl else 0.8)

    model = data.get("model", {})
    fleet = data.get("fleet", {})
    slo = data.get("slo", {})
    acct = data.get("accounting", {})
    known_fleet = {"gpus", "tp", "max_pools", "max_ctx", "utilization_cap", "boundaries",
                   "compress_gamma", "max_gpus", "pool", "kv_dtype"}
    bad = set(fleet) - known_fleet
    if bad:
        raise FleetoptError("fleet", f"unknown keys {sorted(bad)}; known: {', '.join(sorted(known_fleet))}")
    settings = Settings(
        ttft_p99_ms=_num(slo, "ttft_p99_ms", "slo.ttft_p99_ms") if "ttft_p99_ms" in slo else 500.0,
        utilization_cap=_num(fleet, "utilization_cap", "fleet.utilization_cap")
        if "utilization_cap" in fleet else 0.85,
        accounting=str(acct.get("mode", "physical")),
        quantile=_num(slo, "quantile", "slo.quantile") if "quantile" in slo else 0.99,
        peak_factor=_peak_factor(slo, workload),
        prefill_tail_share=_num(slo, "prefill_tail_share", "slo.prefill_tail_share")
        if "prefill_tail_share" in slo else 0.5,
    )
    physics = PhysicsParams()
    if "physics" in data:
        names = {f.name for f in fields(PhysicsParams)}
        badp = set(data["physics"]) - names
        if badp:
            raise FleetoptError("physics", f"unknown keys {sorted(badp)}; known: {', '.join(sorted(names))}")
        for k, v in data["physics"].items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise FleetoptError(f"physics.{k}", f"must be a number, got {v!r}")
        physics = replace(physics, **data["physics"])
    inventory = []
    for g, n in data.get("inventory", {}).items():
        if isinstance(n, bool) or not isinstance(n, int):
            raise FleetoptError(f"inventory.{g}", f"must be a whole number of GPUs, got {n!r}")
        inventory.append((g, n))
    budget = data.get("budget", {})
    kw: dict[str, Any] = dict(
        workload=workload,
        model=str(model.get("name", "llama-3.1-70b")),
        settings=settings,
        gpus=tuple(str(g) for g in _as_list(fleet.get("gpus", ["H100-SXM"]))),
        tp=tuple(_as_list(fleet.get("tp", [8]))),
        dtypes=tuple(str(d).lower() for d in _as_list(model.get("dtype", "fp16"))),
        kv_dtype=str(fleet.get("kv_dtype", model.get("kv_dtype", "fp16"))).lower(),
        max_pools=fleet.get("max_pools", 4),
        max_ctx=_num(fleet, "max_ctx", "fleet.max_ctx", int) if "max_ctx" in fleet else None,
        boundaries=tuple(_as_list(fleet["boundaries"])) if "boundaries" in fleet else None,
        compress_gamma=_num(fleet, "compress_gamma", "fleet.compress_gamma")
        if "compress_gamma" in fleet else None,
        budget_per_hr=_num(budget, "cost_per_hr", "budget.cost_per_hr") if "cost_per_hr" in budget else None,
        inventory=tuple(inventory),
        max_gpus=_num(fleet, "max_gpus", "fleet.max_gpus", int) if "max_gpus" in fleet else None,
        objective=str(data.get("objective", {}).get("minimize", "power")),
        catalog=catalog,
        physics=physics,
        fleet=Fleet.from_list(fleet["pool"], "fleet") if "pool" in fleet else None,
        name=str(data.get("name", name)),
    )
    for t in kw["tp"]:
        if isinstance(t, bool) or not isinstance(t, int):
            raise FleetoptError("fleet.tp", f"TP degrees must be whole numbers, got {t!r}")
    kw.update(overrides)
    return Problem(**kw)
