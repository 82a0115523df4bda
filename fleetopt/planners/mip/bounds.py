"""Lower bounds on the fleet optimum that need no MIP: for stopped runs (``docs/formulation.md`` §6).

:func:`path_bound` is the cheapest path ``0 -> K`` of at most ``max_pools`` ranges where a range
costs the least model watts (or dollars) of its candidates. It relaxes the budget, inventory
and GPU caps, so it is below the MIP optimum, hence below the exact optimum. A range whose
candidates were not all built (a deadline) costs instead :func:`range_floors`' value, a bound
that holds for ANY pool serving it:

* every pool has at least one instance: ``W >= w(0)`` (idle instance watts), ``$ >= c``;
* in physical accounting (the serving model, :mod:`fleetopt.sizing.servemodel`) every decode
  token is emitted by a step carrying ``D <= D_max`` decoders that lasts at least ``t(D)``
  (the step at zero context and no prefill; steps never get faster with more work) and during
  which every GPU draws at least its idle watts, so ``W >= R e`` with ``R`` the range's decode
  tokens per second and ``e = gpus idle min_D t(D) / D`` (a geometric grid of ``D``, each cell
  bounded from below); likewise an instance emits at most ``D / t(D) <= S' / t(S')`` decode
  tokens per second at ``D <= S' = cap max_num_seqs`` (``t(D) / D`` never rises with ``D``),
  so ``$ >= c peak R t(S') / S'``.

Decode tokens are counted as the compressed model counts them: a request of ``l`` tokens may be
served in a window as small as ``ceil(l / gamma)``, keeping ``min(l_out, window - 1)`` outputs,
the first of which comes from its prefill.
"""

from __future__ import annotations

import math

import numpy as np

from fleetopt.problem.problem import Problem
from fleetopt.sizing.candidates import CandidateSet
from fleetopt.sizing.servemodel import idle_instance_w, physics_of

__all__ = ["path_bound", "range_floors"]


def _token_coefficients(problem: Problem, window_min: int, objective: str) -> np.ndarray:
    """Per deployment ``(floor per pool, per decode token/s)``: rows of a (D, 2) array."""
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
                ph = physics_of(prof, st)
                sp = max(1.0, st.utilization_cap * min(float(ph.max_seqs),
                                                       float(ph.token_budget) - 1.0))
                t = float(np.asarray(ph.terms(np.array([sp]), np.zeros(1))["t_step"])[0])
                per = c * st.peak_factor * t / sp
            out.append((c, per))
            continue
        floor = idle_instance_w(prof, st)
        per = 0.0
        if st.accounting == "physical":
            ph = physics_of(prof, st)
            dmax = max(1.0, min(float(ph.max_seqs), float(ph.token_budget) - 1.0))
            # cells [b1, b2] of a geometric grid: t(b) rises with b, 1/b falls
            bs = np.unique(np.concatenate([[1.0], np.geomspace(1.0, dmax, 400), [dmax]]))
            ts = np.asarray(ph.terms(bs, np.zeros_like(bs))["t_step"], dtype=float)
            cells = ts[:-1] / bs[1:]
            per = floor * min(float(cells.min()) if len(cells) else math.inf,
                              float(ts[-1] / bs[-1]))
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
    rate = wl.rate_rps * wl.weights * np.maximum(lout - 1, 0)  # decode tokens/s per point
    cum = np.concatenate([[0.0], np.cumsum(rate[np.argsort(tot, kind="stable")])])
    idx = np.searchsorted(np.sort(tot, kind="stable"), b, side="right")
    R = cum[idx][None, :] - cum[idx][:, None]  # decode tokens/s with length in (b_i, b_k]
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
