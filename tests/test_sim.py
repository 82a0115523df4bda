"""The discrete-event simulator against closed forms (M/M/c, Little's law, single request)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.catalog import default_catalog
from fleetopt.physics.power import PowerCurve
from fleetopt.physics.profiles import Deployment, PhysicsParams, Profile, resolve
from fleetopt.physics.queueing import erlang_c
from fleetopt.problem.config import load_config
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.workload import Workload, builtin
from fleetopt.sim import scalar_timing, simulate, simulate_problem
from fleetopt.sizing.poolmodel import Settings


class FixedProfile(Profile):
    """``slots`` slots, a constant iteration time, optional constant prefill, flat-ish power."""

    kind = "test"
    gpu = "fixed"
    tp = 1
    dtype = "fp16"
    kv_dtype = "fp16"
    gpus_per_instance = 1
    price_per_gpu_hr = 1.0
    power = PowerCurve(100.0, 500.0, 1.0, 2.0)
    max_context = 1 << 20

    def __init__(self, iter_s: float, slots: int, prefill_s: float = 0.0) -> None:
        self.iter_s, self.n_slots, self.pre_s = iter_s, slots, prefill_s

    def slots(self, window_tokens: int) -> int:
        return self.n_slots

    def decode_s(self, batch, ctx_tokens):
        return np.zeros(np.broadcast(np.asarray(batch), np.asarray(ctx_tokens)).shape) + self.iter_s

    def prefill_s(self, prompt_tokens, batch, ctx_tokens):
        shape = np.broadcast(np.asarray(prompt_tokens), np.asarray(batch), np.asarray(ctx_tokens)).shape
        return np.zeros(shape) + self.pre_s


def geometric_workload(mean_tokens: float, rate_rps: float) -> Workload:
    """Outputs geometric on {1, 2, ...} with the given mean (service ~ exponential)."""
    p = 1.0 / mean_tokens
    k = np.arange(1, int(40 * mean_tokens))
    w = (1 - p) ** (k - 1) * p
    return Workload("geom", rate_rps, np.ones(len(k), np.int64), k.astype(np.int64), w / w.sum())


def _sim_fixed(instances: int, slots: int, rho: float, requests: int, seed: int = 0, **kw):
    iter_s, mean_tok = 0.01, 50.0
    c = instances * slots
    lam = rho * c / (iter_s * mean_tok)
    wl = geometric_workload(mean_tok, lam)
    fleet = Fleet((PoolSpec(0, 1 << 20, "fixed", 1, instances),))
    prof = FixedProfile(iter_s, slots)
    res = simulate(fleet, wl, requests=requests, seed=seed, profiles=[prof], **kw)
    return res, c, lam, iter_s * wl.mean_output_tokens()


@pytest.mark.parametrize("instances,slots", [(4, 1), (2, 2)])
def test_mmc_matches_erlang_c(instances: int, slots: int) -> None:
    res, c, lam, es = _sim_fixed(instances, slots, rho=0.8, requests=120_000)
    st = res.pools[0].stats
    a = lam * es
    pw = float(erlang_c(c, a))
    mean_wait = pw / (c / es - lam)
    assert st.wait_prob == pytest.approx(pw, abs=0.03)
    assert st.mean_wait_ms / 1000 == pytest.approx(mean_wait, rel=0.10)
    # an exponential conditional wait: P(W > t | W > 0) = exp(-(c mu - lam) t)
    w = res.requests.loc[res.requests.measured, "wait_s"].to_numpy()
    t = 1.0 / (c / es - lam)
    assert (w > t).mean() == pytest.approx(pw * math.exp(-1.0), abs=0.03)
    assert st.utilization == pytest.approx(0.8, abs=0.03)


def test_mmc_fails_when_mechanism_is_wrong() -> None:
    """The Erlang-C check discriminates: 4 servers are not 1 server of 4x speed (M/M/1)."""
    res, c, lam, es = _sim_fixed(4, 1, rho=0.8, requests=60_000)
    mm1_wait_prob = 0.8
    assert abs(res.pools[0].stats.wait_prob - mm1_wait_prob) > 0.1


def test_single_request_closed_form() -> None:
    prof = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b")
    wl = Workload("one", 1e-3, np.array([3000]), np.array([200]), np.array([1.0]))
    fleet = Fleet((PoolSpec(0, 4096, "H100-SXM", 8, 1),))
    res = simulate(fleet, wl, requests=2, seed=0, warmup_fraction=0.0)
    r = res.requests.iloc[0]
    pre = float(prof.prefill_s(3000, 1, 3000))
    assert r.wait_s == 0.0
    assert r.ttft_s == pytest.approx(pre, rel=1e-12)
    assert r.e2e_s == pytest.approx(pre + 200 * float(prof.decode_s(1, 3000)), rel=1e-9)


def test_scalar_timing_equals_profile_methods() -> None:
    cat = default_catalog()
    rng = np.random.default_rng(3)
    profs = [resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b", cat)]
    for gpu, tp, dt in (("H100-SXM", 8, "fp16"), ("H100-SXM", 2, "fp8"), ("B200", 4, "fp8"),
                        ("A100-SXM", 8, "fp16")):
        profs.append(resolve(Deployment(gpu, tp, dt), "llama-3.1-70b", cat,
                             PhysicsParams(overhead_s=0.002)))
    moe = [m for m in cat.models.values() if m.is_moe]
    if moe:
        profs.append(resolve(Deployment("H200-SXM", 8, "fp8"), moe[0].name, cat))
    for prof in profs:
        dec, pre = scalar_timing(prof)
        for _ in range(200):
            n = float(rng.integers(0, 300))
            ctx = float(rng.uniform(1, 30000))
            li = float(rng.integers(1, 20000))
            assert dec(n, ctx) == pytest.approx(float(prof.decode_s(n, ctx)), rel=1e-12)
            assert pre(li, n, ctx) == pytest.approx(float(prof.prefill_s(li, n, ctx)), rel=1e-12)


@pytest.fixture(scope="module")
def azure_run():
    """A realistic two-pool fleet on the computed H100 profile, below saturation."""
    wl = builtin("azure-conv-2023", 150.0)
    fleet = Fleet((PoolSpec(0, 4096, "H100-SXM", 8, 10), PoolSpec(4096, 16384, "H100-SXM", 8, 3)))
    return simulate(fleet, wl, requests=30_000, seed=7), wl


def test_littles_law(azure_run) -> None:
    res, _ = azure_run
    req = res.requests[res.requests.measured]
    for k, p in enumerate(res.pools):
        r = req[req.pool == k]
        in_service = (r.e2e_s - r.wait_s).mean()  # seconds holding a slot
        L = p.stats.mean_batch * p.stats.instances  # time-averaged slots held
        assert L == pytest.approx(p.stats.arrival_rate * in_service, rel=0.05)


def test_throughput_equals_arrival_rate_below_saturation(azure_run) -> None:
    res, wl = azure_run
    t = res.totals
    assert t["completion_rate"] == pytest.approx(150.0, rel=0.04)
    assert t["output_tok_per_s"] == pytest.approx(150.0 * wl.mean_output_tokens(), rel=0.05)
    assert t["output_tok_per_s"] == pytest.approx(t["predicted_output_tok_per_s"], rel=0.05)
    assert t["tok_per_w"] == pytest.approx(t["output_tok_per_s"] / t["power_w"])
    assert t["energy_j"] == pytest.approx(t["power_w"] * (t["window_s"][1] - t["window_s"][0]))


def test_result_shape(azure_run) -> None:
    res, _ = azure_run
    d = res.to_dict()
    assert list(d) == ["schema", "pools", "totals"] and d["schema"] == "fleetopt.simulation/1"
    keys = {"p50_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "mean_ttft_ms", "power_w",
            "output_tok_per_s", "tok_per_w", "energy_j", "requests", "mean_batch",
            "utilization", "p50_tpot_ms", "p99_e2e_ms", "predicted_p99_ttft_ms",
            "predicted_power_w", "predicted_output_tok_per_s"}
    for row in [*d["pools"], d["totals"]]:
        assert keys <= set(row)
    assert len(res.to_frame()) == 2
    assert res.to_json()
    s = [p.stats for p in res.pools]
    assert all(x.p50_ttft_ms <= x.p90_ttft_ms <= x.p99_ttft_ms for x in s)
    assert d["totals"]["requests"] == 27_000


def test_deterministic_per_seed() -> None:
    wl = builtin("azure-conv-2023", 100.0)
    fleet = Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 8),))
    a = simulate(fleet, wl, requests=3000, seed=5).to_dict()
    b = simulate(fleet, wl, requests=3000, seed=5).to_dict()
    c = simulate(fleet, wl, requests=3000, seed=6).to_dict()
    assert a == b
    assert a != c


def test_round_robin_and_saturation() -> None:
    res, c, lam, es = _sim_fixed(3, 2, rho=0.5, requests=20_000, dispatch="round_robin")
    assert res.pools[0].stats.utilization == pytest.approx(0.5, abs=0.03)
    with pytest.raises(FleetoptError):
        _sim_fixed(3, 2, rho=0.5, requests=100, dispatch="random")
    # over capacity: the queue grows, waits explode, throughput caps at capacity
    over, c, lam, es = _sim_fixed(2, 1, rho=1.5, requests=5000)
    assert over.pools[0].stats.completion_rate == pytest.approx(c / es, rel=0.05)
    assert over.pools[0].stats.p99_ttft_ms > 10_000


def test_replay_trace_and_errors() -> None:
    wl = builtin("azure-conv-2023", 200.0)
    fleet = Fleet((PoolSpec(0, 4096, "H100-SXM", 8, 12), PoolSpec(4096, 16384, "H100-SXM", 8, 4)))
    res = simulate(fleet, wl, requests=8000, replay=True)
    assert res.totals["arrivals"] == "replay:azure-conv-2023"
    assert res.totals["arrival_rate"] == pytest.approx(200.0, rel=0.15)
    with pytest.raises(FleetoptError) as e:
        simulate(fleet, builtin("azure", 200.0), requests=100, replay=True)
    assert e.value.field == "--replay"
    with pytest.raises(FleetoptError):
        simulate(Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 0),)), wl, requests=100)


def test_simulate_problem_uses_problem_settings() -> None:
    prob = load_config("paper-azure")
    fleet = Fleet((PoolSpec(0, 4096, "1w-law-h100", 8, 22), PoolSpec(4096, 65536, "1w-law-h100", 8, 65)))
    res = simulate_problem(prob, fleet, requests=5000, seed=1)
    assert res.totals["accounting"] == "paper"
    # paper accounting counts ONE GPU per instance: watts within one GPU's range per instance
    for p in res.pools:
        assert 300 * p.stats.instances <= p.stats.power_w <= 600 * p.stats.instances
    assert isinstance(res.pools[0].predicted_p99_ttft_ms, float)
    with pytest.raises(FleetoptError):
        simulate_problem(prob, None, requests=10)
    assert Settings().accounting == "physical"


def test_power_over_time_series_averages_to_the_pool_power():
    from fleetopt.planners.mip.solve import solve
    from fleetopt.problem.config import load_config
    from fleetopt.sim import simulate_problem

    p = load_config("paper-azure")
    res = simulate_problem(p, solve(p).fleet, requests=4000, seed=2)
    ps = res.power_series
    assert set(ps.columns) == {"t_s", "ctx_lo", "ctx_hi", "power_w"}
    for pool in res.pools:
        series = ps[ps.ctx_lo == pool.ctx_lo]
        assert len(series) == 100 and series.t_s.is_monotonic_increasing
        assert series.power_w.mean() == pytest.approx(pool.stats.power_w, rel=1e-9)
        assert (series.power_w > 0).all()
