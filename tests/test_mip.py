"""The fleet MIP against exhaustive enumeration, its properties and its status paths."""

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fleetopt.evaluation import evaluate
from fleetopt.planners.baselines import homogeneous, pool_routing
from fleetopt.planners.enumerate import enumerate_optimum
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import load_config
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.sizing.candidates import build_candidates
from fleetopt.sizing.poolmodel import Settings

GAP = 1e-9  # explicit: HiGHS's default relative gap is 1e-4

WORKLOADS = ["azure-conv-2023", "azure-code-2023", "azure", "lmsys"]
GPU_SETS = [("H100-SXM",), ("H100-SXM", "A100-SXM"), ("L40S", "A100-SXM"), ("L40S",),
            ("MI300X", "B200")]
BOUNDS = [512, 1024, 1536, 2048, 3072, 4096, 6144, 8192]


@st.composite
def small_problems(draw):
    wl = draw(st.sampled_from(WORKLOADS))
    rate = draw(st.floats(20, 400))
    gpus = draw(st.sampled_from(GPU_SETS))
    tp = tuple(sorted(draw(st.sets(st.sampled_from([1, 2]), min_size=1, max_size=2))))
    bounds = tuple(sorted(draw(st.sets(st.sampled_from(BOUNDS), min_size=1, max_size=3))))
    slo = draw(st.sampled_from([300.0, 600.0, 2000.0]))
    max_pools = draw(st.integers(1, 3))
    objective = draw(st.sampled_from(["power", "cost"]))
    w = builtin(wl, rate)
    max_ctx = 16384 if w.max_total_tokens <= 16384 else 65536
    p = Problem(workload=w, model="llama-3.1-8b", gpus=gpus, tp=tp, boundaries=bounds,
                max_pools=max_pools, max_ctx=max_ctx, settings=Settings(slo), objective=objective)
    # optional budget / inventory drawn relative to the unconstrained optimum's needs
    limit = draw(st.sampled_from(["none", "budget", "inventory", "max_gpus"]))
    frac = draw(st.floats(0.6, 1.2))
    return p, limit, frac


def _with_limit(p, limit, frac):
    if limit == "none":
        return p
    free = solve(p, mip_gap=GAP, warm_start=False, explain=False)
    if free.result is None:
        return p
    t = free.totals
    if limit == "budget":
        return p.with_(budget_per_hr=max(0.01, t["cost_per_hr"] * frac))
    if limit == "max_gpus":
        return p.with_(max_gpus=max(1, int(t["gpus"] * frac)))
    g = free.result.pools[0].gpu
    used = sum(pr.gpus for pr in free.result.pools if pr.gpu == g)
    return p.with_(inventory=((g, max(0, int(used * frac))),))


@settings(max_examples=55)
@given(small_problems())
def test_mip_equals_enumeration(case):
    p, limit, frac = case
    p = _with_limit(p, limit, frac)
    cset = build_candidates(p, prune=False)
    e_lin = enumerate_optimum(p, candidates=cset)
    e_exact = enumerate_optimum(p, mode="exact", candidates=cset)
    m = solve(p, mip_gap=GAP, warm_start=False, explain=False)
    assert (m.result is None) == (e_lin.result is None)
    event(f"limit={limit}, {'infeasible' if m.result is None else f'{len(m.result.pools)} pools'}")
    if m.result is None:
        assert m.status == "infeasible"
        return
    assert m.status == "optimal"
    # same optimum under the same linearisation
    assert m.objective == pytest.approx(e_lin.objective, rel=1e-7, abs=1e-6)
    # every reported plan meets the SLO under the exact evaluator
    assert m.result.feasible
    # the model under-estimates: exact watts of the plan lie within the reported
    # linearisation error of the exact optimum
    if p.objective == "power":
        assert m.linearization_error >= -1e-6
        assert e_exact.objective - 1e-6 <= m.result.power_w
        assert m.result.power_w <= e_exact.objective + m.linearization_error + 1e-6
    else:
        assert m.result.cost_per_hr == pytest.approx(e_exact.objective, rel=1e-9)


def _base():
    return Problem(workload=builtin("azure-conv-2023", 120), model="llama-3.1-8b",
                   gpus=("H100-SXM", "A100-SXM", "L40S"), tp=(1, 2), max_pools=3,
                   boundaries=(1024, 2048, 4096), max_ctx=16384, settings=Settings(500))


def _opt(p):
    s = solve(p, mip_gap=GAP, warm_start=False, explain=False)
    return s.objective if s.result is not None else math.inf


@settings(max_examples=12)
@given(f1=st.floats(0.5, 1.5), f2=st.floats(0.5, 1.5))
def test_more_budget_never_raises_the_optimum(f1, f2):
    p = _base()
    c = solve(p, mip_gap=GAP).totals["cost_per_hr"]
    lo, hi = sorted((f1, f2))
    assert _opt(p.with_(budget_per_hr=c * hi)) <= _opt(p.with_(budget_per_hr=c * lo)) + 1e-6


@settings(max_examples=10)
@given(a=st.integers(0, 40), b=st.integers(0, 40))
def test_more_inventory_never_raises_the_optimum(a, b):
    p = _base()
    lo, hi = sorted((a, b))
    assert _opt(p.with_(inventory=(("H100-SXM", hi),))) <= \
        _opt(p.with_(inventory=(("H100-SXM", lo),))) + 1e-6


@settings(max_examples=10)
@given(s1=st.floats(150, 3000), s2=st.floats(150, 3000))
def test_looser_slo_never_raises_the_optimum(s1, s2):
    p = _base()
    lo, hi = sorted((s1, s2))
    assert _opt(p.with_(settings=Settings(hi))) <= _opt(p.with_(settings=Settings(lo))) + 1e-6


def test_more_pools_never_raise_the_optimum():
    p = _base()
    vals = [_opt(p.with_(max_pools=k)) for k in (1, 2, 3, 4)]
    assert all(b <= a + 1e-6 for a, b in zip(vals, vals[1:], strict=False))


@pytest.mark.parametrize("name", ["azure-h100", "azure-mixed", "paper-azure"])
def test_optimum_never_above_a_feasible_baseline(name):
    p = load_config(name)
    m = solve(p, mip_gap=GAP)
    assert m.status == "optimal" and m.result.feasible
    for base in (homogeneous(p), pool_routing(p)):
        if base.result is not None and base.result.feasible:
            assert m.result.power_w <= base.result.power_w * (1 + 1e-9) + m.linearization_error


def test_same_input_same_plan():
    p = load_config("azure-mixed")
    a, b = solve(p), solve(p)
    assert a.to_dict()["pools"] == b.to_dict()["pools"]


def test_backends_agree():
    p = _base().with_(budget_per_hr=40.0)
    a = solve(p, mip_gap=GAP, backend="highspy", warm_start=False)
    b = solve(p, mip_gap=GAP, backend="pyomo")
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, rel=1e-9)


def test_plan_pools_are_a_valid_fleet_and_reevaluate_identically():
    p = load_config("azure-h100")
    s = solve(p)
    from fleetopt.problem.fleet import Fleet

    f = Fleet.from_list(s.to_dict())
    r = evaluate(f, p.workload, p.settings, model=p.model, catalog=p.catalog, physics=p.physics)
    assert r.power_w == pytest.approx(s.result.power_w)


def test_solution_json_shape():
    s = solve(load_config("paper-azure"))
    d = s.to_dict()
    assert set(d) >= {"status", "objective", "linearization_error", "totals", "pools", "timing"}
    assert set(d["objective"]) == {"name", "value", "bound", "gap"}
    assert set(d["timing"]) >= {"build_s", "translate_s", "solve_s", "total_s"}
    assert s.to_frame().shape[0] == len(d["pools"])


# ---- status paths -------------------------------------------------------------------------

def test_infeasible_budget_is_explained_with_the_smallest_relaxation():
    p = _base()
    need = solve(p.with_(objective="cost"), mip_gap=GAP).objective
    s = solve(p.with_(budget_per_hr=need * 0.5))
    assert s.status == "infeasible" and s.result is None
    [fix] = s.details["relaxations"]
    [change] = fix["changes"]
    assert change["field"] == "budget.cost_per_hr"
    assert need - 1e-6 <= change["value"] <= need + 0.01 + 1e-9  # the least, up to a cent
    assert f"budget must be at least ${change['value']:,.2f}/hr" in s.message


def test_infeasible_slo_names_prefill():
    p = Problem(workload=builtin("mooncake-conversation", 5), model="llama-3.1-70b",
                gpus=("H100-SXM",), tp=(8,), max_ctx=131072, settings=Settings(300))
    s = solve(p)
    assert s.status == "infeasible"
    assert "slo.ttft_p99_ms" in s.message and "at least" in s.message


def test_infeasible_inventory_and_pools_explained():
    p = _base().with_(inventory=(("H100-SXM", 0), ("A100-SXM", 0), ("L40S", 0)))
    s = solve(p)
    assert s.status == "infeasible" and "inventory." in s.message


def test_time_limit_with_and_without_incumbent():
    p = load_config("azure-mixed")
    cset = build_candidates(p)
    with_inc = solve(p, time_limit=1e-9, warm_start=True, candidates=cset)
    assert with_inc.status == "time_limit" and with_inc.result is not None
    assert with_inc.result.feasible
    without = solve(p, time_limit=1e-9, warm_start=False, candidates=cset)
    assert without.status == "time_limit" and without.result is None
    assert "time limit" in without.message


def test_segments_engage_on_a_non_monotone_power_curve(steep_catalog):
    """A power curve falling steeply with the batch (a calibrated profile, low idle) makes pool
    watts FALL with more instances in places: the candidates keep their segments, and the MIP
    still equals enumeration, exactly at the linearisation and within its reported error of
    the exact optimum."""
    cat = steep_catalog
    p = Problem(workload=builtin("azure-conv-2023", 400), model="llama-3.1-8b", gpus=("steep-cal",),
                tp=(1,), boundaries=(1024, 2048, 4096), max_pools=2, max_ctx=16384,
                settings=Settings(2000), catalog=cat)
    cset = build_candidates(p, prune=False, headroom=1.0)
    assert any(len(c.n_points) > 1 for c in cset.candidates)  # segments in play
    e_lin = enumerate_optimum(p, candidates=cset)
    e_exact = enumerate_optimum(p, mode="exact", candidates=cset)
    m = solve(p, mip_gap=GAP, warm_start=False, headroom=1.0)
    assert m.objective == pytest.approx(e_lin.objective, rel=1e-7)
    assert m.linearization_error >= -1e-6
    assert e_exact.objective - 1e-6 <= m.result.power_w <= e_exact.objective + m.linearization_error + 1e-6


def test_any_pyomo_solver_path_and_unknown_solver():
    """A solver other than the built-in HiGHS goes through Pyomo's SolverFactory."""
    from fleetopt.core.errors import FleetoptError

    p = _base()
    ref = solve(p, mip_gap=GAP, warm_start=False)
    other = solve(p, solver="appsi_highs")  # Pyomo's legacy factory path
    assert other.status == "optimal" and other.details["backend"] == "pyomo"
    assert other.objective == pytest.approx(ref.objective, rel=1e-4)
    with pytest.raises(FleetoptError, match="not available"):
        solve(p, solver="no-such-solver")


def test_shared_breakpoints_score_the_lower_segment():
    """Regression: adjacent segments are shifted down separately; at their shared breakpoint the
    MIP may use either, so the enumerator must score the lower line too."""
    p = Problem(workload=builtin("azure", 158.6588854975394), model="llama-3.1-8b",
                gpus=("L40S", "A100-SXM"), tp=(2,), boundaries=(1024, 6144), max_pools=2,
                max_ctx=16384, settings=Settings(300.0))
    cset = build_candidates(p, prune=False)
    e = enumerate_optimum(p, candidates=cset)
    m = solve(p, mip_gap=GAP, warm_start=False, explain=False)
    assert m.objective == pytest.approx(e.objective, rel=1e-9)
    for c in cset.candidates:
        for lo, hi, a, b in c.segs:
            for n in (lo, hi):
                assert c.linearized_power_w(n) <= a + b * n + 1e-9


@pytest.mark.parametrize("backend", ["highspy", "pyomo"])
def test_a_solve_may_ask_for_another_thread_count(backend):
    """HiGHS keeps one thread pool per process, sized by its first run: a later run asking for
    another count found no solution ("Not Set"). The pool is remade at the count asked for
    (highspy with Highs.resetGlobalScheduler), or the run says why it cannot be."""
    import highspy

    from fleetopt.planners.mip import highs

    p = Problem(workload=builtin("azure-conv-2023", 200), model="llama-3.1-8b",
                gpus=("H100-SXM",), tp=(1,), max_pools=2, boundaries=(2048,), max_ctx=16384,
                settings=Settings(500))
    base = solve(p, backend=backend)
    assert base.status == "optimal"
    first = highs._pool_threads
    can = hasattr(highspy.Highs, "resetGlobalScheduler")
    for t in (1, 2, None, 2, 1, None):
        s = solve(p, threads=t, backend=backend)
        if can or (0 if t is None else t) == first:
            assert s.status == "optimal", (t, s.message)
            assert s.objective == pytest.approx(base.objective, rel=1e-9)
        elif s.status != "optimal":  # an older release's pool may serve some other counts
            assert "first HiGHS run" in s.message
        if can:
            assert highs._pool_threads == (0 if t is None else t)
