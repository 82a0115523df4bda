"""Golden results of every shipped example: ``tests/data/golden/<example>.json``.

Run ``python scripts/make_golden.py`` (all examples) or ``python scripts/make_golden.py
azure-h100``. Each file holds, for one shipped example config:

* ``solve``: the MIP plan (``Solution.to_dict()`` without timings) and its candidate counts;
  ``solve_pyomo`` (azure-h100 only) the same through the Pyomo backend;
* ``solve_tight_slo`` (azure-h100): an infeasible SLO, with its explanation and relaxations;
* ``solve_low_budget``: a budget below the cheapest plan, with its explanation;
* ``compare``: every approach's row (``comparison_to_dict``: totals, pools, percentages);
* ``procurement``: the frontier at budgets spanning infeasible, binding and slack (the budgets
  are stored with the results, so a later run recomputes the same points);
* ``evaluate_sized``: the default fleet of ``fleetopt evaluate`` (one pool sized to the SLO);
* ``simulate``: the plan simulated with a fixed seed (Poisson; and replaying the trace for a
  trace workload);
* ``enumerate`` (paper-azure): exhaustive enumeration on a few boundaries.

``tests/test_golden.py`` recomputes them (:func:`compute`) and compares with tight tolerances.
The files pin behaviour: regenerate them only on purpose (a change of the physics, say), never
to make a refactoring pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "golden"
EXAMPLES = ("azure-h100", "azure-mixed", "paper-azure")
SIM_REQUESTS = 3000
SIM_SEED = 0
#: keys dropped everywhere: wall-clock measurements, and whether a procurement point was
#: warm-started (which depends on the highspy release: fleetopt.planners.mip.highs.warm_start_trusted;
#: the figures do not: the minimum-dependency environment of .ci/run gives the same numbers)
VOLATILE_KEYS = {"timing", "solve_s", "point_s", "wall_s", "candidate_build_s", "build_s",
                 "warm_started"}
#: solve details worth pinning (deterministic counts, not timings)
DETAIL_KEYS = ("candidates", "columns", "rows", "candidate_stats", "warm_start", "bound_source",
               "candidates_complete")


def _strip(x: Any) -> Any:
    """``x`` without :data:`VOLATILE_KEYS` (recursively)."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in VOLATILE_KEYS}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _solution(sol: Any) -> dict[str, Any]:
    d = _strip(sol.to_dict())
    d["details"] = {k: sol.details[k] for k in DETAIL_KEYS if k in sol.details}
    return d


def _clean(x: Any) -> Any:
    """Plain JSON (non-finite floats as None), as every fleetopt document is."""
    from fleetopt.core.jsonio import jsonable

    return json.loads(json.dumps(jsonable(x), allow_nan=False))


def compute(example: str, budgets: list[float] | None = None) -> dict[str, Any]:
    """Every golden figure of one shipped example (``budgets``: the procurement points; by
    default chosen from the example's cheapest and least-watt plans)."""
    from dataclasses import replace

    import fleetopt as fo
    from fleetopt.evaluation import evaluate, size_fleet
    from fleetopt.planners.enumerate import enumerate_optimum
    from fleetopt.sim import simulate_problem
    from fleetopt.studies import procurement_study
    from fleetopt.studies.compare import compare_solutions, comparison_to_dict

    problem = fo.load_config(example)
    out: dict[str, Any] = {}
    sol = fo.solve(problem)
    out["solve"] = _solution(sol)
    if example == "azure-h100":
        out["solve_pyomo"] = _solution(fo.solve(problem, backend="pyomo"))
        tight = problem.with_(settings=replace(problem.settings, ttft_p99_ms=100.0))
        out["solve_tight_slo"] = _solution(fo.solve(tight))
    sols = compare_solutions(problem)
    out["compare"] = _strip(comparison_to_dict(sols))
    free = problem.with_(budget_per_hr=None)
    if budgets is None:
        probe = procurement_study(free, [1e9])
        c_min = float(probe.min_cost_row()["cost_per_hr"])
        c_free = float(probe.frame["cost_per_hr"].iloc[0])
        budgets = sorted({round(0.8 * c_min, 2), round(c_min, 2),
                          round(0.5 * (c_min + c_free), 2), round(2.0 * c_free, 2)})
    out["procurement_budgets"] = list(budgets)
    proc = procurement_study(free, budgets)
    out["procurement"] = _strip(proc.to_dict())
    low = min(budgets)
    out["solve_low_budget"] = _solution(fo.solve(problem.with_(budget_per_hr=low)))
    sized = size_fleet(problem)
    out["evaluate_sized"] = evaluate(sized, problem.workload, problem.settings,
                                     model=problem.model, catalog=problem.catalog,
                                     physics=problem.physics).to_dict()
    sim = simulate_problem(problem, sol.fleet, requests=SIM_REQUESTS, seed=SIM_SEED)
    out["simulate"] = _strip(sim.to_dict())
    if problem.workload.meta.get("kind") == "trace" or problem.workload.name in (
            "azure-conv-2023", "azure-code-2023", "mooncake-conversation"):
        rep = simulate_problem(problem, sol.fleet, requests=SIM_REQUESTS, seed=SIM_SEED,
                               replay=True)
        out["simulate_replay"] = _strip(rep.to_dict())
    if example == "paper-azure":
        small = problem.with_(boundaries=(2048, 4096, 8192, 16384))
        out["enumerate"] = _solution(enumerate_optimum(small, mode="linearized"))
    return _clean(out)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("fleetopt", "numpy", "scipy", "pandas", "pyomo", "highspy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


def write(example: str) -> Path:
    body = compute(example)
    doc = {"example": example,
           "command": f"python scripts/make_golden.py {example}",
           "date": datetime.date.today().isoformat(),
           "versions": versions(), "sim_requests": SIM_REQUESTS, "sim_seed": SIM_SEED,
           "results": body}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{example}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("examples", nargs="*", default=list(EXAMPLES))
    args = ap.parse_args(argv)
    for ex in args.examples:
        p = write(ex)
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
