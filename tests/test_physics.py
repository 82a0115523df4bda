"""Physics against hand-computed values, and monotonicity properties."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetopt.physics import kv as kvm
from fleetopt.physics.power import PowerCurve, gpu_power_w
from fleetopt.physics.profiles import Deployment, resolve
from fleetopt.physics.queueing import erlang_c, kimura_p99_wait_s, ttft_exceed_prob, ttft_quantile_s
from fleetopt.physics.step import expected_expert_fraction


def test_kv_bytes_gqa_sharded_and_replicated():
    # Llama-3.1-70B: 80 layers, 8 KV heads, head_dim 128, fp16: 2*80*heads*128*2 bytes
    f = dict(layers=80, kv_heads=8, head_dim=128)
    assert kvm.kv_bytes_per_token_per_gpu(**f, tp=1) == 2 * 80 * 8 * 128 * 2 == 327_680
    assert kvm.kv_bytes_per_token_per_gpu(**f, tp=8) == 40_960  # one head per rank
    assert kvm.kv_bytes_per_token_per_gpu(**f, tp=16) == 40_960  # replicated, not halved
    assert kvm.kv_bytes_per_token_per_gpu(**f, tp=8, kv_dtype="fp8") == 20_480


def test_kv_bytes_mla_replicated_latent():
    # DeepSeek-V3: 61 layers x (512 + 64) latent elements x 2 bytes, on every rank
    for tp in (1, 8):
        b = kvm.kv_bytes_per_token_per_gpu(layers=61, kv_heads=128, head_dim=128, tp=tp,
                                           attention="mla", kv_lora_rank=512, qk_rope_head_dim=64)
        assert b == 61 * 576 * 2


def test_slots_hand_computed():
    # 10 GB budget, 40960 B/token, 16-token blocks: 15258 blocks; 8K window = 512 blocks -> 29
    s = kvm.slots_at_window(budget_bytes=10e9, kv_bytes_per_token=40960, window_tokens=8192)
    assert s == (int(10e9 // (16 * 40960))) // 512 == 29
    assert kvm.slots_at_window(budget_bytes=-1, kv_bytes_per_token=1, window_tokens=8) == 0


def test_profile_llama70b_h100_tp8(catalog):
    p = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b", catalog)
    weights = 70.6e9 * 2 / 8
    assert p.weight_bytes_per_gpu == pytest.approx(weights)
    gib = 2.0 ** 30  # the catalog's memory sizes are GiB (vendors' "80 GB" is binary)
    budget = 80 * gib * 0.9 - weights - 2 * gib
    assert p.kv_budget_bytes == pytest.approx(budget)
    assert p.slots(8192) == (int(budget // (16 * 40960))) // 512
    # batch 1, tiny context: memory-bound weight streaming
    t = float(p.decode_s(1, 0.0))
    assert t == pytest.approx(weights / (3.35e12 * 0.8), rel=1e-9)
    # compute-bound at a huge batch: t = n * flops / (peak * eff)
    n = 100_000
    flops = 2 * 70.6e9 / 8
    assert float(p.decode_s(n, 0.0)) == pytest.approx(n * flops / (989e12 * 0.5), rel=1e-9)


def test_model_too_big_is_reported(catalog):
    p = resolve(Deployment("H100-SXM", 1), "llama-3.1-405b", catalog)
    msg = p.fit_error()
    assert msg and "needs 756.0 GiB of weights per GPU" in msg and "has 70.0 GiB" in msg


def test_moe_expert_fraction():
    f = expected_expert_fraction(np.array([0, 1, 8, 64, 512]), 128, 8)
    assert f[0] == 0
    assert f[1] == pytest.approx(8 / 128)
    assert f[2] == pytest.approx(1 - (1 - 8 / 128) ** 8)
    assert f[-1] > 0.99  # a large batch touches nearly every expert


def test_moe_streams_more_than_active_at_large_batch(catalog):
    p = resolve(Deployment("H100-SXM", 8), "qwen3-235b-a22b", catalog)
    active_bytes = 22.2e9 * 2 / 8
    t1 = float(p.decode_s(1, 0.0))
    t256 = float(p.decode_s(256, 0.0))
    bw = 3.35e12 * 0.8
    assert t1 < 2.5 * active_bytes / bw  # few experts at batch 1
    assert t256 >= 0.95 * p.weight_bytes_per_gpu / bw  # nearly all experts at batch 256


def test_calibrated_profile_constants(catalog):
    p = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b", catalog)
    assert [p.slots(c) for c in (2048, 4096, 8192, 65536)] == [512, 256, 128, 16]
    assert float(p.decode_s(128, 8192)) == pytest.approx(0.004 + 0.00032 * 128)
    assert float(p.prefill_s(2500, 1, 8192)) == pytest.approx(3 * (0.004 + 0.00032))


def test_power_curve_hand_values():
    c = PowerCurve(300, 600, 1.0, 4.2)
    assert gpu_power_w(c, 512) == pytest.approx(300 + 300 / (1 + math.exp(-(9 - 4.2))))
    assert gpu_power_w(c, 0) == gpu_power_w(c, 1)
    with pytest.raises(ValueError):
        PowerCurve(700, 600, 1.0, 4.0)


@given(idle=st.floats(0, 500), span=st.floats(0, 800), slope=st.floats(0, 5),
       mid=st.floats(0, 10), n=st.floats(0, 1e5), m=st.floats(0, 1e5))
def test_power_bounded_and_monotone(idle, span, slope, mid, n, m):
    c = PowerCurve(idle, idle + span, slope, mid)
    pn, pm = gpu_power_w(c, n), gpu_power_w(c, m)
    assert idle - 1e-9 <= pn <= idle + span + 1e-9
    if n <= m:
        assert pn <= pm + 1e-9


GPUS = ["H100-SXM", "H200-SXM", "B200", "A100-SXM", "L40S", "MI300X", "GB200"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "qwen3-30b-a3b", "mixtral-8x7b", "deepseek-v3"]


@given(gpu=st.sampled_from(GPUS), model=st.sampled_from(MODELS), tp=st.sampled_from([1, 2, 4, 8]),
       w1=st.integers(256, 131072), w2=st.integers(256, 131072))
def test_slots_non_increasing_in_window(catalog, gpu, model, tp, w1, w2):
    p = resolve(Deployment(gpu, tp), model, catalog)
    lo, hi = sorted((w1, w2))
    assert p.slots(lo) >= p.slots(hi)


@given(gpu=st.sampled_from(GPUS), model=st.sampled_from(MODELS), tp=st.sampled_from([1, 2, 4, 8]),
       n1=st.integers(1, 4096), n2=st.integers(1, 4096), ctx=st.floats(0, 131072))
def test_iteration_time_non_decreasing_in_batch(catalog, gpu, model, tp, n1, n2, ctx):
    p = resolve(Deployment(gpu, tp), model, catalog)
    lo, hi = sorted((n1, n2))
    assert float(p.decode_s(lo, ctx)) <= float(p.decode_s(hi, ctx)) * (1 + 1e-12)


def test_erlang_c_known_values():
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert erlang_c(5, 5.0) == 1.0  # unstable
    assert erlang_c(10, 0.0) == 0.0


@given(c=st.integers(1, 60), rho=st.floats(0.01, 0.99))
def test_erlang_c_matches_textbook_sum(c, rho):
    a = rho * c
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - rho)
    assert erlang_c(c, a) == pytest.approx(top / (s + top), rel=1e-9, abs=1e-12)


def test_erlang_c_large_c_is_stable():
    v = erlang_c(300_000, 299_000.0)
    assert 0.0 <= v <= 1.0 and math.isfinite(v)


def test_kimura_p99_hand_value():
    c, mu, lam, cv2 = 10, 1.0, 8.0, 1.0
    C = erlang_c(c, lam / mu)
    expect = math.log(C / 0.01) / (2 * (c * mu - lam) / (1 + cv2))
    assert kimura_p99_wait_s(c, mu, lam, cv2) == pytest.approx(expect)
    assert kimura_p99_wait_s(100, 1.0, 10.0, 1.0) == 0.0  # C <= 1 %


@given(pw=st.floats(0, 1), theta=st.floats(0.1, 100), p=st.lists(st.floats(0, 2), min_size=1, max_size=8))
def test_ttft_quantile_and_exceed_prob_agree(pw, theta, p):
    w = np.ones(len(p))
    q = float(ttft_quantile_s(pw, theta, p, w, 0.99))
    late = float(ttft_exceed_prob(pw, theta, p, w, q + 1e-6)[0])
    assert late <= 0.01 + 1e-6
