"""``solve(problem)``: the N-pool fleet MIP from candidates to an exactly evaluated plan.

It builds the candidate pools (:mod:`fleetopt.sizing.candidates`), assembles the MIP
(:mod:`.data`), solves it with HiGHS (directly through highspy by default, :mod:`.highs`, or
through a Pyomo model with any Pyomo MIP solver, :mod:`.pyomo`), re-evaluates the chosen fleet
with the exact evaluator and returns a :class:`~fleetopt.planners.solution.Solution`; an
infeasible problem is explained (:mod:`.explain`). The formulation is stated symbol for symbol
in ``docs/formulation.md``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fleetopt.core.deadline import Deadline
from fleetopt.core.errors import FleetoptError
from fleetopt.core.status import Status
from fleetopt.evaluation import evaluate_plan
from fleetopt.planners.mip.bounds import path_bound
from fleetopt.planners.mip.data import MipData, SolverRun, build_mip_data
from fleetopt.planners.mip.explain import diagnose
from fleetopt.planners.mip.highs import solve_highspy
from fleetopt.planners.mip.pyomo import DEFAULT_MIP_GAP, solve_pyomo
from fleetopt.planners.solution import Solution
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import CandidateSet, build_candidates
from fleetopt.sizing.limits import Limits, objective_key, pick

__all__ = ["BACKENDS", "explain_infeasible", "plan_solution", "solve"]

BACKENDS = ("auto", "highspy", "pyomo")


def _plan_from_x(problem: Problem, data: MipData, x: np.ndarray) -> tuple[Fleet, float, float]:
    """The fleet a MIP solution describes, and its model watts and dollars."""
    pools = []
    model_power = 0.0
    model_cost = 0.0
    for j, s, n in data.pools(x):
        c = data.cset.candidates[j]
        pools.append(PoolSpec.on(c.deployment, c.lo, c.hi, n, c.window))
        _lo, _hi, alpha, beta = c.segs[s]  # the segment's line at its count
        model_power += float(alpha + beta * n)
        model_cost += c.cost_per_instance_hr * n
    pools.sort(key=lambda p: p.ctx_lo)
    return Fleet(tuple(pools)), model_power, model_cost


def _baseline_warm_start(problem: Problem, data: MipData) -> tuple[np.ndarray | None, str | None]:
    """The best one- or two-pool plan among the candidates, as a MIP start.

    These are the homogeneous, pool-routing and (with compress bands) two-pool FleetOpt plans of
    :mod:`fleetopt.planners.baselines` on the candidate boundaries, each pool at its smallest
    SLO-meeting count: read off the already sized candidates, so no physics is recomputed.
    """
    cands = data.cset.candidates
    K = data.cset.K
    objective = objective_key(problem.objective)
    limits = Limits.of(problem)

    def ok(plan: list[Any]) -> bool:
        used: dict[str, int] = {}
        for c in plan:
            used[c.inventory_key] = used.get(c.inventory_key, 0) + c.gpus(c.n_min)
        return limits.allows(sum(c.cost_per_hr(c.n_min) for c in plan), used, len(plan))

    index = {id(c): j for j, c in enumerate(cands)}
    by_start: dict[int, list[Any]] = {}
    for c in cands:
        by_start.setdefault(c.i, []).append(c)
    best: tuple[float, list[Any], str] | None = None
    for c in by_start.get(0, []):
        plans = [[c]] if c.k == K else [[c, d] for d in by_start.get(c.k, []) if d.k == K]
        for plan in plans:
            if not ok(plan):
                continue
            v = sum(pick(objective, c2.linearized_power_w(c2.n_min), c2.cost_per_hr(c2.n_min))
                    for c2 in plan)
            kind = "homogeneous" if len(plan) == 1 else (
                "two-pool" if plan[0].window < plan[0].hi else "pool-routing")
            if best is None or v < best[0]:
                best = (v, plan, kind)
    if best is None:
        return None, None
    return data.point([(index[id(c)], 0, c.n_min) for c in best[1]]), best[2]


_CANDIDATE_SHARE = 0.7  # of a time limit, the most candidate building may use


def _eval_reserve_s(limit_s: float) -> float:
    """Seconds kept back from HiGHS for evaluating the plan and assembling the answer."""
    return 0.03 + 0.02 * limit_s


def solve(
    problem: Problem,
    time_limit: float | None = None,
    mip_gap: float = DEFAULT_MIP_GAP,
    threads: int | None = None,
    solver: str = "highs",
    *,
    backend: str = "auto",
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    warm_start: bool = True,
    explain: bool = True,
    candidates: CandidateSet | None = None,
) -> Solution:
    """Find the minimum-watt (or minimum-cost) fleet for ``problem``.

    Parameters
    ----------
    time_limit: seconds for the WHOLE run (None: no limit): candidate building (which stops
        between batches at 70 % of it), the MIP (HiGHS gets what is left), the exact
        evaluation and any explanation. A stopped run returns the best plan found with status
        ``time_limit``, a valid bound and its gap (``docs/formulation.md`` §6).
    mip_gap: relative optimality gap at which the solver stops (HiGHS ``mip_rel_gap``).
    solver: ``"highs"`` (default, installed) or any Pyomo MIP solver name.
    backend: ``"highspy"`` loads the arrays into HiGHS directly; ``"pyomo"`` builds the symbolic
        Pyomo model; ``"auto"`` uses highspy for HiGHS and Pyomo otherwise.
    compress: allow compress bands (window ``b_m`` below a pool's upper edge ``b_k``, with
        ``b_k <= gamma b_m``, gamma = ``problem.compress_gamma`` or 2).
    segments, headroom: power segments per candidate and its densely evaluated range (see
        ``docs/formulation.md``).
    warm_start: start HiGHS from the best baseline plan when it is representable.
    """
    if backend not in BACKENDS:
        raise FleetoptError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if mip_gap < 0:
        raise FleetoptError("mip_gap", f"must be >= 0, got {mip_gap}")
    if time_limit is not None and not time_limit > 0:
        raise FleetoptError("time_limit", f"must be > 0 s, got {time_limit}")
    use_pyomo = backend == "pyomo" or (backend == "auto" and solver.lower() != "highs")
    t_start = time.perf_counter()
    deadline = Deadline.after(time_limit)
    cset = candidates or build_candidates(problem, compress=compress, segments=segments,
                                          headroom=headroom,
                                          deadline=deadline.until(_CANDIDATE_SHARE))
    data = build_mip_data(problem, cset)
    build_s = time.perf_counter() - t_start
    obj_name = phase1 = objective_key(problem.objective)
    approach = "mip-compress" if compress else "mip"
    details: dict[str, Any] = {"candidates": len(cset.candidates), "columns": data.ncol,
                               "rows": len(data.row_names), "candidate_stats": cset.stats,
                               "backend": "pyomo" if use_pyomo else "highspy", "solver": solver,
                               "candidate_build_s": cset.build_s,
                               "candidates_complete": cset.complete}
    warm = None
    if warm_start and not use_pyomo and cset.candidates:
        warm, name = _baseline_warm_start(problem, data)
        details["warm_start"] = name

    def left() -> float | None:
        """Seconds HiGHS may use now (None: no limit)."""
        if time_limit is None:
            return None
        return deadline.remaining() - _eval_reserve_s(time_limit)

    def run(objective: str, cap: float | None, warm_x: np.ndarray | None) -> SolverRun:
        limit = left()
        c = data.objective(objective)
        if limit is not None and limit < 0.01:  # no time for a solve: the start is the answer
            obj = None if warm_x is None else float(c @ warm_x)
            return SolverRun(Status.TIME_LIMIT, warm_x, obj, None, None, 0.0, 0.0,
                             "no time left for the MIP")
        if use_pyomo:
            return solve_pyomo(problem, data, objective, cap, limit, mip_gap, threads, solver)
        extra = [] if cap is None else [(data.power_coef, -np.inf, cap)]
        return solve_highspy(data, c, extra, limit, mip_gap, threads, warm_x)

    if not cset.candidates:
        r = SolverRun(Status.INFEASIBLE, None, None, None, None, 0.0, 0.0,
                      "no candidate pool can meet the SLO")
    else:
        r = run(phase1, None, warm)
        if problem.objective == "power_then_cost" and r.x is not None and \
                r.objective is not None and r.status == Status.OPTIMAL:
            cap = r.objective * (1.0 + mip_gap) + 1e-6
            r2 = run("cost_per_hr", cap, r.x)
            if r2.x is not None:
                r2.translate_s += r.translate_s
                r2.solve_s += r.solve_s
                details["power_phase"] = {"objective": r.objective, "bound": r.bound}
                obj_name, r = "power_w", SolverRun(r2.status, r2.x, r.objective, r.bound, r.gap,
                                              r2.translate_s, r2.solve_s, r2.message)
    gamma = (problem.compress_gamma or 2.0) if compress else 1.0
    _settle_bound(problem, cset, r, phase1, time_limit, gamma, details)
    timing = {"build_s": build_s + r.model_s, "translate_s": r.translate_s, "solve_s": r.solve_s}
    if r.x is None and r.status == Status.INFEASIBLE and explain:
        r.message = explain_infeasible(problem, compress=compress, candidates=cset,
                                       deadline=deadline, details=details)
    sol = plan_solution(problem, data, r, approach, obj_name, timing, details)
    sol.timing["total_s"] = time.perf_counter() - t_start
    return sol


def _settle_bound(problem: Problem, cset: CandidateSet, r: SolverRun, objective: str,
                  time_limit: float | None, gamma: float, details: dict[str, Any]) -> None:
    """Make the run's status, bound and gap hold for the WHOLE problem.

    Stopped runs get the best of HiGHS's dual bound and :func:`path_bound`. When candidate
    building stopped at the deadline, HiGHS solved a restricted problem: its optimum, bound or
    infeasibility say nothing about the candidates not built, so the status becomes
    ``time_limit`` and the bound is :func:`path_bound` with a floor that holds for any pool on
    the ranges not fully sized (HiGHS's own bound, valid for the built candidates only, goes to
    ``details["restricted_bound"]``).
    """
    if not cset.candidates and cset.complete:
        return
    if not cset.complete:
        details["restricted_bound"] = r.bound
        details["restricted_status"] = r.status
        r.bound = None
        r.status = Status.TIME_LIMIT
    if r.status in (Status.TIME_LIMIT, Status.FEASIBLE):
        pb = path_bound(problem, cset, objective, gamma)
        if pb is not None and (r.bound is None or pb > r.bound):
            r.bound = pb
            details["bound_source"] = "path"
        elif r.bound is not None:
            details["bound_source"] = "solver"
        if r.objective is not None and r.bound is not None:
            r.bound = min(r.bound, r.objective)
            r.gap = abs(r.objective - r.bound) / max(abs(r.objective), 1e-10)
    if r.status != Status.TIME_LIMIT:
        return
    limit = f"{time_limit:g} s" if time_limit is not None else "the time limit"
    n_arcs = cset.K * (cset.K + 1) // 2
    scope = ("" if cset.complete else
             f"; candidate building stopped first ({len(cset.missing)} of {n_arcs} ranges not "
             "fully sized), so the plan is the best among the candidates built; the bound holds "
             "for the whole problem (a per-token floor for the ranges not sized)")
    if r.x is None:
        r.message = (f"time limit of {limit} reached before any feasible plan was found"
                     + scope + "; raise the time limit")
    else:
        gap = "unknown" if r.gap is None else f"{r.gap:.2%}"
        r.message = (f"stopped at the time limit of {limit}: best plan found so far, within "
                     f"{gap} of the bound" + scope)


def plan_solution(problem: Problem, data: MipData, r: SolverRun, approach: str, obj_name: str,
                  timing: dict[str, float], details: dict[str, Any]) -> Solution:
    """Turn a solver run into a :class:`Solution`: extract the plan and evaluate it exactly."""
    if r.x is None:
        return Solution(r.status, approach, obj_name, None, r.bound, None, None, None, timing,
                        r.message, details)
    fleet, model_power, model_cost = _plan_from_x(problem, data, r.x)
    result = evaluate_plan(problem, fleet)
    model_obj = pick(obj_name, model_power, model_cost)
    exact = pick(obj_name, result.power_w, result.cost_per_hr)
    status = r.status
    if not result.feasible:  # cannot happen by construction; never report it as a plan
        return Solution(Status.ERROR, approach, obj_name, None, r.bound, None, None, None, timing,
                        "internal error: the exact evaluator rejects the MIP's plan "
                        f"({r.message}); please report it", details)
    details = {**details, "model_power_w": model_power, "model_cost_per_hr": model_cost}
    return Solution(status, approach, obj_name, model_obj, r.bound, r.gap, result,
                    exact - model_obj, timing, r.message, details)


# ------------------------------------------------------------------------------------------
# explaining infeasibility


def explain_infeasible(problem: Problem, *, compress: bool = False,
                       candidates: CandidateSet | None = None, deadline: Deadline | None = None,
                       details: dict[str, Any] | None = None) -> str:
    """Say which limits make ``problem`` infeasible, with numbers, and relaxations that fix it.

    The relaxations (:func:`fleetopt.planners.mip.explain.diagnose`: each a list of
    ``{"field", "value", "current"}`` changes that together make the problem feasible) go to
    ``details["relaxations"]`` when ``details`` is given.
    """
    msg, relaxations = diagnose(problem, compress=compress, candidates=candidates,
                                deadline=deadline)
    if details is not None:
        details["relaxations"] = relaxations
    return msg
