"""The N-pool fleet MIP: formulation, backends, solve, and explanations of infeasibility.

``solve(problem)`` builds the candidate pools (:mod:`fleetopt.solvers.candidates`), assembles
the MIP (:mod:`fleetopt.solvers.mipdata`), solves it with HiGHS (directly through highspy by
default, or through a Pyomo model with any Pyomo MIP solver), re-evaluates the chosen fleet
with the exact evaluator and returns a :class:`~fleetopt.solvers.solution.Solution`.
The formulation is stated symbol for symbol in ``docs/formulation.md``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from fleetopt.errors import FleetoptError
from fleetopt.evaluate import evaluate
from fleetopt.fleet import Fleet, PoolSpec
from fleetopt.problem import Problem
from fleetopt.solvers import highs
from fleetopt.solvers.bounds import path_bound
from fleetopt.solvers.candidates import CandidateSet, build_candidates
from fleetopt.solvers.deadline import Deadline
from fleetopt.solvers.mipdata import MipData, build_mip_data
from fleetopt.solvers.solution import Solution

__all__ = ["HighsModel", "Solution", "build_pyomo_model", "explain_infeasible", "plan_solution", "solve"]

BACKENDS = ("auto", "highspy", "pyomo")


@dataclass
class SolverRun:
    status: str  # optimal | feasible | infeasible | time_limit | error
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    gap: float | None
    translate_s: float
    solve_s: float
    message: str = ""
    model_s: float = 0.0  # building the Pyomo model (Pyomo backend only)


# ------------------------------------------------------------------------------------------
# highspy backend


class HighsModel:
    """The MIP arrays loaded into HiGHS once; row bounds and costs can change between solves.

    This is the direct path (no Pyomo): studies that re-solve one model for many budgets change
    the ``budget`` row's bound and call :meth:`run` again (HiGHS keeps the model).
    """

    def __init__(self, data: MipData, c: np.ndarray,
                 extra: list[tuple[np.ndarray, float, float]] | None = None,
                 mip_gap: float = 1e-4, threads: int | None = None) -> None:
        import highspy

        t0 = time.perf_counter()
        self.data = data
        self.c = np.asarray(c, dtype=float)
        A = data.A
        rlo, rhi = data.row_lo, data.row_hi
        if extra:
            A = sparse.vstack([A] + [sparse.csr_matrix(e[0][None, :]) for e in extra]).tocsr()
            rlo = np.concatenate([rlo, [e[1] for e in extra]])
            rhi = np.concatenate([rhi, [e[2] for e in extra]])
        Acsc = A.tocsc()
        h = highs.new_highs()
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        if threads is not None:
            h.setOptionValue("threads", int(threads))
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = data.ncol
        lp.num_row_ = A.shape[0]
        lp.col_cost_ = self.c
        lp.col_lower_ = data.col_lo.astype(float)
        lp.col_upper_ = data.col_hi.astype(float)
        lp.row_lower_ = np.where(np.isinf(rlo), -inf, rlo).astype(float)
        lp.row_upper_ = np.where(np.isinf(rhi), inf, rhi).astype(float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = Acsc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = Acsc.indices.astype(np.int32)
        lp.a_matrix_.value_ = Acsc.data.astype(float)
        lp.integrality_ = [highspy.HighsVarType.kInteger] * data.ncol
        with highs.solver_output():
            h.passModel(lp)
        self.h = h
        self.runs = 0  # run() calls so far: from the second on, HiGHS holds a previous run's state
        self.translate_s = time.perf_counter() - t0

    def set_row_upper(self, row: int, upper: float) -> None:
        """Change one row's upper bound (e.g. the budget) for the next :meth:`run`."""
        import highspy

        lo = self.h.getLp().row_lower_[row]
        self.h.changeRowBounds(row, lo, highspy.kHighsInf if not np.isfinite(upper) else upper)

    def run(self, time_limit: float | None = None, warm: np.ndarray | None = None) -> SolverRun:
        """Solve the loaded model as it now stands, from the MIP start ``warm`` if given.

        Where this highspy cannot be trusted with a previous run's state
        (:func:`fleetopt.solvers.highs.warm_start_trusted`), every re-run first clears it, as a
        fresh solve starts. Every run is checked: when HiGHS reports an objective its own
        solution does not have, the run is repeated from a clean state without the start, and
        if that happens again the result is an error, never a plan.
        """
        import highspy

        h = self.h
        t1 = time.perf_counter()
        trusted = highs.warm_start_trusted()
        for attempt in range(2):
            if (self.runs and not trusted) or attempt:
                h.clearSolver()  # drop the previous run's solution and state
            self.runs += 1
            limit = highspy.kHighsInf if time_limit is None else float(time_limit)
            if attempt and time_limit is not None:  # the retry gets what is left of the limit
                limit = max(1e-3, time_limit - (time.perf_counter() - t1))
            h.setOptionValue("time_limit", limit)
            if warm is not None and not attempt:
                sol = highspy.HighsSolution()
                sol.col_value = list(np.asarray(warm, dtype=float))
                sol.value_valid = True
                h.setSolution(sol)
            highs.run(h)
            ms = h.getModelStatus()
            info = h.getInfo()
            has_x = info.primal_solution_status == 2
            x = np.asarray(h.getSolution().col_value) if has_x else None
            if x is None or highs.objective_matches(float(info.objective_function_value),
                                                    float(self.c @ x)):
                break
        else:
            t2 = time.perf_counter()
            return SolverRun("error", None, None, None, None, self.translate_s, t2 - t1,
                             "internal error: HiGHS reported objective "
                             f"{info.objective_function_value:.6g} for a solution worth "
                             f"{float(self.c @ x):.6g}; please report it")
        t2 = time.perf_counter()
        S = highspy.HighsModelStatus
        if ms == S.kOptimal:
            status = "optimal"
        elif ms in (S.kInfeasible, S.kUnboundedOrInfeasible):
            status = "infeasible"
        elif ms == S.kTimeLimit:
            status = "time_limit"
        else:
            status = "feasible" if has_x else "error"
        obj = float(info.objective_function_value) if has_x else None
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
        gap = None
        if obj is not None and bound is not None:
            gap = abs(obj - bound) / max(abs(obj), 1e-10)
        return SolverRun(status, x, obj, bound, gap, self.translate_s, t2 - t1, h.modelStatusToString(ms))


def _solve_highspy(
    data: MipData, c: np.ndarray, extra: list[tuple[np.ndarray, float, float]],
    time_limit: float | None, mip_gap: float, threads: int | None, warm: np.ndarray | None,
) -> SolverRun:
    return run_limited(HighsModel(data, c, extra, mip_gap, threads), time_limit, warm)


def run_limited(hm: HighsModel, time_limit: float | None,
                warm: np.ndarray | None = None) -> SolverRun:
    """``hm.run`` that stops within ``time_limit`` seconds (:func:`_interrupt_after`)."""
    stop = _interrupt_after(hm, time_limit)
    r = hm.run(time_limit, warm)
    if stop is not None and stop() and r.status in ("feasible", "error"):
        r.status = "time_limit"  # interrupted by us at the time limit
    return r


def _interrupt_after(hm: HighsModel, seconds: float | None) -> Any:
    """Make HiGHS stop at ``seconds`` from now through its interrupt callbacks.

    HiGHS checks its own ``time_limit`` only now and then (a 0.3 s limit ran 0.6 s, 1.7 s ran
    2.45 s on the 64-boundary benchmark); the simplex, IPM and MIP interrupt callbacks come more
    often. Returns a function telling whether the interrupt fired (None without a limit or
    without callbacks in this highspy).
    """
    h = hm.h
    if seconds is None or not hasattr(h, "cbMipInterrupt"):
        return None
    end = time.monotonic() + seconds
    fired = [False]

    def check(e: Any) -> None:
        if time.monotonic() >= end:
            fired[0] = True
            e.interrupt()

    h.cbMipInterrupt += check
    h.cbSimplexInterrupt += check
    h.cbIpmInterrupt += check
    return lambda: fired[0]


# ------------------------------------------------------------------------------------------
# Pyomo backend (symbolic model, any Pyomo MIP solver)


def build_pyomo_model(problem: Problem, cset: CandidateSet, objective: str = "power_w",
                      power_cap_w: float | None = None) -> Any:
    """The fleet MIP as a Pyomo ``ConcreteModel``, symbol for symbol as in docs/formulation.md."""
    import pyomo.environ as pe

    cands = cset.candidates
    m = pe.ConcreteModel(name="fleetopt")
    segs = {j: c.segments() for j, c in enumerate(cands)}
    m.J = pe.Set(initialize=range(len(cands)), ordered=True)
    m.JS = pe.Set(dimen=2, ordered=True,
                  initialize=[(j, s) for j in m.J for s in range(len(segs[j]))])
    m.T = pe.Set(initialize=range(cset.K + 1), ordered=True)
    m.G = pe.Set(initialize=[g for g, _ in problem.inventory], ordered=True)
    m.N_lo = pe.Param(m.JS, initialize={(j, s): segs[j][s][0] for j, s in m.JS})
    m.N_hi = pe.Param(m.JS, initialize={(j, s): segs[j][s][1] for j, s in m.JS})
    m.alpha = pe.Param(m.JS, initialize={(j, s): segs[j][s][2] for j, s in m.JS})
    m.beta = pe.Param(m.JS, initialize={(j, s): segs[j][s][3] for j, s in m.JS})
    m.cost = pe.Param(m.J, initialize={j: c.cost_per_instance_hr for j, c in enumerate(cands)})
    m.gpus = pe.Param(m.J, initialize={j: c.gpus_per_instance for j, c in enumerate(cands)})
    m.z = pe.Var(m.JS, within=pe.Binary)
    m.n = pe.Var(m.JS, within=pe.NonNegativeIntegers, bounds=lambda m, j, s: (0, m.N_hi[j, s]))
    K = cset.K

    # index the flow rows by node without quadratic scans
    by_i: dict[int, list] = {}
    by_k: dict[int, list] = {}
    for j, s in m.JS:
        by_i.setdefault(cands[j].i, []).append((j, s))
        by_k.setdefault(cands[j].k, []).append((j, s))

    def flow_fast(m: Any, t: int) -> Any:
        rhs = 1 if t == 0 else (-1 if t == K else 0)
        terms = [m.z[js] for js in by_i.get(t, [])] + [-m.z[js] for js in by_k.get(t, [])]
        if not terms:
            return pe.Constraint.Feasible if rhs == 0 else pe.Constraint.Infeasible
        return sum(terms) == rhs

    m.flow = pe.Constraint(m.T, rule=flow_fast)
    m.link_lo = pe.Constraint(m.JS, rule=lambda m, j, s: m.n[j, s] >= m.N_lo[j, s] * m.z[j, s])
    m.link_hi = pe.Constraint(m.JS, rule=lambda m, j, s: m.n[j, s] <= m.N_hi[j, s] * m.z[j, s])
    m.pools = pe.Constraint(expr=sum(m.z[js] for js in m.JS) <= problem.max_pools)
    m.power_w = pe.Expression(expr=sum(m.alpha[js] * m.z[js] + m.beta[js] * m.n[js] for js in m.JS))
    m.cost_per_hr = pe.Expression(expr=sum(m.cost[js[0]] * m.n[js] for js in m.JS))
    m.gpus_total = pe.Expression(expr=sum(m.gpus[js[0]] * m.n[js] for js in m.JS))
    if problem.budget_per_hr is not None:
        m.budget = pe.Constraint(expr=m.cost_per_hr <= problem.budget_per_hr)
    inv = dict(problem.inventory)
    if inv:
        m.inventory = pe.Constraint(m.G, rule=lambda m, g: sum(
            m.gpus[js[0]] * m.n[js] for js in m.JS if cands[js[0]].inventory_key == g
        ) <= inv[g] if any(cands[js[0]].inventory_key == g for js in m.JS) else pe.Constraint.Skip)
    if problem.max_gpus is not None:
        m.max_gpus = pe.Constraint(expr=m.gpus_total <= problem.max_gpus)
    if power_cap_w is not None:
        m.power_cap = pe.Constraint(expr=m.power_w <= power_cap_w)
    m.obj = pe.Objective(expr=m.cost_per_hr if objective == "cost_per_hr" else m.power_w,
                         sense=pe.minimize)
    return m


def _solve_pyomo(
    problem: Problem, data: MipData, objective: str, power_cap_w: float | None,
    time_limit: float | None, mip_gap: float, threads: int | None, solver: str,
) -> SolverRun:
    import pyomo.environ as pe

    cset = data.cset
    t_model = time.perf_counter()
    m = build_pyomo_model(problem, cset, objective, power_cap_w)
    model_s = time.perf_counter() - t_model
    if solver.lower() == "highs":
        from pyomo.contrib.solver.common.results import TerminationCondition as TC
        from pyomo.contrib.solver.solvers.highs import Highs

        with highs.solver_output():  # Pyomo's Highs makes highspy.Highs objects (banner)
            opt = Highs()
            t0 = time.perf_counter()
            opt.set_instance(m)
            t1 = time.perf_counter()
            res = opt.solve(
                m, time_limit=time_limit, rel_gap=mip_gap, threads=threads,
                load_solutions=False, raise_exception_on_nonoptimal_result=False,
                tee=highs.verbose(), solver_options={"random_seed": 0},
            )
            t2 = time.perf_counter()
        tc = res.termination_condition
        has = res.incumbent_objective is not None
        if has:
            res.solution_loader.load_vars()
        if tc == TC.convergenceCriteriaSatisfied:
            status = "optimal"
        elif tc in (TC.provenInfeasible, TC.infeasibleOrUnbounded, TC.locallyInfeasible):
            status = "infeasible"
        elif tc == TC.maxTimeLimit:
            status = "time_limit"
        else:
            status = "feasible" if has else "error"
        obj = float(res.incumbent_objective) if has else None
        bound = float(res.objective_bound) if res.objective_bound is not None and \
            math.isfinite(res.objective_bound) else None
        translate_s, solve_s, msg = t1 - t0, t2 - t1, str(tc)
    else:
        from pyomo.opt import SolverStatus, TerminationCondition

        with highs.solver_output():  # an availability check may start the solver
            opt = pe.SolverFactory(solver)
            available = opt is not None and opt.available(exception_flag=False)
        if not available:
            raise FleetoptError("solver", f"Pyomo solver {solver!r} is not available here; "
                                "use 'highs' (installed with fleetopt)")
        opts: dict[str, Any] = {}
        if time_limit is not None:
            key = {"gurobi": "TimeLimit", "cbc": "seconds", "glpk": "tmlim", "cplex": "timelimit",
                   "scip": "limits/time", "appsi_highs": "time_limit"}.get(solver.lower())
            if key:
                opts[key] = time_limit
        t0 = time.perf_counter()
        with highs.solver_output():
            res = opt.solve(m, load_solutions=False, options=opts, tee=highs.verbose())
        t2 = time.perf_counter()
        tc = res.solver.termination_condition
        has = len(res.solution) > 0
        if has:
            m.solutions.load_from(res)
        if tc == TerminationCondition.optimal:
            status = "optimal"
        elif tc in (TerminationCondition.infeasible, TerminationCondition.infeasibleOrUnbounded):
            status = "infeasible"
        elif tc == TerminationCondition.maxTimeLimit:
            status = "time_limit"
        else:
            status = "feasible" if has and res.solver.status == SolverStatus.ok else "error"
        obj = float(pe.value(m.obj)) if has else None
        bound = None
        translate_s, solve_s, msg = 0.0, t2 - t0, str(tc)
    x = None
    if obj is not None:
        x = np.zeros(data.ncol)
        for (j, s), (zc, nc) in data.pair.items():
            x[zc] = pe.value(m.z[j, s]) or 0.0
            x[nc] = pe.value(m.n[j, s]) or 0.0
    gap = None
    if obj is not None and bound is not None:
        gap = abs(obj - bound) / max(abs(obj), 1e-10)
    return SolverRun(status, x, obj, bound, gap, translate_s, solve_s, msg, model_s)


# ------------------------------------------------------------------------------------------
# solve


def _plan_from_x(problem: Problem, data: MipData, x: np.ndarray) -> tuple[Fleet, float, float]:
    """The fleet a MIP solution describes, and its model watts and dollars."""
    pools = []
    model_power = 0.0
    model_cost = 0.0
    for (j, _s), (zc, nc) in data.pair.items():
        if x[zc] > 0.5:
            c = data.cset.candidates[j]
            n = int(round(x[nc]))
            pools.append(PoolSpec(c.lo, c.hi, c.deployment.gpu, c.deployment.tp, n,
                                  c.deployment.dtype, c.deployment.kv_dtype,
                                  None if c.window == c.hi else c.window))
            model_power += float(data.power_coef[zc] + data.power_coef[nc] * n)
            model_cost += c.cost_per_instance_hr * n
    pools.sort(key=lambda p: p.ctx_lo)
    return Fleet(tuple(pools)), model_power, model_cost


def _baseline_warm_start(problem: Problem, data: MipData) -> tuple[np.ndarray | None, str | None]:
    """The best one- or two-pool plan among the candidates, as a MIP start.

    These are the homogeneous, pool-routing and (with compress bands) two-pool FleetOpt plans of
    :mod:`fleetopt.solvers.baselines` on the candidate boundaries, each pool at its smallest
    SLO-meeting count: read off the already sized candidates, so no physics is recomputed.
    """
    cands = data.cset.candidates
    K = data.cset.K
    objective = "cost_per_hr" if problem.objective == "cost" else "power_w"
    inv = problem.inventory_map

    def ok(plan: list[Any]) -> bool:
        if problem.max_pools < len(plan):
            return False
        cost = sum(c.cost_per_hr(c.n_min) for c in plan)
        if problem.budget_per_hr is not None and cost > problem.budget_per_hr + 1e-9:
            return False
        gpus = sum(c.gpus(c.n_min) for c in plan)
        if problem.max_gpus is not None and gpus > problem.max_gpus:
            return False
        for g, cap in inv.items():
            if sum(c.gpus(c.n_min) for c in plan if c.inventory_key == g) > cap:
                return False
        return True

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
            v = sum(c2.cost_per_hr(c2.n_min) if objective == "cost_per_hr" else
                    c2.linearized_power_w(c2.n_min) for c2 in plan)
            kind = "homogeneous" if len(plan) == 1 else (
                "two-pool" if plan[0].window < plan[0].hi else "pool-routing")
            if best is None or v < best[0]:
                best = (v, plan, kind)
    if best is None:
        return None, None
    x = np.zeros(data.ncol)
    for c in best[1]:
        zc, nc = data.pair[(index[id(c)], 0)]
        x[zc], x[nc] = 1.0, float(c.n_min)
    return x, best[2]


_CANDIDATE_SHARE = 0.7  # of a time limit, the most candidate building may use


def _eval_reserve_s(limit_s: float) -> float:
    """Seconds kept back from HiGHS for evaluating the plan and assembling the answer."""
    return 0.03 + 0.02 * limit_s


def solve(
    problem: Problem,
    time_limit: float | None = None,
    mip_gap: float = 1e-4,
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
    obj_name = "cost_per_hr" if problem.objective == "cost" else "power_w"
    phase1 = "power_w" if problem.objective in ("power", "power_then_cost") else "cost_per_hr"
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
            return SolverRun("time_limit", warm_x, obj, None, None, 0.0, 0.0,
                             "no time left for the MIP")
        if use_pyomo:
            return _solve_pyomo(problem, data, objective, cap, limit, mip_gap, threads, solver)
        extra = [] if cap is None else [(data.power_coef, -np.inf, cap)]
        return _solve_highspy(data, c, extra, limit, mip_gap, threads, warm_x)

    if not cset.candidates:
        r = SolverRun("infeasible", None, None, None, None, 0.0, 0.0, "no candidate pool can meet the SLO")
    else:
        r = run(phase1, None, warm)
        if problem.objective == "power_then_cost" and r.x is not None and r.status == "optimal":
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
    if r.x is None and r.status == "infeasible" and explain:
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
        r.status = "time_limit"
    if r.status in ("time_limit", "feasible"):
        pb = path_bound(problem, cset, objective, gamma)
        if pb is not None and (r.bound is None or pb > r.bound):
            r.bound = pb
            details["bound_source"] = "path"
        elif r.bound is not None:
            details["bound_source"] = "solver"
        if r.objective is not None and r.bound is not None:
            r.bound = min(r.bound, r.objective)
            r.gap = abs(r.objective - r.bound) / max(abs(r.objective), 1e-10)
    if r.status != "time_limit":
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
    result = evaluate(fleet, problem.workload, problem.settings, model=problem.model,
                      catalog=problem.catalog, physics=problem.physics)
    model_obj = model_cost if obj_name == "cost_per_hr" else model_power
    exact = result.cost_per_hr if obj_name == "cost_per_hr" else result.power_w
    status = r.status
    if not result.feasible:  # cannot happen by construction; never report it as a plan
        return Solution("error", approach, obj_name, None, r.bound, None, None, None, timing,
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

    The relaxations (:func:`fleetopt.solvers.explain.diagnose`: each a list of
    ``{"field", "value", "current"}`` changes that together make the problem feasible) go to
    ``details["relaxations"]`` when ``details`` is given.
    """
    from fleetopt.solvers.explain import diagnose

    msg, relaxations = diagnose(problem, compress=compress, candidates=candidates,
                                deadline=deadline)
    if details is not None:
        details["relaxations"] = relaxations
    return msg
