"""Procurement study: the minimum-watt fleet at every budget, from one model built once.

For a list of hourly budgets the study returns, per budget, the plan of least watts that meets
the P99 TTFT target and costs at most the budget, plus (once) the cheapest plan that meets the
SLO. The expensive parts are done once: the candidate pools are built with a budget present
(so dominance pruning is limit-aware and keeps cheaper-but-hungrier pools), the MIP arrays are
assembled once and loaded once into HiGHS; each budget then only changes the ``budget`` row's
upper bound and re-runs HiGHS, warm-started from the previous (cheaper) budget's plan, which is
feasible for every larger budget. Under a highspy whose MIP starts cannot be trusted (1.16.0
on: :func:`fleetopt.planners.mip.highs.warm_start_trusted`) no start is passed and the solver
state is cleared before each re-run, so each point is a clean solve of the loaded model.
Budgets at or above the cost of the least-watt plan with no budget at all (solved once) take
that plan without a re-solve: the budget does not bind there. Each run is turned into a
:class:`Solution` with :func:`fleetopt.planners.mip.solve.plan_solution` (exact re-evaluation of
the plan), exactly as :func:`fleetopt.planners.mip.solve.solve` does, so every point equals a
fresh ``solve(problem.with_(budget_per_hr=b))`` up to the MIP gap.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import to_json, versioned
from fleetopt.core.status import Status
from fleetopt.planners.mip import highs
from fleetopt.planners.mip.data import SolverRun, build_mip_data
from fleetopt.planners.mip.highs import HighsModel
from fleetopt.planners.mip.pyomo import DEFAULT_MIP_GAP
from fleetopt.planners.mip.solve import plan_solution
from fleetopt.planners.solution import Solution
from fleetopt.problem.fleet import with_ep
from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import build_candidates

__all__ = ["ProcurementResult", "parse_budgets", "plan_summary", "procurement",
           "procurement_study", "with_inventory"]

FRAME_COLUMNS: tuple[str, ...] = (
    "budget_per_hr", "status", "power_w", "cost_per_hr", "gpus", "instances", "n_pools", "mix",
    "gpus_by_type", "pools", "tok_per_w", "worst_p99_ttft_ms", "gap", "warm_started", "solve_s",
    "point_s", "message",
)
_MAX_POINTS = 100_000
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def parse_budgets(spec: str | float | Iterable[float], field_name: str = "--budgets") -> list[float]:
    """Budgets in $/hr from ``"START:STOP:STEP"`` (STOP included when on the grid), a comma
    list ``"100,250,400"``, a single number, or an iterable of numbers. Sorted, de-duplicated."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        vals = [float(spec)]
    elif isinstance(spec, str):
        s = spec.strip().replace(" ", "")
        if re.fullmatch(rf"{_NUM}:{_NUM}:{_NUM}", s):
            a, b, st = (float(x) for x in s.split(":"))
            if not st > 0:
                raise FleetoptError(field_name, f"STEP must be > 0 in START:STOP:STEP, got {spec!r}")
            if b < a:
                raise FleetoptError(field_name, f"STOP must be >= START in START:STOP:STEP, got {spec!r}")
            n = int(math.floor((b - a) / st + 1e-9)) + 1
            if n > _MAX_POINTS:
                raise FleetoptError(field_name, f"{n} budgets is too many (at most {_MAX_POINTS}); "
                                    "use a larger STEP")
            vals = [round(a + i * st, 10) for i in range(n)]
        elif re.fullmatch(rf"{_NUM}(?:,{_NUM})*,?", s):
            vals = [float(x) for x in s.split(",") if x]
        else:
            raise FleetoptError(
                field_name, f"cannot read {spec!r}: use START:STOP:STEP (e.g. 100:2000:50) or a "
                "comma list of $/hr (e.g. 100,250,400)")
    elif isinstance(spec, bool):
        raise FleetoptError(field_name, f"budgets must be numbers in $/hr, got {spec!r}")
    else:
        try:
            vals = [float(x) for x in spec]
        except (TypeError, ValueError):
            raise FleetoptError(field_name, f"budgets must be numbers in $/hr, got {spec!r}") from None
    if not vals:
        raise FleetoptError(field_name, "give at least one budget")
    bad = [v for v in vals if not (math.isfinite(v) and v > 0)]
    if bad:
        raise FleetoptError(field_name, f"budgets must be finite and > 0 $/hr, got {bad[0]:g}")
    return sorted(set(vals))


def with_inventory(problem: Problem, inventory: Mapping[str, int] | Sequence[str] | None,
                   field_name: str = "--inventory") -> Problem:
    """``problem`` with inventory caps added or replaced (``{"B200": 64}`` or ``["B200=64"]``)."""
    if not inventory:
        return problem
    items: dict[str, int] = {}
    pairs: list[tuple[str, Any]]
    if isinstance(inventory, Mapping):
        pairs = list(inventory.items())
    else:
        pairs = []
        for s in inventory:
            m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*(\S+)\s*", str(s))
            if not m:
                raise FleetoptError(field_name, f"cannot read {s!r}: use GPU=N, e.g. B200=64")
            pairs.append((m.group(1), m.group(2)))
    for g, n in pairs:
        try:
            v = float(n)
        except (TypeError, ValueError):
            raise FleetoptError(field_name, f"{g}={n}: N must be a whole number of GPUs") from None
        if not math.isfinite(v) or v != int(v) or v < 0:
            raise FleetoptError(field_name, f"{g}={n}: N must be a whole number of GPUs >= 0")
        items[str(g)] = int(v)
    merged = {**dict(problem.inventory), **items}
    try:
        return problem.with_(inventory=tuple(merged.items()))
    except FleetoptError as e:
        raise FleetoptError(field_name, str(e)) from None


def plan_summary(sol: Solution | None) -> dict[str, Any]:
    """The plan columns of a study row: totals, GPU mix and pools of a :class:`Solution`."""
    if sol is None or sol.result is None:
        return {"power_w": math.nan, "cost_per_hr": math.nan, "gpus": 0, "instances": 0,
                "n_pools": 0, "mix": "", "gpus_by_type": {}, "pools": [], "tok_per_w": math.nan,
                "worst_p99_ttft_ms": math.nan}
    res = sol.result
    by_type: dict[str, int] = {}
    for p in res.pools:
        if p.instances > 0:
            by_type[p.gpu] = by_type.get(p.gpu, 0) + p.gpus
    by_type = dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])))
    t = res.totals
    pools = [with_ep({"ctx_lo": p.ctx_lo, "ctx_hi": p.ctx_hi, "window_tokens": p.window_tokens,
                      "gpu": p.gpu, "tp": p.tp, "dtype": p.dtype, "instances": p.instances,
                      "gpus": p.gpus, "power_w": p.power_w, "cost_per_hr": p.cost_per_hr,
                      "p99_ttft_ms": p.p99_ttft_ms}, p.ep) for p in res.pools]
    worst = t.get("worst_p99_ttft_ms")
    return {"power_w": float(res.power_w), "cost_per_hr": round(float(res.cost_per_hr), 9),
            "gpus": int(t["gpus"]), "instances": int(t["instances"]),
            "n_pools": sum(1 for p in res.pools if p.instances > 0),
            "mix": " + ".join(sorted(by_type)), "gpus_by_type": by_type, "pools": pools,
            "tok_per_w": float(t["tok_per_w"]),
            "worst_p99_ttft_ms": math.nan if worst is None else float(worst)}


@dataclass
class ProcurementResult:
    """Everything :func:`procurement_study` found.

    ``frame``: one row per budget (:data:`FRAME_COLUMNS`); ``min_cost``: the cheapest plan that
    meets the SLO (least watts among the cheapest); ``solutions``: the :class:`Solution` per
    budget; ``timing``: seconds for the one-off build and per point.
    """

    frame: pd.DataFrame
    min_cost: Solution | None
    solutions: dict[float, Solution]
    timing: dict[str, float] = field(default_factory=dict)
    problem: Problem | None = None

    def min_cost_row(self) -> dict[str, Any]:
        status = self.min_cost.status if self.min_cost is not None else Status.INFEASIBLE
        msg = self.min_cost.message if self.min_cost is not None else ""
        return {"status": status, **plan_summary(self.min_cost), "message": msg}

    def to_dict(self) -> dict[str, Any]:
        """The ``fleetopt.procurement/1`` JSON document: ``{"schema", "rows": [...],
        "min_cost_plan": {...}, "timing": {...}}`` (``docs/config.md``)."""
        return versioned("procurement", {
            "rows": self.frame.to_dict("records"), "min_cost_plan": self.min_cost_row(),
            "timing": {k: round(float(v), 6) for k, v in self.timing.items()}})

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self.to_dict(), indent)


def procurement_study(
    problem: Problem,
    budgets: str | float | Iterable[float],
    *,
    inventory: Mapping[str, int] | Sequence[str] | None = None,
    time_limit: float | None = None,
    mip_gap: float = DEFAULT_MIP_GAP,
    threads: int | None = None,
    compress: bool = False,
    segments: int = 3,
    headroom: float = 0.5,
    warm_start: bool = True,
) -> ProcurementResult:
    """Minimum-watt plan per budget ($/hr) and the minimum-cost plan, re-using one HiGHS model.

    ``problem``'s own budget and objective are ignored (each point minimises watts under its
    budget); its inventory, GPU and pool limits hold at every point. ``inventory`` adds or
    overrides GPU caps. ``time_limit`` applies per point.
    """
    values = parse_budgets(budgets, "budgets")
    if mip_gap < 0:
        raise FleetoptError("mip_gap", f"must be >= 0, got {mip_gap}")
    if time_limit is not None and not time_limit > 0:
        raise FleetoptError("time_limit", f"must be > 0 s, got {time_limit}")
    problem = with_inventory(problem, inventory, "inventory")
    # where this highspy cannot be trusted with a MIP start, every point is solved from a clean
    # state (the model is still loaded once): see fleetopt.planners.mip.highs.warm_start_trusted
    warm_start = warm_start and highs.warm_start_trusted()
    t0 = time.perf_counter()
    # a budget must be present when the candidates are built: pruning is then limit-aware
    limited = problem.with_(budget_per_hr=max(values), objective="power")
    cset = build_candidates(limited, compress=compress, segments=segments, headroom=headroom)
    data = build_mip_data(limited, cset)
    build_s = time.perf_counter() - t0
    approach = "mip-compress" if compress else "mip"
    details: dict[str, Any] = {"candidates": len(cset.candidates), "columns": data.ncol,
                               "rows": len(data.row_names), "candidate_stats": cset.stats,
                               "backend": "highspy", "solver": "highs", "study": "procurement",
                               "candidate_build_s": cset.build_s}
    timing: dict[str, float] = {"build_s": build_s, "candidates": float(len(cset.candidates))}
    solutions: dict[float, Solution] = {}
    rows: list[dict[str, Any]] = []

    def row(b: float, sol: Solution, warm: bool, point_s: float) -> dict[str, Any]:
        return {"budget_per_hr": b, "status": sol.status, **plan_summary(sol), "gap": sol.gap,
                "warm_started": warm, "solve_s": sol.timing.get("solve_s", 0.0),
                "point_s": point_s, "message": sol.message}

    if not cset.candidates:
        msg = "no candidate pool can meet the SLO"
        for b in values:
            sol = Solution(Status.INFEASIBLE, approach, "power_w", message=msg, details=details)
            solutions[b] = sol
            rows.append(row(b, sol, False, 0.0))
        frame = _frame(rows)
        timing["total_s"] = time.perf_counter() - t0
        frame.attrs.update(timing=timing, min_cost_plan=None)
        return ProcurementResult(frame, None, solutions, timing, problem)

    brow = data.row_index("budget")
    t1 = time.perf_counter()
    pmodel = HighsModel(data, data.power_coef, None, mip_gap, threads)
    # the cheapest plan: minimise $/hr with no budget, then the least watts at that cost
    cmodel = HighsModel(data, data.cost_coef, None, 0.0, threads)
    cmodel.set_row_upper(brow, math.inf)
    timing["load_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    cr = cmodel.run(time_limit, None)
    min_cost: Solution | None = None
    min_cost_value: float | None = None
    proven_min = False
    warm_x: np.ndarray | None = None
    if cr.x is not None:
        min_cost_value = float(data.cost_coef @ cr.x)
        proven_min = cr.status == Status.OPTIMAL
        pmodel.set_row_upper(brow, min_cost_value + 1e-6)
        pr = pmodel.run(time_limit, cr.x if warm_start else None)
        if pr.x is None:  # cannot happen (cr.x is feasible); keep the cost-optimal plan
            pr = cr
        pr.solve_s += cr.solve_s
        min_cost = plan_solution(problem, data, pr, approach, "power_w",
                                 {"build_s": build_s, "translate_s": pmodel.translate_s,
                                  "solve_s": pr.solve_s}, {**details, "plan": "min_cost"})
        warm_x = pr.x
    else:
        msg = cr.message if cr.status != Status.INFEASIBLE else (
            "no plan meets the SLO under the inventory, GPU and pool limits at any budget")
        min_cost = Solution(cr.status, approach, "cost_per_hr", message=msg, details=details)
    timing["min_cost_s"] = time.perf_counter() - t2
    # the least-watt plan with no budget: every budget at or above its cost has it as optimum
    free: Solution | None = None
    free_cost = math.inf
    if cr.x is not None and min_cost_value is not None and max(values) > min_cost_value + 1e-6:
        t3 = time.perf_counter()
        pmodel.set_row_upper(brow, math.inf)
        fr = pmodel.run(time_limit, warm_x if warm_start else None)
        if fr.status == Status.OPTIMAL and fr.x is not None:
            free_cost = float(data.cost_coef @ fr.x)
            free = plan_solution(problem, data, fr, approach, "power_w",
                                 {"build_s": 0.0, "translate_s": 0.0, "solve_s": fr.solve_s},
                                 {**details, "budget_per_hr": None})
        timing["unbudgeted_s"] = time.perf_counter() - t3

    point_times: list[float] = []
    for b in values:
        tp = time.perf_counter()
        if free is not None and b >= free_cost - 1e-9:
            # the budget does not bind: the unbudgeted optimum is this budget's optimum
            sol = replace(free, timing=dict(free.timing), details={**free.details, "budget_per_hr": b},
                          message=f"the budget does not bind: the least-watt plan with no budget "
                          f"costs ${free_cost:,.2f}/hr")
            point_s = time.perf_counter() - tp
            sol.timing["total_s"] = point_s
            solutions[b] = sol
            point_times.append(point_s)
            rows.append(row(b, sol, False, point_s))
            continue
        warm = None
        if (warm_start and warm_x is not None
                and float(data.cost_coef @ warm_x) <= b + 1e-9):
            warm = warm_x
        if min_cost_value is not None and proven_min and b < min_cost_value - 1e-6:
            r = SolverRun(Status.INFEASIBLE, None, None, None, None, pmodel.translate_s, 0.0,
                     f"infeasible: budget ${b:,.2f}/hr is below the cheapest plan that meets the "
                     f"SLO (${min_cost_value:,.2f}/hr)")
        elif cr.x is None and cr.status == Status.INFEASIBLE:
            r = SolverRun(Status.INFEASIBLE, None, None, None, None, pmodel.translate_s, 0.0,
                     min_cost.message if min_cost is not None else "infeasible")
        else:
            pmodel.set_row_upper(brow, b)
            r = pmodel.run(time_limit, warm)
            if r.x is None and r.status == Status.INFEASIBLE:
                r.message = (f"infeasible: no plan meets the SLO within ${b:,.2f}/hr under the "
                             "inventory, GPU and pool limits")
            elif r.x is None and r.status == Status.TIME_LIMIT:
                r.message = (f"time limit of {time_limit:g} s reached before any feasible plan "
                             "was found; raise the time limit")
        sol = plan_solution(problem, data, r, approach, "power_w",
                            {"build_s": 0.0, "translate_s": 0.0, "solve_s": r.solve_s},
                            {**details, "budget_per_hr": b})
        point_s = time.perf_counter() - tp
        sol.timing["total_s"] = point_s
        solutions[b] = sol
        if r.x is not None:
            warm_x = r.x
        point_times.append(point_s)
        rows.append(row(b, sol, warm is not None, point_s))
    frame = _frame(rows)
    timing["points"] = float(len(values))
    timing["mean_point_s"] = float(np.mean(point_times)) if point_times else 0.0
    timing["max_point_s"] = float(np.max(point_times)) if point_times else 0.0
    timing["total_s"] = time.perf_counter() - t0
    result = ProcurementResult(frame, min_cost, solutions, timing, problem)
    frame.attrs["timing"] = dict(timing)
    frame.attrs["min_cost_plan"] = result.min_cost_row()
    return result


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    for c in ("gpus", "instances", "n_pools"):
        df[c] = df[c].astype("int64")
    return df


def procurement(problem: Problem, budgets: str | float | Iterable[float], **kw: Any) -> pd.DataFrame:
    """One row per budget: the minimum-watt plan (see :func:`procurement_study`).

    ``df.attrs["min_cost_plan"]`` holds the cheapest plan meeting the SLO, ``df.attrs["timing"]``
    the build time and the time per point.
    """
    return procurement_study(problem, budgets, **kw).frame
