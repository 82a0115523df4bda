"""A planning problem: workload, model, SLO, allowed hardware and fleet-wide limits.

Built from Python, or from a TOML config (:mod:`fleetopt.problem.config`, ``docs/config.md``);
every value is checked by the schema (:mod:`fleetopt.problem.schema`). Nothing is defaulted
silently: a value is given, derived by a documented rule, or the input is an error; settings
without effect are :attr:`Problem.warnings`, and :meth:`Problem.settings_used` reports every
value used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.burst import TraceBursts
from fleetopt.physics.catalog import Catalog, ModelSpec, default_catalog
from fleetopt.physics.profiles import (
    CALIBRATED_KV_DTYPE,
    Deployment,
    PhysicsParams,
    Profile,
    check_ep,
    resolve,
)
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.schema import FIELDS, TP_DEGREES, check, peak_factor_setting
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import (
    Workload,
    auto_peak_factor,
    builtin,
    describe_share,
    fit_context,
    requests_over,
    trace_of,
)

__all__ = ["Problem", "default_boundaries"]


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
    #: the longest context served; ``None`` (given) means derived from the workload, and after
    #: construction it is always a number
    max_ctx: int = None  # type: ignore[assignment]
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
    #: ``[slo] peak_factor = "auto"``: the design-rate factor is estimated from the workload's
    #: trace (again whenever the problem is re-validated, e.g. at another rate): one per pool
    #: (:meth:`pool_peak_factor`; settings.peak_factor is then 1.0), or with
    #: ``peak_factor_global`` (``"auto-global"``) one for every pool in settings.peak_factor
    peak_factor_auto: bool = False
    peak_factor_global: bool = False
    #: where values came from ("config", "default", ...), for :meth:`settings_used`
    origin: dict[str, str] = field(default_factory=dict)
    #: ``[fleet] ep``: the expert parallelism the planner may give a mixture of experts
    #: (:data:`fleetopt.problem.schema.EP_MODES`: ``off``, ``on`` or ``both``)
    ep: str = "off"
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
        if not self.tp or any(t not in TP_DEGREES for t in self.tp):
            raise FleetoptError("fleet.tp", f"TP degrees must be among "
                                f"{', '.join(map(str, TP_DEGREES))}, got {list(self.tp)}")
        if not self.dtypes:
            raise FleetoptError("model.dtype", "list at least one weight precision")
        if isinstance(self.max_pools, float):  # a whole number, not a float that looks like one
            raise FleetoptError("fleet.max_pools", f"must be a whole number >= 1, got "
                                f"{self.max_pools}")
        check("fleet.max_pools", self.max_pools)
        mspec = cat.model(self.model)
        check("fleet.ep", self.ep)
        if self.ep == "on" and not mspec.is_moe:
            raise FleetoptError("fleet.ep", f"\"on\" needs a mixture of experts, and "
                                f"{self.model} is dense (no experts to shard); use \"off\" (or "
                                "\"both\", which lets a mixture of experts choose per pool)")
        check("workload.over_max_ctx", self.over_max_ctx)
        if self.max_ctx is not None:
            if isinstance(self.max_ctx, float):
                raise FleetoptError("fleet.max_ctx", f"must be a whole number of tokens >= 1, "
                                    f"got {self.max_ctx!r}")
            check("fleet.max_ctx", self.max_ctx)
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
        if self.compress_gamma is not None:
            check("fleet.compress_gamma", self.compress_gamma)
        if self.budget_per_hr is not None:
            check("budget.cost_per_hr", self.budget_per_hr)
        inv = []
        for g, n in self.inventory:
            key = cat.profiles.canonical(g, f"inventory.{g}") if cat.is_profile(g) else \
                cat.gpus.canonical(g, f"inventory.{g}")
            if isinstance(n, float):
                raise FleetoptError(f"inventory.{g}", f"must be a whole number of GPUs >= 0, "
                                    f"got {n!r}")
            inv.append((key, check("inventory", n, f"inventory.{g}")))
        object.__setattr__(self, "inventory", tuple(inv))
        if self.max_gpus is not None:
            check("fleet.max_gpus", self.max_gpus)
        check("objective.minimize", self.objective)
        self._check_profiles()
        deps = self.deployments()
        if not deps:
            raise FleetoptError("fleet.gpus", self._no_fit_message())
        if self.fleet is not None:
            object.__setattr__(self, "fleet", self.fleet.with_precisions(
                self.dtypes, self.kv_dtype, cat, "fleet"))
            for i, p in enumerate(self.fleet.pools):  # a given pool's ep, against the model
                if p.ep != 1:
                    resolve(p.deployment, mspec, cat, self.physics, f"fleet.pools[{i}].gpu")
        if self.peak_factor_auto:  # both cached per workload; both raise without timestamps
            if self.peak_factor_global:
                pf = _auto_peak_factor(self.workload)
            else:
                _bursts(self.workload)
                pf = 1.0
            object.__setattr__(self, "settings", replace(self.settings, peak_factor=pf))
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
        out += self._ep_warnings(deps)
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

    def _ep_warnings(self, deps: list[Deployment]) -> list[str]:
        """``[fleet] ep`` "on" or "both" without effect, or not at every TP."""
        if self.ep == "off":
            return []
        mspec = self.catalog.model(self.model)
        if not mspec.is_moe:  # "on" was refused
            return [f"fleet.ep: {self.model} is dense (no experts to shard), so "
                    f"\"{self.ep}\" has no effect"]
        out = []
        no_ep = sorted({d.tp for d in deps if d.tp > 1 and d.ep == 1} - {
            d.tp for d in deps if d.ep > 1})
        if no_ep:
            out.append(f"fleet.ep: {mspec.name}'s {mspec.experts} routed experts do not divide "
                       f"over TP {', '.join(map(str, no_ep))}, so those deployments keep ep = 1")
        elif not any(d.ep > 1 for d in deps):
            out.append(f"fleet.ep: no allowed deployment has TP > 1 (expert parallelism splits "
                       f"the experts over an instance's TP GPUs), so \"{self.ep}\" has no effect")
        return out

    # --- derived -----------------------------------------------------------------------
    @property
    def inventory_map(self) -> dict[str, int]:
        return dict(self.inventory)

    def profile(self, d: Deployment) -> Profile:
        return resolve(d, self.model, self.catalog, self.physics)

    def deployments(self) -> list[Deployment]:
        """Allowed deployments on which the model fits (calibrated profiles have their own TP):
        every GPU x TP x dtype, and for a mixture of experts each expert-parallel degree
        ``[fleet] ep`` allows (:meth:`ep_degrees`)."""
        out: list[Deployment] = []
        mspec = self.catalog.model(self.model)
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
                    for ep in self.ep_degrees(mspec, t):
                        d = Deployment(g, t, dt, self.kv_dtype, ep)
                        if self.profile(d).fit_error() is None:
                            out.append(d)
        return list(dict.fromkeys(out))

    def ep_degrees(self, mspec: ModelSpec, tp: int) -> tuple[int, ...]:
        """The expert-parallel degrees ``[fleet] ep`` allows a deployment of ``mspec`` at TP
        ``tp``: 1 (``off``; a dense model; TP 1; routed experts that do not divide over ``tp``
        GPUs), ``tp`` (``on``: vLLM ``--enable-expert-parallel``), or both (``both``)."""
        if self.ep == "off" or tp == 1 or not mspec.is_moe:
            return (1,)
        try:
            check_ep(mspec, tp, tp)
        except FleetoptError:
            return (1,)
        return (tp,) if self.ep == "on" else (1, tp)

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

    @property
    def per_pool_peak_factors(self) -> bool:
        """``[slo] peak_factor = "auto"``: every pool is sized at its own factor
        (:meth:`pool_peak_factor`) instead of settings.peak_factor."""
        return self.peak_factor_auto and not self.peak_factor_global

    def pool_peak_factor(self, lo: int, hi: int) -> float:
        """The design-rate factor of the pool of total lengths ``(lo, hi]``: with per-pool
        factors, :meth:`fleetopt.physics.burst.TraceBursts.factor` of the trace's requests the
        pool receives (a pool reaching ``max_ctx`` also those longer, as the router sends them
        to the last pool), computed once per range; else settings.peak_factor."""
        if not self.per_pool_peak_factors:
            return self.settings.peak_factor
        top = math.inf if hi >= self.max_ctx else float(hi)
        return _pool_peak_factor(self.workload, float(lo), top)

    def pool_settings(self, lo: int, hi: int) -> Settings:
        """The settings that size the pool ``(lo, hi]``: settings.peak_factor replaced by
        :meth:`pool_peak_factor` when the factors are per pool (else the settings)."""
        if not self.per_pool_peak_factors:
            return self.settings
        return replace(self.settings, peak_factor=self.pool_peak_factor(lo, hi))

    def fleet_peak_factors(self, fleet: Fleet) -> list[float] | None:
        """:meth:`pool_peak_factor` of each pool of ``fleet`` (its last pool takes every longer
        request), or None when the factors are not per pool."""
        if not self.per_pool_peak_factors:
            return None
        last = len(fleet.pools) - 1
        return [self.pool_peak_factor(p.ctx_lo, self.max_ctx if k == last else p.ctx_hi)
                for k, p in enumerate(fleet.pools)]

    def with_(self, **changes: Any) -> Problem:
        """A copy with some fields changed (re-validated). A changed value no longer has the
        origin it had in the config; new settings with another peak factor end ``"auto"``."""
        origin = dict(self.origin)
        if "max_ctx" not in changes and origin.get("max_ctx") == "default":
            changes["max_ctx"] = None  # derived from the workload: derive it again
        for k in ("max_ctx", "dtypes", "tp", "gpus", "ep"):
            if k in changes and changes[k] is not None:
                origin[_ORIGIN_KEYS.get(k, k)] = "set"
        if "workload" in changes:
            origin["rate"] = "set"
        if "settings" in changes and "peak_factor_auto" not in changes and \
                changes["settings"].peak_factor != self.settings.peak_factor:
            changes["peak_factor_auto"] = False
            origin["peak_factor"] = "set"
        elif changes.get("peak_factor_auto") is False and "settings" in changes:
            origin["peak_factor"] = "set"  # a number set explicitly (with_settings)
        changes.setdefault("origin", origin)
        return replace(self, **changes)

    def with_settings(self, changes: Mapping[str, Any]) -> Problem:
        """A copy with settings changed by their config names (:data:`fleetopt.problem.schema.
        FIELDS`): ``{"slo.ttft_p99_ms": 300, "inventory.B200": 64, "workload.rate": 500}``.
        ``inventory`` (a table) replaces every cap, ``inventory.<GPU>`` one; ``workload.name``
        is a built-in workload (at ``workload.rate``, or this problem's rate). What a sweep's
        scenario and an explanation's relaxation apply."""
        kw: dict[str, Any] = {}
        st: dict[str, Any] = {}
        ph: dict[str, Any] = {}
        inv = dict(self.inventory)
        wl: dict[str, Any] = {}
        for path, v in changes.items():
            value: Any = tuple(v) if isinstance(v, list) else v
            if path == "slo.peak_factor":  # a number, "auto" or "auto-global"
                num, auto, glob = peak_factor_setting(value)
                st["peak_factor"] = num
                kw["peak_factor_auto"], kw["peak_factor_global"] = auto, glob
                continue
            attr = "inventory" if path.startswith("inventory.") else (
                FIELDS[path].attr if path in FIELDS else "")
            if not attr:
                raise ValueError(f"unknown setting {path!r}")
            if path.startswith("inventory."):
                inv[path.split(".", 1)[1]] = int(value)
            elif attr == "inventory":
                inv = dict(value)
            elif attr.startswith("settings."):
                st[attr.split(".", 1)[1]] = value
            elif attr.startswith("workload."):
                wl[attr.split(".", 1)[1]] = value
            elif attr.startswith("physics."):
                ph[attr.split(".", 1)[1]] = FIELDS[path].check(value)
            else:
                kw[attr] = value
        rate = wl.get("rate", self.workload.rate_rps)
        if "name" in wl:
            kw["workload"] = builtin(wl["name"], rate, "workload")
        elif "rate" in wl:
            kw["workload"] = self.workload.with_rate(rate)
        if inv != dict(self.inventory):
            kw["inventory"] = tuple(inv.items())
        if st:
            kw["settings"] = replace(self.settings, **st)
        if ph:
            kw["physics"] = replace(self.physics, **ph)
        return self.with_(**kw) if kw else self

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
            "peak_factor_source": ("auto-global" if self.peak_factor_global else "auto")
            if self.peak_factor_auto else self.origin.get("peak_factor", "set"),
            "ttft_p99_ms": st.ttft_p99_ms, "quantile": st.quantile,
            "prefill_tail_share": st.prefill_tail_share, "utilization_cap": st.utilization_cap,
            "model": self.model, "dtypes": list(self.dtypes), "kv_dtype": self.kv_dtype,
            "gpus": list(self.gpus), "tp": list(self.tp), "ep": self.ep,
            "accounting": st.accounting, "profiles": "+".join(kinds),
            "physics_overrides": physics,
            "tpot_p99_ms": st.tpot_p99_ms, "kv_allocation": st.kv_allocation,
            "kv_overflow_prob": st.kv_overflow_prob,
            "prefix_cache_hit": st.hit_share,
            "prefix_cache_hit_source": "config" if st.prefix_cache_hit is not None else "default",
            "max_num_batched_tokens": self.physics.max_num_batched_tokens,
            "max_num_seqs": self.physics.max_num_seqs,
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
            "ep": self.ep,
            "dtypes": list(self.dtypes), "max_pools": self.max_pools, "max_ctx": self.max_ctx,
            "budget_per_hr": self.budget_per_hr, "inventory": dict(self.inventory),
            "max_gpus": self.max_gpus, "objective": self.objective,
            "compress_gamma": self.compress_gamma,
        }


_ORIGIN_KEYS = {"dtypes": "model.dtype", "tp": "fleet.tp", "gpus": "fleet.gpus", "ep": "fleet.ep"}


def _trace_or_error(workload: Workload) -> dict[str, Any]:
    """The workload's trace with timestamps; an error on ``slo.peak_factor`` for a workload
    without them (nothing in a length distribution says how bursty it is)."""
    tr = trace_of(workload)
    if tr is None:
        raise FleetoptError(
            "slo.peak_factor", f"\"auto\" needs arrival timestamps, and workload "
            f"{workload.name!r} has none; set a number (1.0 for Poisson arrivals; "
            "docs/simulation.md gives values for bursty traffic)")
    return tr


@functools.lru_cache(maxsize=32)
def _auto_peak_factor(workload: Workload) -> float:
    """``[slo] peak_factor = "auto-global"``: one factor from the workload's own timestamps."""
    _trace_or_error(workload)
    return auto_peak_factor(workload)


@functools.lru_cache(maxsize=8)
def _bursts(workload: Workload) -> TraceBursts:
    """The workload's trace prepared for per-pool peak factors (once per workload)."""
    tr = _trace_or_error(workload)
    tot = np.asarray(tr["input"]) + np.asarray(tr["output"])
    return TraceBursts(tr["arrival_s"], tot, workload.rate_rps)


@functools.lru_cache(maxsize=16384)
def _pool_peak_factor(workload: Workload, lo: float, hi: float) -> float:
    """``[slo] peak_factor = "auto"``: the factor of the pool ``(lo, hi]`` (cached per range:
    a MIP's candidates of one range share it)."""
    return _bursts(workload).factor(lo, hi)


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
    for tail in (0.95, 0.99):
        r = int(math.ceil(workload.quantile_total(tail) / 256.0)) * 256
        if 256 <= r < max_ctx:
            pts.add(r)
    return sorted(pts)


