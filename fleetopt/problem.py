"""A planning problem: workload, model, SLO, allowed hardware and fleet-wide limits.

Built from Python or from a TOML config (``docs/config.md``)::

    [workload]   name = "azure" | trace = "x.csv" | cdf = "x.json";  rate = 1000
                 input_fraction (CDFs);  timestamp_unit = "auto" | "s" | "ms" (traces)
                 over_max_ctx = "error" | "drop" | "truncate"
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

Relative paths resolve against the config file's folder. Nothing is defaulted silently: a
value is given, derived by a documented rule, or the input is an error; settings without effect
are :attr:`Problem.warnings`, and :meth:`Problem.settings_used` reports every value used.
"""

from __future__ import annotations

import functools
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
from fleetopt.profiles import CALIBRATED_KV_DTYPE, Deployment, PhysicsParams, Profile, resolve
from fleetopt.workload import (
    OVER_MAX_CTX,
    TIMESTAMP_UNITS,
    Workload,
    builtin,
    check_input_fraction,
    describe_share,
    fit_context,
    from_cdf_file,
    from_trace_file,
    requests_over,
)

OBJECTIVES = ("power", "cost", "power_then_cost")
_SECTIONS = {"workload", "model", "slo", "fleet", "budget", "inventory", "objective",
             "accounting", "physics", "catalog", "name", "description"}
_KEYS = {
    "workload": {"name", "trace", "cdf", "rate", "input_fraction", "timestamp_unit",
                 "over_max_ctx"},
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
    #: what to do with requests longer than the context served: error | drop | truncate
    over_max_ctx: str = "error"
    #: ``[slo] peak_factor = "auto"``: settings.peak_factor is estimated from the workload's
    #: trace (again whenever the problem is re-validated, e.g. at another rate)
    peak_factor_auto: bool = False
    #: where values came from ("config", "default", ...), for :meth:`settings_used`
    origin: dict[str, str] = field(default_factory=dict)
    #: one-line warnings about settings that have no effect (set on validation)
    warnings: tuple[str, ...] = field(init=False, default=())

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
        if self.over_max_ctx not in OVER_MAX_CTX:
            raise FleetoptError("workload.over_max_ctx", f"must be one of "
                                f"{', '.join(map(repr, OVER_MAX_CTX))}, got {self.over_max_ctx!r}")
        if self.max_ctx is not None and (isinstance(self.max_ctx, bool) or not isinstance(
                self.max_ctx, int) or self.max_ctx < 1):
            raise FleetoptError("fleet.max_ctx", f"must be a whole number of tokens >= 1, got "
                                f"{self.max_ctx!r}")
        if self.max_ctx is not None and self.max_ctx > mspec.max_context:
            raise FleetoptError(
                "fleet.max_ctx", f"{self.max_ctx} tokens exceeds {self.model}'s maximum context "
                f"{mspec.max_context}; lower it"
            )
        origin = dict(self.origin)
        if self.max_ctx is None:
            origin["max_ctx"] = "default"
        object.__setattr__(self, "origin", origin)
        limit = self.max_ctx if self.max_ctx is not None else mspec.max_context
        if self.workload.max_total_tokens > limit:
            if self.over_max_ctx == "error":
                raise self._over_ctx_error(limit, mspec.max_context)
            object.__setattr__(self, "workload", fit_context(self.workload, limit,
                                                             self.over_max_ctx))
        max_ctx = self.max_ctx if self.max_ctx is not None else _default_max_ctx(
            self.workload.max_total_tokens, mspec.max_context)
        object.__setattr__(self, "max_ctx", int(max_ctx))
        if self.boundaries is not None:
            try:
                vals = [float(x) for x in self.boundaries]
            except (TypeError, ValueError):
                raise FleetoptError("fleet.boundaries", "must be a list of token counts, e.g. "
                                    "[1024, 4096]") from None
            if any(isinstance(x, bool) or not math.isfinite(v) or v != int(v)
                   for x, v in zip(self.boundaries, vals, strict=True)):
                raise FleetoptError("fleet.boundaries", "token counts must be whole numbers")
            b = [int(v) for v in vals]
            for x, y in zip(b, b[1:], strict=False):
                if y <= x:
                    raise FleetoptError(
                        "fleet.boundaries", f"must be strictly increasing, without repeats: "
                        f"{y} follows {x}; list them in order, each once")
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
        self._check_profiles()
        deps = self.deployments()
        if not deps:
            raise FleetoptError("fleet.gpus", self._no_fit_message())
        if self.fleet is not None:
            object.__setattr__(self, "fleet", self.fleet.with_precisions(
                self.dtypes, self.kv_dtype, cat, "fleet"))
        if self.peak_factor_auto:
            object.__setattr__(self, "settings", replace(
                self.settings, peak_factor=_auto_peak_factor(self.workload)))
        object.__setattr__(self, "warnings", self._warnings(deps))

    def _check_profiles(self) -> None:
        """A calibrated profile has one TP and one dtype: the problem must allow them."""
        for g in self.gpus:
            if not self.catalog.is_profile(g):
                continue
            spec = self.catalog.profiles[g]
            for fname, have, allowed in (("fleet.tp", spec.tp, self.tp),
                                         ("model.dtype", spec.dtype, self.dtypes)):
                if have not in allowed:
                    dflt = " (the default)" if self.origin.get(fname) == "default" else ""
                    raise FleetoptError(
                        fname, f"calibrated profile {g!r} has only TP{spec.tp} {spec.dtype}, and "
                        f"{fname} is {list(allowed)}{dflt}; add {have!r} to {fname} (or use a "
                        "GPU type instead of the profile)")

    def _over_ctx_error(self, limit: int, model_max: int) -> FleetoptError:
        """Requests longer than the context served: how many, and what can be done."""
        share, count = requests_over(self.workload, limit)
        longest = self.workload.max_total_tokens
        given = self.max_ctx is not None
        where = f"fleet.max_ctx = {limit}" if given else \
            f"{self.model}'s maximum context ({limit} tokens)"
        opts = []
        if given and longest <= model_max:
            opts.append(f"raise fleet.max_ctx to {longest} or more (up to {model_max})")
        opts.append('set [workload] over_max_ctx = "drop" (plan without them) or "truncate" '
                    "(cut their prompts to fit)")
        if longest > model_max:
            longer = sorted(m.name for m in self.catalog.models.values()
                            if m.max_context >= longest)
            if longer:
                opts.append(f"use a model with a longer context ({', '.join(longer)})")
        return FleetoptError(
            "fleet.max_ctx" if given else "workload",
            f"{describe_share(share, count)} are longer than {where}, up to {longest} tokens; "
            + ", or ".join(opts))

    def _warnings(self, deps: list[Deployment]) -> tuple[str, ...]:
        """Settings that have no effect, and what was done to the workload, one line each."""
        out = []
        for g, _n in self.inventory:
            if g not in self.gpus:
                out.append(f"inventory.{g}: {g} is not in fleet.gpus, so this cap has no effect")
        used_tp = {d.tp for d in deps}
        for t in self.tp:
            if t not in used_tp:
                out.append(f"fleet.tp: no allowed GPU can run TP {t} (it exceeds max_tp, or the "
                           "model fits at no allowed dtype), so it has no effect")
        used_dt = {d.dtype for d in deps}
        for dt in self.dtypes:
            if dt not in used_dt:
                out.append(f"model.dtype: {self.model} in {dt} fits on no allowed GPU and TP, "
                           "so it has no effect")
        profiles = [g for g in self.gpus if self.catalog.is_profile(g)]
        if profiles and self.kv_dtype != CALIBRATED_KV_DTYPE:
            out.append(f"model.kv_dtype: {self.kv_dtype} does not apply to the calibrated "
                       f"profile{'s' if len(profiles) > 1 else ''} {', '.join(profiles)}, whose "
                       f"KV cache is fixed ({CALIBRATED_KV_DTYPE})")
        oc = self.workload.meta.get("over_max_ctx")
        if oc:
            what = describe_share(oc["share"], oc["requests"])
            done = "dropped" if oc["mode"] == "drop" else "truncated to fit"
            out.append(f"workload.over_max_ctx: {what} longer than {oc['limit_tokens']} tokens "
                       f"(up to {oc['longest_tokens']}) {done}")
        return tuple(out)

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
                out.append(Deployment(g, spec.tp, spec.dtype, CALIBRATED_KV_DTYPE))
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
        """A copy with some fields changed (re-validated). A changed value no longer has the
        origin it had in the config; new settings with another peak factor end ``"auto"``."""
        origin = dict(self.origin)
        if "max_ctx" not in changes and origin.get("max_ctx") == "default":
            changes["max_ctx"] = None  # derived from the workload: derive it again
        for k in ("max_ctx", "dtypes", "tp", "gpus"):
            if k in changes and changes[k] is not None:
                origin[_ORIGIN_KEYS.get(k, k)] = "set"
        if "workload" in changes:
            origin["rate"] = "set"
        if "settings" in changes and "peak_factor_auto" not in changes and \
                changes["settings"].peak_factor != self.settings.peak_factor:
            changes["peak_factor_auto"] = False
            origin["peak_factor"] = "set"
        changes.setdefault("origin", origin)
        return replace(self, **changes)

    def settings_used(self, candidates: int | None = None) -> dict[str, Any]:
        """The values this problem actually uses, with where each came from (the ``settings``
        object of every JSON output; :func:`settings_line` is its one-line text form)."""
        wl, st, meta = self.workload, self.settings, self.workload.meta
        trace_rate = meta.get("trace_rate_rps")
        rate_from = self.origin.get("rate", "set")
        if trace_rate is not None and math.isclose(wl.rate_rps, trace_rate, rel_tol=1e-9) and \
                rate_from != "config":
            rate_from = "trace"
        kinds = sorted({"calibrated" if self.catalog.is_profile(g) else "computed"
                        for g in self.gpus})
        dflt = PhysicsParams()
        physics = {f.name: getattr(self.physics, f.name) for f in fields(PhysicsParams)
                   if getattr(self.physics, f.name) != getattr(dflt, f.name)}
        out: dict[str, Any] = {
            "workload": wl.name, "rate_rps": wl.rate_rps, "rate_source": rate_from,
            "trace_rate_rps": trace_rate,
            "timestamp_unit": meta.get("timestamp_unit"),
            "timestamp_rule": meta.get("timestamp_rule"),
            "input_fraction": meta.get("input_fraction"),
            "input_fraction_source": meta.get("input_fraction_source"),
            "max_ctx": self.max_ctx, "max_ctx_source": self.origin.get("max_ctx", "set"),
            "over_max_ctx": self.over_max_ctx, "over_max_ctx_applied": meta.get("over_max_ctx"),
            "peak_factor": st.peak_factor,
            "peak_factor_source": "auto" if self.peak_factor_auto else
            self.origin.get("peak_factor", "set"),
            "ttft_p99_ms": st.ttft_p99_ms, "quantile": st.quantile,
            "prefill_tail_share": st.prefill_tail_share, "utilization_cap": st.utilization_cap,
            "model": self.model, "dtypes": list(self.dtypes), "kv_dtype": self.kv_dtype,
            "gpus": list(self.gpus), "tp": list(self.tp),
            "accounting": st.accounting, "profiles": "+".join(kinds),
            "physics_overrides": physics,
            "candidates": candidates,
            "warnings": list(self.warnings),
        }
        return out

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


_ORIGIN_KEYS = {"dtypes": "model.dtype", "tp": "fleet.tp", "gpus": "fleet.gpus"}


def settings_line(used: dict[str, Any]) -> str:
    """The one-line text form of :meth:`Problem.settings_used`: ``used: rate ..., ...``."""
    u = used
    src = {"trace": "the trace's own", "config": "config"}.get(u["rate_source"], u["rate_source"])
    notes = [src]
    if u.get("trace_rate_rps") is not None and u["rate_source"] != "trace":
        notes.append(f"the trace's own {u['trace_rate_rps']:,.4g} req/s")
    if u.get("timestamp_unit"):
        notes.append(f"timestamps in {u['timestamp_unit']}: {u['timestamp_rule']}")
    rate = f"rate {u['rate_rps']:,.4g} req/s ({'; '.join(notes)})"
    parts = [rate]
    if u.get("input_fraction") is not None:
        parts.append(f"input share {u['input_fraction']:g} ({u['input_fraction_source']})")
    parts.append(f"max_ctx {u['max_ctx']} ({u['max_ctx_source']})")
    oc = u.get("over_max_ctx_applied")
    if oc:
        parts.append(f"over_max_ctx {oc['mode']} ({100 * oc['share']:.2g} % of requests)")
    parts.append(f"peak factor {u['peak_factor']:.3g} ({u['peak_factor_source']})")
    parts.append(f"accounting {u['accounting']}")
    phys = f"physics {u['profiles']}"
    if u["physics_overrides"]:
        phys += " (" + ", ".join(f"{k}={v:g}" for k, v in u["physics_overrides"].items()) + ")"
    else:
        phys += " (default parameters)" if "computed" in u["profiles"] else ""
    parts.append(phys)
    if u.get("candidates") is not None:
        parts.append(f"{u['candidates']:,} candidates")
    return "used: " + ", ".join(parts)


@functools.lru_cache(maxsize=32)
def _auto_peak_factor(workload: Workload) -> float:
    """``[slo] peak_factor = "auto"``: estimated from the workload's own timestamps; an error
    for a workload without them (nothing in a length distribution says how bursty it is)."""
    from fleetopt.burst import auto_peak_factor, trace_of

    if trace_of(workload) is None:
        raise FleetoptError(
            "slo.peak_factor", f"\"auto\" needs arrival timestamps, and workload "
            f"{workload.name!r} has none; set a number (1.0 for Poisson arrivals; "
            "docs/simulation.md gives values for bursty traffic)")
    return auto_peak_factor(workload)


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


def _peak_factor(slo: dict[str, Any]) -> tuple[float, bool]:
    """``[slo] peak_factor``: a number >= 1, or "auto" (estimated from the workload's trace by
    :class:`Problem`). Returns the number (1.0 as a placeholder for auto) and whether auto."""
    v = slo.get("peak_factor", 1.0)
    if isinstance(v, str):
        if v.lower() != "auto":
            raise FleetoptError("slo.peak_factor", f"must be a number >= 1 or \"auto\", got {v!r}")
        return 1.0, True
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FleetoptError("slo.peak_factor", f"must be a number >= 1 or \"auto\", got {v!r}")
    return float(v), False


def _str(section: dict[str, Any], key: str, field_name: str, choices: tuple[str, ...] = ()) -> str:
    v = section[key]
    if not isinstance(v, str) or not v:
        raise FleetoptError(field_name, f"must be a string, got {v!r}")
    if choices and v.lower() not in choices:
        raise FleetoptError(field_name, f"must be one of {', '.join(map(repr, choices))}, "
                            f"got {v!r}")
    return v.lower() if choices else v


def _names(section: dict[str, Any], key: str, field_name: str) -> tuple[str, ...]:
    vals = _as_list(section[key])
    if not vals or not all(isinstance(v, str) and v for v in vals):
        raise FleetoptError(field_name, f"must be a name or a list of names, got {section[key]!r}")
    return tuple(vals)


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
    except UnicodeDecodeError:
        raise FleetoptError("CONFIG", f"{p} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FleetoptError("CONFIG", f"cannot read {p}: {e.strerror or e}") from None
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
    path = _str(wl, src, f"workload.{src}")
    rate = _num(wl, "rate", "workload.rate") if "rate" in wl else None
    if rate is not None and not rate > 0:
        raise FleetoptError("workload.rate", f"arrival rate must be > 0 req/s, got {rate}")
    origin["rate"] = "config" if rate is not None else "trace"
    frac = check_input_fraction(wl["input_fraction"]) if "input_fraction" in wl else None
    if "timestamp_unit" in wl and src != "trace":
        raise FleetoptError("workload.timestamp_unit", "applies to a trace file's timestamps "
                            f"only; remove it (this workload is a "
                            f"{'CDF' if src == 'cdf' else 'built-in workload'})")
    unit = _str(wl, "timestamp_unit", "workload.timestamp_unit", TIMESTAMP_UNITS) \
        if "timestamp_unit" in wl else "auto"
    over = _str(wl, "over_max_ctx", "workload.over_max_ctx", OVER_MAX_CTX) \
        if "over_max_ctx" in wl else "error"
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
    known_fleet = {"gpus", "tp", "max_pools", "max_ctx", "utilization_cap", "boundaries",
                   "compress_gamma", "max_gpus", "pool", "kv_dtype"}
    bad = set(fleet) - known_fleet
    if bad:
        raise FleetoptError("fleet", f"unknown keys {sorted(bad)}; known: {', '.join(sorted(known_fleet))}")
    pf, pf_auto = _peak_factor(slo)
    origin["peak_factor"] = "config" if "peak_factor" in slo else "default"
    settings = Settings(
        ttft_p99_ms=_num(slo, "ttft_p99_ms", "slo.ttft_p99_ms") if "ttft_p99_ms" in slo else 500.0,
        utilization_cap=_num(fleet, "utilization_cap", "fleet.utilization_cap")
        if "utilization_cap" in fleet else 0.85,
        accounting=_str(acct, "mode", "accounting.mode") if "mode" in acct else "physical",
        quantile=_num(slo, "quantile", "slo.quantile") if "quantile" in slo else 0.99,
        peak_factor=pf,
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
    kv_keys = [(sec, d) for sec, d in (("fleet", fleet), ("model", model)) if "kv_dtype" in d]
    kv = {_str(d, "kv_dtype", f"{sec}.kv_dtype").lower() for sec, d in kv_keys}
    if len(kv) > 1:
        raise FleetoptError("model.kv_dtype", f"[model] and [fleet] give different kv_dtype "
                            f"({', '.join(sorted(kv))}); give it once")
    for key, sec, d in (("model.dtype", "dtype", model), ("fleet.tp", "tp", fleet),
                        ("fleet.gpus", "gpus", fleet), ("max_ctx", "max_ctx", fleet)):
        origin[key] = "config" if sec in d else "default"
    pools = fleet.get("pool")
    if pools is not None and (not isinstance(pools, list) or not pools):
        raise FleetoptError("fleet.pool", "give the pools as [[fleet.pool]] tables")
    kw: dict[str, Any] = dict(
        workload=workload,
        model=_str(model, "name", "model.name") if "name" in model else "llama-3.1-70b",
        settings=settings,
        gpus=_names(fleet, "gpus", "fleet.gpus") if "gpus" in fleet else ("H100-SXM",),
        tp=tuple(_as_list(fleet.get("tp", [8]))),
        dtypes=tuple(d.lower() for d in _names(model, "dtype", "model.dtype"))
        if "dtype" in model else ("fp16",),
        kv_dtype=kv.pop() if kv else "fp16",
        max_pools=_num(fleet, "max_pools", "fleet.max_pools", int) if "max_pools" in fleet else 4,
        max_ctx=_num(fleet, "max_ctx", "fleet.max_ctx", int) if "max_ctx" in fleet else None,
        boundaries=tuple(_as_list(fleet["boundaries"])) if "boundaries" in fleet else None,
        compress_gamma=_num(fleet, "compress_gamma", "fleet.compress_gamma")
        if "compress_gamma" in fleet else None,
        budget_per_hr=_num(budget, "cost_per_hr", "budget.cost_per_hr") if "cost_per_hr" in budget else None,
        inventory=tuple(inventory),
        max_gpus=_num(fleet, "max_gpus", "fleet.max_gpus", int) if "max_gpus" in fleet else None,
        objective=_str(data["objective"], "minimize", "objective.minimize")
        if "minimize" in data.get("objective", {}) else "power",
        catalog=catalog,
        physics=physics,
        fleet=Fleet.from_list(pools, "fleet") if pools is not None else None,
        name=str(data.get("name", name)),
        over_max_ctx=over,
        peak_factor_auto=pf_auto,
        origin=origin,
    )
    for t in kw["tp"]:
        if isinstance(t, bool) or not isinstance(t, int):
            raise FleetoptError("fleet.tp", f"TP degrees must be whole numbers, got {t!r}")
    kw.update(overrides)
    return Problem(**kw)
