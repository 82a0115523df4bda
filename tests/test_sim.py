"""The simulator through its public API (``fleetopt.sim.simulate``, ``simulate_problem``): the
iteration engine behind it against closed forms (M/M/c with one slot and a fixed iteration
time, Little's law, throughput = arrivals below saturation, determinism per seed), the
under-provisioned plan of issue 12, policies, replications, the JSON document, verdicts, the
step-cost seam (``fleetopt.sim.costs``) and the rule that the simulator shares nothing
pool-level with the analytical model."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.catalog import default_catalog
from fleetopt.physics.profiles import Deployment, PhysicsParams, resolve
from fleetopt.problem.config import load_config
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.problem.workload import Workload, builtin
from fleetopt.sim import PREDICTIONS, simulate, simulate_problem
from fleetopt.sim.costs import CalibratedStepCost, instance_limits, profile_step_cost
from fleetopt.sim.iteration import InstanceLimits, PoolConfig, RequestStream, simulate_pools
from fleetopt.sim.profile_cost import ProfileStepCost
from fleetopt.sim.testing import ConstantStepCost, RooflineStepCost, h100_tp8_llama70b_limits

ROOT = Path(__file__).resolve().parents[1]
T_ITER = 0.01
#: the azure-h100 plan of issue 12 (9/12/6/1 x H100 TP8 fp16 over 3072/6144/8192/65536)
OLD_PLAN = Fleet(tuple(PoolSpec(lo, hi, "H100-SXM", 8, n) for lo, hi, n in (
    (0, 3072, 9), (3072, 6144, 12), (6144, 8192, 6), (8192, 65536, 1))))


def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c, offered load ``a`` (written out: independent of physics.queueing)."""
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (s + top)


def geometric_workload(mean_tokens: float, rate_rps: float) -> Workload:
    """One-token prompts, outputs geometric on {1, 2, ...} with the given mean."""
    p = 1.0 / mean_tokens
    k = np.arange(1, int(40 * mean_tokens))
    w = (1 - p) ** (k - 1) * p
    return Workload("geom", rate_rps, np.ones(len(k), np.int64), k.astype(np.int64), w / w.sum())


def one_slot() -> InstanceLimits:
    return InstanceLimits(token_budget=1, max_seqs=1, kv_allocation="reserved", slots=1,
                          window_tokens=1 << 20)


def mmc(c: int, rho: float, requests: int, seed: int = 0, **kw):
    """c one-slot instances, fixed iteration time, geometric outputs (mean 12): M/M/c-like."""
    mean = 12.0
    lam = rho * c / (mean * T_ITER)
    fleet = Fleet((PoolSpec(0, 1 << 20, "fixed", 1, c),))
    res = simulate(fleet, geometric_workload(mean, lam), requests=requests, seed=seed,
                   warmup_fraction=0.1, engines=[(ConstantStepCost(T_ITER), one_slot())], **kw)
    return res, lam, 1.0 / (mean * T_ITER)


@pytest.mark.parametrize("c", [4, 1])
def test_mmc_one_slot_matches_erlang_c(c: int) -> None:
    res, lam, mu = mmc(c, 0.8, 30_000)
    st = res.pools[0].stats
    pw = erlang_c(c, lam / mu)
    assert st.wait_prob == pytest.approx(pw, abs=0.03)
    # geometric service has cv^2 = 1 - 1/m: the mean wait is a few % below Erlang C's
    assert st.mean_wait_ms / 1000 == pytest.approx(pw / (c * mu - lam), rel=0.12)
    assert st.busy_fraction == pytest.approx(0.8, abs=0.03)
    assert st.mean_batch == pytest.approx(0.8, abs=0.03)
    assert res.totals["ci_method"] == "batch_means" and st.p99_ttft_ci_ms > 0


def test_mmc_check_discriminates() -> None:
    """4 one-slot servers are not one server of 4x speed: P(wait) is far from M/M/1's rho."""
    res, _, _ = mmc(4, 0.8, 20_000)
    assert abs(res.pools[0].stats.wait_prob - 0.8) > 0.1


@pytest.fixture(scope="module")
def roofline_run():
    """A realistic two-pool fleet of reference H100 TP8 instances, below saturation."""
    wl = builtin("azure-conv-2023", 150.0)
    fleet = Fleet((PoolSpec(0, 4096, "H100-SXM", 8, 8), PoolSpec(4096, 16384, "H100-SXM", 8, 3)))
    eng = (RooflineStepCost(), h100_tp8_llama70b_limits())
    return simulate(fleet, wl, requests=30_000, seed=7, engines=[eng, eng]), wl


def test_littles_law_and_throughput_below_saturation(roofline_run) -> None:
    res, wl = roofline_run
    t = res.totals
    assert t["mean_in_system"] == pytest.approx(t["arrival_rate"] * t["mean_time_in_system_s"],
                                                rel=0.03)
    for p in res.pools:
        s = p.stats
        assert s.mean_in_system == pytest.approx(s.arrival_rate * s.mean_time_in_system_s,
                                                 rel=0.05)
        assert s.completion_rate == pytest.approx(s.arrival_rate, rel=0.04)
        assert s.delivered_fraction == pytest.approx(1.0, abs=0.03)
        assert p.delivers_offered_load and p.check_passed
    assert t["completion_rate"] == pytest.approx(150.0, rel=0.04)
    assert t["output_tok_per_s"] == pytest.approx(150.0 * wl.mean_output_tokens(), rel=0.05)
    assert t["tok_per_j"] == pytest.approx(t["output_tok_per_s"] / t["power_w"])
    assert t["energy_j"] == pytest.approx(t["power_w"] * (t["window_s"][1] - t["window_s"][0]))


def test_saturated_pool_is_reported_as_not_delivering() -> None:
    res, lam, mu = mmc(2, 1.5, 6000)
    p = res.pools[0]
    assert p.stats.completion_rate == pytest.approx(2 * mu, rel=0.06)
    assert p.stats.delivered_fraction < 0.8 and p.delivers_offered_load is False
    assert p.check_passed is False and res.check_passed is False


def test_deterministic_per_seed() -> None:
    wl = builtin("azure-conv-2023", 100.0)
    fleet = Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 6),))
    a = simulate(fleet, wl, requests=3000, seed=5).to_dict()
    b = simulate(fleet, wl, requests=3000, seed=5).to_dict()
    c = simulate(fleet, wl, requests=3000, seed=6).to_dict()
    assert a == b
    assert a != c


# ------------------------------------------------------------------------------------------
# the under-provisioned plan of issue 12


def test_old_azure_h100_plan_is_reported_under_provisioned() -> None:
    prob = load_config("azure-h100")
    assert prob.workload.name == "azure" and prob.workload.rate_rps == 1000
    res = simulate_problem(prob, OLD_PLAN, requests=20_000, seed=0)
    assert res.check_passed is False
    assert res.slo_met is False or res.delivers_offered_load is False
    first = res.pools[0]
    assert first.stats.delivered_fraction < 0.5 and first.delivers_offered_load is False
    assert first.stats.slo_ttft_ms > 10 * prob.settings.ttft_p99_ms
    # the old evaluator called this plan feasible; the serving model (issue 11) now agrees
    # with the simulator that its first pool misses the target
    assert first.predicted_p99_ttft_ms is not None and \
        first.predicted_p99_ttft_ms > prob.settings.ttft_p99_ms


def test_old_azure_h100_plan_fails_the_cli_check(capsys, tmp_path) -> None:
    from fleetopt.report.cli import EXIT_CHECK_FAILED, main

    f = tmp_path / "old.json"
    f.write_text(json.dumps([p.to_dict() for p in OLD_PLAN.pools]))
    code = main(["simulate", "azure-h100", "--fleet", str(f), "--requests", "20000", "--check"])
    out, _ = capsys.readouterr()
    assert code == EXIT_CHECK_FAILED == 3
    assert "MISSED" in out and "offered load NOT delivered" in out
    code = main(["simulate", "azure-h100", "--fleet", str(f), "--requests", "20000", "--check",
                 "--format", "json"])
    d = json.loads(capsys.readouterr()[0])
    assert code == 3 and d["totals"]["check_passed"] is False
    assert d["totals"]["pools_not_delivering"] >= 1 and d["pools"][0]["slo_met"] is False


# ------------------------------------------------------------------------------------------
# policies, replications, auto length, KV modes, replay with hashes


def test_policies() -> None:
    wl = builtin("azure-conv-2023", 150.0)
    fleet = Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 6),))
    eng = [(RooflineStepCost(), h100_tp8_llama70b_limits())]
    seen = {}
    for pol in ("least_outstanding_tokens", "least_loaded", "round_robin"):
        r = simulate(fleet, wl, requests=4000, seed=1, policy=pol, engines=eng)
        assert r.totals["policy"] == r.totals["dispatch"] == pol
        seen[pol] = r.requests.instance.to_numpy()
    assert not np.array_equal(seen["round_robin"], seen["least_outstanding_tokens"])
    old = simulate(fleet, wl, requests=4000, seed=1, dispatch="round_robin", engines=eng)
    assert np.array_equal(old.requests.instance.to_numpy(), seen["round_robin"])
    with pytest.raises(FleetoptError) as e:
        simulate(fleet, wl, requests=100, policy="random", engines=eng)
    assert e.value.field == "policy"


def test_replications() -> None:
    fleet = Fleet((PoolSpec(0, 1 << 20, "fixed", 1, 3),))
    wl = geometric_workload(12.0, 0.7 * 3 / (12 * T_ITER))
    eng = [(ConstantStepCost(T_ITER), one_slot())]
    one = simulate(fleet, wl, requests=5000, seed=4, engines=eng, warmup_fraction=0.1)
    three = simulate(fleet, wl, requests=5000, seed=4, replications=3, engines=eng,
                     warmup_fraction=0.1)
    again = simulate(fleet, wl, requests=5000, seed=4, replications=3, engines=eng,
                     warmup_fraction=0.1)
    assert three.to_dict() == again.to_dict()
    t = three.totals
    assert t["replications"] == 3 and t["ci_method"] == "replications"
    assert t["requests"] == sum(s.fleet.requests for s in three.summaries)
    reps = [s.fleet.p99_ttft_ms for s in three.summaries]
    assert len(set(reps)) == 3  # independent streams
    assert t["p99_ttft_ms"] == pytest.approx(np.mean(reps))
    assert 0 < t["p99_ttft_ci_ms"] < math.inf
    # replication 0 is the single run
    r0 = three.requests[three.requests.replication == 0].reset_index(drop=True)
    assert np.array_equal(r0.ttft_s.to_numpy(), one.requests.ttft_s.to_numpy())
    with pytest.raises(FleetoptError):
        simulate(fleet, wl, requests=100, replications=0, engines=eng)


def test_auto_requests_extend_a_short_window() -> None:
    prob = load_config("paper-azure")
    fleet = Fleet((PoolSpec(0, 6144, "1w-law-h100", 8, 45),
                   PoolSpec(6144, 65536, "1w-law-h100", 8, 22)))
    short = simulate_problem(prob, fleet, requests=20_000, seed=0)
    assert short.totals["warnings"] and not short.totals["requests_auto"]
    auto = simulate_problem(prob, fleet, seed=0)
    t = auto.totals
    assert t["requests_auto"] and t["simulated_requests"] > 20_000 and t["warnings"] == []
    span = t["window_s"][1] - t["window_s"][0]
    assert span >= 5 * t["slowest_mean_time_in_system_s"]
    assert auto.check_passed


def test_reserved_kv_and_the_step_cost_named_in_the_limits() -> None:
    """simulate() runs each pool on its profile's limits: paged KV over the profile's whole
    capacity, or reserved slots at the pool's window; the step cost is the iteration model."""
    wl = builtin("azure-conv-2023", 100.0)
    fleet = Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 4),))
    prof = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b")
    r = simulate(fleet, wl, requests=3000, seed=0, kv_allocation="reserved")
    lim = r.pools[0].limits
    assert lim["kv_allocation"] == "reserved" and lim["slots"] == prof.slots(16384)
    assert lim["kv_capacity_tokens"] == prof.slots(16384) * 16384
    assert (lim["token_budget"], lim["max_seqs"]) == (prof.token_budget, prof.max_seqs)
    assert lim["step_cost"] == "iteration-model" and r.totals["preemptions"] == 0
    paged = simulate(fleet, wl, requests=600, seed=0).pools[0].limits
    assert paged["kv_allocation"] == "paged" and paged["slots"] is None
    assert paged["kv_capacity_tokens"] == prof.kv_capacity_tokens
    assert paged["block_tokens"] == prof.block_tokens
    with pytest.raises(FleetoptError) as e:
        simulate(fleet, wl, requests=100, kv_allocation="swapped")
    assert e.value.field == "physics.kv_allocation"


def test_replay_with_block_hashes_hits_the_prefix_cache() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    shared = list(range(4))  # a 2,048-token system prompt shared by every request
    hashes, lens = [], []
    for i in range(n):
        own = [10_000 + 10 * i + j for j in range(int(rng.integers(0, 3)))]
        hashes.append(shared + own)
        lens.append(512 * len(shared + own) + int(rng.integers(1, 400)))
    flat = np.concatenate([np.asarray(h) for h in hashes])
    off = np.concatenate([[0], np.cumsum([len(h) for h in hashes])])
    trace = {"arrival_s": np.cumsum(rng.exponential(0.01, n)), "input": np.asarray(lens),
             "output": rng.integers(1, 200, n), "hash_ids": flat, "hash_offsets": off,
             "hash_block_tokens": 512}
    wl = Workload("hashed", 100.0, np.array([1000]), np.array([100]), np.array([1.0]))
    fleet = Fleet((PoolSpec(0, 8192, "H100-SXM", 8, 2),))
    hit = simulate(fleet, wl, replay=trace, requests=n, rate_rps="trace")
    assert hit.totals["arrivals"] == "replay:custom"
    assert 0.5 < hit.totals["hit_rate"] < 1.0
    cold = simulate(fleet, wl, replay={k: trace[k] for k in ("arrival_s", "input", "output")},
                    requests=n, rate_rps="trace")
    assert cold.totals["hit_rate"] == 0.0
    assert hit.totals["mean_ttft_ms"] < cold.totals["mean_ttft_ms"]


def test_replay_trace_and_errors() -> None:
    wl = builtin("azure-conv-2023", 200.0)
    fleet = Fleet((PoolSpec(0, 4096, "H100-SXM", 8, 12), PoolSpec(4096, 16384, "H100-SXM", 8, 4)))
    res = simulate(fleet, wl, requests=8000, replay=True)
    assert res.totals["arrivals"] == "replay:azure-conv-2023"
    assert res.totals["arrival_rate"] == pytest.approx(200.0, rel=0.15)
    two = simulate(fleet, wl, requests=4000, replay=True, replications=2)
    r = two.requests
    assert not np.array_equal(r[r.replication == 0].input_tokens.to_numpy(),
                              r[r.replication == 1].input_tokens.to_numpy())  # rotated
    with pytest.raises(FleetoptError) as e:
        simulate(fleet, builtin("azure", 200.0), requests=100, replay=True)
    assert e.value.field == "--replay"
    with pytest.raises(FleetoptError):
        simulate(Fleet((PoolSpec(0, 16384, "H100-SXM", 8, 0),)), wl, requests=100)


# ------------------------------------------------------------------------------------------
# the document, predictions and verdicts


OLD_POOL_KEYS = {
    "ctx_lo", "ctx_hi", "gpu", "tp", "dtype", "window_tokens", "requests", "p50_ttft_ms",
    "p90_ttft_ms", "p99_ttft_ms", "mean_ttft_ms", "wait_prob", "mean_wait_ms", "p50_tpot_ms",
    "p99_tpot_ms", "p50_e2e_ms", "p99_e2e_ms", "arrival_rate", "completion_rate",
    "output_tok_per_s", "power_w", "energy_j", "tok_per_w", "mean_batch", "utilization",
    "instances", "slots", "slo_ttft_ms", "compressed_share", "predicted_p99_ttft_ms",
    "predicted_power_w", "predicted_output_tok_per_s", "predicted_utilization",
    "predicted_mean_batch", "ttft_target_ms", "slo_met"}
NEW_POOL_KEYS = {
    "p50_ttft_ci_ms", "p90_ttft_ci_ms", "p99_ttft_ci_ms", "p90_tpot_ms", "mean_tpot_ms",
    "p50_tpot_ci_ms", "p90_tpot_ci_ms", "p99_tpot_ci_ms", "slo_tpot_ms", "mean_e2e_ms",
    "offered_output_tok_per_s", "delivered_fraction", "preemptions", "preempted_share",
    "kv_utilization", "busy_fraction", "compute_term_utilization", "memory_term_utilization",
    "compute_bound_fraction", "tok_per_j", "hit_rate", "mean_in_system",
    "mean_time_in_system_s", "finished", "tpot_target_ms", "ttft_met", "tpot_met",
    "delivers_offered_load", "check_passed", "min_delivered", "limits", "power_w_series",
    "predicted_energy_j", *(f"predicted_{k}" for k in PREDICTIONS)}
OLD_TOTAL_KEYS = {
    "worst_pool_p99_ttft_ms", "worst_pool_slo_ttft_ms", "pools_missed", "slo_met",
    "predicted_p99_ttft_ms", "predicted_power_w", "predicted_output_tok_per_s", "seed",
    "arrivals", "simulated_requests", "rate_rps", "dispatch", "warmup_fraction", "window_s",
    "slowest_mean_service_s", "accounting", "ttft_target_ms", "slo_quantile"}


@pytest.fixture(scope="module")
def paper_run():
    prob = load_config("paper-azure")
    fleet = Fleet((PoolSpec(0, 6144, "1w-law-h100", 8, 45),
                   PoolSpec(6144, 65536, "1w-law-h100", 8, 22)))
    return prob, fleet, simulate_problem(prob, fleet, requests=6000, seed=2)


def test_json_keeps_every_old_field_and_adds_the_new_ones(paper_run) -> None:
    prob, fleet, res = paper_run
    d = json.loads(res.to_json())
    assert list(d) == ["schema", "pools", "totals"] and d["schema"] == "fleetopt.simulation/1"
    for p in d["pools"]:
        assert OLD_POOL_KEYS | NEW_POOL_KEYS <= set(p), (OLD_POOL_KEYS | NEW_POOL_KEYS) - set(p)
        assert len(p["power_w_series"]) == 100
    t = d["totals"]
    assert OLD_TOTAL_KEYS <= set(t) and {"check_passed", "delivers_offered_load", "policy",
                                          "replications", "warnings", "power_w_series"} <= set(t)
    # what the evaluator gives today is filled in; what it does not (yet) is null
    p = d["pools"][0]
    for k in ("p99_ttft_ms", "power_w", "output_tok_per_s", "utilization", "mean_batch"):
        assert isinstance(p[f"predicted_{k}"], float)
    from fleetopt.evaluation import evaluate_plan

    pr = evaluate_plan(prob, fleet).pools[0]
    for k, attrs in PREDICTIONS.items():
        have = any(getattr(pr, a, None) is not None for a in attrs)
        assert (p[f"predicted_{k}"] is not None) == have, k
    s = [x.stats for x in res.pools]
    assert all(x.p50_ttft_ms <= x.p90_ttft_ms <= x.p99_ttft_ms for x in s)
    assert all(x.p50_tpot_ms <= x.p90_tpot_ms <= x.p99_tpot_ms for x in s)


def test_power_over_time_series_averages_to_the_pool_power(paper_run) -> None:
    _, _, res = paper_run
    ps = res.power_series
    assert set(ps.columns) == {"t_s", "ctx_lo", "ctx_hi", "power_w"}
    for pool in res.pools:
        series = ps[ps.ctx_lo == pool.ctx_lo]
        assert len(series) == 100 and series.t_s.is_monotonic_increasing
        assert series.power_w.mean() == pytest.approx(pool.stats.power_w, rel=1e-9)
        assert np.mean(pool.power_w_series) == pytest.approx(pool.stats.power_w, rel=1e-9)
    # paper accounting counts ONE GPU per instance
    for p in res.pools:
        assert 300 * p.stats.instances <= p.stats.power_w <= 600 * p.stats.instances


def test_tpot_target_enters_the_verdict(paper_run) -> None:
    prob, fleet, res = paper_run
    assert res.pools[0].tpot_met is None and res.totals["tpot_target_ms"] is None
    tight = simulate_problem(prob, fleet, requests=6000, seed=2, tpot_target_ms=1.0)
    assert all(p.tpot_met is False and p.slo_met is False for p in tight.pools)
    assert tight.check_passed is False and tight.totals["pools_missed"] == 2
    loose = simulate_problem(prob, fleet, requests=6000, seed=2, tpot_target_ms=10_000.0)
    assert all(p.tpot_met for p in loose.pools)


def test_a_tpot_setting_is_the_default_target(paper_run) -> None:
    """``[slo] tpot_p99_ms`` arrives with the pool model's TPOT target: settings that carry it
    set the simulator's TPOT target unless ``tpot_target_ms`` is given."""
    import dataclasses

    prob, fleet, _ = paper_run
    st = dataclasses.replace(prob.settings, tpot_p99_ms=1.0)
    kw = {"model": prob.model, "catalog": prob.catalog, "physics": prob.physics,
          "requests": 2000, "seed": 2}
    tight = simulate(fleet, prob.workload, st, **kw)
    assert tight.totals["tpot_target_ms"] == 1.0
    assert all(p.tpot_met is False for p in tight.pools) and tight.check_passed is False
    loose = simulate(fleet, prob.workload, st, tpot_target_ms=10_000.0, **kw)
    assert loose.totals["tpot_target_ms"] == 10_000.0 and all(p.tpot_met for p in loose.pools)


def test_bad_arguments_name_the_field(paper_run) -> None:
    prob, fleet, _ = paper_run
    for kw, field in (({"requests": 0}, "requests"), ({"seed": -1}, "seed"),
                      ({"replications": 2000}, "replications"),
                      ({"min_delivered": 1.5}, "min_delivered"),
                      ({"tpot_target_ms": -1.0}, "tpot_target_ms"),
                      ({"warmup_fraction": 1.0}, "warmup_fraction"),
                      ({"policy": "x", "dispatch": "round_robin"}, "dispatch"),
                      ({"engines": [(ConstantStepCost(), one_slot())]}, "engines")):
        with pytest.raises(FleetoptError) as e:
            simulate_problem(prob, fleet, **kw)
        assert e.value.field == field, kw
    with pytest.raises(FleetoptError):
        simulate_problem(prob, None, requests=10)


# ------------------------------------------------------------------------------------------
# the step-cost seam and the independence of the simulator


def _mixes(rng: np.random.Generator, n: int):
    """Random iteration mixes ``(D, K_d, P, A_p, K_p)``: decoders with their cached tokens, and
    (half the time) one prefill chunk of ``c`` tokens starting at position ``s``."""
    for _ in range(n):
        d = int(rng.integers(0, 300))
        kd = float(d * rng.uniform(1, 30000))
        c, s = (int(rng.integers(1, 8192)), int(rng.integers(0, 30000))) if rng.random() < 0.5 \
            else (0, 0)
        if d == 0 and c == 0:
            c = 1
        yield d, kd, c, c * s + c * (c + 1) / 2, float(s)


def test_computed_cost_is_the_profiles_iteration_model() -> None:
    """The seam gives a computed profile's instance ``profile.step`` per iteration: the time of
    every mix is ``profile.step.step_s`` of it, the energy the activity power model times the
    GPUs counted, the split its compute and memory terms, the idle power the GPUs' idle."""
    cat = default_catalog()
    rng = np.random.default_rng(3)
    for gpu, tp, dt, model, ep in (("H100-SXM", 8, "fp16", "llama-3.1-70b", 1),
                                   ("H100-SXM", 2, "fp8", "llama-3.1-70b", 1),
                                   ("B200", 4, "fp8", "llama-3.1-70b", 1),
                                   ("A100-SXM", 8, "fp16", "llama-3.1-70b", 1),
                                   ("H200-SXM", 8, "fp8", "qwen3-235b-a22b", 8)):
        prof = resolve(Deployment(gpu, tp, dt, ep=ep), model, cat)
        for accounting, gpus in (("physical", tp), ("paper", 1)):
            cost = profile_step_cost(prof, accounting)
            assert isinstance(cost, ProfileStepCost)
            assert cost.idle_w == pytest.approx(gpus * prof.idle_w, rel=1e-12)
            for mix in _mixes(rng, 40):
                t = cost.step_s(*mix)
                assert t == pytest.approx(prof.step.step_s(*mix), rel=1e-12), (gpu, mix)
                terms = prof.step.terms(*mix)
                watts = float(prof.power_model.step_power_w(terms, prof.step))
                assert cost.step_energy_j(*mix[:4], t, mix[4]) == pytest.approx(
                    gpus * watts * t, rel=1e-9)
                assert cost.step_split_s(*mix) == pytest.approx(
                    (float(terms.t_cmp), float(terms.t_mem)), rel=1e-12)


def test_the_engine_times_a_lone_request_with_the_profiles_steps() -> None:
    """Through the seam and the engine: a lone request's TTFT is the profile's step time of its
    one prefill chunk, and its decode time the sum of the profile's decode steps."""
    prof = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b")
    pool = PoolConfig(1, profile_step_cost(prof), instance_limits(prof))
    p, o = 3000, 6
    s = RequestStream(np.array([0.0]), np.array([p]), np.array([o]), np.zeros(1, int))
    res = simulate_pools(s, [pool], window_s=(0.0, 10.0), trace_iterations=True, debug=True)
    rr, tr = res.requests, res.trace
    assert rr.ttft_s[0] == pytest.approx(prof.step.step_s(0, 0.0, p, p * (p + 1) / 2, 0.0),
                                         rel=1e-12)
    dec = tr[tr.prefill_tokens == 0]
    assert len(dec) == o - 1 and (dec.decode_seqs == 1).all()
    assert dec.decode_ctx_tokens.min() >= p
    expect = sum(prof.step.step_s(1, float(k)) for k in dec.decode_ctx_tokens)
    assert rr.done_s[0] - rr.first_token_s[0] == pytest.approx(expect, rel=1e-12)


def test_calibrated_cost_is_the_published_law() -> None:
    prof = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b")
    cost = profile_step_cost(prof, "paper")
    assert isinstance(cost, CalibratedStepCost)
    for n, ctx in ((1, 100.0), (64, 3000.0), (256, 8192.0)):
        assert cost.step_s(n, n * ctx, 0, 0.0) == pytest.approx(float(prof.decode_s(n, ctx)),
                                                                rel=1e-12)
    assert cost.idle_w == pytest.approx(float(prof.instance_power_w(0, "paper")))
    lim = instance_limits(prof)
    assert lim.paged and lim.kv_capacity_tokens == prof.spec.kv_blocks * prof.spec.block_tokens
    assert lim.token_budget == prof.spec.chunk_tokens + lim.max_seqs


def test_instance_limits_are_the_profiles() -> None:
    """A computed profile's engine limits are its own: token budget and sequence cap (vLLM's
    defaults per GPU class, or the physics overrides), its paged KV capacity in whole blocks,
    or its reserved slots at the window."""
    for gpu, budget, seqs in (("H100-SXM", 8192, 1024), ("B200", 8192, 1024),
                              ("A100-SXM", 2048, 256), ("L40S", 2048, 256)):
        dt = "fp8" if gpu == "L40S" else "fp16"
        prof = resolve(Deployment(gpu, 8, dt), "llama-3.1-70b")
        lim = instance_limits(prof)
        assert (lim.token_budget, lim.max_seqs) == (prof.token_budget, prof.max_seqs) == \
            (budget, seqs), gpu
        assert lim.kv_capacity_tokens == prof.kv_capacity_tokens > 0
        assert lim.block_tokens == prof.block_tokens
        assert lim.kv_capacity_tokens % lim.block_tokens == 0
        for window in (4096, 16384, 65536):
            res = instance_limits(prof, "reserved", window)
            assert not res.paged and res.slots == prof.slots(window) and res.window_tokens == window
            assert (res.token_budget, res.max_seqs) == (prof.token_budget, prof.max_seqs)
    params = PhysicsParams(max_num_batched_tokens=4096, max_num_seqs=128, block_tokens=32,
                           max_batch=64)
    small = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b", params=params)
    lim = instance_limits(small)
    assert (lim.token_budget, lim.max_seqs, lim.block_tokens) == (4096, 128, 32)
    assert lim.kv_capacity_tokens == small.kv_capacity_tokens
    assert lim.kv_capacity_tokens % 32 == 0
    assert instance_limits(small, "reserved", 1024).slots == small.slots(1024) == 64
    with pytest.raises(FleetoptError) as e:
        instance_limits(small, "reserved")  # needs the window
    assert e.value.field == "window_tokens"
    with pytest.raises(FleetoptError) as e:
        instance_limits(resolve(Deployment("L40S", 1), "llama-3.1-70b"))
    assert e.value.field == "fleet.gpu"
    with pytest.raises(FleetoptError) as e:
        instance_limits(prof, "reserved", 10_000_000)
    assert e.value.field == "fleet.window_tokens"


def _fleetopt_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("fleetopt")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fleetopt"):
            out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module or ""}
    return out


def test_simulator_shares_nothing_pool_level_with_the_analytical_model() -> None:
    """sim/ imports no sizing, no queueing or burst formula, no planner; only sim/api calls
    the evaluator (to put its predictions beside the measurements)."""
    banned = ("fleetopt.sizing", "fleetopt.physics.queueing", "fleetopt.physics.burst",
              "fleetopt.planners", "fleetopt.studies")
    files = sorted((ROOT / "fleetopt" / "sim").glob("*.py"))
    assert {p.stem for p in files} >= {"api", "costs", "iteration", "scheduler"}
    for path in files:
        for name in _fleetopt_imports(path):
            assert not name.startswith(banned), f"sim/{path.name} imports {name}"
            if name.startswith("fleetopt.evaluation"):
                assert path.stem == "api", f"sim/{path.name} imports {name}"


def test_the_independence_check_can_fail(tmp_path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from fleetopt.sizing.sizer import pool_model\n"
                   "import fleetopt.physics.queueing\n")
    names = _fleetopt_imports(bad)
    assert "fleetopt.sizing.sizer.pool_model" in names and "fleetopt.physics.queueing" in names


def test_fill_time_is_the_m_g_infinity_fill() -> None:
    """fill_time_s: the least t with E[(S - t)+] <= share E[S]; exponential lifetimes of mean 1
    fill to 99 % at ln(100) = 4.6 mean lifetimes, a heavy tail takes longer, one length fills at
    itself."""
    from fleetopt.sim.api import fill_time_s

    rng = np.random.default_rng(0)
    assert fill_time_s(rng.exponential(1.0, 200_000)) == pytest.approx(math.log(100), rel=0.03)
    heavy = rng.pareto(2.5, 200_000) + 1.0  # mean 5/3
    assert fill_time_s(heavy) > 4.6 * heavy.mean()
    assert fill_time_s(np.full(10, 3.0)) == 3.0 and fill_time_s([]) == 0.0
