"""Lower bounds on the fleet optimum that need no MIP: for stopped runs (``docs/formulation.md`` §6).

:func:`path_bound` is the cheapest path ``0 -> K`` of at most ``max_pools`` ranges where a range
costs the least model watts (or dollars) of its candidates. It relaxes the budget, inventory
and GPU caps, so it is below the MIP optimum, hence below the exact optimum. A range whose
candidates were not all built (a deadline) costs instead :func:`range_floors`' value, a bound
that holds for ANY pool serving it:

* every pool has at least one instance: ``W >= w(0)`` (idle instance watts), ``$ >= c``;
* in physical accounting a pool's watts are ``W = N w(b) = lam E[S(b)] w(b) / b`` (Little's
  law at the operating batch ``b``), and ``E[S(b)] >= E[l_out] t(b, 0)`` (decode iterations
  at zero context, never slower than at the pool's context), so ``W >= R e`` with ``R`` the
  range's output tokens per second and ``e = min_b t(b, 0) w(b) / b`` over ``0 < b <= s_max``
  (joules per output token at best); likewise ``N >= peak lam E[S(s)] / (s cap)`` gives
  ``$ >= c peak R t(s, 0) / (s cap)`` with ``t(s, 0) / s`` at its least for the most slots.

Output tokens are counted as the compressed model counts them: a request of ``l`` tokens may be
served in a window as small as ``ceil(l / gamma)``, keeping ``min(l_out, window - 1)`` outputs.
"""

from __future__ import annotations

import math

import numpy as np

from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import CandidateSet

__all__ = ["path_bound", "range_floors"]


def _token_coefficients(problem: Problem, window_min: int, objective: str) -> np.ndarray:
    """Per deployment ``(floor per pool, per output token/s)``: rows of a (D, 2) array."""
    st = problem.settings
    out = []
    for d in problem.deployments():
        prof = problem.profile(d)
        s_max = prof.slots(window_min)
        if s_max < 1:
            continue
        if objective == "cost_per_hr":
            c = prof.instance_cost_per_hr(st.accounting)
            per = 0.0
            if st.accounting == "physical":
                t = float(np.asarray(prof.decode_s(float(s_max), 0.0)))
                per = c * st.peak_factor * t / (s_max * st.utilization_cap)
            out.append((c, per))
            continue
        floor = float(np.asarray(prof.instance_power_w(0.0, st.accounting)))
        per = 0.0
        if st.accounting == "physical":
            # cells [b1, b2] of a geometric grid: t(b) and w(b) rise with b, 1/b falls
            bs = np.unique(np.concatenate([[1.0], np.geomspace(1.0, s_max, 1500), [s_max]]))
            ts = np.asarray(prof.decode_s(bs, np.zeros_like(bs)), dtype=float)
            w = np.asarray(prof.instance_power_w(bs, "physical"), dtype=float)
            cells = ts[:-1] * w[:-1] / bs[1:]
            below_one = float(np.asarray(prof.decode_s(0.0, 0.0))) * \
                float(np.asarray(prof.instance_power_w(0.0, "physical")))
            per = min(float(cells.min()) if len(cells) else math.inf, below_one,
                      float(ts[-1] * w[-1] / bs[-1]))
            per *= 1.0 - 1e-9
        out.append((floor, per))
    return np.asarray(out, dtype=float).reshape(-1, 2)


def range_floors(problem: Problem, boundaries: list[int], gamma: float,
                 objective: str) -> np.ndarray:
    """``F[i, k]``: a lower bound on the watts (or $/hr) of any pool serving ``(b_i, b_k]``."""
    wl = problem.workload
    b = np.asarray(boundaries)
    tot = wl.total_tokens
    win = np.ceil(tot / gamma).astype(np.int64)
    lout = np.minimum(wl.output_tokens, np.maximum(win - 1, 0))
    rate = wl.rate_rps * wl.weights * lout  # output tokens/s per point
    cum = np.concatenate([[0.0], np.cumsum(rate[np.argsort(tot, kind="stable")])])
    idx = np.searchsorted(np.sort(tot, kind="stable"), b, side="right")
    R = cum[idx][None, :] - cum[idx][:, None]  # output tokens/s with length in (b_i, b_k]
    coef = _token_coefficients(problem, int(b[1]) if len(b) > 1 else int(b[-1]), objective)
    if not len(coef):
        return np.full(R.shape, np.inf)
    F = np.min(np.maximum(coef[:, 0][:, None, None], coef[:, 1][:, None, None] * R[None]),
               axis=0)
    return np.where(np.triu(np.ones_like(F, dtype=bool), 1), F, np.inf)


def path_bound(problem: Problem, cset: CandidateSet, objective: str,
               gamma: float = 1.0) -> float | None:
    """A lower bound on the objective of every plan (see the module docstring)."""
    K = cset.K
    arc: dict[tuple[int, int], float] = {}
    for c in cset.candidates:
        v = c.cost_per_hr(c.n_min) if objective == "cost_per_hr" else c.model_min_w
        key = (c.i, c.k)
        arc[key] = min(arc.get(key, math.inf), v)
    if cset.missing:
        F = range_floors(problem, cset.boundaries, gamma, objective)
        for i, k in cset.missing:
            arc[(i, k)] = min(arc.get((i, k), math.inf), float(F[i, k]))
    best = [math.inf] * (K + 1)
    best[0] = 0.0
    out = math.inf
    for _ in range(problem.max_pools):
        nxt = [math.inf] * (K + 1)
        for (i, k), v in arc.items():
            if best[i] + v < nxt[k]:
                nxt[k] = best[i] + v
        out = min(out, nxt[K])
        best = nxt
    return None if not math.isfinite(out) else float(out)
