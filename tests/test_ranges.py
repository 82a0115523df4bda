"""Instance ranges that provably hold the optimum (docs/formulation.md §5)."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from fleetopt.evaluation import evaluate, pool_model
from fleetopt.physics.catalog import Catalog
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.sizing.candidates import build_candidates, exact_power_table
from fleetopt.sizing.poolmodel import Settings


def _agent_heavy() -> Problem:
    return Problem(workload=builtin("agent-heavy", 2609.61), model="llama-3.1-70b",
                   dtypes=("fp8",), gpus=("A100-SXM", "GB200", "H100-SXM"), tp=(1, 8),
                   max_pools=3, boundaries=(2304, 2816, 3072, 7168, 21248, 32768, 49152),
                   settings=Settings(630.4))


def test_agent_heavy_counter_example_is_optimal_now():
    """Regression (issue 9): with the old pool model the plan was reported optimal at
    2,238,503 W with the last pool at 211 instances while 300 met the SLO with fewer watts.
    Under the serving model the watts rise with the count, so the candidates collapse to their
    fewest instances, and no count up to six times that beats a smaller one."""
    p = _agent_heavy().with_(settings=Settings(3000.0))
    s = solve(p, mip_gap=1e-9)
    assert s.status == "optimal" and s.result.feasible
    assert s.details["candidate_stats"]["monotone_fallback"] == 0
    last = s.result.pools[-1]
    cset = build_candidates(p, prune=False)
    top = [c for c in cset.candidates if c.hi == last.ctx_hi and c.lo == last.ctx_lo][:6]
    assert top and all(c.n_max == c.n_min for c in top)
    _check_candidates(p, type(cset)(cset.boundaries, top))
    # more instances on the top pool: never fewer watts
    for extra in (1, last.instances, 3 * last.instances):
        more = list(s.fleet.pools)
        more[-1] = replace(more[-1], instances=last.instances + extra)
        alt = evaluate(Fleet(tuple(more)), p.workload, p.settings, model=p.model,
                       catalog=p.catalog, physics=p.physics)
        assert alt.feasible and alt.power_w > s.result.power_w


def test_ranges_hold_when_watts_fall_with_instances(steep_catalog):
    """A power curve that falls steeply with the batch makes pool watts fall as instances are
    added: the monotonicity check sends those candidates to the exact ranges, which still
    hold every useful count."""
    p = Problem(workload=builtin("azure-conv-2023", 400), model="llama-3.1-8b",
                gpus=("steep-cal",), tp=(1,), boundaries=(1024, 2048, 4096), max_pools=2,
                max_ctx=16384, settings=Settings(2000), catalog=steep_catalog)
    cset = build_candidates(p, prune=False)
    assert cset.stats["monotone_fallback"] > 0
    assert _check_candidates(p, cset) > 0


def _check_candidates(p: Problem, cset, factor: int = 6) -> int:
    """Every candidate: model watts <= exact at every count of its range, and every count
    above ``n_max`` (up to ``factor`` times it) has at least the watts of a smaller count."""
    extended = 0
    for c in cset.candidates:
        tab = exact_power_table(p, c)
        ns = np.arange(c.n_min, c.n_max + 1)
        ws = np.array([tab[n] for n in ns])
        lin = np.array([c.linearized_power_w(int(n)) for n in ns])
        assert np.all(lin <= ws * (1 + 1e-12) + 1e-6), (c.lo, c.hi, c.deployment)
        pm = pool_model((c.lo, c.hi, c.window), p.profile(c.deployment), p.workload, p.settings)
        beyond = np.arange(c.n_max + 1, max(factor * c.n_max, c.n_max + 200))
        wb = pm.power_w(beyond)
        prefix = np.minimum.accumulate(np.concatenate([ws, wb]))[len(ws) - 1:-1]
        bad = wb < prefix * (1 - 1e-9)
        assert not bad.any(), (c.lo, c.hi, c.deployment, c.n_max, beyond[bad][:3])
        extended += c.n_max > c.n_min
    return extended


CASES = [(m, dt, ctx, wl) for m, dt, ctx in [("llama-3.1-8b", "fp16", 16384),
                                              ("mixtral-8x7b", "fp16", 32768),
                                              ("qwen3-30b-a3b", "fp8", 32768)]
         for wl in ("azure-conv-2023", "azure-code-2023", "azure")] + \
    [("llama-3.1-70b", "fp8", 65536, wl) for wl in ("azure-conv-2023", "lmsys", "agent-heavy")]
SHALLOW = ["H100-SXM", "H200-SXM", "L40S", "MI300X"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), rate=st.floats(50, 3000),
       steep=st.sampled_from(["steep", "A100-SXM", "GB200"]),
       other=st.sampled_from([None, *SHALLOW]),
       tp=st.sets(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=2),
       bounds=st.sets(st.sampled_from([512, 1024, 2048, 4096, 8192]), min_size=1, max_size=2),
       slo=st.sampled_from([300.0, 800.0, 3000.0]))
def test_ranges_hold_every_useful_count(steep_catalog, case, rate, steep, other, tp, bounds,
                                        slo):
    """Dense and mixture-of-experts models, shallow and steep power curves: every candidate's
    model watts stay below the exact ones, and no count above its range beats a smaller one."""
    name, dtype, max_ctx, wl = case
    gpus = (steep,) if other is None else (steep, other)
    try:
        p = Problem(workload=builtin(wl, rate), model=name, dtypes=(dtype,), gpus=gpus,
                    tp=tuple(sorted(tp)), boundaries=tuple(sorted(bounds)), max_ctx=max_ctx,
                    settings=Settings(slo), catalog=steep_catalog)
    except ValueError:
        assume(False)
    cset = build_candidates(p, prune=False)
    assume(cset.candidates)
    ext = _check_candidates(p, cset)
    event(f"extended ranges: {'yes' if ext else 'no'}")
    event(f"mixture of experts: {p.catalog.model(name).experts > 0}")


@pytest.mark.parametrize("accounting", ["physical", "paper"])
def test_calibrated_profile_ranges(accounting):
    p = Problem(workload=builtin("azure", 1000), model="llama-3.1-70b", gpus=("1w-law-h100",),
                tp=(8,), boundaries=(2048, 4096), settings=Settings(500, accounting=accounting))
    _check_candidates(p, build_candidates(p, prune=False))


def _limited(p: Problem, limit: str, frac: float) -> Problem:
    if limit == "none":
        return p
    free = solve(p, mip_gap=1e-9, explain=False)
    if free.result is None:
        return p
    if limit == "budget":
        return p.with_(budget_per_hr=free.totals["cost_per_hr"] * frac)
    g = free.result.pools[0].gpu
    used = sum(pr.gpus for pr in free.result.pools if pr.gpu == g)
    return p.with_(inventory=((g, max(1, int(used * frac))),))


def _meets_limits(p: Problem, r) -> bool:
    t = r.totals
    if p.budget_per_hr is not None and t["cost_per_hr"] > p.budget_per_hr + 1e-9:
        return False
    if p.max_gpus is not None and t["gpus"] > p.max_gpus:
        return False
    for g, cap in p.inventory:
        if sum(pr.gpus for pr in r.pools if pr.gpu == g) > cap:
            return False
    return True


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wl=st.sampled_from(["azure-conv-2023", "azure-code-2023", "agent-heavy", "agent-heavy"]),
       rate=st.floats(20, 2500),
       gpus=st.lists(st.sampled_from(["steep", "A100-SXM", "GB200", "H100-SXM"]),
                     min_size=1, max_size=2, unique=True),
       tp=st.sets(st.sampled_from([1, 2, 8]), min_size=1, max_size=2),
       bounds=st.sets(st.sampled_from([1024, 2048, 4096, 8192, 16384, 32768]), min_size=1,
                      max_size=3),
       slo=st.sampled_from([1000.0, 3000.0, 10000.0]), pools=st.integers(1, 3),
       limit=st.sampled_from(["none", "none", "budget", "inventory"]), frac=st.floats(0.8, 1.1),
       extra=st.lists(st.floats(0.0, 4.0), min_size=3, max_size=3))
def test_more_instances_never_beat_the_bound(steep_catalog, wl, rate, gpus, tp, bounds, slo,
                                             pools, limit, frac, extra):
    """Adding instances to any pool of an optimal plan never lowers exact watts by more than
    the reported gap. Precisely: with ``objective`` (model watts of the plan), ``bound`` and
    ``linearization_error = exact(plan) - objective``, every plan ``y`` that adds instances
    to one pool and still meets the budget and inventory has
    ``exact(plan) - exact(y) <= (objective - bound) + linearization_error``, i.e.
    ``exact(y) >= bound``."""
    w = builtin(wl, rate)
    try:
        p = Problem(workload=w, model="llama-3.1-70b", dtypes=("fp8",), gpus=tuple(gpus),
                    tp=tuple(sorted(tp)), boundaries=tuple(sorted(bounds)), max_ctx=65536,
                    max_pools=pools, settings=Settings(slo), catalog=steep_catalog)
    except ValueError:
        assume(False)
    p = _limited(p, limit, frac)
    s = solve(p, mip_gap=1e-9, explain=False)
    assume(s.result is not None)
    assert s.status == "optimal"
    slack = (s.objective - s.bound) + s.linearization_error
    exact = s.result.power_w
    event(f"extended ranges: {'yes' if s.details['candidate_stats']['extended'] else 'no'}")
    for j, pool in enumerate(s.fleet.pools):
        n = pool.instances
        for k in sorted({1, 2, max(1, n // 3), n, *(max(1, int(x * n)) for x in extra)}):
            fl = list(s.fleet.pools)
            fl[j] = replace(pool, instances=n + k)
            r = evaluate(Fleet(tuple(fl)), p.workload, p.settings, model=p.model,
                         catalog=p.catalog, physics=p.physics)
            assert r.feasible  # more instances never break the SLO
            if not _meets_limits(p, r):
                continue
            assert exact - r.power_w <= slack + 1e-6 * exact, (j, n, k)
            assert r.power_w >= s.bound - 1e-6 * exact


@pytest.mark.parametrize("model, dtype", [("llama-3.1-70b", "fp8"), ("mixtral-8x7b", "fp16"),
                                          ("qwen3-30b-a3b", "fp8")])
def test_operating_point_falls_and_watts_rise_with_instances(model, dtype):
    """The facts the collapsed ranges rest on (docs/formulation.md section 5): the decoders per
    instance never rise with the count (least fixed point of a map that falls with N), the
    pool's watts rise by about an instance's idle watts or more, dense and MoE alike."""
    p = Problem(workload=builtin("azure-conv-2023", 800), model=model, dtypes=(dtype,),
                gpus=("A100-SXM",), tp=(2,), boundaries=(2048,), max_ctx=16384,
                settings=Settings(3000))
    prof = p.profile(p.deployments()[0])
    pm = pool_model((0, 2048, 2048), prof, p.workload, p.settings)
    fam = pm.family
    n0 = pm.min_instances()
    N = np.arange(n0, 6 * n0, dtype=float)
    cols = np.zeros(len(N), dtype=int)
    D = fam.operating_point(cols, N, design=False)["D"]
    assert np.all(np.diff(D) <= 1e-9 * np.maximum(D[:-1], 1.0))
    W = fam.power_w(cols, N)
    idle = float(fam.gpus[0] * fam.idle_w[0])
    assert np.all(np.diff(W) >= 0.5 * idle)


def test_negative_iteration_slope_is_refused(tmp_path):
    from fleetopt.core.errors import FleetoptError

    f = tmp_path / "prof.toml"
    f.write_text("""
[profile.odd]
model = "llama-3.1-70b"
tp = 8
dtype = "fp16"
base_iter_s = 0.004
per_seq_s = -0.0001
ref_ctx_tokens = 8192
kv_blocks = 65536
block_tokens = 16
max_slot_tokens = 2097152
chunk_tokens = 1024
power_idle_w = 300.0
power_plateau_w = 600.0
power_slope = 1.0
power_midpoint_log2 = 4.2
price_per_gpu_hr = 4.0
""")
    with pytest.raises(FleetoptError, match="per_seq_s"):  # refused when the catalog loads
        Catalog.default().extend_from_file(f)
    # and by the sizing that relies on it, for a spec made in Python past the catalog checks
    from dataclasses import replace

    cat = Catalog.default()
    spec = replace(cat.profiles.get_spec("1w-law-h100", "gpu"), name="odd", aliases=(),
                   per_seq_s=-0.0001)
    cat.profiles.add("odd", spec)
    p = Problem(workload=builtin("azure", 100), model="llama-3.1-70b", gpus=("odd",), tp=(8,),
                boundaries=(4096,), catalog=cat)
    with pytest.raises(FleetoptError, match="per_seq_s"):
        build_candidates(p)


def test_a_dip_above_n_min_sends_the_candidate_to_the_exact_range(steep_catalog):
    """Regression: Mixtral fp16 on A100 TP2, (2048, 32768] of azure-code-2023 at 257 req/s:
    the watts rise from n_min = 109 and dip below W(n_min) near 130; checking only n_min + 1
    and 2 n_min + 1 collapsed the candidate to n_min."""
    p = Problem(workload=builtin("azure-code-2023", 257.0), model="mixtral-8x7b",
                dtypes=("fp16",), gpus=("A100-SXM",), tp=(2,), boundaries=(512, 2048),
                max_ctx=32768, settings=Settings(3000.0), catalog=steep_catalog)
    cset = build_candidates(p, prune=False)
    assert cset.stats["monotone_fallback"] >= 1
    top = [c for c in cset.candidates if c.lo == 2048]
    assert top and top[0].n_max > top[0].n_min
    _check_candidates(p, cset)
