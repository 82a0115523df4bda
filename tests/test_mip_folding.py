"""Issue 11: single-point segments folded into their ``z`` column and candidates pruned across
deployments keep the MIP optimum (against the two-column form, the unpruned candidates and
the Pyomo backend)."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fleetopt.physics.profiles import Deployment
from fleetopt.planners.mip.data import build_mip_data
from fleetopt.planners.mip.highs import solve_highspy
from fleetopt.planners.mip.pyomo import solve_pyomo
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.sizing.candidates import Candidate, CandidateSet, build_candidates, prune_dominated
from fleetopt.sizing.limits import objective_key
from fleetopt.sizing.poolmodel import Settings

GAP = 1e-9


def _lex(problem, cset, fold=True, backend="highspy"):
    """``(first objective, cost or None)`` of the MIP: phase 1, and for power_then_cost the
    least dollars at (within 1e-9 of) the least watts; None when infeasible."""
    data = build_mip_data(problem, cset, fold=fold)
    first = objective_key(problem.objective)

    def run(name, cap):
        if backend == "pyomo":
            return solve_pyomo(problem, data, name, cap, None, GAP, None, "highs")
        extra = [] if cap is None else [(data.power_coef, -np.inf, cap)]
        return solve_highspy(data, data.objective(name), extra, None, GAP, None, None)

    r = run(first, None)
    if r.x is None:
        assert r.status == "infeasible"
        return None
    if problem.objective != "power_then_cost":
        return r.objective, None
    r2 = run("cost_per_hr", r.objective * (1 + 1e-9) + 1e-9)
    return r.objective, r2.objective


def _same(a, b):
    assert (a is None) == (b is None)
    if a is not None:
        assert a[0] == pytest.approx(b[0], rel=1e-9, abs=1e-9)
        if a[1] is not None:
            assert a[1] == pytest.approx(b[1], rel=1e-7, abs=1e-6)


# ------------------------------------------------------------------------------------------
# synthetic candidates: any figures, any limits


def _cand(i, k, gpu, tp, n, watts, price, segs=None):
    segs = segs or ((n, n, watts, 0.0),)
    pts = tuple(sorted({s[0] for s in segs} | {s[1] for s in segs}))
    return Candidate(i=i, k=k, lo=i * 1000, hi=k * 1000, window=k * 1000,
                     deployment=Deployment(gpu, tp), inventory_key=gpu, gpus_per_instance=tp,
                     cost_per_instance_hr=price * tp, rate_rps=1.0, compressed_share=0.0,
                     n_points=pts, exact_n=pts, power_exact_w=tuple(0.0 for _ in pts),
                     segs=tuple(segs))


@st.composite
def synthetic(draw):
    K = draw(st.integers(1, 3))
    gpus = ["A", "B", "C"]
    cands = []
    for k in range(1, K + 1):
        for i in range(k):
            for _ in range(draw(st.integers(1, 5))):
                n = draw(st.integers(1, 6))
                w = float(draw(st.integers(1, 12)) * 100)  # coarse: ties happen
                segs = None
                if draw(st.booleans()) and draw(st.booleans()):  # a real segment now and then
                    hi = n + draw(st.integers(1, 4))
                    beta = float(draw(st.integers(-30, 60)))
                    segs = ((n, hi, w - beta * n, beta),)
                    w = min(w, w + beta * (hi - n))
                cands.append(_cand(i, k, draw(st.sampled_from(gpus)), draw(st.sampled_from([1, 2])),
                                   n, w, float(draw(st.integers(1, 4))), segs))
    prob = SimpleNamespace(
        objective=draw(st.sampled_from(["power", "cost", "power_then_cost"])),
        max_pools=draw(st.integers(1, 3)),
        budget_per_hr=draw(st.one_of(st.none(), st.integers(2, 60).map(float))),
        inventory=tuple((g, draw(st.integers(0, 20)))
                        for g in draw(st.sets(st.sampled_from(gpus), max_size=2))),
        max_gpus=draw(st.one_of(st.none(), st.integers(1, 30))),
    )
    return prob, CandidateSet(list(range(0, 1000 * (K + 1), 1000)), cands)


@settings(max_examples=150)
@given(synthetic())
def test_pruning_and_folding_keep_the_optimum_of_any_candidates(case):
    prob, full = case
    kept = prune_dominated(full.candidates, prob)
    pruned = CandidateSet(full.boundaries, kept)
    ref = _lex(prob, full, fold=False)
    event("infeasible" if ref is None else f"kept {len(kept)} of {len(full.candidates)}")
    _same(_lex(prob, full), ref)
    _same(_lex(prob, pruned), ref)
    _same(_lex(prob, pruned, fold=False), ref)
    # the survivors do not depend on the order of the candidates, up to which of equivalent
    # ones (the same figures) survives
    rev = prune_dominated(full.candidates[::-1], prob)

    def figures(cs):
        return sorted((c.i, c.k, c.window, c.model_min_w, c.linearized_power_w(c.n_min),
                       c.cost_per_hr(c.n_min)) for c in cs)

    assert figures(rev) == figures(kept)


def test_pyomo_agrees_on_folded_and_real_segments():
    prob = SimpleNamespace(objective="power", max_pools=2, budget_per_hr=40.0,
                           inventory=(("A", 6),), max_gpus=None)
    cands = [_cand(0, 1, "A", 2, 2, 300.0, 2.0), _cand(1, 2, "A", 1, 3, 250.0, 1.0),
             _cand(0, 2, "B", 2, 3, 900.0, 3.0),
             _cand(0, 2, "A", 1, 2, 500.0, 1.0, ((2, 5, 560.0, -30.0), (5, 8, 410.0, 0.0)))]
    cset = CandidateSet([0, 1000, 2000], cands)
    for budget in (40.0, 12.0, 9.0, 5.0):
        prob.budget_per_hr = budget
        ref = _lex(prob, cset, fold=False)
        _same(_lex(prob, cset), ref)
        _same(_lex(prob, cset, backend="pyomo"), ref)


def test_cross_type_pruning_respects_inventory_and_gpu_cap():
    """``c2`` (type A) beats ``c1`` (type B) on watts and dollars: it may replace ``c1`` only
    when no inventory of A and no GPU cap can be broken by the swap."""
    c1 = _cand(0, 1, "B", 2, 3, 500.0, 3.0)  # 6 GPUs of B, $18/h
    c2 = _cand(0, 1, "A", 2, 2, 400.0, 1.0)  # 4 GPUs of A, $4/h, fewer watts
    c3 = _cand(0, 1, "B", 1, 2, 450.0, 10.0)  # 2 GPUs of B, $20/h

    def kept(**limits):
        base = {"objective": "power", "max_pools": 1, "budget_per_hr": None, "inventory": (),
                "max_gpus": None}
        return [c.deployment.gpu + str(c.gpus_per_instance)
                for c in prune_dominated([c1, c2, c3], SimpleNamespace(**{**base, **limits}))]

    assert kept() == ["A2"]  # no limits: the least watts per range
    assert kept(inventory=(("B", 4),)) == ["A2"]  # A has no inventory row
    assert kept(budget_per_hr=100.0) == ["A2"]
    # A's row would grow were A2 to replace a B candidate (even one with more GPUs)
    assert kept(inventory=(("A", 6),)) == ["B2", "A2", "B1"]
    assert kept(inventory=(("A", 6), ("B", 9))) == ["B2", "A2", "B1"]
    # the GPU cap: A2 replaces B2 (6 GPUs), not B1 (2 GPUs)
    assert kept(max_gpus=10) == ["A2", "B1"]
    assert kept(max_gpus=10, objective="power_then_cost") == ["A2", "B1"]
    assert kept(objective="power_then_cost") == ["A2"]


# ------------------------------------------------------------------------------------------
# real problems

WORKLOADS = ["azure-conv-2023", "azure-code-2023", "azure", "lmsys"]
GPU_SETS = [("H100-SXM", "A100-SXM"), ("L40S", "A100-SXM"), ("MI300X", "B200"),
            ("H100-SXM", "L40S", "B200")]
BOUNDS = [512, 1024, 2048, 4096, 8192]


@st.composite
def small_problems(draw):
    w = builtin(draw(st.sampled_from(WORKLOADS)), draw(st.floats(20, 400)))
    p = Problem(workload=w, model="llama-3.1-8b", gpus=draw(st.sampled_from(GPU_SETS)),
                tp=tuple(sorted(draw(st.sets(st.sampled_from([1, 2]), min_size=1)))),
                boundaries=tuple(sorted(draw(st.sets(st.sampled_from(BOUNDS), min_size=1,
                                                     max_size=3)))),
                max_pools=draw(st.integers(1, 3)),
                max_ctx=16384 if w.max_total_tokens <= 16384 else 65536,
                settings=Settings(draw(st.sampled_from([300.0, 600.0, 2000.0]))),
                objective=draw(st.sampled_from(["power", "cost", "power_then_cost"])))
    free = solve(p, mip_gap=GAP, explain=False)
    if free.result is None:
        return p
    t = free.totals
    used: dict[str, int] = {}
    for pr in free.result.pools:
        used[pr.gpu] = used.get(pr.gpu, 0) + pr.gpus
    g = draw(st.sampled_from(sorted(used)))
    frac = draw(st.floats(0.8, 1.3))
    limits = draw(st.sets(st.sampled_from(["budget", "inventory", "max_gpus"]), max_size=2))
    ch: dict = {}
    if "budget" in limits:
        ch["budget_per_hr"] = max(0.01, t["cost_per_hr"] * frac)
    if "inventory" in limits:
        ch["inventory"] = ((g, int(used[g] * frac)),)
    if "max_gpus" in limits:
        ch["max_gpus"] = max(1, int(t["gpus"] * frac))
    return p.with_(**ch)


@settings(max_examples=40)
@given(small_problems())
def test_pruned_folded_mip_equals_the_full_two_column_mip(p):
    full = build_candidates(p, prune=False)
    pruned = build_candidates(p)
    assert len(pruned.candidates) <= len(full.candidates)
    ref = _lex(p, full, fold=False)
    event("infeasible" if ref is None else f"{p.objective}, {len(pruned.candidates)} of "
          f"{len(full.candidates)} kept")
    _same(_lex(p, pruned), ref)
    _same(_lex(p, pruned, backend="pyomo"), ref)
    s = solve(p, mip_gap=GAP, candidates=pruned, explain=False)  # warm start, plan extraction
    assert (s.result is None) == (ref is None)
    if ref is not None:
        assert s.objective == pytest.approx(ref[0], rel=1e-9)
        assert s.result.feasible


def test_folded_columns_state_the_pool():
    """A single-point candidate is one binary column carrying its watts, dollars and GPUs; a
    real segment keeps its z and n columns and link rows."""
    p = Problem(workload=builtin("azure-conv-2023", 120), model="llama-3.1-8b",
                gpus=("H100-SXM",), tp=(1,), max_pools=2, boundaries=(2048,), max_ctx=16384,
                settings=Settings(500), max_gpus=1000)
    cset = build_candidates(p)
    data = build_mip_data(p, cset)
    two = build_mip_data(p, cset, fold=False)
    assert all(len(c.segs) == 1 and c.n_min == c.n_max for c in cset.candidates)
    assert data.ncol == len(cset.candidates) and two.ncol == 2 * len(cset.candidates)
    assert not any(r.startswith("link") for r in data.row_names)
    assert len(two.row_names) == len(data.row_names) + 2 * len(cset.candidates)
    for j, c in enumerate(cset.candidates):
        zc, nc = data.pair[(j, 0)]
        assert nc is None and data.col_kind[zc] == 0 and data.col_hi[zc] == 1
        assert data.power_coef[zc] == c.linearized_power_w(c.n_min)
        assert data.cost_coef[zc] == pytest.approx(c.cost_per_hr(c.n_min), rel=1e-12)
        assert data.gpu_coef[zc] == c.gpus(c.n_min)
        x = data.point([(j, 0, c.n_min)])
        assert data.pools(x) == [(j, 0, c.n_min)]
        assert data.A[data.row_index("max_gpus")] @ x == pytest.approx(c.gpus(c.n_min))
    with pytest.raises(ValueError, match="single count"):
        data.point([(0, 0, cset.candidates[0].n_min + 1)])
    # a real segment: two columns and both link rows
    seg = _cand(0, 1, "A", 1, 2, 500.0, 1.0, ((2, 5, 560.0, -30.0),))
    d2 = build_mip_data(SimpleNamespace(max_pools=1, budget_per_hr=None, inventory=(),
                                        max_gpus=None), CandidateSet([0, 1000], [seg]))
    assert d2.ncol == 2 and d2.pair[(0, 0)] == (0, 1)
    assert [r for r in d2.row_names if r.startswith("link")] == ["link_lo[0,0]", "link_hi[0,0]"]
    assert d2.pools(d2.point([(0, 0, 4)])) == [(0, 0, 4)]


@settings(max_examples=60, deadline=None)
@given(synthetic())
def test_presolve_off_keeps_the_optimum(case):
    """The MIP runs without HiGHS's presolve (``highs.MIP_PRESOLVE``, measured faster on every
    benchmark case): with presolve on, every synthetic problem has the same optimum."""
    from fleetopt.planners.mip import highs

    prob, full = case
    off = _lex(prob, full)
    saved = highs.MIP_PRESOLVE
    highs.MIP_PRESOLVE = "on"
    try:
        on = _lex(prob, full)
    finally:
        highs.MIP_PRESOLVE = saved
    _same(off, on)
    assert saved == "off"


@settings(max_examples=60, deadline=None)
@given(synthetic())
def test_heuristics_off_keep_the_optimum(case):
    """The MIP runs with HiGHS's primal heuristics off (``highs.MIP_HEURISTICS``, measured
    faster on every benchmark case): with HiGHS's defaults, every synthetic problem has the
    same optimum."""
    from fleetopt.planners.mip import highs

    prob, full = case
    off = _lex(prob, full)
    saved = highs.MIP_HEURISTICS
    highs.MIP_HEURISTICS = {}
    try:
        on = _lex(prob, full)
    finally:
        highs.MIP_HEURISTICS = saved
    _same(off, on)
    assert saved["mip_heuristic_effort"] == 0.0
