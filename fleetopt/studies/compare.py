"""Side-by-side comparison of the baselines and the MIP on one problem (``docs/baselines.md``).

Two families are compared separately:

* ``uncompressed``: every request is served whole (homogeneous, pool routing, MIP);
* ``compressed``: requests in a compress band have their prompts truncated to the pool's KV
  window (two-pool FleetOpt, MIP with compress bands). They serve a degraded version of some
  requests, so their watts are not comparable one-for-one with the uncompressed family.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetopt.core.jsonio import versioned
from fleetopt.planners import baselines
from fleetopt.planners.mip.solve import solve
from fleetopt.planners.solution import Solution
from fleetopt.problem.problem import Problem
from fleetopt.sizing.limits import objective_key, pick

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["APPROACHES", "COLUMNS", "FAMILY", "HEURISTICS", "compare", "compare_solutions",
           "comparison_frame", "comparison_to_dict"]

APPROACHES: tuple[str, ...] = (
    "homogeneous", "pool-routing", "two-pool-fleetopt", "mip", "mip-compress",
)
FAMILY: dict[str, str] = {
    "homogeneous": "uncompressed",
    "pool-routing": "uncompressed",
    "mip": "uncompressed",
    "two-pool-fleetopt": "compressed",
    "mip-compress": "compressed",
}
HEURISTICS: tuple[str, ...] = ("homogeneous", "pool-routing", "two-pool-fleetopt")
COLUMNS: tuple[str, ...] = (
    "approach", "family", "status", "pools", "instances", "gpus", "power_kw", "tok_per_w",
    "cost_per_hr", "worst_p99_ttft_ms", "compressed", "change_vs_homogeneous_pct",
    "mip_saving_vs_best_heuristic_pct",
)


def _mip(problem: Problem, time_limit: float | None, compress: bool, approach: str,
         extra_boundaries: tuple[int, ...] = ()) -> Solution:
    if extra_boundaries:
        problem = problem.with_(boundaries=tuple(sorted(
            set(problem.candidate_boundaries()) | set(extra_boundaries))))
    sol = solve(problem, time_limit=time_limit, compress=compress)
    return replace(sol, approach=approach)


def compare_solutions(problem: Problem, time_limit: float | None = None) -> list[Solution]:
    """Solutions of every approach, in :data:`APPROACHES` order (MIP rows need the MIP module).

    The MIP with compress bands gets the two-pool plan's edges as extra candidate boundaries,
    so that plan is always representable in it: within each family the MIP can only win.
    """
    two = baselines.two_pool(problem)
    extra: tuple[int, ...] = ()
    if two.result is not None:
        extra = tuple(e for p in two.result.pools for e in (p.ctx_hi, p.window_tokens)
                      if 0 < e < problem.max_ctx)
    return [
        baselines.homogeneous(problem),
        baselines.pool_routing(problem),
        two,
        _mip(problem, time_limit, False, "mip"),
        _mip(problem, time_limit, True, "mip-compress", extra),
    ]


def _objective_value(sol: Solution, objective: str) -> float:
    assert sol.result is not None
    return pick(objective_key(objective), sol.result.power_w, sol.result.cost_per_hr)


def _pct(new: float, old: float) -> float:
    return 100.0 * (new - old) / old if old > 0 else math.nan


def comparison_frame(solutions: list[Solution], objective: str | None = None) -> pd.DataFrame:
    """The comparison table of ``solutions`` (see :func:`compare`).

    ``objective`` (``power``, ``cost`` or ``power_then_cost``) sets the unit of
    ``mip_saving_vs_best_heuristic_pct``; by default it follows the solutions' objective_name.
    """
    import pandas as pd

    if objective is None:
        cost = any(s.objective_name == "cost_per_hr" for s in solutions)
        objective = "cost" if cost else "power"
    by_name = {s.approach: s for s in solutions}
    homog = by_name.get("homogeneous")
    homog_w = homog.result.power_w if homog is not None and homog.result is not None and \
        homog.usable else math.nan
    best_heur: dict[str, float] = {}
    for s in solutions:
        if s.approach in HEURISTICS and s.usable:
            fam = FAMILY[s.approach]
            v = _objective_value(s, objective)
            best_heur[fam] = min(best_heur.get(fam, math.inf), v)
    rows: list[dict[str, Any]] = []
    for s in solutions:
        fam = FAMILY.get(s.approach, "compressed" if "compress" in s.approach else "uncompressed")
        row: dict[str, Any] = {"approach": s.approach, "family": fam, "status": s.status}
        if s.usable and s.result is not None:
            t = s.totals
            power_w = float(t["power_w"])
            row.update(
                pools=sum(1 for p in s.result.pools if p.instances > 0),
                instances=int(t["instances"]), gpus=int(t["gpus"]), power_kw=power_w / 1000.0,
                tok_per_w=float(t["tok_per_w"]), cost_per_hr=float(t["cost_per_hr"]),
                worst_p99_ttft_ms=t["worst_p99_ttft_ms"], compressed=float(t["compressed_share"]),
                change_vs_homogeneous_pct=_pct(power_w, homog_w),
            )
            if s.approach.startswith("mip") and fam in best_heur:
                ref = best_heur[fam]
                v = _objective_value(s, objective)
                row["mip_saving_vs_best_heuristic_pct"] = 100.0 * (ref - v) / ref if ref > 0 else math.nan
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("pools", "instances", "gpus"):
        df[c] = df[c].astype("Int64")
    for c in ("power_kw", "tok_per_w", "cost_per_hr", "worst_p99_ttft_ms", "compressed",
              "change_vs_homogeneous_pct", "mip_saving_vs_best_heuristic_pct"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def compare(problem: Problem, time_limit: float | None = None) -> pd.DataFrame:
    """One row per approach (:data:`APPROACHES`) with the exact evaluator's totals.

    ``change_vs_homogeneous_pct`` is the change in watts against the homogeneous baseline;
    ``mip_saving_vs_best_heuristic_pct`` (MIP rows only) is how much less of the problem's
    objective (watts, or dollars for ``objective = "cost"``) the MIP plan needs than the best
    heuristic of the SAME family. Infeasible or unavailable approaches keep their row with
    empty figures.
    """
    return comparison_frame(compare_solutions(problem, time_limit), problem.objective)


def comparison_to_dict(solutions: list[Solution], objective: str | None = None) -> dict[str, Any]:
    """The ``fleetopt.comparison/1`` JSON document: ``{"schema", "rows": [{"approach",
    "family", "status", "message", "change_vs_homogeneous_pct",
    "mip_saving_vs_best_heuristic_pct", "totals", "pools"}]}`` (totals and pools exactly as
    :meth:`Solution.to_dict` gives them; the percentages as in :func:`comparison_frame`)."""
    frame = comparison_frame(solutions, objective)
    rows = []
    for s, (_, f) in zip(solutions, frame.iterrows(), strict=True):
        d = s.to_dict()
        rows.append({"approach": d["approach"], "family": f["family"], "status": d["status"],
                     "message": d["message"],
                     "change_vs_homogeneous_pct": f["change_vs_homogeneous_pct"],
                     "mip_saving_vs_best_heuristic_pct": f["mip_saving_vs_best_heuristic_pct"],
                     "totals": d["totals"], "pools": d["pools"]})
    return versioned("comparison", {"rows": rows})
