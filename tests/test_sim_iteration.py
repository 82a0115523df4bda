"""The iteration-level simulator (fleetopt.sim.iteration) against closed forms and exact
hand computations: M/M/c vs Erlang C, Little's law, throughput below and above saturation,
determinism, preemption, token budget, prefix cache and the dispatch policies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.problem.workload import builtin
from fleetopt.sim.iteration import (
    InstanceLimits,
    PoolConfig,
    RequestStream,
    poisson_stream,
    simulate_pools,
)
from fleetopt.sim.metrics import batch_means_ci, percentile_ms, replicate, summarize
from fleetopt.sim.prefix_cache import PrefixCache
from fleetopt.sim.testing import ConstantStepCost, RooflineStepCost, h100_tp8_llama70b_limits

T_ITER = 0.01


def erlang_c(c: int, a: float) -> float:
    """P(wait > 0) in M/M/c with offered load a = lambda / mu (written out here, independent
    of fleetopt.physics.queueing)."""
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (s + top)


def one_slot(window: int = 1 << 20) -> InstanceLimits:
    return InstanceLimits(token_budget=1, max_seqs=1, kv_allocation="reserved", slots=1,
                          window_tokens=window)


def stream(arrival_s, input_tokens, output_tokens, pool_of=None, **kw) -> RequestStream:
    n = len(arrival_s)
    return RequestStream(np.asarray(arrival_s, float), np.asarray(input_tokens),
                         np.asarray(output_tokens),
                         np.zeros(n, int) if pool_of is None else np.asarray(pool_of), **kw)


def mmc_run(c: int, mean_tokens: float, rho: float, n: int, seed: int):
    """c one-slot instances, fixed iteration time, one-token prompts, geometric outputs:
    service = T * Geometric(1/m) iterations, an M/G/c queue close to M/M/c."""
    mu = 1.0 / (mean_tokens * T_ITER)
    lam = rho * c * mu
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / lam, n))
    out = rng.geometric(1.0 / mean_tokens, n)
    s = stream(t, np.ones(n, int), out)
    res = simulate_pools(s, [PoolConfig(c, ConstantStepCost(T_ITER), one_slot())])
    return res, lam, mu


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("c,n", [(4, 30_000), (1, 20_000)])
def test_mmc_one_slot_matches_erlang_c(c: int, n: int) -> None:
    m = 12.0
    res, lam, mu = mmc_run(c, m, 0.8, n, seed=3)
    r = res.requests
    w = r.wait_s[r.measured]
    pw = erlang_c(c, lam / mu)
    wq = pw / (c * mu - lam)
    # geometric service (cv^2 = 1 - 1/m) instead of exponential: Allen-Cunneen puts the mean
    # wait (1 + cv^2)/2 = 0.96x Erlang's; allow 6 % for it plus 3 batch-means standard errors
    k = 20
    edges = np.linspace(0, len(w), k + 1).astype(int)
    means = np.array([w[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    se = means.std(ddof=1) / math.sqrt(k)
    assert abs(w.mean() - wq) <= 3 * se + 0.06 * wq, (w.mean(), wq, se)
    assert (w > 0).mean() == pytest.approx(pw, abs=0.03)
    # the conditional wait is exponential: P(W > t) = C * exp(-(c mu - lam) t)
    t = 1.0 / (c * mu - lam)
    assert (w > t).mean() == pytest.approx(pw * math.exp(-1.0), abs=0.03)
    # service: one iteration per output token, no waiting inside the instance
    e2e_minus_wait = (r.done_s - r.admit_s)[r.measured]
    assert np.allclose(e2e_minus_wait, r.output_tokens[r.measured] * T_ITER)
    # FCFS router queue: service starts in arrival order
    assert np.all(np.diff(r.admit_s) >= -1e-12)


def test_mmc_busy_fraction_and_batch_are_the_offered_load() -> None:
    res, lam, mu = mmc_run(4, 12.0, 0.6, 12_000, seed=5)
    s = summarize(res).fleet
    # per-instance utilisation of an M/G/c: rho = lambda / (c mu), measured on the realised
    # service times (the stream's mean output differs from 12 by sampling)
    es = res.requests.output_tokens[res.requests.measured].mean() * T_ITER
    rho = lam * es / 4
    assert s.busy_fraction == pytest.approx(rho, rel=0.04)
    assert s.mean_batch == pytest.approx(rho, rel=0.04)


def realistic(n: int, rate: float, instances: int, seed: int = 0, **kw):
    w = builtin("azure-conv-2023", rate)
    s = poisson_stream(w.input_tokens, w.output_tokens, w.weights, n, rate, seed)
    pool = PoolConfig(instances, RooflineStepCost(), h100_tp8_llama70b_limits(**kw))
    return s, pool


def test_littles_law_and_throughput_below_saturation() -> None:
    s, pool = realistic(6000, 100.0, 8)
    res = simulate_pools(s, [pool], warmup_fraction=0.2)
    f = summarize(res).fleet
    # L = lambda W for the requests in the system and for the running batch
    assert f.mean_in_system == pytest.approx(f.offered_rps * f.mean_time_in_system_s, rel=0.03)
    r = res.requests
    in_batch = float(np.mean((r.done_s - r.admit_s)[r.measured]))
    assert f.mean_batch * f.instances == pytest.approx(f.offered_rps * in_batch, rel=0.03)
    # below saturation everything offered is carried
    assert f.throughput_rps == pytest.approx(f.offered_rps, rel=0.03)
    assert f.delivered_fraction == pytest.approx(1.0, abs=0.03)
    assert f.finished == f.requests
    assert f.preemptions == 0


def test_delivered_share_is_offered_plus_the_backlog_change() -> None:
    """delivered = offered + R(t0) - R(t1) (R: output tokens owed to the requests in the
    system), up to the owed-token estimate's uniform inter-token times (about 1 % of the
    offered tokens here); ``delivered_ci`` is
    the noise of that backlog term, small against a saturated pool's shortfall."""
    from fleetopt.sim.metrics import owed_tokens

    s, pool = realistic(6000, 100.0, 8)
    res = simulate_pools(s, [pool], warmup_fraction=0.2)
    f = summarize(res).fleet
    r = res.requests
    t0, t1 = res.window_s
    R0, R1 = owed_tokens(r, np.ones(len(r.arrival_s), dtype=bool), [t0, t1])
    offered = float(r.output_tokens[r.measured].sum())
    emitted = f.output_tok_per_s * res.span_s
    assert emitted == pytest.approx(offered + R0 - R1, rel=0.02)
    assert 0.02 * offered < R0 < 0.2 * offered  # the backlog is a real term, not nothing
    assert 0 < f.delivered_ci < 0.05
    assert abs(f.delivered_fraction - 1.0) < 3 * f.delivered_ci + 0.01
    # a saturated pool: its shortfall is far beyond the noise
    s, pool = realistic(4000, 200.0, 6)
    g = summarize(simulate_pools(s, [pool])).fleet
    assert 1.0 - g.delivered_fraction > 2 * min(g.delivered_ci, 0.03)


def test_saturated_pool_reported_as_not_delivering() -> None:
    # one-slot instances: capacity c / (m T) req/s exactly; offer 1.5x that
    c, m = 3, 10
    res, lam, mu = mmc_run(c, m, 1.5, 6000, seed=1)
    f = summarize(res).fleet
    es = res.requests.output_tokens.mean() * T_ITER
    assert f.throughput_rps == pytest.approx(c / es, rel=0.05)
    assert f.delivered_fraction == pytest.approx(1 / 1.5, abs=0.06)
    assert f.delivered_fraction < 0.8
    # the queue grows: later arrivals wait longer
    r = res.requests
    w = r.wait_s
    assert w[-500:].mean() > 5 * w[:500].mean()

    # and a realistic pool with too few instances
    s, pool = realistic(4000, 200.0, 6)
    g = summarize(simulate_pools(s, [pool])).fleet
    assert g.delivered_fraction < 0.85
    assert g.p99_ttft_ms > 3_000  # seconds of queueing, growing with the run


def test_single_request_is_exact() -> None:
    """TTFT, each chunk and each decode step recomputed by hand from the step cost."""
    cost = RooflineStepCost()
    lim = InstanceLimits(token_budget=1024, max_seqs=4, kv_capacity_tokens=16384)
    p_tok, o_tok = 3000, 6
    res = simulate_pools(stream([0.5], [p_tok], [o_tok]), [PoolConfig(1, cost, lim)],
                         window_s=(0.0, 10.0), trace_iterations=True)
    t = 0.5
    s = 0
    for c in (1024, 1024, 952):
        t += cost.step_s(0, 0, c, c * s + c * (c + 1) // 2)
        s += c
    assert res.requests.first_token_s[0] == pytest.approx(t, rel=1e-12)
    for j in range(o_tok - 1):
        t += cost.step_s(1, p_tok + j, 0, 0)
    assert res.requests.done_s[0] == pytest.approx(t, rel=1e-12)
    tr = res.trace
    assert tr.prefill_tokens.tolist() == [1024, 1024, 952, 0, 0, 0, 0, 0]
    assert tr.decode_ctx_tokens.tolist() == [0, 0, 0, 3000, 3001, 3002, 3003, 3004]
    # KV blocks: ceil(tokens held after the step / 16)
    assert tr.kv_used_units.tolist() == [64, 128, 188, 188, 188, 188, 188, 188]
    # energy over the window: the iterations' energy plus idle power
    e_busy = float(tr.energy_j.sum())
    idle = 10.0 - float(tr.step_s.sum())
    assert res.instances.energy_j[0] == pytest.approx(e_busy + cost.idle_w * idle, rel=1e-9)
    assert res.snap_energy_j[-1, 0] == pytest.approx(res.instances.energy_j[0], rel=1e-9)


def test_window_integrals_add_up() -> None:
    cost = ConstantStepCost(0.02, busy_w=900.0, idle_w=150.0)
    lim = InstanceLimits(token_budget=64, max_seqs=8, kv_capacity_tokens=4096)
    rng = np.random.default_rng(0)
    n = 800
    s = stream(np.sort(rng.uniform(0, 40, n)), rng.integers(1, 100, n), rng.integers(1, 30, n))
    res = simulate_pools(s, [PoolConfig(3, cost, lim)], window_s=(5.0, 30.0), power_bins=7)
    ins = res.instances
    assert np.allclose(ins.busy_s + ins.idle_s, 25.0)
    assert np.allclose(ins.energy_j, 900.0 * ins.busy_s + 150.0 * ins.idle_s)
    assert res.snap_energy_j.shape == (8, 1)
    assert res.snap_energy_j[-1, 0] == pytest.approx(ins.energy_j.sum())
    ps = res.power_series()
    assert len(ps) == 7 and np.all((ps.fleet_w >= 3 * 150 - 1e-6) & (ps.fleet_w <= 3 * 900 + 1e-6))


def test_batch_means_ci_of_p99_covers_the_true_quantile() -> None:
    rng = np.random.default_rng(0)
    true_ms = math.log(100.0) * 1000.0  # P99 of Exp(1) seconds
    hits = 0
    reps = 200
    for _ in range(reps):
        x = rng.exponential(1.0, 5000)
        half = batch_means_ci(x, 99, 10)
        hits += abs(percentile_ms(x, 99) - true_ms) <= half
    assert 0.90 <= hits / reps <= 0.995
    assert math.isnan(batch_means_ci(np.ones(5), 99, 10))  # too few values per batch
    assert batch_means_ci(np.r_[np.ones(50), np.inf * np.ones(50)], 99, 10) == math.inf


def test_until_stops_the_run_and_unfinished_requests_count_as_infinite() -> None:
    res, lam, mu = mmc_run(2, 10, 1.5, 3000, seed=2)
    t1 = res.window_s[1]
    cut = simulate_pools(stream(res.requests.arrival_s, res.requests.input_tokens,
                                res.requests.output_tokens),
                         list(res.pools), window_s=res.window_s, until_s=t1)
    r = cut.requests
    assert np.isnan(r.done_s).any() and np.all(r.done_s[np.isfinite(r.done_s)] <= t1)
    assert cut.stopped_s <= t1
    f = summarize(cut).fleet
    assert f.finished < f.requests and f.p99_ttft_ms == math.inf
    # the window's integrals do not depend on what happens after it
    assert np.allclose(cut.instances.energy_j, res.instances.energy_j)
    assert np.array_equal(cut.instances.output_tokens, res.instances.output_tokens)


# ----------------------------------------------------------------------------- determinism
def test_deterministic_per_seed() -> None:
    def run(seed: int):
        s, pool = realistic(1500, 60.0, 4, seed=seed)
        return simulate_pools(s, [pool], policy="least_outstanding_tokens")

    a, b, c = run(7), run(7), run(8)
    for name in ("instance", "dispatch_s", "first_token_s", "done_s", "preemptions"):
        assert np.array_equal(getattr(a.requests, name), getattr(b.requests, name), equal_nan=True)
    assert np.array_equal(a.instances.energy_j, b.instances.energy_j)
    assert summarize(a).to_dict()["fleet"] == summarize(b).to_dict()["fleet"]
    assert not np.array_equal(a.requests.done_s, c.requests.done_s)


def test_replications_are_independent_and_reproducible() -> None:
    w = builtin("azure-conv-2023", 40.0)
    pool = PoolConfig(3, RooflineStepCost(), h100_tp8_llama70b_limits())

    def make(rng: np.random.Generator) -> RequestStream:
        return poisson_stream(w.input_tokens, w.output_tokens, w.weights, 800, 40.0, rng)

    a = replicate(make, [pool], replications=3, seed=11)
    b = replicate(make, [pool], replications=3, seed=11)
    ta, tb = a.table(), b.table()
    assert ta["values"].tolist() == tb["values"].tolist()
    vals = ta[(ta.pool == "fleet") & (ta.metric == "p99_ttft_ms")]["values"].iloc[0]
    assert len(set(vals)) == 3  # independent streams
    mean, half = a.metric("p99_ttft_ms")
    assert mean == pytest.approx(np.mean(vals)) and 0 < half < math.inf


# -------------------------------------------------------------------------------- preemption
def test_tiny_kv_preempts_and_every_token_is_delivered() -> None:
    rng = np.random.default_rng(2)
    n = 300
    s = stream(np.sort(rng.uniform(0, 3, n)), rng.integers(1, 300, n), rng.integers(1, 200, n))
    lim = InstanceLimits(token_budget=256, max_seqs=32, kv_capacity_tokens=512, block_tokens=16)
    res = simulate_pools(s, [PoolConfig(2, RooflineStepCost(), lim)], debug=True,
                         trace_iterations=True, window_s=(0.0, 1e6))
    r = res.requests
    assert r.preemptions.sum() > 50
    assert res.instances.preemptions_total.sum() == r.preemptions.sum()
    assert r.finished.all()
    tr = res.trace
    assert int(tr.emitted_tokens.sum()) == int(r.output_tokens.sum())  # each token exactly once
    assert int(res.instances.output_tokens.sum()) == int(r.output_tokens.sum())
    assert (tr.kv_used_units <= tr.kv_capacity_units).all()
    # prefill work = every admission's prefill (prompt + tokens delivered before a preemption)
    # less what preempted prefills never computed
    ins = res.instances
    assert int(tr.prefill_tokens.sum()) == int(ins.lookup_tokens_total.sum()
                                               - ins.abandoned_tokens_total.sum())
    assert int(ins.lookup_tokens_total.sum()) > int(r.input_tokens.sum())
    assert np.all(r.first_token_s <= r.done_s)
    assert summarize(res).fleet.preemptions == int(r.preemptions.sum())


def test_newest_sequence_is_preempted_oldest_runs_uninterrupted() -> None:
    # 4 blocks of 16 tokens; each request ends holding 16 + 40 - 1 = 55 tokens = 4 blocks
    lim = InstanceLimits(token_budget=64, max_seqs=4, kv_capacity_tokens=64, block_tokens=16)
    res = simulate_pools(stream([0.0, 0.0], [16, 16], [40, 40]),
                         [PoolConfig(1, ConstantStepCost(T_ITER), lim)], debug=True,
                         window_s=(0.0, 10.0))
    r = res.requests
    assert r.preemptions.tolist()[0] == 0 and r.preemptions[1] >= 1
    assert r.done_s[0] == pytest.approx(40 * T_ITER)  # never delayed
    assert r.first_token_s[1] == pytest.approx(2 * T_ITER)  # admitted in iteration 1
    assert r.finished.all()
    assert r.done_s[1] > r.done_s[0]


def test_reserved_kv_never_preempts() -> None:
    rng = np.random.default_rng(4)
    n = 200
    s = stream(np.sort(rng.uniform(0, 2, n)), rng.integers(1, 200, n), rng.integers(1, 50, n))
    lim = InstanceLimits(token_budget=128, max_seqs=16, kv_allocation="reserved", slots=4,
                         window_tokens=256)
    res = simulate_pools(s, [PoolConfig(2, ConstantStepCost(), lim)], debug=True,
                         trace_iterations=True)
    assert res.requests.preemptions.sum() == 0
    assert (res.trace.running <= 4).all() and (res.trace.kv_used_units <= 4).all()
    assert res.requests.finished.all()


# ------------------------------------------------------------------------------ token budget
def test_token_budget_never_exceeded_and_chunks_fill_it() -> None:
    s, _ = realistic(1500, 80.0, 3)
    lim = InstanceLimits(token_budget=512, max_seqs=64, kv_capacity_tokens=400_000)
    res = simulate_pools(s, [PoolConfig(3, RooflineStepCost(), lim)], trace_iterations=True)
    tr = res.trace
    assert (tr.batched_tokens <= 512).all()
    assert (tr.running <= 64).all()
    # chunked prefill fills the budget whenever a long prompt is being prefilled
    assert (tr.batched_tokens == 512).mean() > 0.2


# ------------------------------------------------------------------------------ prefix cache
def test_prefix_cache_hits_reduce_prefill_and_hit_rate_is_exact() -> None:
    # one instance, requests far apart (no overlap), 2048-token prompts = 4 hash blocks
    hashes = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6, 7], [9, 10, 11, 12], [1, 2, 3, 4]]
    n = len(hashes)
    t = [10.0 * i for i in range(n)]
    lim = InstanceLimits(token_budget=8192, max_seqs=8, kv_capacity_tokens=65536)
    cost = RooflineStepCost()
    kw = dict(window_s=(0.0, 50.0), trace_iterations=True)
    with_h = simulate_pools(stream(t, [2048] * n, [3] * n, hash_ids=hashes),
                            [PoolConfig(1, cost, lim)], **kw)
    without = simulate_pools(stream(t, [2048] * n, [3] * n), [PoolConfig(1, cost, lim)], **kw)
    expect = [0, 1536, 1024, 0, 2047]  # leading runs x 512, capped at prompt - 1
    assert with_h.requests.cached_tokens.tolist() == expect
    pre = with_h.trace[with_h.trace.prefill_tokens > 0].prefill_tokens.tolist()
    assert pre == [2048 - h for h in expect]
    assert summarize(with_h).fleet.hit_rate == pytest.approx(sum(expect) / (n * 2048))
    assert summarize(without).fleet.hit_rate == 0.0
    ttft_h, ttft_0 = with_h.requests.ttft_s, without.requests.ttft_s
    assert np.all(ttft_h[1:3] < ttft_0[1:3]) and ttft_h[3] == pytest.approx(ttft_0[3])


def test_prefix_cache_lru_evicts_least_recently_used() -> None:
    c = PrefixCache(3)
    c.insert([1, 2, 3])
    assert c.match([1, 2, 3, 4]) == 3
    c.insert([1])  # refresh 1: LRU order 2, 3, 1
    c.insert([4])  # evicts 2
    assert 2 not in c and c.match([1]) == 1 and c.match([3, 4]) == 2 and len(c) == 3
    assert c.match([2, 1]) == 0  # a leading run only

    # in the engine: a KV capacity of 8 hash blocks forgets a prefix after 2 other requests
    hashes = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [1, 2, 3, 4]]
    lim = InstanceLimits(token_budget=4096, max_seqs=4, kv_capacity_tokens=4096)
    res = simulate_pools(stream([0.0, 10.0, 20.0, 30.0], [2048] * 4, [2] * 4, hash_ids=hashes),
                         [PoolConfig(1, ConstantStepCost(), lim)], window_s=(0.0, 40.0))
    assert res.requests.cached_tokens.tolist() == [0, 0, 0, 0]
    res2 = simulate_pools(stream([0.0, 10.0, 20.0], [2048] * 3, [2] * 3,
                                 hash_ids=[hashes[0], hashes[1], hashes[0]]),
                          [PoolConfig(1, ConstantStepCost(), lim)], window_s=(0.0, 40.0))
    assert res2.requests.cached_tokens.tolist() == [0, 0, 2047]


def test_hash_ids_flat_and_nested_forms_agree() -> None:
    nested = [[1, 2], [1, 3, 4], []]
    a = stream([0.0, 1.0, 2.0], [1024, 1536, 10], [2, 2, 2], hash_ids=nested)
    b = stream([0.0, 1.0, 2.0], [1024, 1536, 10], [2, 2, 2], hash_ids=[1, 2, 1, 3, 4],
               hash_offsets=[0, 2, 5, 5])
    assert a.hash_lists() == b.hash_lists() == nested


# ---------------------------------------------------------------------------------- dispatch
def _light(policy: str, n_inst: int = 3, n: int = 12):
    lim = InstanceLimits(token_budget=64, max_seqs=8, kv_capacity_tokens=4096)
    s = stream([1.0 * i for i in range(n)], [10] * n, [5] * n)
    return simulate_pools(s, [PoolConfig(n_inst, ConstantStepCost(), lim)], policy=policy)


def test_round_robin_is_cyclic() -> None:
    assert _light("round_robin").requests.instance.tolist() == [i % 3 for i in range(12)]
    # with every instance idle, the other policies break ties towards the lowest index
    assert set(_light("least_loaded").requests.instance.tolist()) == {0}
    assert set(_light("least_outstanding_tokens").requests.instance.tolist()) == {0}


def test_round_robin_skips_instances_that_cannot_start() -> None:
    # one-slot instances: 0 and 2 busy with long requests when request 3 arrives
    s = stream([0.0, 0.001, 0.002, 0.5, 0.6], [1] * 5, [1000, 10, 1000, 10, 10])
    res = simulate_pools(s, [PoolConfig(3, ConstantStepCost(T_ITER), one_slot())],
                         policy="round_robin")
    # 0, 1, 2 in turn; then only instance 1 is free (twice)
    assert res.requests.instance.tolist() == [0, 1, 2, 1, 1]


def test_least_outstanding_tokens_vs_least_loaded() -> None:
    # a big request on instance 0, then small ones: LOT sends them to instance 1 while its
    # outstanding tokens stay below instance 0's; least_loaded alternates by sequence count
    # (arrivals an iteration apart: an instance whose local queue holds a request cannot take
    # another, so back-to-back arrivals would go elsewhere whatever the policy)
    t = [0.0, 0.001, 0.012, 0.023]
    lin, lout = [4000, 10, 10, 10], [1000, 10, 10, 10]
    lim = InstanceLimits(token_budget=8192, max_seqs=16, kv_capacity_tokens=65536)
    pools = [PoolConfig(2, ConstantStepCost(T_ITER), lim)]
    lot = simulate_pools(stream(t, lin, lout), pools, policy="least_outstanding_tokens")
    ll = simulate_pools(stream(t, lin, lout), pools, policy="least_loaded")
    assert lot.requests.instance.tolist() == [0, 1, 1, 1]
    assert ll.requests.instance.tolist() == [0, 1, 0, 1]


def test_least_outstanding_tokens_balances_tokens() -> None:
    # alternating long and short requests over two instances: round robin sends every long
    # one to instance 0; least outstanding tokens evens out the work
    n = 40
    big = np.arange(n) % 2 == 0
    s = stream(0.5 * np.arange(n), np.where(big, 2000, 10), np.where(big, 500, 10))
    pool = PoolConfig(2, RooflineStepCost(), h100_tp8_llama70b_limits())
    ratio = {}
    for policy in ("least_outstanding_tokens", "round_robin"):
        r = simulate_pools(s, [pool], policy=policy).requests
        tok = np.bincount(r.instance, weights=r.input_tokens + r.output_tokens, minlength=2)
        ratio[policy] = tok.max() / tok.min()
    assert ratio["least_outstanding_tokens"] < 1.05
    assert ratio["round_robin"] > 10


def test_policies_choose_among_instances_that_can_start() -> None:
    """The router's choice on hand-set instance states."""
    from fleetopt.sim.dispatch import Router
    from fleetopt.sim.scheduler import InstanceScheduler, RequestState, Window

    st = RequestState([100] * 4, [10] * 4, None)
    win = Window(0.0, 1.0, 1)
    insts = [InstanceScheduler(i, 0, ConstantStepCost(), paged=True, block_tokens=16,
                               capacity_units=100, token_budget=64, max_seqs=2, state=st,
                               window=win) for i in range(4)]
    insts[0].outstanding, insts[1].outstanding = 50, 10
    insts[2].outstanding, insts[3].outstanding = 5, 30
    insts[2].waiting.append(3)  # its waiting prompt (100 tokens) fills the next iteration's
    insts[2]._wait_add(3, 1)  # 64-token budget: it cannot start another request
    insts[1].insys_n, insts[3].insys_n, insts[0].insys_n = 2, 1, 1
    kw = dict(paged=True, block_tokens=16, token_budget=64, state=st, window=win)
    assert Router(0, insts, "least_outstanding_tokens", **kw).select(4) is insts[1]
    assert Router(0, insts, "least_loaded", **kw).select(4) is insts[0]
    insts[1].used = 97  # no KV room for a 4-block first chunk
    assert Router(0, insts, "least_outstanding_tokens", **kw).select(4) is insts[3]
    rr = Router(0, insts, "round_robin", **kw)
    assert [rr.select(4).index for _ in range(3)] == [0, 3, 0]
    for i in (0, 1, 3):
        insts[i].running.update({10 + i: None, 20 + i: None})  # max_seqs reached
    assert rr.select(1) is None


def test_router_queue_holds_requests_until_an_instance_can_start() -> None:
    s = stream([0.0, 0.0, 0.0], [1, 1, 1], [5, 5, 5])
    res = simulate_pools(s, [PoolConfig(1, ConstantStepCost(T_ITER), one_slot())],
                         window_s=(0.0, 1.0))
    r = res.requests
    assert r.dispatch_s.tolist() == pytest.approx([0.0, 5 * T_ITER, 10 * T_ITER])
    assert r.done_s.tolist() == pytest.approx([5 * T_ITER, 10 * T_ITER, 15 * T_ITER])
    # time-average requests in the system over [0, 1]: (5 + 10 + 15) iterations / 1 s
    f = summarize(res, batches=2).fleet
    assert f.mean_in_system == pytest.approx(30 * T_ITER)


def test_multiple_pools_are_independent() -> None:
    rng = np.random.default_rng(9)
    n = 400
    t = np.sort(rng.uniform(0, 10, n))
    lin, lout = rng.integers(1, 400, n), rng.integers(1, 40, n)
    pool_of = (lin + lout > 200).astype(int)
    lim = InstanceLimits(token_budget=256, max_seqs=16, kv_capacity_tokens=16384)
    pools = [PoolConfig(2, RooflineStepCost(), lim), PoolConfig(3, ConstantStepCost(), lim)]
    both = simulate_pools(stream(t, lin, lout, pool_of), pools)
    assert set(both.requests.instance[pool_of == 0]) <= {0, 1}
    assert set(both.requests.instance[pool_of == 1]) <= {2, 3, 4}
    m = pool_of == 1
    alone = simulate_pools(stream(t[m], lin[m], lout[m]), [pools[1]],
                           window_s=both.window_s)
    assert np.array_equal(both.requests.done_s[m], alone.requests.done_s)
    s = summarize(both)
    assert len(s.pools) == 2 and s.fleet.requests == s.pools[0].requests + s.pools[1].requests
    assert s.fleet.energy_j == pytest.approx(s.pools[0].energy_j + s.pools[1].energy_j)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make,field", [
    (lambda: InstanceLimits(token_budget=8, max_seqs=16, kv_capacity_tokens=1024),
     "limits.token_budget"),
    (lambda: InstanceLimits(kv_allocation="static", kv_capacity_tokens=1024),
     "limits.kv_allocation"),
    (lambda: InstanceLimits(kv_capacity_tokens=0), "limits.kv_capacity_tokens"),
    (lambda: InstanceLimits(kv_allocation="reserved", slots=0, window_tokens=8), "limits.slots"),
    (lambda: stream([1.0, 0.5], [1, 1], [1, 1]), "requests.arrival_s"),
    (lambda: stream([0.0], [0], [1]), "requests.input_tokens"),
    (lambda: simulate_pools(stream([0.0], [1], [1]),
                            [PoolConfig(1, ConstantStepCost(), one_slot())], policy="random"),
     "policy"),
    (lambda: simulate_pools(stream([0.0], [100], [100]), [PoolConfig(
        1, ConstantStepCost(), InstanceLimits(kv_capacity_tokens=128))]),
     "pools[0].limits.kv_capacity_tokens"),
    (lambda: simulate_pools(stream([0.0], [100], [100]),
                            [PoolConfig(0, ConstantStepCost(), one_slot())]),
     "pools[0].instances"),
    (lambda: simulate_pools(stream([0.0], [1], [1], [1]),
                            [PoolConfig(1, ConstantStepCost(), one_slot())]),
     "requests.pool_of"),
    (lambda: simulate_pools(stream([0.0], [1], [2]),
                            [PoolConfig(1, ConstantStepCost(0.0), one_slot())]), "pool.cost"),
    (lambda: PoolConfig(1, ConstantStepCost(idle_w=-1.0), one_slot()), "pool.cost.idle_w"),
])
def test_bad_input_names_the_field(make, field: str) -> None:
    with pytest.raises(FleetoptError) as e:
        make()
    assert e.value.field == field


def test_engine_is_independent_of_the_analytical_model() -> None:
    """The engine's modules import nothing pool-level from fleetopt (only errors and each
    other); checked on their source, since importing ``fleetopt.sim`` runs its ``__init__``."""
    import ast
    import importlib.util

    allowed = {"fleetopt.core.errors", "fleetopt.sim.iteration", "fleetopt.sim.scheduler",
               "fleetopt.sim.dispatch", "fleetopt.sim.prefix_cache"}
    for mod in ("iteration", "scheduler", "dispatch", "prefix_cache", "metrics", "testing"):
        spec = importlib.util.find_spec(f"fleetopt.sim.{mod}")
        assert spec is not None and spec.origin is not None
        tree = ast.parse(open(spec.origin, encoding="utf-8").read())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("fleetopt"):
                    assert name in allowed, f"fleetopt.sim.{mod} imports {name}"


def test_an_instance_takes_as_many_requests_as_its_next_iteration_starts() -> None:
    """Short prompts arriving during a long iteration are all handed to the instance (not one
    per iteration): the router stops only when the next iteration's budget is spoken for."""
    from fleetopt.sim.dispatch import Router
    from fleetopt.sim.scheduler import InstanceScheduler, RequestState, Window

    st = RequestState([100] * 12, [10] * 12, None)
    win = Window(0.0, 1.0, 1)
    inst = InstanceScheduler(0, 0, ConstantStepCost(), paged=True, block_tokens=16,
                             capacity_units=10_000, token_budget=512, max_seqs=64, state=st,
                             window=win)
    router = Router(0, [inst], "least_outstanding_tokens", paged=True, block_tokens=16,
                    token_budget=512, state=st, window=win)
    handed = [router.arrive(r, 0.0) is inst for r in range(12)]
    # 100-token prompts: the 512-token budget starts the first 6 (500 tokens pending < 512)
    assert handed == [True] * 6 + [False] * 6 and len(router.queue) == 6
    assert inst.wait_tok == 600 and len(inst.waiting) == 6


# ------------------------------------------------------------------------------ ProfileStepCost


def _profile_pool(instances: int = 1, **kw):
    from fleetopt.physics.profiles import Deployment, resolve
    from fleetopt.sim.profile_cost import ProfileStepCost, profile_limits

    prof = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b")
    return prof, PoolConfig(instances, ProfileStepCost(prof), profile_limits(prof, **kw))


def test_profile_step_cost_times_and_energies_come_from_the_profile():
    prof, pool = _profile_pool()
    s = poisson_stream([900, 3000, 20000], [50, 200, 20], None, 60, 2.0, 3)
    res = simulate_pools(s, [pool], window_s=(0.0, 1e4), trace_iterations=True, debug=True)
    tr = res.trace
    assert res.requests.finished.all() and len(tr) > 100
    gpus = prof.gpus_per_instance
    for r in tr.sample(40, random_state=0).itertuples():
        mix = (r.decode_seqs, r.decode_ctx_tokens, r.prefill_tokens, r.prefill_pairs,
               r.prefill_ctx_tokens)
        assert r.step_s == pytest.approx(prof.step.step_s(*mix), rel=1e-12)
        watts = float(prof.power_model.step_power_w(prof.step.terms(*mix), prof.step))
        assert r.energy_j == pytest.approx(gpus * watts * r.step_s, rel=1e-9)
    ii = res.instances
    assert pool.cost.idle_w == gpus * prof.idle_w == 600.0
    assert ii.energy_j[0] == pytest.approx(tr.energy_j.sum() + 600.0 * ii.idle_s[0], rel=1e-9)
    assert ii.busy_s[0] + ii.idle_s[0] == pytest.approx(1e4)
    assert pool.limits.token_budget == 8192 and pool.limits.kv_capacity_tokens == \
        prof.kv_capacity_tokens


def test_prefill_chunks_pass_their_kv_reads():
    """A 20,000-token prompt runs in chunks of the 8,192-token budget starting at 0, 8192 and
    16,384: each step's prefill_ctx_tokens is its chunk's start (the KV the chunk reads)."""
    _, pool = _profile_pool()
    s = stream([0.0], [20000], [3])
    res = simulate_pools(s, [pool], trace_iterations=True, debug=True)
    pre = res.trace[res.trace.prefill_tokens > 0]
    assert pre.prefill_tokens.tolist() == [8192, 8192, 3616]
    assert pre.prefill_ctx_tokens.tolist() == [0, 8192, 16384]
    # a cached prefix is read too: the second copy of a prompt starts after its cached blocks
    _, pool = _profile_pool()
    s = stream([0.0, 10.0], [1536, 1536], [2, 2], hash_ids=[[1, 2, 3], [1, 2, 3]])
    res = simulate_pools(s, [pool], trace_iterations=True, debug=True)
    pre = res.trace[res.trace.prefill_tokens > 0]
    assert pre.prefill_ctx_tokens.tolist() == [0, 1535]  # all but the last token cached
    assert pre.prefill_tokens.tolist() == [1536, 1]


def test_a_cost_without_prefill_kv_still_runs():
    """The protocol before prefill_ctx_tokens existed: four-argument costs are wrapped."""
    from fleetopt.sim.scheduler import adapt_cost

    class Old:
        idle_w = 10.0

        def step_s(self, nd, ctx, p, a):
            return 0.01

        def step_energy_j(self, nd, ctx, p, a, dt):
            return 5.0 * dt

    step, energy, split = adapt_cost(Old())
    assert step(1, 2, 3, 4, 5) == 0.01 and energy(1, 2, 3, 4, 0.01, 5) == 0.05 and split is None
    s = stream([0.0, 0.5], [100, 9000], [5, 5])
    res = simulate_pools(s, [PoolConfig(1, Old(), h100_tp8_llama70b_limits())])
    assert res.requests.finished.all()


def test_profile_step_cost_needs_a_computed_profile():
    from fleetopt.physics.profiles import Deployment, resolve
    from fleetopt.sim.profile_cost import ProfileStepCost

    with pytest.raises(FleetoptError, match="computed profile"):
        ProfileStepCost(resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b"))
