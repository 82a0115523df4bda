"""Heuristic baselines: homogeneous, pool routing, and two-pool FleetOpt (compress-and-route).

Each baseline searches a small, explicit space of fleets, sizes every pool with the smallest
instance count that meets the SLO (:class:`fleetopt.sizing.sizer.Sizer`) and returns the best
plan in that space, judged by the exact evaluator (:func:`fleetopt.evaluation.evaluate_plan`).
``docs/baselines.md`` defines them.

* :func:`homogeneous`: one pool ``(0, max_ctx]``, one deployment.
* :func:`pool_routing`: two pools split at a boundary ``B``: ``(0, B]`` and ``(B, max_ctx]``.
* :func:`two_pool`: two-pool FleetOpt: requests of total length ``<= gamma * B`` go to a pool
  with KV window ``B`` (the longer of them have their prompts truncated to fit), the rest to a
  pool ``(gamma * B, max_ctx]``.
* :func:`best_baseline`: the best feasible of the above (warm start for the MIP).

Fleet-wide limits are respected jointly over the pools (:class:`fleetopt.sizing.limits.Limits`):
the budget (in the problem's accounting), the inventory (GPU name -> physical GPUs, counted as
``instances * gpus_per_instance``, also for calibrated profiles) and the GPU cap. A plan that
violates any of them is not feasible.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.status import Status
from fleetopt.evaluation import evaluate_plan
from fleetopt.physics.profiles import Deployment
from fleetopt.planners.solution import Solution
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.problem import Problem
from fleetopt.sizing.limits import Limits, objective_key, pick, plan_key
from fleetopt.sizing.sizer import SizedPool, Sizer

__all__ = ["APPROACH_HOMOGENEOUS", "APPROACH_POOL_ROUTING", "APPROACH_TWO_POOL",
           "DEFAULT_GAMMAS", "best_baseline", "default_gammas", "homogeneous", "pool_routing",
           "two_pool"]

DEFAULT_GAMMAS: tuple[float, ...] = (1.0, 1.25, 1.5, 1.75, 2.0)

APPROACH_HOMOGENEOUS = "homogeneous"
APPROACH_POOL_ROUTING = "pool-routing"
APPROACH_TWO_POOL = "two-pool-fleetopt"


def _key(problem: Problem, power_w: float, cost_per_hr: float) -> tuple[float, float]:
    return plan_key(problem.objective, power_w, cost_per_hr)


def _limit_violation(problem: Problem, pools: Sequence[SizedPool]) -> str:
    """Why a set of sized pools violates the budget, inventory or GPU cap ('' if it does not)."""
    used: dict[str, int] = {}
    for sp in pools:
        used[sp.gpu_key] = used.get(sp.gpu_key, 0) + sp.gpus_physical
    return Limits.of(problem).violation(sum(sp.cost_per_hr for sp in pools), used)


@dataclass
class _Search:
    """Best plan found so far, with and without the fleet-wide limits."""

    problem: Problem
    best: tuple[tuple[float, float], tuple[SizedPool, ...], dict[str, Any]] | None = None
    best_unconstrained: tuple[tuple[float, float], tuple[SizedPool, ...], str] | None = None
    plans: int = 0
    unsized: int = 0
    last_unsized_reason: str = ""

    def offer(self, pools: Sequence[SizedPool], info: dict[str, Any]) -> None:
        bad = [sp for sp in pools if not sp.ok]
        if bad:
            self.unsized += 1
            self.last_unsized_reason = bad[0].reason
            return
        self.plans += 1
        power = sum(sp.power_w for sp in pools)
        cost = sum(sp.cost_per_hr for sp in pools)
        k = _key(self.problem, power, cost)
        viol = _limit_violation(self.problem, pools)
        if self.best_unconstrained is None or k < self.best_unconstrained[0]:
            self.best_unconstrained = (k, tuple(pools), viol)
        if viol:
            return
        if self.best is None or k < self.best[0]:
            self.best = (k, tuple(pools), dict(info))


def _infeasible_message(s: _Search, what: str) -> str:
    if s.best_unconstrained is None:
        why = s.last_unsized_reason or "no plan could be sized"
        return f"{what}: no plan meets the SLO ({why})"
    k, pools, viol = s.best_unconstrained
    power = sum(sp.power_w for sp in pools)
    cost = sum(sp.cost_per_hr for sp in pools)
    gpus = sum(sp.gpus_physical for sp in pools)
    return (f"{what}: every SLO-meeting plan violates the fleet limits; the best one without "
            f"limits ({power / 1000:,.1f} kW, ${cost:,.2f}/h, {gpus} GPUs) violates {viol}")


def _solution(problem: Problem, approach: str, s: _Search, t0: float, searched: dict[str, Any],
              sizer: Sizer, what: str) -> Solution:
    details: dict[str, Any] = {"searched": searched, "plans_sized": s.plans,
                               "plans_unsizable": s.unsized, "pool_models_built": sizer.models_built}
    key = objective_key(problem.objective)
    if s.best is None:
        return Solution(status=Status.INFEASIBLE, approach=approach, objective_name=key,
                        linearization_error=None, timing={"total_s": time.perf_counter() - t0},
                        message=_infeasible_message(s, what), details=details)
    _, pools, info = s.best
    result = evaluate_plan(problem, Fleet(tuple(sp.spec() for sp in pools)))
    objective = pick(key, result.power_w, result.cost_per_hr)
    details.update(info)
    details["deployments"] = [sp.deployment.label() for sp in pools]
    msg = "" if result.feasible else "internal error: the exact evaluator reports an SLO miss"
    return Solution(
        status=Status.OPTIMAL if result.feasible else Status.ERROR, approach=approach,
        objective_name=key, objective=objective, bound=None, gap=None,
        result=result, linearization_error=0.0, timing={"total_s": time.perf_counter() - t0},
        message=msg, details=details,
    )


def _deployments(problem: Problem, deployment: Deployment | None = None) -> list[Deployment]:
    return [deployment] if deployment is not None else problem.deployments()


def _boundaries(problem: Problem, boundary: int | None) -> list[int]:
    if boundary is None:
        return [b for b in problem.candidate_boundaries() if 0 < b < problem.max_ctx]
    b = int(boundary)
    if not 0 < b < problem.max_ctx:
        raise FleetoptError("boundary", f"must lie in (0, max_ctx={problem.max_ctx}), got {boundary}")
    return [b]


def _pair_search(s: _Search, shorts: Iterable[SizedPool], longs: Iterable[SizedPool],
                 info: dict[str, Any]) -> None:
    """Offer every (short, long) deployment pair; pre-filter dominated sizings when unlimited."""
    shorts, longs = list(shorts), list(longs)
    limited = Limits.of(s.problem).bounded

    def keep(opts: list[SizedPool]) -> list[SizedPool]:
        ok = [sp for sp in opts if sp.ok]
        if not ok:
            return opts[:1]  # unsizable: offered once so the reason is recorded
        if not limited:  # without limits the pools are independent: each one's best suffices
            return [min(ok, key=lambda sp: _key(s.problem, sp.power_w, sp.cost_per_hr))]
        # drop options another option of the same GPU type beats on watts, dollars and GPUs
        return [a for a in ok if not any(
            b is not a and b.gpu_key == a.gpu_key and b.power_w <= a.power_w
            and b.cost_per_hr <= a.cost_per_hr and b.gpus_physical <= a.gpus_physical
            and (b.power_w, b.cost_per_hr, b.gpus_physical) != (a.power_w, a.cost_per_hr,
                                                                a.gpus_physical)
            for b in ok)]

    for a, b in itertools.product(keep(shorts), keep(longs)):
        s.offer((a, b), info)


# ------------------------------------------------------------------------------------------
# the baselines


def homogeneous(problem: Problem, deployment: Deployment | None = None) -> Solution:
    """One pool ``(0, max_ctx]`` on the best single deployment (or ``deployment``)."""
    return _homogeneous(problem, deployment, Sizer(problem))


def _homogeneous(problem: Problem, deployment: Deployment | None, sizer: Sizer) -> Solution:
    t0 = time.perf_counter()
    deps = _deployments(problem, deployment)
    sizer.prefetch([(0, problem.max_ctx, problem.max_ctx)], deps)
    s = _Search(problem)
    for d in deps:
        s.offer((sizer.size(0, problem.max_ctx, problem.max_ctx, d),), {"boundary": None})
    searched = {"deployments": [d.label() for d in deps], "max_ctx": problem.max_ctx}
    return _solution(problem, APPROACH_HOMOGENEOUS, s, t0, searched, sizer, "homogeneous")


def pool_routing(problem: Problem, boundary: int | None = None) -> Solution:
    """Two pools ``(0, B]`` and ``(B, max_ctx]``, each on its best deployment (jointly limited)."""
    return _pool_routing(problem, boundary, Sizer(problem))


def _pool_routing(problem: Problem, boundary: int | None, sizer: Sizer) -> Solution:
    t0 = time.perf_counter()
    deps = _deployments(problem)
    bounds = _boundaries(problem, boundary)
    mx = problem.max_ctx
    sizer.prefetch([r for b in bounds for r in ((0, b, b), (b, mx, mx))], deps)
    s = _Search(problem)
    for b in bounds:
        shorts = [sizer.size(0, b, b, d) for d in deps]
        longs = [sizer.size(b, problem.max_ctx, problem.max_ctx, d) for d in deps]
        _pair_search(s, shorts, longs, {"boundary": b})
    searched = {"deployments": [d.label() for d in deps], "boundaries": bounds,
                "max_ctx": problem.max_ctx}
    return _solution(problem, APPROACH_POOL_ROUTING, s, t0, searched, sizer, "pool routing")


def default_gammas(problem: Problem) -> list[float]:
    """The compress-band grid: :data:`DEFAULT_GAMMAS`, cut at ``problem.compress_gamma`` if set."""
    cap = problem.compress_gamma
    if cap is None:
        return list(DEFAULT_GAMMAS)
    out = [g for g in DEFAULT_GAMMAS if g <= cap + 1e-12]
    if all(abs(g - cap) > 1e-12 for g in out):
        out.append(float(cap))
    return out


def two_pool(problem: Problem, gammas: Sequence[float] | None = None) -> Solution:
    """Two-pool FleetOpt: totals ``<= gamma*B`` to a pool with KV window ``B`` (prompts of the
    longer ones truncated), the rest to ``(gamma*B, max_ctx]``; searches B, gamma, deployments."""
    return _two_pool(problem, gammas, Sizer(problem))


def _two_pool(problem: Problem, gammas: Sequence[float] | None, sizer: Sizer,
              boundary: int | None = None) -> Solution:
    t0 = time.perf_counter()
    grid = default_gammas(problem) if gammas is None else [float(g) for g in gammas]
    if not grid or any(not 1.0 <= g <= 2.0 for g in grid):
        raise FleetoptError("gammas", f"compress bands must lie in [1, 2], got {list(grid)}")
    deps = _deployments(problem)
    bounds = _boundaries(problem, boundary)
    mx = problem.max_ctx
    wanted = []
    for b in bounds:
        for g in grid:
            hi = min(int(g * b), mx)
            wanted.append((0, hi, b))
            if hi < mx:
                wanted.append((hi, mx, mx))
    sizer.prefetch(wanted, deps)
    s = _Search(problem)
    for b in bounds:
        for g in grid:
            hi = min(int(g * b), mx)
            info = {"boundary": b, "gamma": g, "short_ctx_hi": hi}
            shorts = [sizer.size(0, hi, b, d) for d in deps]
            if hi >= mx:  # the band reaches max_ctx: one pool with window B serves everything
                for a in shorts:
                    s.offer((a,), info)
                continue
            longs = [sizer.size(hi, mx, mx, d) for d in deps]
            _pair_search(s, shorts, longs, info)
    searched = {"deployments": [d.label() for d in deps], "boundaries": bounds, "gammas": grid,
                "max_ctx": mx}
    sol = _solution(problem, APPROACH_TWO_POOL, s, t0, searched, sizer, "two-pool FleetOpt")
    if s.best is not None:
        pools = s.best[1]
        share = sum(sp.share * sp.compressed_share for sp in pools)
        cut = sum(sp.share * sp.input_tokens_cut for sp in pools)
        sol.details.update({
            "compressed_share": share,
            "input_tokens_cut_per_request": cut,
            "input_tokens_cut_per_compressed_request": cut / share if share > 0 else 0.0,
            "window_tokens": pools[0].window_tokens,
        })
    return sol


def best_baseline(problem: Problem, compress: bool = False) -> Solution | None:
    """The best feasible of :func:`homogeneous` and :func:`pool_routing` (and :func:`two_pool`
    when ``compress``), by the problem's objective; None if none is feasible."""
    sizer = Sizer(problem)
    sols = [_homogeneous(problem, None, sizer), _pool_routing(problem, None, sizer)]
    if compress:
        sols.append(_two_pool(problem, None, sizer))
    ok = [(s, s.result) for s in sols if s.status in (Status.OPTIMAL, Status.FEASIBLE)
          and s.result is not None and s.result.feasible]
    if not ok:
        return None
    return min(ok, key=lambda sr: _key(problem, sr[1].power_w, sr[1].cost_per_hr))[0]
