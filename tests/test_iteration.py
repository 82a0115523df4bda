"""The iteration model (fleetopt.physics.iteration), the activity power model and the shipped
calibration: hand-computed formula cases, the scalar and numpy paths agreeing, stacks equal to
single deployments, power bounds, and the calibration's fidelity on the shipped ML.ENERGY
table (a regression test of the research's figures)."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetopt.core.errors import FleetoptError
from fleetopt.physics import kv as kvm
from fleetopt.physics.calibration import calibration_data, gpu_calibration
from fleetopt.physics.catalog.specs import GIB, GPUSpec, ModelSpec
from fleetopt.physics.iteration import (
    ByPrecision,
    StepCoefficients,
    StepParams,
    chunk_pairs,
    expert_fraction,
    step_coefficients,
    step_precision,
    z_ep,
)
from fleetopt.physics.power import Activity, ActivityPower, PowerCurve, activity
from fleetopt.physics.profiles import Deployment, PhysicsParams, resolve, vllm_defaults
from fleetopt.physics.routing import routed_share
from fleetopt.physics.step import expected_expert_fraction

# ------------------------------------------------------------------------------ hand cases

#: a toy GPU with round peaks: 1 TB/s, 1 PFLOP/s bf16, 2 PFLOP/s fp8
TOY_GPU = GPUSpec(name="toy", hbm_gb=100.0, hbm_bw_tb_s=1.0, fp16_tflops=1000.0,
                  fp8_tflops=2000.0, tdp_w=1000.0, price_per_gpu_hr=1.0,
                  power=PowerCurve(100.0, 800.0, 1.0, 4.0))
#: every efficiency 1 and no fixed cost, unless a test sets one
UNIT = StepParams(eta_bw=ByPrecision(1.0), eta_moe=ByPrecision(1.0), eta_cd=ByPrecision(1.0),
                  eta_cp=ByPrecision(1.0), eta_mc=ByPrecision(1.0), t_layer=ByPrecision(0.0),
                  eta_kv=1.0, eta_ad=1.0, eta_ap=1.0, t0=0.0, t_host=0.0, t_seq=0.0,
                  bw_ar=1e11, bw_ar_hi=1e11, m_ar=1e6, lat_ar=0.0)


def toy_model(**kw: object) -> ModelSpec:
    """2 layers, hidden 1024, 8 heads of 128, 2 KV heads, vocab 1000, 20 M parameters."""
    base = dict(name="toy", layers=2, hidden_size=1024, attention_heads=8, kv_heads=2,
                head_dim=128, params_total_b=0.02, params_active_b=0.02, max_context=4096,
                intermediate_size=4096, vocab_size=1000)
    base.update(kw)
    return ModelSpec(**base)  # type: ignore[arg-type]


def test_dense_terms_by_hand():
    m = toy_model()
    c = step_coefficients(m, TOY_GPU, UNIT, tp=1)
    emb = 1000 * 1024
    attn = 2 * (1024 * (8 + 2 * 2) * 128 + 8 * 128 * 1024)  # q, k, v and o per layer
    dense = 20e6 - emb  # every weight but the input embedding (a gather) is streamed
    assert c.w_dense == pytest.approx(dense * 2)
    assert c.resident_bytes == pytest.approx(20e6 * 2)
    assert c.f_tok_bf16eq == pytest.approx(2 * dense)
    assert c.kv_tok == 2 * 2 * 2 * 128 * 2  # K and V, 2 layers, 2 heads of 128, bf16
    assert c.f_dec == c.f_pre == 4 * 2 * 8 * 128
    assert c.e_tok == (2 * 8 * 1024 + 2 * 3 * 4096) * 2
    assert attn < dense  # the split is internal; the FFN is what is left
    D, K = 4.0, 4.0 * 1000
    t = c.scalar_terms(D, K)
    w_s = dense * 2 / 1e12
    assert t.t_gemm == pytest.approx(max(w_s, D * 2 * dense / 1e15))
    assert t.t_attn == pytest.approx(max(c.kv_tok * K / 1e12, c.f_dec * K / 1e15))
    assert t.t_elem == pytest.approx(c.e_tok * D / 1e12)
    assert t.t_comm == 0.0 and t.t_fixed == 0.0  # one GPU, no floors
    assert t.t_step == pytest.approx(t.t_gemm + t.t_attn + t.t_elem)
    assert t.t_mem == pytest.approx(w_s + c.kv_tok * K / 1e12 + c.e_tok * D / 1e12)


def test_fixed_costs_host_overlap_and_comm_by_hand():
    p = replace(UNIT, t0=1e-3, t_layer=ByPrecision(1e-4), t_seq=2e-5, t_host=0.5,
                bw_ar=1e11, bw_ar_hi=3e11, m_ar=4096.0 * 2, lat_ar=5e-6)
    c = step_coefficients(toy_model(), TOY_GPU, p, tp=4)
    t = c.scalar_terms(2, 2000)
    assert t.t_fixed == pytest.approx(1e-3 + 2 * 1e-4 + 2 * 2e-5)
    assert t.t_floor == pytest.approx(1.2e-3) and t.t_floor_x == 0.0
    assert t.t_step == 0.5 and t.t_gpu < 0.5  # the host binds: t_step = max(t_gpu, t_host)
    m = 2 * 1024 * 2  # bytes all-reduced per layer and per all-reduce: T x hidden x bf16
    bw = 1e11 + 2e11 * m / (m + 8192)
    assert t.t_comm == pytest.approx(2 * 2 * (2 * 3 / 4 * m / bw + 5e-6))
    assert c.gpus == 4 and c.kv_tok == 2 * 2 * 1 * 128 * 2  # 2 KV heads over 4 GPUs: 1 each


def test_fp8_runs_at_the_fp8_peak_and_keeps_the_head_bf16():
    m = toy_model()
    c8 = step_coefficients(m, TOY_GPU, UNIT, tp=1, dtype="fp8")
    head = 1000 * 1024
    assert c8.precision == "fp8" and step_precision("fp8", m) == "fp8"
    assert c8.w_dense == pytest.approx((20e6 - 2 * head) * 1 + head * 2)
    assert c8.f_tok_bf16eq == pytest.approx((20e6 - 2 * head) * 2 / 2 + head * 2)
    blk = replace(m, fp8_scheme="block")
    assert step_precision("fp8", blk) == "fp8_block"
    p = replace(UNIT, t_layer=ByPrecision(1e-5, 2e-5, 1e-4))
    cb = step_coefficients(blk, TOY_GPU, p, tp=1, dtype="fp8")
    assert cb.t_floor_x == pytest.approx((1e-4 - 1e-5) * 2)  # the block floor above bf16's


def test_moe_experts_and_ep_straggler():
    m = toy_model(experts=8, experts_per_token=2, moe_layers=2, expert_params_b=0.012)
    c = step_coefficients(m, TOY_GPU, UNIT, tp=4, ep=4)
    assert c.w_exp == pytest.approx(12e6 * 2 / 4)
    p1 = 1 - (1 - 2 / 8) ** 3
    share = min(1.0, p1 + z_ep(4) * math.sqrt(p1 * (1 - p1) / 2))
    t = c.scalar_terms(3, 300)
    assert t.bytes - t.bytes_mean == pytest.approx(c.w_exp * (share - p1))
    assert expert_fraction(3, 8, 2, 4) == pytest.approx(share)
    assert expert_fraction(3, 8, 2) == pytest.approx(p1)
    assert float(expert_fraction(0, 8, 2)) == pytest.approx(2 / 8)  # at least one token
    with pytest.raises(FleetoptError, match="ep"):
        step_coefficients(toy_model(), TOY_GPU, UNIT, tp=4, ep=4)  # dense


def test_one_routing_formula_for_the_step_and_its_helpers():
    """The step formula's streamed expert share (array and float paths), expert_fraction and
    the roofline's expected fraction are the one routing formula (routing.routed_share)."""
    m = toy_model(experts=8, experts_per_token=2, moe_layers=2, expert_params_b=0.012)
    c = step_coefficients(m, TOY_GPU, UNIT, tp=4, ep=4)
    T = np.array([0.0, 0.5, 1.0, 3.0, 17.0, 400.0])
    p, s = routed_share(1 - 2 / 8, z_ep(4), 4 / 8, T)
    assert np.array_equal(p, 1 - 0.75 ** np.maximum(T, 1.0))
    assert np.array_equal(s, np.minimum(1.0, p + z_ep(4) * np.sqrt(p * (1 - p) * 0.5)))
    assert np.array_equal(expert_fraction(T, 8, 2, 4), s)
    arr = c.terms(T, 300.0 * T)
    got = np.asarray(arr.bytes) - np.asarray(arr.bytes_mean)
    assert np.allclose(got, c.w_exp * (s - p), rtol=1e-12, atol=0.0)
    for j, x in enumerate(T):  # the float path: the same numbers
        t = c.scalar_terms(float(x), 300.0 * float(x))
        assert t.bytes - t.bytes_mean == pytest.approx(got[j], rel=1e-12)
    q0, _ = routed_share(1 - 8 / 128, 0.0, 0.0, np.array([0.0, 8.0]), least=0.0)
    assert np.array_equal(expected_expert_fraction(np.array([0.0, 8.0]), 128, 8), q0)


def test_shipped_models_by_hand(catalog):
    """Llama-3.1-70B's weight shard and KV; DeepSeek-V3's MLA attention (4.25x the GQA count)."""
    p = gpu_calibration(catalog.gpu("H100-SXM")).params
    c = step_coefficients(catalog.model("llama-3.1-70b"), catalog.gpu("H100-SXM"), p, tp=8)
    assert c.w_dense == pytest.approx((70.6e9 - 128256 * 8192) * 2 / 8)
    assert c.kv_tok == 2 * 80 * 1 * 128 * 2
    ds = step_coefficients(catalog.model("deepseek-v3"), catalog.gpu("H200-SXM"),
                           gpu_calibration(catalog.gpu("H200-SXM")).params, tp=8, ep=8,
                           dtype="fp8")
    assert ds.precision == "fp8_block"
    assert ds.f_dec / (4 * 61 * (128 / 8) * 128) == pytest.approx(2 * (2 * 512 + 64) / (4 * 128))
    assert ds.kv_tok == 61 * (512 + 64) * 2


def test_chunk_pairs_add_up():
    assert chunk_pairs(0, 8192) == 8192 * 8193 / 2
    assert chunk_pairs(0, 4096) + chunk_pairs(4096, 4096) == chunk_pairs(0, 8192)


def test_prefill_in_chunks_costs_more(catalog):
    prof = resolve(Deployment("H100-SXM", 4), "llama-3.1-70b", catalog)
    one = prof.step.prefill_s(8192, 8192)
    two = prof.step.prefill_s(8192, 4096)
    assert two > one  # the second chunk re-reads 4096 cached tokens and pays the floors again


# ------------------------------------------------------------------------------ paths agree

DEPLOYMENTS = [("H100-SXM", "llama-3.1-70b", 4, 1, "fp16"), ("B200", "llama-3.1-8b", 1, 1, "fp8"),
               ("H200-SXM", "qwen3-235b-a22b", 8, 8, "fp8"), ("GB200", "deepseek-v3", 8, 8, "fp8"),
               ("L40S", "mixtral-8x7b", 4, 1, "fp16"), ("MI300X", "qwen3-30b-a3b", 2, 2, "fp16"),
               ("A100-SXM", "llama-3.1-405b", 8, 1, "int4")]

_mix = st.tuples(st.integers(0, 1024), st.floats(0, 5e6), st.integers(0, 8192),
                 st.floats(0, 5e7), st.floats(0, 1e5))


@given(k=st.integers(0, len(DEPLOYMENTS) - 1), mix=_mix)
def test_scalar_path_equals_numpy(catalog, k, mix):
    g, m, tp, ep, dt = DEPLOYMENTS[k]
    c = resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
    if mix[0] + mix[2] == 0:
        mix = (1, *mix[1:])
    arr = c.terms(*mix)
    sc = c.scalar_terms(*mix)
    for f in arr.__dataclass_fields__:
        assert float(getattr(arr, f)) == pytest.approx(getattr(sc, f), rel=1e-12, abs=1e-15), f
    assert c.step_s(*mix) == pytest.approx(float(arr.t_step), rel=1e-12)


def test_stacked_equals_per_deployment(catalog):
    cs = [resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
          for g, m, tp, ep, dt in DEPLOYMENTS]
    stk = StepCoefficients.stack(cs)
    assert len(stk) == len(cs) and stk.stacked
    rng = np.random.default_rng(1)
    shape = (5, 3, len(cs))  # (..., deployments)
    D = rng.integers(0, 512, shape).astype(float)
    P = rng.integers(0, 4096, shape).astype(float)
    D[..., 0] = np.maximum(D[..., 0], 1)
    K_d = D * rng.uniform(0, 8000, shape)
    A_p = P * rng.uniform(0, 4000, shape) + P * (P + 1) / 2
    K_p = rng.uniform(0, 4000, shape) * (P > 0)
    st_terms = stk.terms(D, K_d, P, A_p, K_p)
    for j, c in enumerate(cs):
        one = c.terms(D[..., j], K_d[..., j], P[..., j], A_p[..., j], K_p[..., j])
        for f in one.__dataclass_fields__:
            np.testing.assert_allclose(np.asarray(getattr(st_terms, f))[..., j],
                                       getattr(one, f), rtol=1e-12, atol=0, err_msg=f)
        assert stk[j].step_s(1, 100) == pytest.approx(c.step_s(1, 100), rel=1e-15)
    # scalars broadcast against a stack: one value per deployment
    assert np.shape(stk.terms(8, 8000).t_step) == (len(cs),)
    pw = ActivityPower.stack([resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).power_model
                              for g, m, tp, ep, dt in DEPLOYMENTS])
    p_all = pw.step_power_w(st_terms, stk)
    assert p_all.shape == shape


def _random_steps(n_dep: int, seed: int = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    shape = (4, 3, n_dep)
    D = rng.integers(0, 512, shape).astype(float)
    P = rng.integers(0, 4096, shape).astype(float)
    return (D, D * rng.uniform(0, 8000, shape), P, P * rng.uniform(0, 4000, shape),
            rng.uniform(0, 4000, shape) * (P > 0))


@pytest.mark.parametrize("keys", [("t_step",), ("t_step", "t_gpu", "bytes_mean", "t_floor"),
                                  ("t_mem", "bytes"), ("t_cmp", "t_host", "flops_bf16eq")])
def test_terms_of_is_terms_restricted(catalog, keys):
    """terms_of(keys) gives the same bits as terms() for those keys, whether or not the keys
    need the optional terms (t_mem, t_cmp, bytes) the formula then skips."""
    cs = [resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
          for g, m, tp, ep, dt in DEPLOYMENTS]
    stk = StepCoefficients.stack(cs)
    args = _random_steps(len(cs))
    full = stk.terms(*args)
    got = stk.terms_of(keys, *args)
    assert list(got) == list(keys)
    for k in keys:
        np.testing.assert_array_equal(got[k], getattr(full, k), err_msg=k)
        assert got[k].shape == args[0].shape, k
    # non-finite inputs give NaN in every field, as in terms()
    bad = (np.array([np.inf, 1.0]), np.array([1.0, np.nan]))
    with np.errstate(invalid="ignore"):
        for k in keys:
            np.testing.assert_array_equal(np.isnan(cs[0].terms_of(keys, *bad)[k]),
                                          np.isnan(getattr(cs[0].terms(*bad), k)), err_msg=k)


def test_every_field_is_nan_exactly_where_an_input_is_not_finite(catalog):
    """terms() gives every field the inputs' full shape, with NaN exactly where some input (or
    coefficient) is NaN or infinite, wherever in the inputs it is, and finite numbers
    elsewhere; a call with no bad input gives the same bits as the same steps in a call
    with some."""
    cs = [resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
          for g, m, tp, ep, dt in DEPLOYMENTS]
    stk = StepCoefficients.stack(cs)
    args = [np.array(a) for a in _random_steps(len(cs), seed=5)]
    clean = stk.terms(*args)
    rng = np.random.default_rng(9)
    for j in range(5):
        bad = [a.copy() for a in args]
        mask = rng.random(args[0].shape) < 0.2
        bad[j][mask] = rng.choice([np.inf, np.nan], size=int(mask.sum()))
        with np.errstate(invalid="ignore", over="ignore"):
            t = stk.terms(*bad)
        for f in fields(t):
            v = np.asarray(getattr(t, f.name))
            assert v.shape == args[0].shape, f.name
            np.testing.assert_array_equal(np.isnan(v), mask, err_msg=f"{f.name}, input {j}")
            np.testing.assert_array_equal(v[~mask], np.asarray(getattr(clean, f.name))[~mask],
                                          err_msg=f.name)


def test_dense_shortcut_is_the_routed_formula_at_keep_prob_one(catalog):
    """A dense deployment skips the expert-routing terms (p = share = 0): the same bits as the
    routed arithmetic evaluated at keep_prob = 1; a stack with any MoE member takes the
    routed path."""
    dense = [resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
             for g, m, tp, ep, dt in DEPLOYMENTS if m.startswith("llama")]
    stk = StepCoefficients.stack(dense)
    assert stk.dense and all(c.dense for c in dense)
    routed = replace(stk)
    routed.__dict__["dense"] = False  # the cached flag, overridden: the general arithmetic
    args = _random_steps(len(dense), seed=3)
    a, b = stk.terms(*args), routed.terms(*args)
    for f in a.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    moe = [resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
           for g, m, tp, ep, dt in DEPLOYMENTS]
    assert not StepCoefficients.stack(moe).dense


@given(k=st.integers(0, len(DEPLOYMENTS) - 1), b1=st.integers(1, 2048), b2=st.integers(1, 2048),
       ctx=st.floats(0, 32768))
def test_step_time_non_decreasing_in_batch(catalog, k, b1, b2, ctx):
    g, m, tp, ep, dt = DEPLOYMENTS[k]
    c = resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog).step
    lo, hi = sorted((b1, b2))
    assert c.step_s(lo, lo * ctx) <= c.step_s(hi, hi * ctx) * (1 + 1e-12)


# ------------------------------------------------------------------------------ power


@given(k=st.integers(0, len(DEPLOYMENTS) - 1), mix=_mix)
def test_power_bounded_by_idle_and_tdp(catalog, k, mix):
    g, m, tp, ep, dt = DEPLOYMENTS[k]
    prof = resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog)
    if mix[0] + mix[2] == 0:
        mix = (1, *mix[1:])
    pm = prof.power_model
    te = prof.step.terms(*mix)
    w = float(pm.step_power_w(te, prof.step))
    assert pm.idle_w - 1e-9 <= w <= pm.tdp_w + 1e-9
    assert pm.scalar_step_power_w(prof.step.scalar_terms(*mix), prof.step) == pytest.approx(w)


@given(u_c=st.floats(0, 2), u_m=st.floats(0, 2), f_floor=st.floats(0, 1), f_x=st.floats(0, 1),
       f_seq=st.floats(0, 1), f_idle=st.floats(0, 1))
def test_busy_sat_bounds_for_any_activity(u_c, u_m, f_floor, f_x, f_seq, f_idle):
    pm = ActivityPower(idle_w=75.0, tdp_w=700.0, b0=0.5, b_c=3.4, b_m=0.7, b_x=1.0, b_s=1.9,
                       quality="fitted")
    w = float(pm.gpu_power_w(Activity(u_c, u_m, f_floor=f_floor, f_floor_x=f_x, f_seq=f_seq,
                                      f_idle=f_idle)))
    assert 75.0 - 1e-9 <= w <= 700.0 + 1e-9


def test_power_hand_values_and_idle():
    pm = ActivityPower(idle_w=100.0, tdp_w=500.0, b0=0.0, b_c=1.0, b_m=0.0, quality="fitted")
    idle = Activity(0.0, 0.0, f_idle=1.0)
    assert float(pm.gpu_power_w(idle)) == 100.0  # a GPU running no iteration
    half = Activity(0.25, 0.0, f_fixed=0.5, f_floor=0.5)  # half floors, U_c 0.5 when busy
    busy = 100.0 + 400.0 * (1 - math.exp(-0.5))
    assert float(pm.gpu_power_w(half)) == pytest.approx(0.5 * 100 + 0.5 * busy)
    with pytest.raises(ValueError):
        ActivityPower(idle_w=800.0, tdp_w=700.0)
    with pytest.raises(ValueError):
        ActivityPower(idle_w=70.0, tdp_w=700.0, b_c=-1.0)
    with pytest.raises(ValueError):
        ActivityPower(idle_w=70.0, tdp_w=700.0, quality="guessed")


def test_power_rises_with_batch_and_matches_the_research(catalog):
    """Llama-3.1-70B bf16 TP4 on H100 at context 700: 405 / 506 / 594 W (REPORT.md 5.6)."""
    prof = resolve(Deployment("H100-SXM", 4), "llama-3.1-70b", catalog)
    b = np.array([1.0, 64.0, 256.0])
    w = prof.power_model.step_power_w(prof.step.terms(b, b * 700.0), prof.step)
    np.testing.assert_allclose(w, [405, 506, 594], atol=1.5)
    act = activity(prof.step.terms(b, b * 700.0), prof.step)
    assert np.all(np.diff(act.u_c) > 0) and np.all(np.diff(w) > 0)


# ------------------------------------------------------------------------------ calibration


def test_every_catalog_gpu_is_calibrated(catalog):
    data = calibration_data()
    for g in catalog.gpus.values():
        cal = gpu_calibration(g)
        e = data["gpus"][g.name]
        assert cal.quality == ("fitted" if g.name in ("H100-SXM", "B200") else "projected")
        assert cal.power.quality == cal.quality
        assert cal.power.idle_w == e["idle_w"]["watts"] and cal.power.tdp_w == g.tdp_w
        assert (cal.kernel_params is None) == (g.name == "MI300X")  # AIC has no AMD GPU
        for src in ("source", "licence", "derivation"):
            if cal.quality == "fitted":
                assert e["step"][src] and e["power"][src]
        if cal.quality == "fitted":
            assert e["step"]["lomo_errors"]["itl"]["all"]["n"] > 0
            assert e["power"]["lomo_errors"]["all"]["n"] > 0


def test_an_uncalibrated_gpu_gets_the_default_projected(catalog):
    h = catalog.gpu("H100-SXM")
    mine = replace(h, name="my-gpu", tdp_w=600.0)
    cal = gpu_calibration(mine)
    assert cal.quality == "projected" and cal.set_name == "default"
    assert cal.params == gpu_calibration(h).params
    assert cal.power.tdp_w == 600.0 and cal.power.idle_w == h.power.idle_w


def test_calibration_fidelity_on_the_shipped_mlenergy_table(catalog):
    """The regression test of the calibration: median ITL within 12 % (bias within 5 %),
    throughput within 12 %, per-GPU power within 5 % over every in-sample configuration."""
    from fleetopt.physics import fidelity as fid

    rows = fid.load_measurements()
    meta = fid.measurements_meta()
    assert len(rows) == 130 and {r.gpu for r in rows} == {"H100-SXM", "B200"}
    bench = meta["benchmark"]
    cache: dict = {}

    def dep(c):
        key = (c.gpu, c.model, c.dtype, c.tp, c.ep)
        if key not in cache:
            prof = resolve(Deployment(c.gpu, c.tp, c.dtype, "fp16", c.ep), c.model, catalog,
                           PhysicsParams(memory_utilization=bench["gpu_memory_utilization"],
                                         reserve_gb=bench["reserve_bytes"] / GIB))
            cache[key] = (prof, prof.kv_capacity_tokens)
        return key, cache[key][0].step, cache[key][1]

    pred = fid.predict(rows, fid.step_nodes(rows), dep, meta["workload"]["Lp_tokens"])
    itl = fid.error_stats(pred.itl_s, [r.itl_ms / 1e3 for r in rows])
    tput = fid.error_stats(pred.tput_tok_s, [r.tput_tok_s for r in rows])
    watts = fid.error_stats(pred.power_w([cache[(r.gpu, r.model, r.dtype, r.tp, r.ep)][0]
                                          .power_model for r in rows]),
                            [r.power_w_per_gpu for r in rows])
    assert itl["median_abs_pct"] <= 12.0 and abs(itl["median_bias_pct"]) <= 5.0, itl
    assert tput["median_abs_pct"] <= 12.0, tput
    assert watts["median_abs_pct"] <= 5.0, watts
    # and it is the shipped calibration's own figure (the derivation's, recomputed here)
    shipped = calibration_data()["summary"]["mlenergy_itl"]["all"]["median_abs_pct"]
    assert itl["median_abs_pct"] == pytest.approx(shipped, abs=0.05)


def test_the_plain_roofline_fails_the_same_test(catalog):
    """The test can fail: without the fitted fixed costs the step is far too fast."""
    from fleetopt.physics import fidelity as fid

    rows = fid.load_measurements()
    meta = fid.measurements_meta()
    cache: dict = {}

    def dep(c):
        key = (c.gpu, c.model, c.dtype, c.tp, c.ep)
        if key not in cache:
            prof = resolve(Deployment(c.gpu, c.tp, c.dtype, "fp16", c.ep), c.model, catalog)
            p = replace(prof.calibration.params, t0=0.0, t_layer=ByPrecision(0.0), t_seq=0.0,
                        t_host=0.0)
            cache[key] = step_coefficients(prof.model, prof.gpu_spec, p, tp=c.tp, ep=c.ep,
                                           dtype=c.dtype)
        return key, cache[key], 1e7

    pred = fid.predict(rows, fid.step_nodes(rows), dep, meta["workload"]["Lp_tokens"])
    itl = fid.error_stats(pred.itl_s, [r.itl_ms / 1e3 for r in rows])
    assert itl["median_abs_pct"] > 12.0


# ------------------------------------------------------------------------------ profiles


@pytest.mark.parametrize("gpu, tokens, seqs", [("H100-SXM", 8192, 1024), ("H200-SXM", 8192, 1024),
                                               ("B200", 8192, 1024), ("GB200", 8192, 1024),
                                               ("MI300X", 8192, 1024), ("A100-SXM", 2048, 256),
                                               ("L40S", 2048, 256)])
def test_vllm_defaults_per_gpu_class(catalog, gpu, tokens, seqs):
    assert vllm_defaults(catalog.gpu(gpu)) == (tokens, seqs)
    prof = resolve(Deployment(gpu, 8), "llama-3.1-70b", catalog)
    assert (prof.token_budget, prof.max_seqs) == (tokens, seqs)


def test_physics_overrides_budget_and_seqs(catalog):
    p = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b", catalog,
                PhysicsParams(max_num_batched_tokens=4096, max_num_seqs=128))
    assert (p.token_budget, p.max_seqs) == (4096, 128)
    p = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b", catalog,
                PhysicsParams(max_num_batched_tokens=512))
    assert (p.token_budget, p.max_seqs) == (512, 512)  # vLLM caps the sequences at the budget
    with pytest.raises(FleetoptError, match="physics.max_num_seqs"):
        PhysicsParams(max_num_batched_tokens=256, max_num_seqs=512)
    with pytest.raises(FleetoptError, match="physics.max_num_seqs"):
        resolve(Deployment("A100-SXM", 8), "llama-3.1-70b", catalog,
                PhysicsParams(max_num_seqs=4096))
    with pytest.raises(FleetoptError, match="physics.max_num_batched_tokens"):
        PhysicsParams(max_num_batched_tokens=0)


def test_kv_capacity_by_hand(catalog):
    p = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b", catalog)
    budget = 80 * GIB * 0.9 - 70.6e9 * 2 / 8 - 2 * GIB
    blocks = math.floor(budget / (16 * 40960))
    assert p.kv_capacity_tokens == blocks * 16
    assert p.kv_capacity_tokens == kvm.kv_capacity_tokens(budget_bytes=budget,
                                                          kv_bytes_per_token=40960)
    assert p.slots(8192) == min(1024, blocks // 512)
    assert kvm.kv_capacity_tokens(budget_bytes=-5.0, kv_bytes_per_token=1.0) == 0
    assert p.gpus_per_instance == p.gpus == 8 and p.block_tokens == 16
    assert p.calibration_quality == "fitted" and p.idle_w == 75.0


def test_expert_parallelism_is_checked(catalog):
    p = resolve(Deployment("H200-SXM", 8, "fp8", "fp16", 8), "qwen3-235b-a22b", catalog)
    assert p.ep == 8 and p.gpus_per_instance == 8 and "EP8" in p.label()
    assert p.deployment().ep == 8
    q = resolve(Deployment("H200-SXM", 8, "fp8"), "qwen3-235b-a22b", catalog)
    assert q.step.step_s(64, 64e3) != p.step.step_s(64, 64e3)  # experts sharded differently
    with pytest.raises(FleetoptError, match="dense"):
        resolve(Deployment("H100-SXM", 8, ep=8), "llama-3.1-70b", catalog)
    with pytest.raises(FleetoptError, match="ep = 4"):
        resolve(Deployment("H100-SXM", 4, ep=2), "qwen3-30b-a3b", catalog)
    six = replace(catalog.model("mixtral-8x7b"), name="six", experts=6)
    with pytest.raises(FleetoptError, match="divide"):
        resolve(Deployment("H100-SXM", 4, ep=4), six, catalog)
    with pytest.raises(FleetoptError, match="whole number"):
        resolve(Deployment("H100-SXM", 4, ep=0), "qwen3-30b-a3b", catalog)
    with pytest.raises(FleetoptError, match="calibrated"):
        resolve(Deployment("1w-law-h100", 8, ep=8), "llama-3.1-70b", catalog)


def test_physics_fields_in_the_schema_and_config(tmp_path):
    from fleetopt.problem.config import load_config
    from fleetopt.problem.schema import FIELDS

    assert FIELDS["physics.max_num_batched_tokens"].kind == "whole"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[workload]\nname = "azure-conv-2023"\nrate = 5\n[model]\nname = '
                   '"llama-3.1-70b"\n[physics]\nmax_num_batched_tokens = 4096\n'
                   'max_num_seqs = 256\n')
    prob = load_config(str(cfg))
    assert (prob.physics.max_num_batched_tokens, prob.physics.max_num_seqs) == (4096, 256)
    assert prob.settings_used()["physics_overrides"] == {"max_num_batched_tokens": 4096,
                                                         "max_num_seqs": 256}
    assert prob.with_settings({"physics.max_num_seqs": 64}).physics.max_num_seqs == 64
    cfg.write_text(cfg.read_text().replace("4096", "2.5"))
    with pytest.raises(FleetoptError, match="physics.max_num_batched_tokens"):
        load_config(str(cfg))


# ------------------------------------------------------------------------------ power floor

#: a host-bound toy (t_host above the decode step) whose all-reduce bandwidth falls with size
HOSTY = replace(UNIT, t_host=2e-3, t0=1e-4, t_layer=ByPrecision(1e-5, fp8=3e-5), t_seq=1e-6,
                bw_ar=2e11, bw_ar_hi=5e10, m_ar=1e5, lat_ar=5e-6)


def _floor_case(catalog, k):
    if k == len(DEPLOYMENTS):
        m = toy_model()
        c = step_coefficients(m, TOY_GPU, HOSTY, tp=2, dtype="fp8")
        pm = ActivityPower(idle_w=100.0, tdp_w=1000.0, b0=0.3, b_c=2.0, b_m=0.9, b_x=1.5,
                           b_s=2.5, quality="fitted")
        return c, pm
    g, m, tp, ep, dt = DEPLOYMENTS[k]
    prof = resolve(Deployment(g, tp, dt, "fp16", ep), m, catalog)
    return prof.step, prof.power_model


@given(k=st.integers(0, len(DEPLOYMENTS)), d0=st.floats(0, 600), ctx=st.floats(0, 30000),
       extra=st.lists(st.tuples(st.floats(0, 400), st.sampled_from([0, 0, 1, 64, 2048, 8192]),
                                st.floats(0, 30000), st.floats(0.01, 5.0)),
                      min_size=1, max_size=4), u=st.floats(0, 1))
def test_power_floor_holds_for_any_mix_of_steps(catalog, k, d0, ctx, extra, u):
    """activity_power_floor_w(D, ctx) is at most the watts of any mix of steps that each carry at
    least D decoders of ctx cached tokens (plus any prefill chunk), and at least idle; so is the
    floor that knows a FLOP rate the mix runs at least (a share u of its own)."""
    from fleetopt.physics.power import activity_power_floor_w

    c, pm = _floor_case(catalog, k)
    floor = float(activity_power_floor_w(pm, c, d0, ctx))
    assert float(pm.idle_w) - 1e-9 <= floor <= float(pm.tdp_w) + 1e-9
    D = np.array([d0 + dd for dd, _, _, _ in extra])
    P = np.array([float(p) for _, p, _, _ in extra])
    s = np.array([st_ if p > 0 else 0.0 for _, p, st_, _ in extra])
    terms = c.terms(D, D * ctx, P, P * s + P * (P + 1) / 2, s)
    mix = terms.total(weights=np.array([w for *_, w in extra]))
    watts = float(pm.gpu_power_w(activity(mix, c)))
    assert watts >= floor * (1 - 1e-12)
    rate = float(mix.flops_bf16eq) / float(mix.t_step)
    floor_f = float(activity_power_floor_w(pm, c, d0, ctx, u * rate))
    assert floor - 1e-9 <= floor_f <= watts * (1 + 1e-12)


def test_power_floor_with_the_flop_rate_is_tight_on_prefill(catalog):
    """A prefill-heavy mix's FLOP rate lifts the floor close to its watts: the decode-step
    bound alone is far below them."""
    from fleetopt.physics.power import activity_power_floor_w

    prof = resolve(Deployment("H100-SXM", 8, "fp16", "fp16"), "llama-3.1-70b", catalog)
    c, pm = prof.step, prof.power_model
    D = np.array([8.0, 8.0])
    P = np.array([0.0, 4096.0])
    terms = c.terms(D, D * 2000.0, P, P * (P + 1) / 2, 0.0 * P)
    mix = terms.total(weights=np.array([1.0, 4.0]))
    watts = float(pm.gpu_power_w(activity(mix, c)))
    rate = float(mix.flops_bf16eq) / float(mix.t_step)
    plain = float(activity_power_floor_w(pm, c, 8.0, 2000.0))
    with_rate = float(activity_power_floor_w(pm, c, 8.0, 2000.0, rate))
    idle = float(pm.idle_w)
    assert with_rate <= watts
    assert with_rate - idle >= 0.75 * (watts - idle)
    assert plain - idle <= 0.6 * (watts - idle)


def test_power_floor_rises_with_decoders_and_needs_them(catalog):
    """The floor is tight enough to matter: it rises with the decoders it may assume, and a step
    with fewer decoders than assumed can draw less than it (so the bound is not vacuous)."""
    from fleetopt.physics.power import activity_power_floor_w

    prof = resolve(Deployment("H100-SXM", 8, "fp16", "fp16"), "llama-3.1-70b", catalog)
    c, pm = prof.step, prof.power_model
    f = [float(activity_power_floor_w(pm, c, d, 2000.0)) for d in (0.0, 16.0, 256.0)]
    assert f[0] < f[1] < f[2]
    one = float(pm.step_power_w(c.terms(1.0, 2000.0), c))
    assert one < f[2]
    # and a single decode step at the assumed count is within 30 % of its floor
    at = float(pm.step_power_w(c.terms(256.0, 256.0 * 2000.0), c))
    assert f[2] <= at <= 1.3 * f[2]
