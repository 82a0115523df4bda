"""Candidate pools: the batched sizing equals the per-pool model; the linearisation is safe."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetopt.planners.enumerate import count_plans, enumerate_optimum
from fleetopt.problem.config import load_config
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin
from fleetopt.sizing.candidates import (
    _candidates_for,
    breakpoints,
    build_candidates,
    under_segments,
)
from fleetopt.sizing.poolmodel import Settings


def _key(c):
    return (c.k, str(c.deployment), c.window, c.i)


@pytest.mark.parametrize("name, compress, peak", [
    ("azure-h100", False, 1.0), ("azure-mixed", True, 1.0), ("azure-h100", False, 1.7),
])
def test_batched_sizing_equals_pool_model(name, compress, peak):
    p = load_config(name)
    if peak != 1.0:
        p = p.with_(settings=Settings(800, peak_factor=peak))
    b = [0, *p.candidate_boundaries(), p.max_ctx]
    deps = p.deployments()[:6]
    slow, s1, d1 = _candidates_for(p, b, deps, compress, 3, 0.5, 32, batched=False)
    fast, s2, d2 = _candidates_for(p, b, deps, compress, 3, 0.5, 32, batched=True)
    assert s1 == s2 and d1 == d2 == {(i, k) for k in range(1, len(b)) for i in range(k)}
    slow, fast = sorted(slow, key=_key), sorted(fast, key=_key)
    assert [_key(c) for c in slow] == [_key(c) for c in fast]
    for a, c in zip(slow, fast, strict=True):
        assert a.n_points == c.n_points and a.exact_n == c.exact_n
        assert np.allclose(a.power_exact_w, c.power_exact_w, rtol=1e-12)
        assert a.compressed_share == pytest.approx(c.compressed_share, abs=1e-12)


@given(n_min=st.integers(1, 500), segments=st.integers(0, 6), headroom=st.floats(0, 2))
def test_breakpoints_span_the_range(n_min, segments, headroom):
    pts = breakpoints(n_min, segments, headroom, 32)
    assert pts[0] == n_min and pts == sorted(set(pts))
    top = max(n_min, min(int(np.ceil(n_min * (1 + headroom))), n_min + 32))
    assert pts[-1] == (n_min if segments == 0 else top)
    assert len(pts) <= segments + 1


@given(st.lists(st.floats(100, 1e5), min_size=2, max_size=40), st.integers(1, 5))
def test_segments_under_estimate_everywhere(values, segments):
    n0 = 7
    pts = breakpoints(n0, segments, 10.0, len(values) - 1)
    exact = np.asarray(values[: pts[-1] - n0 + 1])
    segs = under_segments(pts, exact)
    for lo, hi, a, b in segs:
        for n in range(lo, hi + 1):
            assert a + b * n <= exact[n - n0] + 1e-6


def test_concave_curves_are_exact_at_breakpoints():
    n = np.arange(10, 31)
    exact = 1000 * np.sqrt(n)  # concave: the secant lies below
    pts = breakpoints(10, 4, 2.0, 20)
    for lo, hi, a, b in under_segments(pts, exact):
        assert a + b * lo == pytest.approx(exact[lo - 10])
        assert a + b * hi == pytest.approx(exact[hi - 10])


def test_count_plans_matches_enumeration():
    p = Problem(workload=builtin("azure-conv-2023", 20), model="llama-3.1-8b",
                gpus=("H100-SXM", "L40S"), tp=(1,), boundaries=(1024, 4096), max_pools=2,
                max_ctx=16384)
    cset = build_candidates(p, prune=False)
    e = enumerate_optimum(p, candidates=cset)
    assert count_plans(cset, p.max_pools) == e.details["plans"]


def test_workers_do_not_change_the_result():
    p = load_config("azure-h100")
    a = build_candidates(p, workers=1)
    b = build_candidates(p, workers=2)
    assert [(_key(c), c.n_points, c.exact_n, c.power_exact_w) for c in a.candidates] == \
        [(_key(c), c.n_points, c.exact_n, c.power_exact_w) for c in b.candidates]


@pytest.mark.parametrize("name, compress", [("azure-h100", False), ("azure-mixed", True)])
def test_build_order_does_not_change_the_candidates(name, compress):
    """Without a deadline each upper edge is sized once in one large family; under one, the
    coarse arcs first in families of at most 512 pools: the same candidates either way."""
    from fleetopt.core.deadline import Deadline
    from fleetopt.sizing.candidates import _jobs

    for K in (1, 3, 9, 33):
        for comp in (False, True):
            for first in (False, True):
                arcs = [(i, k) for k, lows, w in _jobs(K, comp, coarse_first=first)
                        if w != "compress" for i in lows]
                assert sorted(arcs) == sorted((i, k) for k in range(1, K + 1) for i in range(k))
    p = load_config(name)
    free = build_candidates(p, compress=compress, deadline=Deadline())
    timed = build_candidates(p, compress=compress, deadline=Deadline.after(1e6))
    assert free.complete and timed.complete
    # what was screened (and so which pools were sized) depends on the order; what survives,
    # and how many were considered and dominated, does not
    same = ("considered", "empty", "no_slot", "kept", "dominated")
    assert {k: free.stats[k] for k in same} == {k: timed.stats[k] for k in same}
    assert [(_key(c), c.n_points, c.exact_n) for c in free.candidates] == \
        [(_key(c), c.n_points, c.exact_n) for c in timed.candidates]
    for a, c in zip(free.candidates, timed.candidates, strict=True):
        assert np.allclose(a.power_exact_w, c.power_exact_w, rtol=1e-12)


@pytest.mark.parametrize("kv", ["paged", "reserved", "auto"])
def test_families_over_two_upper_edges_size_each_pool_as_its_own(kv, monkeypatch):
    """Without a deadline, the pools of two consecutive upper edges share a family, each at its
    own window: every candidate (unpruned, so every pool is sized) is the one its own upper
    edge's family gives, to rounding, with the same counts and the same statistics; reserved
    KV makes the slots differ between the two windows, per-pool peak factors ("auto") the
    design rates."""
    import fleetopt.sizing.candidates as cmod

    p = load_config("azure-mixed")
    if kv == "auto":
        p = p.with_(peak_factor_auto=True)
    else:
        p = p.with_(settings=dataclasses.replace(p.settings, kv_allocation=kv))
    merged = build_candidates(p, prune=False)
    monkeypatch.setattr(cmod, "_MERGE_EDGES", 1)
    single = build_candidates(p, prune=False)
    assert merged.stats == single.stats
    assert [(_key(c), c.n_points, c.exact_n) for c in merged.candidates] == \
        [(_key(c), c.n_points, c.exact_n) for c in single.candidates]
    for a, c in zip(merged.candidates, single.candidates, strict=True):
        assert np.allclose(a.power_exact_w, c.power_exact_w, rtol=1e-12)
        assert (a.rate_rps, a.compressed_share) == pytest.approx((c.rate_rps, c.compressed_share),
                                                                 rel=1e-12)


def test_a_family_over_two_upper_edges_gives_each_pool_its_window():
    """Sizer.families(his=...): pools (lo_l, his_l] at their own windows, in one family: each
    pool's routed share and slots are its own, and a deployment with no slot at a pool's
    window (or too short a context) is infeasible there only."""
    from fleetopt.physics.profiles import Deployment
    from fleetopt.sizing.sizer import Sizer

    p = load_config("azure-mixed")
    p = p.with_(settings=dataclasses.replace(p.settings, kv_allocation="reserved"))
    sz = Sizer(p)
    b = [0, *p.candidate_boundaries(), p.max_ctx]
    hi, mid = b[-1], b[-2]
    deps = p.deployments()
    lows = [0, b[1], 0, b[1]]
    his = [hi, hi, mid, mid]
    (members, fam), = sz.families(lows, hi, hi, deps, his=his)
    for j, (_d, prof) in enumerate(members):
        for ell, top in enumerate(his):
            c = j * len(lows) + ell
            want = prof.slots(top) if top <= prof.max_context else 0
            assert fam.slots[c] == want
            if want < 1:
                assert not fam.feasible[c]
    wl = p.workload
    for ell, (lo, top) in enumerate(zip(lows, his, strict=True)):
        m = (wl.total_tokens > lo) & (wl.total_tokens <= top)
        assert fam.share[ell] == pytest.approx(float(wl.weights[m].sum()), rel=1e-12)
    # the first two pools are the upper edge's own family's, to rounding
    (_, own), = sz.families(lows[:2], hi, hi, deps)
    for j in range(len(members)):
        cols = [j * len(lows) + ell for ell in range(2)]
        mine = [j * 2 + ell for ell in range(2)]
        np.testing.assert_allclose(fam.tau_d[cols], own.tau_d[mine], rtol=1e-12)
        np.testing.assert_array_equal(fam.feasible[cols], own.feasible[mine])
    with pytest.raises(ValueError, match="own windows"):
        sz.families(lows, hi, mid, deps, his=his)
    assert isinstance(members[0][0], Deployment)


def _mixed(**kw):
    """azure-mixed's fleet at a rate and with limits that make the screen work."""
    p = load_config("azure-mixed")
    return p.with_(**kw) if kw else p


@pytest.mark.parametrize("case", ["free", "limits", "cost", "max_gpus", "lexicographic",
                                  "compress", "reserved"])
def test_screening_keeps_the_survivors(case):
    """Candidates screened out unsized (build_candidates with prune) are exactly those the
    pruning of every sized candidate removes: the same survivors, bit for bit, with the same
    kept and dominated counts, under each form of the dominance relation."""
    from fleetopt.sizing.candidates import prune_dominated

    p = load_config("azure-mixed")
    if case == "limits":
        p = p.with_(budget_per_hr=260.0, inventory=(("MI300X", 120),))
    elif case == "cost":
        p = p.with_(objective="cost")
    elif case == "max_gpus":
        p = p.with_(max_gpus=200)
    elif case == "lexicographic":
        p = p.with_(objective="power_then_cost", inventory=(("B200", 40),))
    elif case == "reserved":
        p = p.with_(settings=dataclasses.replace(p.settings, kv_allocation="reserved"))
    compress = case == "compress"
    screened = build_candidates(p, compress=compress)
    every = build_candidates(p, compress=compress, prune=False)
    assert screened.stats["screened"] > 0 and every.stats["screened"] == 0
    want = prune_dominated(every.candidates, p)
    assert [(_key(c), c.n_points, c.exact_n, c.power_exact_w, c.segs)
            for c in screened.candidates] == \
        [(_key(c), c.n_points, c.exact_n, c.power_exact_w, c.segs) for c in want]
    assert screened.stats["kept"] == len(want)
    assert screened.stats["dominated"] == len(every.candidates) - len(want)


def test_a_family_may_mix_calibrated_and_computed_deployments():
    """A calibrated profile beside computed GPUs in one family: every table key is present for
    every subset of it (the full-chunk pass takes subsets of one kind)."""
    p = Problem(workload=builtin("azure-conv-2023", 20), model="llama-3.1-70b",
                gpus=("H100-SXM", "B200", "1w-law-h100"), tp=(2, 8), max_ctx=8192,
                boundaries=(512, 2048, 4096), max_pools=2, over_max_ctx="drop")
    cs = build_candidates(p)
    assert {c.deployment.gpu for c in build_candidates(p, prune=False).candidates} >= {
        "H100-SXM", "B200", "1w-law-h100"}
    assert cs.candidates
