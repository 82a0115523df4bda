"""TOML configs: a file (or a shipped example's name) to a :class:`~fleetopt.problem.Problem`.

Every value is converted and checked by the schema's field of the same name
(:mod:`fleetopt.problem.schema`), then the :class:`Problem` checks what needs several values.
The format is ``docs/config.md``::

    [workload]   name = "azure" | trace = "x.csv" | cdf = "x.json";  rate = 1000
                 input_fraction (CDFs);  timestamp_unit = "auto" | "s" | "ms" (traces)
                 over_max_ctx = "error" | "drop" | "truncate"
    [model]      name = "llama-3.1-70b";  dtype = "fp16"  (or a list of allowed weight precisions)
                 prefix_cache_hit = 0.0 (share of prompt tokens served from cache)
    [slo]        ttft_p99_ms = 500;  quantile = 0.99;  peak_factor = 1.0 | "auto" | "auto-global"
                 tpot_p99_ms = 50 (optional)
    [fleet]      gpus = ["H100-SXM"];  tp = [8];  max_pools = 4;  max_ctx = 65536
                 utilization_cap = 0.85;  boundaries = [...];  compress_gamma = 2.0;  max_gpus = ...
                 ep = "off" | "on" | "both"  (expert parallelism of mixture-of-experts models)
                 [[fleet.pool]] ctx_lo, ctx_hi, gpu, tp, instances, ep  (a fleet to evaluate)
    [budget]     cost_per_hr = 800
    [inventory]  H100-SXM = 512
    [objective]  minimize = "power" | "cost" | "power_then_cost"
    [accounting] mode = "physical" | "paper"
    [physics]    any PhysicsParams field;  kv_allocation = "paged" | "reserved"
                 kv_overflow_prob = 1e-3;  max_num_batched_tokens;  max_num_seqs
    catalog = "my_catalog.toml"

Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

from dataclasses import fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import read_toml
from fleetopt.physics.catalog import Catalog, default_catalog
from fleetopt.physics.profiles import PhysicsParams
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.problem import Problem
from fleetopt.problem.schema import (
    CONFIG_KEYS,
    CONFIG_SECTIONS,
    FIELDS,
    PHYSICS_SETTINGS,
    check_inventory,
    peak_factor_setting,
)
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import (
    builtin,
    check_input_fraction,
    from_cdf_file,
    from_trace_file,
)

__all__ = ["example_names", "load_config", "problem_from_dict", "resolve_config_path",
           "sweep_example_names"]


def _value(section: dict[str, Any], key: str, path: str, default: Any = None) -> Any:
    """``section[key]`` checked by the schema's field ``path`` (``default`` when absent).
    Choices are case-insensitive in a config."""
    if key not in section:
        return default
    v = section[key]
    fld = FIELDS[path]
    if fld.kind == "choice" and isinstance(v, str):
        v = v.lower()
    return fld.check(v)


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
    data = read_toml(p, "CONFIG")
    return problem_from_dict(data, base_dir=p.parent, name=p.stem, **overrides)


def problem_from_dict(data: dict[str, Any], base_dir: Path | None = None, name: str = "",
                      **overrides: Any) -> Problem:
    """Build a :class:`Problem` from a parsed config dictionary."""
    base = base_dir or Path.cwd()
    unknown = set(data) - CONFIG_SECTIONS
    if unknown:
        raise FleetoptError(
            "CONFIG", f"unknown sections {sorted(unknown)}; known: "
            f"{', '.join(sorted(CONFIG_SECTIONS))}")
    for sec in ("workload", "model", "slo", "fleet", "budget", "inventory", "objective",
                "accounting", "physics"):
        if sec in data and not isinstance(data[sec], dict):
            raise FleetoptError(sec, f"[{sec}] must be a table")
    for sec, known in CONFIG_KEYS.items():
        bad = set(data.get(sec, {})) - known
        if bad:
            raise FleetoptError(sec, f"unknown keys {sorted(bad)}; known: {', '.join(sorted(known))}")

    catalog = default_catalog()
    if "catalog" in data:
        if not isinstance(data["catalog"], str) or not data["catalog"]:
            raise FleetoptError("catalog", f"must be the path of a catalog TOML file, got "
                                f"{data['catalog']!r}")
        catalog = Catalog.default().extend_from_file(base / data["catalog"], "catalog")
    origin: dict[str, str] = {}

    # workload
    wl = data.get("workload")
    if not wl:
        raise FleetoptError("workload", "missing [workload] with name|trace|cdf and rate")
    sources = [k for k in ("name", "trace", "cdf") if k in wl]
    if len(sources) != 1:
        raise FleetoptError("workload", "give exactly one of name, trace or cdf")
    src = sources[0]
    path = wl[src]
    if not isinstance(path, str) or not path:
        raise FleetoptError(f"workload.{src}", f"must be a non-empty string, got {path!r}")
    rate = _value(wl, "rate", "workload.rate")
    origin["rate"] = "config" if rate is not None else "trace"
    frac = check_input_fraction(wl["input_fraction"]) if "input_fraction" in wl else None
    if "timestamp_unit" in wl and src != "trace":
        raise FleetoptError("workload.timestamp_unit", "applies to a trace file's timestamps "
                            f"only; remove it (this workload is a "
                            f"{'CDF' if src == 'cdf' else 'built-in workload'})")
    unit = _value(wl, "timestamp_unit", "workload.timestamp_unit", "auto")
    over = _value(wl, "over_max_ctx", "workload.over_max_ctx", "error")
    if src == "name":
        workload = builtin(path, rate if rate is not None else 1000.0, input_fraction=frac)
        if rate is None:
            native = workload.meta.get("trace_rate_rps")
            if native is None:
                raise FleetoptError("workload.rate", f"{workload.name} is a length distribution "
                                    "without timestamps; set rate (req/s)")
            workload = workload.with_rate(float(native))
    elif src == "trace":
        if frac is not None:
            raise FleetoptError("workload.input_fraction", "a trace has its own input and output "
                                "lengths; remove input_fraction (it applies to CDF workloads)")
        workload = from_trace_file(base / path, rate, timestamp_unit=unit)
    else:
        if rate is None:
            raise FleetoptError("workload.rate", "a CDF workload needs rate (req/s)")
        workload = from_cdf_file(base / path, rate, frac)

    model = data.get("model", {})
    fleet = data.get("fleet", {})
    slo = data.get("slo", {})
    acct = data.get("accounting", {})
    pf, pf_auto, pf_global = peak_factor_setting(slo.get("peak_factor", 1.0))
    origin["peak_factor"] = "config" if "peak_factor" in slo else "default"
    dflt = Settings()
    phys_tab = dict(data.get("physics", {}))
    serving = {attr: _value(phys_tab, key, f"physics.{key}")
               for key, attr in PHYSICS_SETTINGS.items() if key in phys_tab}
    for key in PHYSICS_SETTINGS:
        phys_tab.pop(key, None)
    settings = Settings(
        ttft_p99_ms=_value(slo, "ttft_p99_ms", "slo.ttft_p99_ms", dflt.ttft_p99_ms),
        utilization_cap=_value(fleet, "utilization_cap", "fleet.utilization_cap",
                               dflt.utilization_cap),
        accounting=_value(acct, "mode", "accounting.mode", dflt.accounting),
        quantile=_value(slo, "quantile", "slo.quantile", dflt.quantile),
        peak_factor=pf,
        prefill_tail_share=_value(slo, "prefill_tail_share", "slo.prefill_tail_share",
                                  dflt.prefill_tail_share),
        tpot_p99_ms=_value(slo, "tpot_p99_ms", "slo.tpot_p99_ms"),
        prefix_cache_hit=_value(wl, "prefix_cache_hit", "workload.prefix_cache_hit"),
        **serving,
    )
    physics = PhysicsParams()
    if "physics" in data:
        names = {f.name for f in fields(PhysicsParams)}
        badp = set(phys_tab) - names
        if badp:
            raise FleetoptError("physics", f"unknown keys {sorted(badp)}; known: "
                                f"{', '.join(sorted(names | set(PHYSICS_SETTINGS)))}")
        vals = {}
        for k, v in phys_tab.items():
            if f"physics.{k}" in FIELDS:
                vals[k] = FIELDS[f"physics.{k}"].check(v)
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise FleetoptError(f"physics.{k}", f"must be a number, got {v!r}")
            vals[k] = v
        physics = replace(physics, **vals)
    raw_inv = data.get("inventory", {})
    for g, n in raw_inv.items():
        if isinstance(n, float):  # a count in a config is written as a whole number
            raise FleetoptError(f"inventory.{g}", f"must be a whole number of GPUs, got {n!r}")
    inventory = list(check_inventory(raw_inv).items())
    budget = data.get("budget", {})
    kv_keys = [(sec, d) for sec, d in (("fleet", fleet), ("model", model)) if "kv_dtype" in d]
    kv = {_value(d, "kv_dtype", f"{sec}.kv_dtype").lower() for sec, d in kv_keys}
    if len(kv) > 1:
        raise FleetoptError("model.kv_dtype", f"[model] and [fleet] give different kv_dtype "
                            f"({', '.join(sorted(kv))}); give it once")
    for key, sec, d in (("model.dtype", "dtype", model), ("fleet.tp", "tp", fleet),
                        ("fleet.gpus", "gpus", fleet), ("max_ctx", "max_ctx", fleet),
                        ("fleet.ep", "ep", fleet)):
        origin[key] = "config" if sec in d else "default"
    pools = fleet.get("pool")
    if pools is not None and (not isinstance(pools, list) or not pools):
        raise FleetoptError("fleet.pool", "give the pools as [[fleet.pool]] tables")
    dp = {f.name: f.default for f in fields(Problem) if f.init}  # Problem's own defaults
    bnds = fleet.get("boundaries")
    kw: dict[str, Any] = dict(
        workload=workload,
        model=_value(model, "name", "model.name", dp["model"]),
        settings=settings,
        gpus=_value(fleet, "gpus", "fleet.gpus", dp["gpus"]),
        tp=_value(fleet, "tp", "fleet.tp", dp["tp"]),
        ep=_value(fleet, "ep", "fleet.ep", dp["ep"]),
        dtypes=_value(model, "dtype", "model.dtype", dp["dtypes"]),
        kv_dtype=kv.pop() if kv else dp["kv_dtype"],
        max_pools=_value(fleet, "max_pools", "fleet.max_pools", dp["max_pools"]),
        max_ctx=_value(fleet, "max_ctx", "fleet.max_ctx"),
        boundaries=tuple(bnds if isinstance(bnds, list | tuple) else [bnds])
        if "boundaries" in fleet else None,
        compress_gamma=_value(fleet, "compress_gamma", "fleet.compress_gamma"),
        budget_per_hr=_value(budget, "cost_per_hr", "budget.cost_per_hr"),
        inventory=tuple(inventory),
        max_gpus=_value(fleet, "max_gpus", "fleet.max_gpus"),
        objective=_value(data.get("objective", {}), "minimize", "objective.minimize",
                         dp["objective"]),
        catalog=catalog,
        physics=physics,
        fleet=Fleet.from_list(pools, "fleet") if pools is not None else None,
        name=str(data.get("name", name)),
        over_max_ctx=over,
        peak_factor_auto=pf_auto,
        peak_factor_global=pf_global,
        origin=origin,
    )
    kw.update(overrides)
    return Problem(**kw)
