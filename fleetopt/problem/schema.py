"""THE schema of a planning problem: every setting's config name, type and range, once.

A setting is given in a TOML config (``[slo] ttft_p99_ms = 500``), as a sweep scenario key
(``ttft_p99_ms = [300, 500]``) or in Python (``Settings(ttft_p99_ms=500)``). All three check it
with the same :class:`Field` of :data:`FIELDS`, keyed by the config name, which is also the name
every error gives: the TOML reader (:mod:`fleetopt.problem.config`) converts each value with
:meth:`Field.check`, :class:`~fleetopt.problem.problem.Problem` and
:class:`~fleetopt.problem.settings.Settings` check their fields with it on construction, and a
sweep's scenarios are checked with it when the sweep loads (:data:`SCENARIO_FIELDS` maps each
scenario key to its config name). Checks that need more than one value (a calibrated profile's
TP, names in the catalog) are the :class:`Problem`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetopt.core.errors import FleetoptError

__all__ = ["CONFIG_KEYS", "CONFIG_SECTIONS", "EP_MODES", "FIELDS", "KV_ALLOCATIONS", "MAX_RATE_RPS",
           "OBJECTIVES", "OVER_MAX_CTX", "PHYSICS_SETTINGS", "SCENARIO_FIELDS", "SETTINGS_FIELDS", "TIMESTAMP_UNITS", "TP_DEGREES", "Field", "check",
           "check_inventory", "config_name", "peak_factor_setting"]

OBJECTIVES = ("power", "cost", "power_then_cost")
#: ``[workload] over_max_ctx``: what to do with requests longer than the context served
OVER_MAX_CTX = ("error", "drop", "truncate")
#: ``[workload] timestamp_unit`` of a trace file
TIMESTAMP_UNITS = ("auto", "s", "ms")
TP_DEGREES = (1, 2, 4, 8, 16)
#: ``[physics] kv_allocation``: blocks for the tokens a sequence holds, or a window-sized slot
KV_ALLOCATIONS = ("paged", "reserved")
#: ``[fleet] ep``: the expert parallelism the planner may give a mixture-of-experts deployment:
#: ``off`` (ep = 1 only, vLLM's default), ``on`` (ep = tp at every TP > 1: vLLM
#: ``--enable-expert-parallel``), ``both`` (each pool either way: the solver chooses)
EP_MODES = ("off", "on", "both")
#: largest arrival rate accepted (a billion requests a second; beyond, the arithmetic overflows)
MAX_RATE_RPS = 1e9

#: the tables a config may have
CONFIG_SECTIONS = frozenset({"workload", "model", "slo", "fleet", "budget", "inventory",
                             "objective", "accounting", "physics", "catalog", "name",
                             "description"})
#: the keys of each table with a fixed set of keys (``[inventory]`` and ``[physics]`` have
#: their own: GPU names, and :class:`~fleetopt.physics.profiles.PhysicsParams` fields plus the
#: serving settings of :data:`PHYSICS_SETTINGS`)
CONFIG_KEYS: dict[str, frozenset[str]] = {
    "workload": frozenset({"name", "trace", "cdf", "rate", "input_fraction", "timestamp_unit",
                           "over_max_ctx", "prefix_cache_hit"}),
    "model": frozenset({"name", "dtype", "kv_dtype"}),
    "slo": frozenset({"ttft_p99_ms", "quantile", "peak_factor", "prefill_tail_share",
                      "tpot_p99_ms"}),
    "fleet": frozenset({"gpus", "tp", "max_pools", "max_ctx", "utilization_cap", "boundaries",
                        "compress_gamma", "max_gpus", "pool", "kv_dtype", "ep"}),
    "budget": frozenset({"cost_per_hr"}),
    "objective": frozenset({"minimize"}),
    "accounting": frozenset({"mode"}),
}


@dataclass(frozen=True)
class Field:
    """Type and range of one setting; ``path`` is its config name (``slo.ttft_p99_ms``).

    ``kind``: ``number`` (int or float, returned as float), ``whole`` (a whole number, as int),
    ``text`` (a non-empty string), ``names`` (a name or a list of names, as a tuple),
    ``wholes`` (a whole number or a list of them, as a tuple) or ``choice`` (one of
    ``choices``). ``lo``/``hi`` bound numbers (open
    where ``lo_open``/``hi_open``); ``unit`` is named in the message.
    """

    path: str
    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    unit: str = ""
    lower: bool = False  # names: lower-cased (precisions)
    #: where the value lives: ``Problem.<name>``, ``Settings.<name>`` (``settings.<name>``) or the
    #: workload (``workload.name``, ``workload.rate``); empty: read by the config only
    attr: str = ""

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        if self.kind == "text":
            return "a non-empty string"
        if self.kind == "names":
            return "a name or a list of names"
        what = {"number": "a number", "whole": "a whole number",
                "wholes": "a whole number or a list of them"}[self.kind]
        unit = f" {self.unit}" if self.unit else ""
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'below' if self.hi_open else 'at most'} {self.hi:g}")
        return f"{what} {' and '.join(parts)}{unit}" if parts else what

    def _bad(self, value: Any, where: str | None) -> FleetoptError:
        return FleetoptError(where or self.path, f"must be {self.describe()}, got {value!r}")

    def _in_range(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def _number(self, value: Any, where: str | None, whole: bool) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(value, where)
        if whole and (not math.isfinite(value) or value != int(value)):
            raise self._bad(value, where)
        if not self._in_range(float(value)):
            raise self._bad(value, where)
        return int(value) if whole else float(value)

    def check(self, value: Any, where: str | None = None) -> Any:
        """``value`` converted to the field's type; a :class:`FleetoptError` on ``where``
        (default: the config name) when it is of another type or out of range."""
        if self.kind in ("number", "whole"):
            return self._number(value, where, self.kind == "whole")
        if self.kind == "wholes":
            vals = list(value) if isinstance(value, list | tuple) else [value]
            if not vals:
                raise self._bad(value, where)
            return tuple(self._number(v, where, True) for v in vals)
        if self.kind == "text":
            if not isinstance(value, str) or not value:
                raise self._bad(value, where)
            return value
        if self.kind == "names":
            vals = list(value) if isinstance(value, list | tuple) else [value]
            if not vals or not all(isinstance(v, str) and v for v in vals):
                raise self._bad(value, where)
            return tuple(v.lower() for v in vals) if self.lower else tuple(vals)
        if self.kind == "choice":  # exact (a config's reader lower-cases first)
            if not isinstance(value, str) or value not in self.choices:
                raise self._bad(value, where)
            return value
        raise ValueError(f"unknown field kind {self.kind!r}")


_FIELDS = (
    Field("workload.name", "text", attr="workload.name"),
    Field("workload.rate", "number", lo=0.0, hi=MAX_RATE_RPS, lo_open=True, unit="req/s",
          attr="workload.rate"),
    Field("workload.over_max_ctx", "choice", choices=OVER_MAX_CTX, attr="over_max_ctx"),
    Field("workload.timestamp_unit", "choice", choices=TIMESTAMP_UNITS),
    Field("model.name", "text", attr="model"),
    Field("model.dtype", "names", lower=True, attr="dtypes"),
    Field("model.kv_dtype", "text", attr="kv_dtype"),
    Field("slo.ttft_p99_ms", "number", lo=0.0, lo_open=True, unit="ms",
          attr="settings.ttft_p99_ms"),
    Field("slo.quantile", "number", lo=0.5, hi=1.0, hi_open=True, attr="settings.quantile"),
    Field("slo.peak_factor", "number", lo=1.0, hi=10.0, attr="settings.peak_factor"),
    Field("slo.prefill_tail_share", "number", lo=0.0, hi=1.0,
          attr="settings.prefill_tail_share"),
    Field("fleet.gpus", "names", attr="gpus"),
    Field("fleet.tp", "wholes", attr="tp"),
    Field("fleet.max_pools", "whole", lo=1, attr="max_pools"),
    Field("fleet.max_ctx", "whole", lo=1, unit="tokens", attr="max_ctx"),
    Field("fleet.max_gpus", "whole", lo=1, attr="max_gpus"),
    Field("fleet.utilization_cap", "number", lo=0.0, hi=1.0, lo_open=True,
          attr="settings.utilization_cap"),
    Field("fleet.compress_gamma", "number", lo=1.0, hi=2.0, attr="compress_gamma"),
    Field("fleet.kv_dtype", "text", attr="kv_dtype"),
    Field("fleet.ep", "choice", choices=EP_MODES, attr="ep"),
    Field("budget.cost_per_hr", "number", lo=0.0, lo_open=True, unit="$/hr",
          attr="budget_per_hr"),
    Field("inventory", "whole", lo=0, unit="GPUs", attr="inventory"),  # each GPU = count
    Field("objective.minimize", "choice", choices=OBJECTIVES, attr="objective"),
    Field("accounting.mode", "choice", choices=("physical", "paper"),
          attr="settings.accounting"),
    Field("slo.tpot_p99_ms", "number", lo=0.0, lo_open=True, unit="ms",
          attr="settings.tpot_p99_ms"),
    Field("workload.prefix_cache_hit", "number", lo=0.0, hi=1.0, hi_open=True,
          attr="settings.prefix_cache_hit"),
    Field("physics.kv_allocation", "choice", choices=KV_ALLOCATIONS,
          attr="settings.kv_allocation"),
    Field("physics.kv_overflow_prob", "number", lo=0.0, hi=0.5, lo_open=True,
          attr="settings.kv_overflow_prob"),
    # [physics]: PhysicsParams fields with a checked range (the others are checked by
    # PhysicsParams itself); ``physics.<name>`` attributes are PhysicsParams fields
    Field("physics.max_num_batched_tokens", "whole", lo=1, hi=10_000_000, unit="tokens",
          attr="physics.max_num_batched_tokens"),
    Field("physics.max_num_seqs", "whole", lo=1, hi=10_000_000, unit="sequences",
          attr="physics.max_num_seqs"),
)
#: every setting, by config name
FIELDS: dict[str, Field] = {f.path: f for f in _FIELDS}
#: the ``[physics]`` keys that are serving settings (:class:`~fleetopt.problem.settings.
#: Settings`), not :class:`~fleetopt.physics.profiles.PhysicsParams` fields
PHYSICS_SETTINGS: dict[str, str] = {f.path.split(".", 1)[1]: f.attr.split(".", 1)[1]
                                    for f in _FIELDS if f.path.startswith("physics.")
                                    and f.attr.startswith("settings.")}

#: sweep scenario keys: what each one changes (its config name), and what it means
SCENARIO_FIELDS: dict[str, tuple[str | None, str]] = {
    "name": (None, "a label for the scenario (not part of its identity)"),
    "workload": ("workload.name", "built-in workload name (fleetopt catalog lists them)"),
    "rate_rps": ("workload.rate", "arrival rate, requests/s"),
    "ttft_p99_ms": ("slo.ttft_p99_ms", "P99 TTFT target, ms"),
    "tpot_p99_ms": ("slo.tpot_p99_ms", "P99 TPOT target, ms (mean inter-token time)"),
    "peak_factor": ("slo.peak_factor", "burst factor: a number >= 1, \"auto\" (per pool) or "
                    "\"auto-global\" (a workload with a trace)"),
    "utilization_cap": ("fleet.utilization_cap", "utilisation cap per pool, (0, 1]"),
    "model": ("model.name", "model name"),
    "dtype": ("model.dtype", "allowed weight precision(s)"),
    "gpus": ("fleet.gpus", "allowed GPU types or calibrated profiles"),
    "tp": ("fleet.tp", "allowed tensor-parallel degrees"),
    "ep": ("fleet.ep", "expert parallelism of MoE deployments: off | on | both"),
    "max_pools": ("fleet.max_pools", "most pools"),
    "max_ctx": ("fleet.max_ctx", "longest context served, tokens"),
    "budget_per_hr": ("budget.cost_per_hr", "budget in $/hr (0 or \"none\" for no budget)"),
    "inventory": ("inventory", "GPU caps, e.g. {B200 = 64}"),
    "max_gpus": ("fleet.max_gpus", "most GPUs in the fleet"),
    "objective": ("objective.minimize", "power | cost | power_then_cost"),
}


#: Settings attribute -> config name (the fields :class:`~fleetopt.problem.settings.Settings`
#: checks on construction)
SETTINGS_FIELDS: dict[str, str] = {f.attr.split(".", 1)[1]: f.path for f in _FIELDS
                                   if f.attr.startswith("settings.")}


def config_name(attr: str) -> str:
    """The config name of a :class:`~fleetopt.problem.Problem` attribute (``"tp"`` ->
    ``"fleet.tp"``; the first field of that attribute)."""
    return next(f.path for f in _FIELDS if f.attr == attr)


def check(path: str, value: Any, where: str | None = None) -> Any:
    """``FIELDS[path].check(value, where)``: the value of setting ``path``, converted."""
    return FIELDS[path].check(value, where)


def check_inventory(inventory: Mapping[str, Any], where: str = "inventory") -> dict[str, int]:
    """``{GPU: count}`` with every count a whole number >= 0 (errors on ``where.GPU``)."""
    if not isinstance(inventory, Mapping):
        raise FleetoptError(where, f"must be a table of GPU = count, got {inventory!r}")
    return {str(g): check("inventory", n, f"{where}.{g}") for g, n in inventory.items()}


def peak_factor_setting(v: Any, where: str = "slo.peak_factor") -> tuple[float, bool, bool]:
    """A peak factor setting: a number in [1, 10], "auto" (one factor per pool, estimated from
    the requests the pool receives in the workload's trace) or "auto-global" (one factor for
    every pool, from the whole trace), both by :class:`Problem`. Returns the number (1.0 as a
    placeholder for auto), whether auto, and whether global."""
    bad = f"must be a number >= 1, \"auto\" (per pool) or \"auto-global\", got {v!r}"
    if isinstance(v, str):
        mode = v.lower()
        if mode not in ("auto", "auto-global"):
            raise FleetoptError(where, bad)
        return 1.0, True, mode == "auto-global"
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FleetoptError(where, bad)
    return FIELDS["slo.peak_factor"].check(v, where), False, False
