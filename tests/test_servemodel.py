"""The serving model of physical accounting (fleetopt.sizing.servemodel, issue 11)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.catalog import default_catalog
from fleetopt.physics.power import PowerCurve
from fleetopt.physics.profiles import Deployment, PhysicsParams, Profile, resolve
from fleetopt.problem.config import problem_from_dict
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import Workload, builtin
from fleetopt.sizing.family import family_mix
from fleetopt.sizing.poolmodel import PoolModel
from fleetopt.sizing.servemodel import (
    ContractPhysics,
    ServeFamily,
    _wait_tail_uniform,
    lru_hit_share,
    physics_of,
    stack_physics,
)
from fleetopt.sizing.sizer import Sizer, pool_model

CAT = default_catalog()


def _prof(gpu="H100-SXM", tp=8, dtype="fp16", model="llama-3.1-70b"):
    return resolve(Deployment(gpu, tp, dtype), model, CAT)


def _pool(wl="azure-conv-2023", rate=100.0, window=16384, settings=None, prof=None, hit=None):
    w = builtin(wl, rate)
    prof = prof or _prof()
    return PoolModel(prof, w.input_tokens, w.output_tokens, w.weights, w.rate_rps, window,
                     settings or Settings(500), hit)


# ------------------------------------------------------------------------------------------
# monotone in the instance count (what sizing by bisection and the MIP's ranges rest on)

@settings(max_examples=25, deadline=None)
@given(wl=st.sampled_from(["azure-conv-2023", "azure-code-2023", "azure", "lmsys"]),
       rate=st.floats(5, 400), gpu=st.sampled_from([("H100-SXM", 8, "fp16"),
                                                    ("A100-SXM", 4, "fp16"),
                                                    ("B200", 2, "fp8"), ("L40S", 4, "fp8")]),
       reserved=st.booleans(), tpot=st.sampled_from([None, 60.0]))
def test_every_figure_is_monotone_in_the_instance_count(wl, rate, gpu, reserved, tpot):
    prof = _prof(*gpu)
    if prof.fit_error():
        return
    s = Settings(1000, kv_allocation="reserved" if reserved else "paged", tpot_p99_ms=tpot)
    window = 16384 if prof.slots(16384) >= 1 else 4096
    if prof.slots(window) < 1:
        return
    w = builtin(wl, rate)
    keep = w.total_tokens <= window
    pm = PoolModel(prof, w.input_tokens[keep], w.output_tokens[keep], w.weights[keep],
                   w.rate_rps * float(w.weights[keep].sum()), window, s)
    n0 = pm.min_instances() or 1
    N = np.arange(max(1, n0 - 3), 4 * n0 + 8)
    m = pm.metrics(N)
    for key in ("p99_ttft_ms", "p99_tpot_ms", "mean_tpot_ms", "kv_overflow_bound",
                "prefill_share", "kv_util", "decode_util", "token_util", "mean_batch"):
        v = m[key]
        fin = np.isfinite(v)
        d = np.diff(np.where(fin, v, 1e300))
        assert np.all(d <= 1e-9 * np.maximum(np.abs(v[1:]), 1.0) + 1e-12), (key, v)
    ok = m["slo_met"]
    assert not np.any(ok[:-1] & ~ok[1:])  # once met, met at every larger count
    if pm.min_instances() is not None:
        assert ok[N == pm.min_instances()].all() and not ok[N < pm.min_instances()].any()
        W = pm.power_w(N[N >= n0])
        assert np.all(np.diff(W) > 0)  # watts rise with the count (docs/formulation.md §5)


def test_wait_tail_uniform_matches_its_definition():
    rng = np.random.default_rng(1)
    pw, th, ell = 0.3, 25.0, 0.08
    u = rng.uniform(0, ell, 400_000)
    w = np.where(rng.uniform(size=u.size) < pw, rng.exponential(1 / th, u.size), 0.0)
    for d in (-0.01, 0.0, 0.02, 0.08, 0.15, 0.3):
        got = _wait_tail_uniform(np.array([d]), np.array([ell]), np.array([[pw]]), np.array([[th]]))
        assert got[0] == pytest.approx(float(np.mean(w + u > d)), abs=3e-3)
    # a request that waits at all waits `shift` more
    shift = 0.05
    ws = np.where(w > 0, w + shift, 0.0)
    for d in (-0.01, 0.02, 0.06, 0.1, 0.2, 0.4):
        got = _wait_tail_uniform(np.array([d]), np.array([ell]), np.array([[pw]]),
                                 np.array([[th]]), np.array([shift]))
        assert got[0] == pytest.approx(float(np.mean(ws + u > d)), abs=3e-3)


# ------------------------------------------------------------------------------------------
# one pool, many families: the same numbers

@settings(max_examples=12, deadline=None)
@given(lows=st.sets(st.sampled_from([0, 256, 512, 1024, 1536, 2048, 3072, 4096, 6144]),
                    min_size=1, max_size=5),
       deps=st.sets(st.sampled_from([("H100-SXM", 8, "fp16"), ("H100-SXM", 4, "fp8"),
                                     ("A100-SXM", 8, "fp16"), ("B200", 2, "fp16")]),
                    min_size=1, max_size=3))
def test_a_family_sizes_each_pool_as_the_pool_alone(lows, deps):
    from fleetopt.problem.problem import Problem

    p = Problem(workload=builtin("azure-conv-2023", 300), model="llama-3.1-70b",
                gpus=tuple(sorted({d[0] for d in deps})), tp=(2, 4, 8), dtypes=("fp16", "fp8"),
                max_ctx=8192, boundaries=(4096,), over_max_ctx="drop")
    sz = Sizer(p)
    ds = [Deployment(g, t, dt, p.kv_dtype) for g, t, dt in sorted(deps)]
    ds = [d for d in ds if not sz.profile(d).fit_error() and sz.profile(d).slots(8192) >= 1]
    if not ds:
        return
    lows = sorted(lows)
    (members, fam), = sz.families(lows, 8192, 8192, ds)
    n = fam.min_instances()
    for col in range(fam.ncols):
        d = members[int(fam.dep[col])][0]
        pm = pool_model((lows[int(fam.lc[col])], 8192, 8192), sz.profile(d), p.workload,
                        p.settings)
        alone = pm.min_instances()
        assert (alone if alone is not None else -1) == n[col]
        if alone is not None:
            N = np.array([alone, alone + 3], dtype=float)
            a = fam.evaluate(np.array([col, col]), N)
            b = pm.family.evaluate(np.zeros(2, dtype=int), N)
            for key in ("p99_ttft_ms", "p99_tpot_ms", "power_w", "kv_overflow_bound"):
                np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12)


def test_stacked_deployments_equal_one_at_a_time():
    w = builtin("azure", 400)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps, [0, 1024, 4096],
                     8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 4, "fp8"), _prof("A100-SXM", 8, "fp16")]
    st_ = Settings(500)
    phs = [physics_of(pr, st_) for pr in profs]
    both = ServeFamily(phs, mix, st_, [pr.slots(8192) for pr in profs])
    for j, (ph, pr) in enumerate(zip(phs, profs, strict=True)):
        one = ServeFamily([ph], mix, st_, [pr.slots(8192)])
        c = np.arange(3) + 3 * j
        np.testing.assert_allclose(both.own[c], one.own, rtol=1e-12)
        np.testing.assert_array_equal(both.min_instances()[c], one.min_instances())


def test_per_lower_edge_hit_shares_give_each_pool_its_own_tables():
    """Hit shares that differ by lower edge (the LRU estimate per pool) give each column the
    tables of a family of that lower edge alone (bit for bit where no sum over the mix enters):
    a prompt's chunks are shared by the columns of one deployment and hit share, never across
    hit shares."""
    w = builtin("azure", 400)
    lows = [0, 512, 1024, 3072]
    hits = np.array([0.0, 0.3, 0.0, 0.6])
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps, lows, 8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 4, "fp8")]
    st_ = Settings(500)
    phs = [physics_of(pr, st_) for pr in profs]
    slots = [pr.slots(8192) for pr in profs]
    fam = ServeFamily(phs, mix, st_, slots, hits)
    for li, lo in enumerate(lows):
        one_mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps, [lo],
                             8192, 8192)
        one = ServeFamily(phs, one_mix, st_, slots, hits[li])
        for j in range(len(profs)):
            c, c1 = j * len(lows) + li, j
            if len(one.grid) != len(fam.grid):
                continue  # a narrower range's own grid: other sums (covered elsewhere)
            for name in ("own0", "nch", "queued_cap"):  # no decoders: no mix sums in them
                np.testing.assert_array_equal(getattr(fam, name)[c], getattr(one, name)[c1],
                                              err_msg=f"{name} at lower edge {lo}")
            for name in ("own", "ell", "S_n", "S_own", "S_own0"):  # (mix sums: BLAS's order)
                np.testing.assert_allclose(getattr(fam, name)[c], getattr(one, name)[c1],
                                           rtol=1e-13, err_msg=f"{name} at lower edge {lo}")
    assert fam.S_own0[1] < fam.S_own0[0]  # the 30 % hit cuts prefill


def test_take_gathers_the_same_numbers_in_one_go():
    """A stack's take (one gather of a table of its per-deployment numbers) equals the field
    by field take, bit for bit, dense and MoE members alike."""
    st_ = Settings(500)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 4, "fp8"),
             _prof("H200-SXM", 8, "fp8", "qwen3-235b-a22b"), _prof("L40S", 4, "fp16")]
    stk = ContractPhysics.stack([physics_of(pr, st_) for pr in profs])
    assert stk._take_plan is not None
    slow = dataclasses.replace(stk)
    slow.__dict__["_take_plan"] = None  # the field-by-field path
    idx = np.array([3, 0, 0, 2, 1, 3])
    a, b = stk.take(idx), slow.take(idx)
    for obj_a, obj_b in ((a, b), (a.step, b.step), (a.power_model, b.power_model)):
        for f in dataclasses.fields(obj_a):
            va, vb = getattr(obj_a, f.name), getattr(obj_b, f.name)
            if isinstance(vb, np.ndarray):
                np.testing.assert_array_equal(va, vb, err_msg=f.name)
                assert va.shape == vb.shape == (len(idx),), f.name
            elif f.name not in ("step", "power_model"):
                assert va == vb, f.name
    D = np.arange(1.0, 7.0)
    for key, v in a.terms(D, D * 500.0).items():
        np.testing.assert_array_equal(v, b.terms(D, D * 500.0)[key], err_msg=key)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), tpot=st.sampled_from([None, 40.0]),
       reserved=st.booleans())
def test_the_search_start_never_changes_the_answer(seed, tpot, reserved):
    # min_instances(guess=...) only picks which counts it tests; slo_ok's verdict-only tests
    # (tails skipped after a failure, the KV Chernoff search cut short) agree with evaluate()
    w = builtin("azure-conv-2023", 600)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps,
                     [0, 512, 1024, 2048, 4096], 8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("A100-SXM", 4, "fp16"), _prof("B200", 2, "fp8")]
    st_ = Settings(500, tpot_p99_ms=tpot, kv_allocation="reserved" if reserved else "paged")
    fam = ServeFamily([physics_of(pr, st_) for pr in profs], mix, st_,
                      [pr.slots(8192) for pr in profs])
    want = fam.min_instances()
    assert (want > 0).any()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        guess = np.where(want > 0, want, 5) + rng.integers(-40, 40, fam.ncols)
        guess = np.where(rng.uniform(size=fam.ncols) < 0.2, -1, guess)
        np.testing.assert_array_equal(fam.min_instances(guess=guess), want)
        # and a count known to pass (at or above the answer; 0: none) neither
        known = np.where((want > 0) & (rng.uniform(size=fam.ncols) < 0.7),
                         want + rng.integers(0, 3, fam.ncols) * rng.integers(0, 20, fam.ncols),
                         0)
        np.testing.assert_array_equal(fam.min_instances(guess=guess, passes=known), want)
        np.testing.assert_array_equal(fam.min_instances(passes=known), want)
    cols = np.repeat(np.flatnonzero(want > 0), 4)
    N = np.maximum(want[cols] + rng.integers(-3, 4, len(cols)), 1).astype(float)
    np.testing.assert_array_equal(fam.slo_ok(cols, N), fam.evaluate(cols, N)["ok"])
    assert fam.slo_ok(cols, N).any() and not fam.slo_ok(cols, N).all()


@settings(max_examples=12, deadline=None)
@given(wl=st.sampled_from(["azure-conv-2023", "azure-code-2023", "lmsys"]),
       rate=st.sampled_from([20.0, 300.0, 2000.0]), reserved=st.booleans(),
       calibrated=st.booleans(), seed=st.integers(0, 10_000))
def test_the_watts_floor_is_below_the_watts_at_every_count_from_it(wl, rate, reserved,
                                                                   calibrated, seed):
    """ServeFamily.watts_floor: L non-decreasing along its counts, and power_w(c, n) >= L[c, j]
    at every count n >= Ns[c, j] where the pool is stable at its mean rate (sampled up to 40x
    the start; every count that meets the tests is stable); its tables are the no-decoder
    ones, so a deferred family bounds pools it never built."""
    w = builtin(wl, rate)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps,
                     [0, 512, 2048, 4096], 8192, 8192)
    last = (resolve(Deployment("1w-law-h100", 8, "fp16", "fp16"), "llama-3.1-70b", CAT)
            if calibrated else _prof("MI300X", 2, "fp16", model="qwen3-30b-a3b"))
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 2, "fp8"), _prof("A100-SXM", 4, "fp16"),
             last]
    st_ = Settings(500, kv_allocation="reserved" if reserved else "paged")
    phs = [physics_of(pr, st_) for pr in profs]
    fam = ServeFamily(phs, mix, st_, [pr.slots(8192) for pr in profs], defer=True)
    cols = np.flatnonzero(fam.feasible)
    assert len(cols) and not fam._done.any()
    rng = np.random.default_rng(seed)
    N0 = fam.lower_bound(cols).astype(float) * rng.uniform(0.5, 2.0, len(cols))
    Ns, L = fam.watts_floor(cols, np.maximum(np.round(N0), 1.0))
    assert (np.diff(L, axis=1) >= 0).all() and (L > 0).all()
    for _ in range(4):
        j = rng.integers(0, Ns.shape[1], len(cols))
        n = np.ceil(Ns[np.arange(len(cols)), j] * rng.uniform(1.0, 1.3, len(cols)))
        n = np.where(rng.uniform(size=len(cols)) < 0.2, n * 30, n)
        W = fam.power_w(cols, n)
        stable = fam.operating_point(cols, n, design=False)["stable"]
        assert stable.mean() > 0.5
        assert (W >= L[np.arange(len(cols)), j])[stable].all()
    # and the floor is not vacuous: above the idle watts at the start for most pools
    idle = fam.lower_bound(cols) * fam.gpus[cols] * fam.idle_w[cols]
    Ns1, L1 = fam.watts_floor(cols, fam.lower_bound(cols))
    assert np.mean(L1[:, 0] > 1.2 * idle) > 0.5


def test_the_watts_floor_is_close_to_the_watts_at_the_fewest_instances():
    """The floor counts the FLOPs every request needs (work conservation): at each pool's
    fewest instances it is within 20 % of the watts for most pools of a prefill-heavy mix, and
    clearly above the floor from decode-step activity alone (``flops_req`` zero)."""
    w = builtin("azure-code-2023", 300)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps,
                     [0, 512, 2048, 4096], 8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 2, "fp8"), _prof("A100-SXM", 4, "fp16"),
             _prof("MI300X", 2, "fp16", model="qwen3-30b-a3b")]
    st_ = Settings(500)
    fam = ServeFamily([physics_of(pr, st_) for pr in profs], mix, st_,
                      [pr.slots(8192) for pr in profs])
    n = fam.min_instances()
    cols = np.flatnonzero(n > 0)
    assert len(cols) >= 8
    _, L = fam.watts_floor(cols, n[cols])
    W = fam.power_w(cols, n[cols].astype(float))
    ratio = L[:, 0] / W
    assert (ratio <= 1.0).all()
    assert np.median(ratio) >= 0.8
    fam.flops_req = np.zeros_like(fam.flops_req)
    _, L0 = fam.watts_floor(cols, n[cols])
    assert (L0 <= L).all()
    assert np.median(ratio) >= np.median(L0[:, 0] / W) + 0.04


def test_the_power_floor_from_its_parts_is_the_power_floor():
    """power_floor_from(power_floor_parts(D, ctx), F) is power_floor_w(D, ctx, F), for computed,
    calibrated and mixed (unstackable) deployments; a FLOP rate lifts a computed deployment's
    floor and leaves a calibrated one's (its watts follow the batch alone)."""
    st_ = Settings(500)
    comp = [physics_of(_prof(g, tp, dt), st_) for g, tp, dt in (
        ("H100-SXM", 8, "fp16"), ("B200", 2, "fp8"), ("A100-SXM", 4, "fp16"))]
    cal = physics_of(resolve(Deployment("1w-law-h100", 8, "fp16", "fp16"), "llama-3.1-70b",
                             CAT), st_)
    D = np.array([[0.0, 4.0, 64.0], [16.0, 256.0, 1.0]])
    ctx = np.array([800.0, 3000.0, 12000.0])
    F = np.array([[0.0, 1e14, 5e14], [2e14, 0.0, 1e15]])
    for ph in (stack_physics(comp), stack_physics([comp[0], cal, comp[1]]),
               stack_physics([cal, cal, cal])):
        parts = ph.power_floor_parts(D, ctx)
        np.testing.assert_array_equal(ph.power_floor_from(parts, F), ph.power_floor_w(D, ctx, F))
        np.testing.assert_array_equal(ph.power_floor_from(parts), ph.power_floor_w(D, ctx))
    mixed = stack_physics([comp[0], cal, comp[1]])
    lift = mixed.power_floor_w(D, ctx, 1e15) - mixed.power_floor_w(D, ctx)
    assert (lift[:, [0, 2]] > 0).all() and (lift[:, 1] == 0).all()


def _full_and_deferred() -> tuple[ServeFamily, ServeFamily, tuple]:
    """One family (three deployments, four lower edges), built at once and deferred, and the
    arguments that made them."""
    w = builtin("azure-conv-2023", 500)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps,
                     [0, 256, 1024, 2048, 4096], 8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 2, "fp8"), _prof("A100-SXM", 4, "fp16")]
    st_ = Settings(500)
    phs = [physics_of(pr, st_) for pr in profs]
    slots = [pr.slots(8192) for pr in profs]
    return (ServeFamily(phs, mix, st_, slots), ServeFamily(phs, mix, st_, slots, defer=True),
            (phs, mix, st_, slots))


def test_deferred_tables_are_the_same_numbers_in_any_order():
    """A family with defer=True builds the tables beyond no decoders column by column, in any
    order and any grouping, to the same bits as one built at once."""
    full, lazy, (phs, mix, st_, slots) = _full_and_deferred()
    rng = np.random.default_rng(3)
    order = rng.permutation(full.ncols)
    for part in np.array_split(order, 4):
        lazy.complete(part)
    lazy.complete(order[:3])  # already built: nothing changes
    for name in ("own", "ell", "S_own", "S_n", "tau_d", "tau_f", "queued_cap", "nch"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(full, name), err_msg=name)
    for k in full.pt_terms:
        np.testing.assert_array_equal(lazy.pt_terms[k], full.pt_terms[k])
    np.testing.assert_array_equal(lazy.S_own0, full.S_own[:, 0])
    # and a deferred family completes what it is asked about on its own
    auto = ServeFamily(phs, mix, st_, slots, defer=True)
    np.testing.assert_array_equal(auto.min_instances(), full.min_instances())



def test_rows_built_as_read_are_the_same_numbers():
    """A deferred family builds the decoder rows a test reads, as it reads them (a few rows
    first, more when a count needs them): every figure is the same bits as with every row
    built, at counts from far too few (unstable: every row read) to many, and the rows it built
    equal the full tables'."""
    full, lazy, (phs, mix, st_, slots) = _full_and_deferred()
    cols = np.flatnonzero(full.feasible)
    n0 = full.min_instances()[cols]
    G = full.Dg.shape[1]
    with np.errstate(all="ignore"):
        # many instances first (few decoders each: few rows), then fewer (more rows)
        for f in (8.0, 2.0, 1.0, 0.6, 0.2):
            N = np.maximum(np.ceil(n0 * f), 1.0)
            np.testing.assert_array_equal(lazy.slo_ok(cols, N), full.slo_ok(cols, N))
            np.testing.assert_array_equal(lazy.power_w(cols, N), full.power_w(cols, N))
            if f == 8.0:
                assert (lazy._nrows[cols] < G).any()  # rows were left unbuilt
        a, b = lazy.operating_point(cols, n0), full.operating_point(cols, n0)
        for k in ("D", "g", "t", "own", "ell", "tau_d", "f", "r", "stable"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    built = lazy._nrows
    for c in cols:
        r = int(built[c])
        np.testing.assert_array_equal(lazy.own[c, :r], full.own[c, :r])
        np.testing.assert_array_equal(lazy.ell[c, :r], full.ell[c, :r])
        np.testing.assert_array_equal(lazy.S_own[c, :r], full.S_own[c, :r])
        np.testing.assert_array_equal(lazy.tau_f[c, :r], full.tau_f[c, :r])
        for k in full.pt_terms:
            np.testing.assert_array_equal(lazy.pt_terms[k][c, :r], full.pt_terms[k][c, :r])
    lazy.complete(cols)  # the rest, continuing from the rows built
    for name in ("own", "ell", "S_own", "tau_f"):
        np.testing.assert_array_equal(getattr(lazy, name)[cols], getattr(full, name)[cols])


def test_search_answer_does_not_depend_on_where_it_starts():
    """min_instances is the least passing count whatever the guesses and known passes: far
    below, far above, one off either way, negative (expected infeasible), or none."""
    w = builtin("azure-conv-2023", 800)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps,
                     [0, 256, 1024, 2048, 4096], 8192, 8192)
    profs = [_prof("H100-SXM", 8, "fp16"), _prof("B200", 2, "fp8"), _prof("A100-SXM", 4, "fp16"),
             _prof("H100-SXM", 2, "fp8")]
    st_ = Settings(500)
    fam = ServeFamily([physics_of(pr, st_) for pr in profs], mix, st_,
                      [pr.slots(8192) for pr in profs])
    ref = fam.min_instances()
    ok = ref > 0
    assert ok.sum() >= 8
    # the reference is the least passing count
    c = np.flatnonzero(ok)
    assert fam.slo_ok(c, ref[c].astype(float)).all()
    assert not fam.slo_ok(c, (ref[c] - 1).astype(float)).any()
    rng = np.random.default_rng(11)
    for trial in range(6):
        guess = np.where(ok, np.maximum(1, np.round(ref * rng.choice(
            [0.3, 0.9, 1.0, 1.03, 1.1, 3.0], size=len(ref)) + rng.integers(-1, 2, len(ref)))),
            rng.choice([0, -1, 5], size=len(ref))).astype(np.int64)
        passes = None
        if trial % 2:
            passes = np.where(ok & (rng.random(len(ref)) < 0.5),
                              ref + rng.integers(0, 40, len(ref)), 0).astype(np.int64)
        np.testing.assert_array_equal(fam.min_instances(guess=guess, passes=passes), ref)


# ------------------------------------------------------------------------------------------
# settings

def test_tpot_target_needs_more_instances_and_is_in_the_verdict():
    base = _pool(rate=200)
    n0 = base.min_instances()
    tight = _pool(rate=200, settings=Settings(500, tpot_p99_ms=float(
        base.metrics([n0])["p99_tpot_ms"][0]) * 0.8))
    n1 = tight.min_instances()
    assert n1 is not None and n1 > n0
    m = tight.metrics([n0, n1])
    assert not m["slo_met"][0] and m["slo_met"][1]
    assert m["p99_tpot_ms"][1] <= tight.settings.tpot_p99_ms + 1e-6


def test_prefix_cache_hits_cut_prefill():
    a, b = _pool(rate=300), _pool(rate=300, hit=0.5)
    na, nb = a.min_instances(), b.min_instances()
    assert nb <= na
    ma, mb = a.metrics([na]), b.metrics([na])
    assert mb["prefill_share"][0] < 0.8 * ma["prefill_share"][0]
    assert mb["p99_ttft_ms"][0] < ma["p99_ttft_ms"][0]
    c = _pool(rate=300, settings=Settings(500, prefix_cache_hit=0.5))
    assert c.min_instances() == nb


def test_lru_hit_share_by_hand():
    # blocks of 512 tokens; capacity 2 blocks
    hashes = [[1, 2], [1, 2], [3], [1, 2]]
    tokens = [1024, 1024, 512, 1024]
    # 2nd request hits 2 blocks; 3rd misses and evicts 1; 4th: block 1 missing -> no hit
    assert lru_hit_share(hashes, tokens, capacity_blocks=2) == pytest.approx(1024 / 3584)
    assert lru_hit_share(hashes, tokens, capacity_blocks=8) == pytest.approx(2048 / 3584)


def test_reserved_slots_cost_instances_on_long_windows():
    paged = _pool(wl="lmsys", rate=50, window=65536, settings=Settings(2000))
    reserved = _pool(wl="lmsys", rate=50, window=65536,
                     settings=Settings(2000, kv_allocation="reserved"))
    assert reserved.min_instances() >= paged.min_instances()
    m = reserved.metrics([reserved.min_instances()])
    assert np.isnan(m["kv_util"][0]) or m["kv_util"][0] >= 0
    assert m["decode_util"][0] <= 0.85 + 1e-9


def test_engine_overrides_change_the_step_and_are_checked():
    small = resolve(Deployment("H100-SXM", 8, "fp16"), "llama-3.1-70b", CAT,
                    PhysicsParams(max_num_batched_tokens=2048))
    few = _pool(rate=200, prof=small)
    many = _pool(rate=200)
    assert few.family.B[0] == 2048 and many.family.B[0] == 8192
    assert few.metrics([20])["p99_ttft_ms"][0] != many.metrics([20])["p99_ttft_ms"][0]
    with pytest.raises(FleetoptError, match="max_num"):
        PhysicsParams(max_num_batched_tokens=512, max_num_seqs=1024)


def test_config_keys_reach_the_settings_and_are_refused_when_bad():
    d = {"workload": {"name": "azure", "rate": 100, "prefix_cache_hit": 0.2},
         "slo": {"ttft_p99_ms": 500, "tpot_p99_ms": 60},
         "physics": {"kv_allocation": "Reserved", "kv_overflow_prob": 1e-4,
                     "max_num_batched_tokens": 4096, "max_num_seqs": 512, "reserve_gb": 3.0}}
    p = problem_from_dict(d)
    s = p.settings
    assert (s.tpot_p99_ms, s.kv_allocation, s.kv_overflow_prob, s.prefix_cache_hit) == \
        (60.0, "reserved", 1e-4, 0.2)
    assert (p.physics.max_num_batched_tokens, p.physics.max_num_seqs,
            p.physics.reserve_gb) == (4096, 512, 3.0)
    used = p.settings_used()
    assert used["tpot_p99_ms"] == 60.0 and used["kv_allocation"] == "reserved"
    for sec, key, bad in (("physics", "kv_allocation", "slotted"), ("physics", "kv_overflow_prob", 0),
                          ("slo", "tpot_p99_ms", -1), ("workload", "prefix_cache_hit", 1.0),
                          ("physics", "max_num_seqs", 0)):
        dd = {k: dict(v) for k, v in d.items()}
        dd[sec][key] = bad
        with pytest.raises(FleetoptError) as e:
            problem_from_dict(dd)
        assert e.value.field == f"{sec}.{key}"


# ------------------------------------------------------------------------------------------
# the seam: a computed profile's iteration model, as the pool model sees it

@pytest.mark.parametrize("dep,model", [(("H100-SXM", 8, "fp16"), "llama-3.1-70b"),
                                       (("B200", 4, "fp8"), "llama-3.1-70b"),
                                       (("H200-SXM", 8, "fp8"), "mixtral-8x7b")])
def test_the_pool_model_runs_the_profiles_own_step_and_power(dep, model):
    """physics_of(profile) is the profile's StepCoefficients and ActivityPower: the same step
    terms, and at the time-averaged terms of ONE step the watts of that step."""
    prof = resolve(Deployment(*dep), model, CAT)
    ph = physics_of(prof, Settings(500))
    assert isinstance(ph, ContractPhysics)
    assert (ph.token_budget, ph.max_seqs, ph.kv_capacity_tokens, ph.block_tokens, ph.gpus) == (
        prof.token_budget, prof.max_seqs, prof.kv_capacity_tokens, prof.block_tokens,
        prof.gpus_per_instance)
    D, K, P, A, Kp = (np.array([1.0, 64.0, 200.0]), np.array([1e3, 1e5, 6e5]),
                      np.array([0.0, 2048.0, 512.0]), np.array([0.0, 3e6, 4e5]),
                      np.array([0.0, 1e4, 2e5]))
    got = ph.terms(D, K, P, A, Kp)
    want = prof.step.terms(D, K, P, A, Kp)
    for f in dataclasses.fields(want):
        np.testing.assert_allclose(got[f.name], getattr(want, f.name), rtol=1e-12)
    rates = {k: v / got["t_step"] for k, v in got.items()}
    np.testing.assert_allclose(ph.gpu_power_w(rates),
                               prof.power_model.step_power_w(want, prof.step), rtol=1e-9)
    stacked = ContractPhysics.stack([ph, physics_of(_prof(), Settings(500))])
    two = stacked.terms(np.array([64.0, 64.0]), np.array([1e5, 1e5]))
    assert two["t_step"][0] == pytest.approx(float(ph.terms(64.0, 1e5)["t_step"]), rel=1e-12)


class FixedProfile(Profile):
    """A profile of constant step times and ``slots`` slots, without an iteration model."""

    kind = "test"
    gpu = "fixed"
    tp = 1
    dtype = "fp16"
    kv_dtype = "fp16"
    gpus_per_instance = 1
    price_per_gpu_hr = 1.0
    power = PowerCurve(100.0, 500.0, 1.0, 2.0)
    max_context = 1 << 20

    def __init__(self, iter_s: float, slots: int) -> None:
        self.iter_s, self.n_slots = iter_s, slots

    def slots(self, window_tokens: int) -> int:
        return self.n_slots

    def decode_s(self, batch, ctx_tokens):
        return np.zeros(np.broadcast(np.asarray(batch), np.asarray(ctx_tokens)).shape) + self.iter_s

    def prefill_s(self, prompt_tokens, batch, ctx_tokens):
        return np.zeros(np.broadcast(np.asarray(prompt_tokens), np.asarray(batch),
                                     np.asarray(ctx_tokens)).shape)


def test_a_profile_without_an_iteration_model_is_refused_in_physical_accounting():
    with pytest.raises(FleetoptError, match="no iteration model"):
        physics_of(FixedProfile(0.01, 4))
    wl = Workload("w", 1.0, np.array([100]), np.array([10]), np.array([1.0]))
    pm = pool_model((0, 200, 200), FixedProfile(0.01, 4), wl, Settings(500, accounting="paper"))
    assert pm.min_instances() is not None  # paper accounting keeps its own model


def test_a_queued_requests_extra_is_capped_by_a_full_step_and_vanishes_with_the_queue():
    w = builtin("azure", 400)
    mix = family_mix(w.input_tokens, w.output_tokens, w.weights, w.rate_rps, [0, 2048], 8192,
                     8192)
    pr = _prof("H100-SXM", 8, "fp16")
    fam = ServeFamily([physics_of(pr, Settings(500))], mix, Settings(500), [pr.slots(8192)])
    cols = np.array([0, 1])
    prev = first = None
    for N in (2.0, 3.0, 5.0, 10.0, 40.0, 400.0, 4000.0):
        op = fam.operating_point(cols, np.full(2, N))
        x = fam._queued_extra(op, fam._wait(op))
        assert np.all(x >= 0) and np.all(x <= fam.queued_cap[cols] + 1e-15)
        if prev is not None:
            assert np.all(x <= prev + 1e-15)  # falls as the count grows
        first = x if first is None else first
        prev = x
    assert first.max() > 0.01 and prev.max() < 1e-2 * first.max()
    # the cap: the rest of a full-budget step at no decoders, per prompt
    np.testing.assert_allclose(fam.queued_cap[0], np.maximum(
        fam.tau_f[0, 0] - fam.own[0, 0] / np.maximum(fam.nch[0, 0], 1.0), 0.0))
