"""Why a planning problem is infeasible, and relaxations that make it feasible.

:func:`diagnose` names what binds, with numbers, and returns a list of relaxations. Each
relaxation is a set of changes to the problem (``{"field", "value", "current"}``, fields named
as in the config: ``budget.cost_per_hr``, ``inventory.<GPU>``, ``fleet.max_gpus``,
``fleet.max_pools``, ``slo.ttft_p99_ms``, ``slo.prefill_tail_share``, ``fleet.kv_dtype``,
``fleet.tp``, ``fleet.max_ctx``) that TOGETHER make the problem feasible; any one relaxation of
the list suffices. Every relaxation is feasible by construction or checked by re-planning:

* fleet-wide limits (budget, GPU cap, pool count, inventories) are relaxed on the same
  candidates: one at a time, then in pairs, then all together, each time minimising the usage
  of the relaxed limits lexicographically (so "budget >= $X with this inventory, or B200
  inventory >= N with this budget" and, jointly, both extremes of the trade-off). The final plan
  of each minimisation meets every value quoted, which are rounded up;
* changes that alter the candidates themselves (SLO, prefill tail share, KV precision, TP,
  context) are verified by building the changed problem's candidates and finding a plan; when
  that plan also needs a limit relaxed, the relaxation lists both.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import sparse

from fleetopt.core.deadline import Deadline
from fleetopt.core.status import Status
from fleetopt.planners.mip.data import MipData, build_mip_data
from fleetopt.planners.mip.highs import HighsModel, run_limited
from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import CandidateSet, build_candidates
from fleetopt.sizing.sizer import Sizer

_MIP_S = 30.0  # seconds per explanation MIP at most (also bounded by the deadline)


class _Stopped(Exception):
    """The deadline passed during the explanation."""


def diagnose(problem: Problem, *, compress: bool = False,
             candidates: CandidateSet | None = None, deadline: Deadline | None = None,
             depth: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """``(message, relaxations)`` for an infeasible ``problem`` (see the module docstring)."""
    deadline = deadline or Deadline()
    try:
        return _diagnose(problem, compress, candidates, deadline, depth)
    except _Stopped:
        return ("infeasible: the explanation stopped undecided (time limit reached, or a "
                f"solve of its own ran {_MIP_S:g} s); raise the time limit to learn which "
                "limits bind", [])


def _diagnose(problem: Problem, compress: bool, cset: CandidateSet | None, deadline: Deadline,
              depth: int) -> tuple[str, list[dict[str, Any]]]:
    if cset is None:
        cset = build_candidates(problem, compress=compress, deadline=deadline)
        if not cset.complete:
            raise _Stopped
    K = cset.K
    top = [c for c in cset.candidates if c.k == K]
    if not top:
        if all(problem.profile(d).slots(problem.max_ctx) < 1 for d in problem.deployments()):
            reason = (f"fleet.max_ctx: no allowed deployment has a KV slot for a "
                      f"{problem.max_ctx}-token window")
            return _finish(reason, _slot_options(problem, compress, deadline, depth))
        reason, slo_opts = _slo_reason(problem, compress, deadline, depth)
        return _finish(reason, slo_opts)
    data = build_mip_data(problem, cset)
    groups = _limit_groups(problem)
    everything = [g for grp in groups.values() for g in grp]
    if _lex(problem, data, everything, [], deadline) is None:
        reason = ("the candidate pools cannot cover every request length at this SLO "
                  "(even without budget, inventory, GPU or pool limits)")
        return _finish(reason, _slo_search(problem, compress, deadline, depth))
    opts: list[dict[str, Any]] = []
    for name, grp in groups.items():  # one limit at a time (each inventory type alone)
        for lim in (grp if name == "inventory" else [grp[0]]):
            got = _lex(problem, data, [lim], [lim], deadline)
            if got is not None:
                opt = _option(problem, got, [lim])
                opt["text"] += ", with the other limits as they are"
                opts.append(opt)
    if not opts and len(groups.get("inventory", [])) > 1:
        inv = groups["inventory"]
        got = _lex(problem, data, inv, ["inventory:*"], deadline)
        if got is not None:
            opts.append(_option(problem, got, inv))
    if not opts:  # together: pairs of limits, then all of them, each leading once
        names = list(groups)
        pairs = [[a, b] for ia, a in enumerate(names) for b in names[ia + 1:]]
        for subsets in (pairs, [names] if len(names) > 2 else []):
            for sub in subsets:
                relaxed = [g for n in sub for g in groups[n]]
                for lead in sub:
                    order = [_usage_name(n, groups) for n in [lead, *(m for m in sub if m != lead)]]
                    got = _lex(problem, data, relaxed, order, deadline)
                    if got is not None:
                        opt = _option(problem, got, relaxed)
                        if opt["changes"] and opt not in opts:
                            opts.append(opt)
            if opts:
                break
    bound = [n for n in groups if any(_group_of(ch["field"]) == n for o in opts
                                      for ch in o["changes"])]
    reason = ("these limits cannot all hold: " + "; ".join(_limit_text(problem, n) for n in bound)
              if bound else "the fleet-wide limits cannot all hold")
    return _finish(reason, opts)


# ------------------------------------------------------------------------------------------
# fleet-wide limits on the same candidates

def _group_of(field: str) -> str:
    if field.startswith("inventory."):
        return "inventory"
    return {"budget.cost_per_hr": "budget", "fleet.max_gpus": "max_gpus",
            "fleet.max_pools": "pools"}.get(field, "")


def _limit_groups(problem: Problem) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    if problem.budget_per_hr is not None:
        groups["budget"] = ["budget"]
    if problem.inventory:
        groups["inventory"] = [f"inventory:{g}" for g, _ in problem.inventory]
    if problem.max_gpus is not None:
        groups["max_gpus"] = ["max_gpus"]
    groups["pools"] = ["pools"]
    return groups


def _usage_name(group: str, groups: dict[str, list[str]]) -> str:
    if group == "inventory":
        return "inventory:*" if len(groups["inventory"]) > 1 else groups["inventory"][0]
    return group


def _limit_text(problem: Problem, name: str) -> str:
    if name == "budget":
        return f"budget.cost_per_hr = ${problem.budget_per_hr:,.2f}/hr"
    if name == "max_gpus":
        return f"fleet.max_gpus = {problem.max_gpus}"
    if name == "pools":
        return f"fleet.max_pools = {problem.max_pools}"
    return ", ".join(f"inventory.{g} = {n}" for g, n in problem.inventory)


def _lex(problem: Problem, data: MipData, relaxed: list[str], order: list[str],
         deadline: Deadline) -> dict[str, float] | None:
    """Relax the limits in ``relaxed``, minimise the usages in ``order`` one after the other
    (each kept at its optimum for the next) and return every usage of the final plan.

    Usages: ``budget`` ($/hr), ``max_gpus`` (GPUs), ``pools``, ``inventory:<g>`` (GPUs of
    type g) and ``inventory:*`` (GPUs beyond the inventories, summed over the relaxed types).
    None when even the relaxed problem has no plan.
    """
    rows = list(data.row_names)
    rhi = data.row_hi.copy()
    A = data.A
    ncol = data.ncol
    inv_rel = [g.split(":", 1)[1] for g in relaxed if g.startswith("inventory:")]
    for lim in relaxed:
        if lim in ("budget", "max_gpus", "pools") and lim in rows:
            rhi[rows.index(lim)] = np.inf
    k = len(inv_rel)
    if k:  # one slack column per relaxed inventory row: used - slack <= cap
        idx = [rows.index(f"inventory[{g}]") for g in inv_rel]
        S = sparse.csr_matrix((-np.ones(k), (idx, np.arange(k))), shape=(A.shape[0], k))
        A = sparse.hstack([A, S]).tocsr()
    big = float(sum(c.gpus_per_instance * c.n_max for c in data.cset.candidates)) + 1.0
    e = replace(data, A=A, row_hi=rhi, col_lo=np.concatenate([data.col_lo, np.zeros(k)]),
                col_hi=np.concatenate([data.col_hi, np.full(k, big)]))
    pad = np.zeros(k)
    zmask = (data.col_kind == 0).astype(float)
    usage: dict[str, np.ndarray] = {
        "budget": np.concatenate([data.cost_coef, pad]),
        "max_gpus": np.concatenate([data.gpu_coef, pad]),
        "pools": np.concatenate([zmask, pad]),
        "inventory:*": np.concatenate([np.zeros(ncol), np.ones(k)]),
    }
    keys = np.array([c.inventory_key for c in data.cset.candidates])[data.col_cand]
    for g, _ in problem.inventory:
        usage[f"inventory:{g}"] = np.concatenate([data.gpu_coef * (keys == g), pad])
    fixed: list[tuple[np.ndarray, float, float]] = []
    x = None
    goals = order or ["pools"]
    for name in goals:
        c = usage[name]
        left = deadline.remaining()
        if left <= 0.02:
            raise _Stopped
        r = run_limited(HighsModel(e, c, fixed or None, mip_gap=1e-6), min(_MIP_S, left))
        if r.x is None:
            if r.status != Status.INFEASIBLE:
                raise _Stopped  # undecided: no claim either way
            return None
        x = r.x
        v = float(c @ x)
        fixed.append((c, -np.inf, v + 1e-7 * max(1.0, abs(v))))
    assert x is not None
    return {name: float(vec @ x) for name, vec in usage.items()}


def _option(problem: Problem, got: dict[str, float], relaxed: list[str]) -> dict[str, Any]:
    """The changes that the final plan of :func:`_lex` needs, values rounded up to be typed."""
    changes: list[dict[str, Any]] = []
    for lim in relaxed:
        if lim == "budget":
            assert problem.budget_per_hr is not None  # relaxed only when set
            v = math.ceil(got["budget"] * 100.0 - 1e-6) / 100.0
            if v > problem.budget_per_hr:
                changes.append({"field": "budget.cost_per_hr", "value": v,
                                "current": problem.budget_per_hr})
        elif lim == "max_gpus":
            assert problem.max_gpus is not None  # relaxed only when set
            v = int(round(got["max_gpus"]))
            if v > problem.max_gpus:
                changes.append({"field": "fleet.max_gpus", "value": v, "current": problem.max_gpus})
        elif lim == "pools":
            v = int(round(got["pools"]))
            if v > problem.max_pools:
                changes.append({"field": "fleet.max_pools", "value": v,
                                "current": problem.max_pools})
        else:
            g = lim.split(":", 1)[1]
            cap = problem.inventory_map[g]
            v = int(round(got[lim]))
            if v > cap:
                changes.append({"field": f"inventory.{g}", "value": v, "current": cap})
    return {"changes": changes, "text": " together with ".join(_change_text(c) for c in changes)}


def _change_text(ch: dict[str, Any]) -> str:
    f, v, cur = ch["field"], ch["value"], ch["current"]
    if f == "budget.cost_per_hr":
        return f"budget must be at least ${v:,.2f}/hr (budget.cost_per_hr is ${cur:,.2f}/hr)"
    if f == "slo.ttft_p99_ms":
        return f"the SLO must be at least {v:g} ms (slo.ttft_p99_ms is {cur:g})"
    if f == "slo.prefill_tail_share":
        return (f"slo.prefill_tail_share must be at least {v:g} (is {cur:g}): the share of the "
                "tail that prompts late by prefill alone may take")
    if f.startswith("inventory."):
        return f"{f} must be at least {v} GPUs (is {cur})"
    if f == "fleet.tp":
        return f"fleet.tp = {v} (is {cur})"
    if f in ("fleet.kv_dtype", "fleet.max_ctx"):
        return f"{f} = {v!r} (is {cur!r})"
    return f"{f} must be at least {v} (is {cur})"


def _finish(reason: str, opts: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    if not opts:
        return f"infeasible: {reason}; no relaxation found that makes it feasible", []
    if len(opts) == 1:
        return f"infeasible: {reason}. This makes it feasible: {opts[0]['text']}", opts
    listed = "; or ".join(f"({i}) {o['text']}" for i, o in enumerate(opts, 1))
    return f"infeasible: {reason}. Any one of these makes it feasible: {listed}", opts


# ------------------------------------------------------------------------------------------
# changes to the candidates: SLO, prefill margin, KV precision, TP, context


def apply_changes(problem: Problem, changes: list[dict[str, Any]]) -> Problem:
    """``problem`` with the changes of one relaxation applied (fields by their config names:
    :meth:`fleetopt.problem.Problem.with_settings`)."""
    return problem.with_settings({ch["field"]: ch["value"] for ch in changes})


def _verified(problem: Problem, changes: list[dict[str, Any]], compress: bool,
              deadline: Deadline, depth: int) -> list[dict[str, Any]]:
    """Relaxations that start with ``changes``: the changes alone if the changed problem has a
    plan, else the changes plus each relaxation of the changed problem (one level deep)."""
    try:
        p2 = apply_changes(problem, changes)
    except ValueError:
        return []
    cset = build_candidates(p2, compress=compress, deadline=deadline)
    if not cset.complete:
        raise _Stopped
    text = " together with ".join(_change_text(c) for c in changes)
    if any(c.k == cset.K for c in cset.candidates):
        data = build_mip_data(p2, cset)
        left = deadline.remaining()
        if left <= 0.02:
            raise _Stopped
        r = run_limited(HighsModel(data, data.cost_coef, mip_gap=1e-6), min(_MIP_S, left))
        if r.x is not None:
            return [{"changes": list(changes), "text": text}]
        if r.status != Status.INFEASIBLE:
            raise _Stopped
    if depth >= 1:
        return []
    _, more = _diagnose(p2, compress, cset, deadline, depth + 1)
    return [{"changes": list(changes) + o["changes"], "text": f"{text} together with {o['text']}"}
            for o in more]


def _top_pool_stats(problem: Problem, deadline: Deadline) -> list[tuple[float, float, int, Any]]:
    """Per pool that could hold the longest requests (upper edge max_ctx, window max_ctx, any
    lower boundary, any deployment with a KV slot): (least target it can meet in ms, share of
    its requests late by prefill alone at the current target, lower edge, deployment).
    Physical accounting only (in paper accounting prefill never makes a pool infeasible)."""
    st = problem.settings
    if st.accounting != "physical":
        return []
    lows = [0, *problem.candidate_boundaries()]
    sizer = Sizer(problem)
    out = []
    for d in problem.deployments():
        if deadline.expired(0.02):
            raise _Stopped
        if sizer.profile(d).slots(problem.max_ctx) < 1:
            continue
        for _members, pb in sizer.families(lows, problem.max_ctx, problem.max_ctx, [d]):
            for col in np.flatnonzero(pb.nonempty):
                floor = pb.prefill_floor_s(int(col))
                out.append((floor * 1000.0, float(pb.prefill_late_share[col]),
                            lows[int(pb.lc[col])], d))
    return out


def _slo_reason(problem: Problem, compress: bool, deadline: Deadline,
                depth: int) -> tuple[str, list[dict[str, Any]]]:
    """No pool can serve the longest requests: which part of the SLO binds, and its fix."""
    st = problem.settings
    stats = _top_pool_stats(problem, deadline)
    tail = 1.0 - st.quantile
    margin = st.prefill_late_budget
    target = st.ttft_p99_ms
    if not stats:
        return ("no allowed deployment can size a pool for the longest requests", [])
    floor_ms, _, lo_f, d_f = min(stats, key=lambda t: t[0])
    late, _, lo_l, d_l = min(((t[1], t[0], t[2], t[3]) for t in stats), key=lambda t: t[0])
    longest = problem.workload.max_total_tokens
    reason = (f"slo.ttft_p99_ms: no allowed deployment serves the longest requests ({longest} "
              f"tokens) within {target:g} ms. Even with no waiting, in the best such pool "
              f"(requests of ({lo_l}, {problem.max_ctx}] tokens on {d_l.label()}) "
              f"{late:.3%} of requests miss {target:g} ms by prefill alone, more than the "
              f"prefill tail margin allows: slo.prefill_tail_share = {st.prefill_tail_share:g} "
              f"of the {tail:.2%} tail = {margin:.3%}")
    opts: list[dict[str, Any]] = []
    need_ms = math.ceil(floor_ms * 1.001)
    if need_ms > target:
        opts += _verified(problem, [{"field": "slo.ttft_p99_ms", "value": float(need_ms),
                                     "current": target}], compress, deadline, depth)
    if late < tail * (1.0 - 1e-9):
        share = min(1.0, math.ceil(late / tail * 1000.0 + 1e-9) / 1000.0)
        if share > st.prefill_tail_share:
            opts += _verified(problem, [{"field": "slo.prefill_tail_share", "value": share,
                                         "current": st.prefill_tail_share}],
                              compress, deadline, depth)
    else:
        reason += (f"; no prefill_tail_share helps ({late:.3%} exceeds the whole {tail:.2%} "
                   "tail)")
    return reason, opts


def _slo_search(problem: Problem, compress: bool, deadline: Deadline,
                depth: int) -> list[dict[str, Any]]:
    """A looser SLO that lets the pools cover every length: the prefill margin at its widest,
    else targets 1.5x apart (each verified)."""
    st = problem.settings
    opts: list[dict[str, Any]] = []
    if st.prefill_tail_share < 1.0:
        opts += _verified(problem, [{"field": "slo.prefill_tail_share", "value": 1.0,
                                     "current": st.prefill_tail_share}], compress, deadline, depth)
    t = st.ttft_p99_ms
    for _ in range(5):
        t = float(math.ceil(t * 1.5))
        got = _verified(problem, [{"field": "slo.ttft_p99_ms", "value": t,
                                   "current": st.ttft_p99_ms}], compress, deadline, depth)
        if got:
            return opts + got
    return opts


def _slot_options(problem: Problem, compress: bool, deadline: Deadline,
                  depth: int) -> list[dict[str, Any]]:
    """No KV slot at max_ctx: an fp8 KV cache, a larger TP, or a smaller max_ctx (verified)."""
    opts: list[dict[str, Any]] = []
    if problem.kv_dtype not in ("fp8", "int8", "int4"):
        try:
            p2 = problem.with_(kv_dtype="fp8")
        except ValueError:
            p2 = None
        if p2 is not None and any(p2.profile(d).slots(p2.max_ctx) >= 1 for d in p2.deployments()):
            opts += _verified(problem, [{"field": "fleet.kv_dtype", "value": "fp8",
                                         "current": problem.kv_dtype}], compress, deadline, depth)
    for t in (2, 4, 8, 16):
        if t <= max(problem.tp):
            continue
        try:
            p2 = problem.with_(tp=(*problem.tp, t))
        except ValueError:
            continue
        if any(p2.profile(d).slots(p2.max_ctx) >= 1 for d in p2.deployments() if d.tp == t):
            opts += _verified(problem, [{"field": "fleet.tp", "value": [*problem.tp, t],
                                         "current": list(problem.tp)}], compress, deadline, depth)
            break
    longest = problem.workload.max_total_tokens
    if longest < problem.max_ctx and any(problem.profile(d).slots(longest) >= 1
                                         for d in problem.deployments()):
        opts += _verified(problem, [{"field": "fleet.max_ctx", "value": int(longest),
                                     "current": problem.max_ctx}], compress, deadline, depth)
    return opts


__all__ = ["apply_changes", "diagnose"]
