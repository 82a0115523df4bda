"""A sweep's scenarios: their keys, the checks of their values, and the problem each one makes.

A scenario is a few changed parameters of a base problem (:data:`SCENARIO_KEYS`), each the
config setting named in :data:`fleetopt.problem.schema.SCENARIO_FIELDS` and checked by the same
schema field as in a config when the sweep loads; :func:`scenario_problem` applies a scenario
(the :class:`~fleetopt.problem.Problem` then checks the combination, and a scenario it refuses
becomes an ``invalid`` row).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import to_json
from fleetopt.problem.problem import Problem
from fleetopt.problem.schema import (
    SCENARIO_FIELDS,
    check,
    check_inventory,
    peak_factor_setting,
)
from fleetopt.problem.workload import builtin_names

__all__ = ["SCENARIO_KEYS", "as_label", "check_keys", "check_names", "label", "normalise",
           "scenario_problem"]

#: scenario keys and what they change in the base problem
SCENARIO_KEYS: dict[str, str] = {k: what for k, (_path, what) in SCENARIO_FIELDS.items()}


def _close(key: str, known: Iterable[str]) -> str:
    m = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f" (did you mean {m[0]!r}?)" if m else ""


def check_keys(d: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    known = list(known)
    bad = [k for k in d if k not in known]
    if bad:
        k = bad[0]
        raise FleetoptError(where, f"unknown key {k!r}{_close(k, known)}; known: {', '.join(known)}")


def _listify(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def normalise(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one scenario's keys and values (the schema's fields: the same checks as a config's
    values) and return it in canonical form."""
    check_keys(params, SCENARIO_KEYS, where)
    out: dict[str, Any] = {}
    for k, v in params.items():
        f = f"{where}.{k}"
        path = SCENARIO_FIELDS[k][0]
        if k in ("name", "workload"):
            if not isinstance(v, str) or not v:
                raise FleetoptError(f, f"must be a non-empty string, got {v!r}")
            out[k] = v
        elif k == "budget_per_hr" and (isinstance(v, str) and v.lower() == "none"
                                       or v == 0 and not isinstance(v, bool)):
            out[k] = None
        elif k == "inventory":
            out[k] = dict(sorted(check_inventory(v, f).items()))
        elif k == "peak_factor":
            num, auto, glob = peak_factor_setting(v, f)
            out[k] = ("auto-global" if glob else "auto") if auto else num
        else:
            assert path is not None
            val = check(path, v, f)
            out[k] = list(val) if isinstance(val, tuple) else val
    return out


def check_names(params: Mapping[str, Any], base: Problem, where: str) -> None:
    """Unknown workload, model or GPU names are input errors (not infeasible scenarios)."""
    cat = base.catalog
    if "workload" in params:
        names = builtin_names()
        if params["workload"].lower() not in {n.lower() for n in names}:
            raise FleetoptError(f"{where}.workload", f"unknown workload {params['workload']!r}"
                                f"{_close(params['workload'], names)}; known: {', '.join(names)}")
    if "model" in params:
        cat.models.canonical(params["model"], f"{where}.model")
    for g in params.get("gpus", []) + list(params.get("inventory", {})):
        if not cat.is_profile(g):
            cat.gpus.canonical(g, f"{where}.gpus")


def scenario_problem(base: Problem, params: Mapping[str, Any]) -> Problem:
    """``base`` with one scenario's changes applied (re-validated; may raise FleetoptError)."""
    changes = {SCENARIO_FIELDS[k][0]: v for k, v in params.items() if k != "name"}
    return base.with_settings({path: v for path, v in changes.items() if path is not None})


def as_label(v: Any) -> Any:
    if isinstance(v, list):
        return "+".join(str(x) for x in v)
    if isinstance(v, dict):
        return to_json(v, indent=None)
    return v




def label(name: str | None, grid: Mapping[str, Any], si: int | None, gi: int | None) -> str:
    parts = []
    if name:
        parts.append(name)
    elif si is not None:
        parts.append(f"s{si}")
    if grid:
        parts.append(",".join(f"{k}={_fmt(v)}" for k, v in grid.items()))
    return " | ".join(parts) if parts else "base"


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    return f"{v:g}" if isinstance(v, float) else str(as_label(v))
