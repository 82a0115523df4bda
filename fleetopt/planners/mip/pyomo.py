"""The fleet MIP as a Pyomo model, solved by any Pyomo MIP solver (the ``pyomo`` backend).

:func:`build_pyomo_model` states the model of ``docs/formulation.md`` symbol for symbol, from
the same candidate data as the arrays of :mod:`.data` (tests check both backends agree).
:data:`SOLVER_OPTIONS` maps fleetopt's time limit, MIP gap and thread count to each solver's own
option names, in one place; :func:`solver_arguments` applies it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from fleetopt.core.errors import FleetoptError
from fleetopt.planners.mip import highs
from fleetopt.planners.mip.data import MipData, SolverRun, gap_of, run_status, single_point
from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import CandidateSet

__all__ = ["DEFAULT_MIP_GAP", "SOLVER_OPTIONS", "build_pyomo_model", "solve_pyomo",
           "solver_arguments"]

#: HiGHS's own default relative MIP gap, and fleetopt's (``solve(mip_gap=...)``)
DEFAULT_MIP_GAP = 1e-4

#: per Pyomo solver name: the option that takes the time limit (seconds), the relative MIP gap
#: and the thread count (None: the solver has no such option). ``highs`` is Pyomo's
#: ``pyomo.contrib.solver`` HiGHS interface, whose ``solve()`` takes them as keywords;
#: ``appsi_highs`` takes the time limit as ``solve(timelimit=...)`` (in its options it is
#: ignored) and HiGHS options for the rest; the others take them as solver options (the
#: command-line or API names of that solver).
SOLVER_OPTIONS: dict[str, dict[str, str | None]] = {
    "highs": {"time_limit": "time_limit", "mip_gap": "rel_gap", "threads": "threads"},
    "appsi_highs": {"time_limit": "timelimit", "mip_gap": "mip_rel_gap", "threads": "threads"},
    "gurobi": {"time_limit": "TimeLimit", "mip_gap": "MIPGap", "threads": "Threads"},
    "cplex": {"time_limit": "timelimit", "mip_gap": "mipgap", "threads": "threads"},
    "cbc": {"time_limit": "seconds", "mip_gap": "ratioGap", "threads": "threads"},
    "glpk": {"time_limit": "tmlim", "mip_gap": "mipgap", "threads": None},
    "scip": {"time_limit": "limits/time", "mip_gap": "limits/gap", "threads": None},
}
#: settings passed to ``solve()`` itself rather than among the solver options
_SOLVE_KEYWORDS = {"highs": ("time_limit", "mip_gap", "threads"), "appsi_highs": ("time_limit",)}


def solver_arguments(solver: str, time_limit: float | None, mip_gap: float,
                     threads: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(solve keywords, solver options)`` that give Pyomo solver ``solver`` fleetopt's time
    limit, MIP gap and threads (:data:`SOLVER_OPTIONS`; ``None`` is not passed).

    A setting the solver cannot take is an error, never silently dropped: threads for glpk,
    say, or any setting for a solver fleetopt has no option names for (which then runs with
    its own defaults, the MIP gap included, unless the gap is changed from
    :data:`DEFAULT_MIP_GAP`).
    """
    name = solver.lower()
    table = SOLVER_OPTIONS.get(name)
    given = {"time_limit": time_limit, "threads": threads,
             "mip_gap": None if table is None and mip_gap == DEFAULT_MIP_GAP else mip_gap}
    kwargs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    flag = {"time_limit": "--time-limit", "mip_gap": "--mip-gap", "threads": "--threads"}
    for setting, value in given.items():
        if value is None:
            continue
        if table is None:
            raise FleetoptError(flag[setting], f"fleetopt does not know how to pass a "
                                f"{setting.replace('_', ' ')} to Pyomo solver {solver!r}; it does "
                                f"for {', '.join(SOLVER_OPTIONS)} (or leave it out)")
        key = table[setting]
        if key is None:
            raise FleetoptError(flag[setting], f"Pyomo solver {solver!r} has no "
                                f"{setting.replace('_', ' ')} option; leave it out")
        if name == "glpk" and setting == "time_limit":
            value = int(math.ceil(value))  # glpk takes whole seconds
        if setting in _SOLVE_KEYWORDS.get(name, ()):
            kwargs[key] = value
        else:
            options[key] = value
    return kwargs, options


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
    # a single-point segment (N_lo = N_hi) has z alone: its instances are N_lo z
    m.JN = pe.Set(dimen=2, ordered=True,
                  initialize=[js for js in m.JS if not single_point(segs[js[0]][js[1]])])
    m.z = pe.Var(m.JS, within=pe.Binary)
    m.n = pe.Var(m.JN, within=pe.NonNegativeIntegers, bounds=lambda m, j, s: (0, m.N_hi[j, s]))
    m.inst = pe.Expression(m.JS, rule=lambda m, j, s: m.n[j, s] if (j, s) in m.JN
                           else m.N_lo[j, s] * m.z[j, s])
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
    m.link_lo = pe.Constraint(m.JN, rule=lambda m, j, s: m.n[j, s] >= m.N_lo[j, s] * m.z[j, s])
    m.link_hi = pe.Constraint(m.JN, rule=lambda m, j, s: m.n[j, s] <= m.N_hi[j, s] * m.z[j, s])
    m.pools = pe.Constraint(expr=sum(m.z[js] for js in m.JS) <= problem.max_pools)
    m.power_w = pe.Expression(expr=sum(m.alpha[js] * m.z[js] + m.beta[js] * m.inst[js]
                                       for js in m.JS))
    m.cost_per_hr = pe.Expression(expr=sum(m.cost[js[0]] * m.inst[js] for js in m.JS))
    m.gpus_total = pe.Expression(expr=sum(m.gpus[js[0]] * m.inst[js] for js in m.JS))
    if problem.budget_per_hr is not None:
        m.budget = pe.Constraint(expr=m.cost_per_hr <= problem.budget_per_hr)
    inv = dict(problem.inventory)
    if inv:
        m.inventory = pe.Constraint(m.G, rule=lambda m, g: sum(
            m.gpus[js[0]] * m.inst[js] for js in m.JS if cands[js[0]].inventory_key == g
        ) <= inv[g] if any(cands[js[0]].inventory_key == g for js in m.JS) else pe.Constraint.Skip)
    if problem.max_gpus is not None:
        m.max_gpus = pe.Constraint(expr=m.gpus_total <= problem.max_gpus)
    if power_cap_w is not None:
        m.power_cap = pe.Constraint(expr=m.power_w <= power_cap_w)
    m.obj = pe.Objective(expr=m.cost_per_hr if objective == "cost_per_hr" else m.power_w,
                         sense=pe.minimize)
    return m


def solve_pyomo(
    problem: Problem, data: MipData, objective: str, power_cap_w: float | None,
    time_limit: float | None, mip_gap: float, threads: int | None, solver: str,
) -> SolverRun:
    """Build the Pyomo model and solve it with Pyomo solver ``solver``."""
    import pyomo.environ as pe

    cset = data.cset
    t_model = time.perf_counter()
    m = build_pyomo_model(problem, cset, objective, power_cap_w)
    model_s = time.perf_counter() - t_model
    kwargs, options = solver_arguments(solver, time_limit, mip_gap, threads)
    pool = 0 if threads is None else int(threads)  # HiGHS's pool size (0: its default)
    if solver.lower() == "highs":
        from pyomo.contrib.solver.common.results import TerminationCondition as TC
        from pyomo.contrib.solver.solvers.highs import Highs

        with highs.solver_output():  # Pyomo's Highs makes highspy.Highs objects (banner)
            opt = Highs()
            t0 = time.perf_counter()
            opt.set_instance(m)
            t1 = time.perf_counter()
            highs.match_threads(pool)  # one pool per process
            res = opt.solve(
                m, **kwargs, load_solutions=False, raise_exception_on_nonoptimal_result=False,
                tee=highs.verbose(), solver_options={"random_seed": 0, **options},
            )
            t2 = time.perf_counter()
        tc = res.termination_condition
        has = res.incumbent_objective is not None
        if has:
            res.solution_loader.load_vars()
        outcome = {TC.convergenceCriteriaSatisfied: "optimal", TC.provenInfeasible: "infeasible",
                   TC.infeasibleOrUnbounded: "infeasible", TC.locallyInfeasible: "infeasible",
                   TC.maxTimeLimit: "time_limit"}.get(tc, "other")
        status = run_status(outcome, has)
        obj = float(res.incumbent_objective) if has else None
        bound = float(res.objective_bound) if res.objective_bound is not None and \
            math.isfinite(res.objective_bound) else None
        translate_s, solve_s, msg = t1 - t0, t2 - t1, str(tc)
        if outcome == "other":  # HiGHS's pool may not serve this count (highs.match_threads)
            msg = highs.threads_conflict(pool) or msg
    else:
        from pyomo.opt import SolverStatus, TerminationCondition

        with highs.solver_output():  # an availability check may start the solver
            opt = pe.SolverFactory(solver)
            available = opt is not None and opt.available(exception_flag=False)
        if not available:
            raise FleetoptError("solver", f"Pyomo solver {solver!r} is not available here; "
                                "use 'highs' (installed with fleetopt)")
        t0 = time.perf_counter()
        if solver.lower() == "appsi_highs":  # highspy in this process: one pool per process
            highs.match_threads(pool)
        with highs.solver_output():
            res = opt.solve(m, load_solutions=False, options=options, tee=highs.verbose(),
                            **kwargs)
        t2 = time.perf_counter()
        tc = res.solver.termination_condition
        has = len(res.solution) > 0
        if has:
            m.solutions.load_from(res)
        TCL = TerminationCondition
        outcome = {TCL.optimal: "optimal", TCL.infeasible: "infeasible",
                   TCL.infeasibleOrUnbounded: "infeasible",
                   TCL.maxTimeLimit: "time_limit"}.get(tc, "other")
        status = run_status(outcome, has and res.solver.status == SolverStatus.ok)
        obj = float(pe.value(m.obj)) if has else None
        bound = None
        translate_s, solve_s, msg = 0.0, t2 - t0, str(tc)
        if outcome == "other" and solver.lower() == "appsi_highs":
            msg = highs.threads_conflict(pool) or msg
    x = None
    if obj is not None:
        x = np.zeros(data.ncol)
        for (j, s), (zc, nc) in data.pair.items():
            x[zc] = pe.value(m.z[j, s]) or 0.0
            if nc is not None:
                x[nc] = pe.value(m.inst[j, s]) or 0.0
    return SolverRun(status, x, obj, bound, gap_of(obj, bound), translate_s, solve_s, msg, model_s)
