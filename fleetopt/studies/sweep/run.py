"""Running one scenario (in any process): solve it (and simulate the plan) into one row."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import jsonable, to_json
from fleetopt.planners.mip import highs
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.problem import Problem
from fleetopt.sim.api import simulate_problem
from fleetopt.studies.procurement import plan_summary
from fleetopt.studies.sweep.spec import as_label, scenario_problem

__all__ = ["init_worker", "run_chunk", "run_scenario"]


def _json(v: Any) -> str:
    return to_json(v, indent=None)


def run_scenario(base: Problem, params: Mapping[str, Any], key: str, opts: Mapping[str, Any],
                 label: str = "") -> dict[str, Any]:
    """Solve (and simulate) one scenario; always returns a row (errors become status rows)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"scenario_id": key, "scenario": label}
    for k, v in params.items():
        if k != "name":
            row[k] = as_label(v)
    try:
        prob = scenario_problem(base, params)
    except FleetoptError as e:
        row.update(status="invalid", message=str(e), solve_s=time.perf_counter() - t0)
        return _finish(row, base, None)
    row.update(workload=prob.workload.name, rate_rps=float(prob.workload.rate_rps),
               model=prob.model, ttft_p99_ms=float(prob.settings.ttft_p99_ms),
               gpus_allowed="+".join(prob.gpus), budget_per_hr=prob.budget_per_hr,
               settings=_json(prob.settings_used()))
    try:
        sol = solve(prob, time_limit=opts.get("time_limit"), mip_gap=opts.get("mip_gap", 1e-4),
                    compress=bool(opts.get("compress", False)), threads=opts.get("threads"))
    except FleetoptError as e:
        row.update(status="invalid", message=str(e), solve_s=time.perf_counter() - t0)
        return _finish(row, prob, None)
    summ = plan_summary(sol)
    summ.pop("pools")
    row.update(summ)
    row.update(status=sol.status, objective=sol.objective, bound=sol.bound, gap=sol.gap,
               output_tok_per_s=sol.totals.get("output_tok_per_s", math.nan),
               gpus_by_type=_json(summ["gpus_by_type"]),
               plan=_json([] if sol.result is None else [p.spec().to_dict()
                                                          for p in sol.result.pools]),
               solve_s=time.perf_counter() - t0, message=sol.message,
               settings=_json(prob.settings_used(sol.details.get("candidates"))))
    sim = opts.get("simulate")
    if sim and sol.result is not None:
        t1 = time.perf_counter()
        try:
            res = simulate_problem(prob, sol.fleet, requests=int(sim.get("requests", 5000)),
                                   seed=int(sim.get("seed", 0)))
            tot = res.totals
            p99 = tot.get("p99_ttft_ms")
            worst = tot.get("worst_pool_p99_ttft_ms")
            row.update(sim_p99_ttft_ms=p99, sim_worst_pool_p99_ttft_ms=worst,
                       sim_power_w=tot.get("power_w"),
                       sim_output_tok_per_s=tot.get("output_tok_per_s"),
                       sim_tok_per_w=tot.get("tok_per_w"),
                       sim_slo_met=None if worst is None else bool(
                           worst <= prob.settings.ttft_p99_ms))
        except FleetoptError as e:
            row["message"] = (row.get("message") or "") + f"; simulation: {e}"
        row["sim_s"] = time.perf_counter() - t1
    return _finish(row, prob, sol)


def _finish(row: dict[str, Any], prob: Problem, sol: Any) -> dict[str, Any]:
    if "workload" not in row:
        row.update(workload=prob.workload.name, rate_rps=float(prob.workload.rate_rps),
                   model=prob.model, ttft_p99_ms=float(prob.settings.ttft_p99_ms),
                   gpus_allowed="+".join(prob.gpus), budget_per_hr=prob.budget_per_hr)
    return jsonable(row)


# worker-side state for the process pool (set once per worker by the initializer)
_WORKER_BASE: Problem | None = None


def init_worker(base: Problem, verbose: bool = False) -> None:
    global _WORKER_BASE
    _WORKER_BASE = base
    highs.set_verbose(verbose)  # workers do not inherit the parent's setting


def run_chunk(chunk: list[tuple[dict[str, Any], str, str]], opts: dict[str, Any],
               base: Problem | None = None, verbose: bool | None = None) -> list[dict[str, Any]]:
    if verbose is not None:  # a Dask worker: set per task
        highs.set_verbose(verbose)
    b = base if base is not None else _WORKER_BASE
    assert b is not None, "worker not initialised"
    return [run_scenario(b, params, key, opts, label) for params, key, label in chunk]
