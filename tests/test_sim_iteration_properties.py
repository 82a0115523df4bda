"""Property tests of the iteration-level engine on random small configurations: limits are never
exceeded, every token is delivered exactly once, the aggregate state matches a recomputation
from the sequences at every iteration (``debug=True``), and runs are deterministic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetopt.sim.dispatch import POLICIES
from fleetopt.sim.iteration import InstanceLimits, PoolConfig, RequestStream, simulate_pools
from fleetopt.sim.testing import ConstantStepCost, RooflineStepCost


@dataclass(frozen=True)
class LinearStepCost:
    """A step cost growing with every term of the mix (so the order of events matters)."""

    idle_w: float = 50.0

    def step_s(self, decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs) -> float:
        return 1e-3 + 1e-4 * decode_seqs + 1e-7 * decode_ctx_tokens + 5e-5 * prefill_tokens \
            + 1e-9 * prefill_pairs

    def step_energy_j(self, decode_seqs, decode_ctx_tokens, prefill_tokens, prefill_pairs,
                      step_s) -> float:
        return 400.0 * step_s


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 40))
    lin = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    lout = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    gaps = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    paged = draw(st.booleans())
    max_seqs = draw(st.integers(1, 8))
    budget = draw(st.integers(max_seqs, 96))
    worst = max(a + b - 1 for a, b in zip(lin, lout, strict=True))
    if paged:
        block = draw(st.sampled_from([1, 4, 16]))
        blocks = -(-worst // block) + draw(st.integers(0, 20))
        lim = InstanceLimits(token_budget=budget, max_seqs=max_seqs,
                             kv_capacity_tokens=blocks * block, block_tokens=block)
    else:
        lim = InstanceLimits(token_budget=budget, max_seqs=max_seqs, kv_allocation="reserved",
                             slots=draw(st.integers(1, 6)), window_tokens=worst)
    hashes = None
    if draw(st.booleans()):
        hashes = [[int(x) for x in draw(st.lists(st.integers(0, 3), max_size=4))]
                  for _ in range(n)]
        # a hash identifies its whole prefix: make ids prefix-unique
        hashes = [[hash(tuple(h[: j + 1])) % 10_000 for j in range(len(h))] for h in hashes]
    cost = draw(st.sampled_from([ConstantStepCost(0.01), RooflineStepCost(), LinearStepCost()]))
    instances = draw(st.integers(1, 3))
    policy = draw(st.sampled_from(POLICIES))
    s = RequestStream(np.cumsum(gaps), np.asarray(lin), np.asarray(lout), np.zeros(n, int),
                      hash_ids=hashes, hash_block_tokens=draw(st.sampled_from([8, 32])))
    return s, PoolConfig(instances, cost, lim), policy


@settings(max_examples=150)
@given(scenario())
def test_engine_invariants(sc) -> None:
    s, pool, policy = sc
    lim = pool.limits
    res = simulate_pools(s, [pool], policy=policy, debug=True, trace_iterations=True,
                         window_s=(0.0, float(s.arrival_s[-1]) + 1.0))
    r = res.requests
    tr = res.trace
    assert r.finished.all()
    assert np.all(r.dispatch_s >= r.arrival_s) and np.all(r.admit_s >= r.dispatch_s)
    assert np.all(r.first_token_s > r.admit_s) and np.all(r.done_s >= r.first_token_s)
    one = r.output_tokens == 1
    assert np.all(r.done_s[one] == r.first_token_s[one])
    assert np.all(r.cached_tokens < r.input_tokens)
    # limits
    assert (tr.batched_tokens <= lim.token_budget).all()
    assert (tr.batched_tokens >= 1).all()
    assert (tr.running <= lim.max_seqs).all()
    assert (tr.kv_used_units <= tr.kv_capacity_units).all()
    assert (tr.emitted_tokens <= tr.running).all()
    # every output token exactly once; prefill work adds up
    assert int(tr.emitted_tokens.sum()) == int(r.output_tokens.sum())
    ins = res.instances
    assert int(tr.prefill_tokens.sum()) == int(
        ins.lookup_tokens_total.sum() - ins.hit_tokens_total.sum()
        - ins.abandoned_tokens_total.sum())
    if not lim.paged:
        assert r.preemptions.sum() == 0
    if s.hash_ids is None:
        assert ins.hit_tokens_total.sum() == 0
    # iterations of one instance never overlap
    for _, g in tr.groupby("instance"):
        assert np.all(g.start_s.to_numpy()[1:] >= (g.start_s + g.step_s).to_numpy()[:-1] - 1e-12)
    # deterministic
    again = simulate_pools(s, [pool], policy=policy, window_s=res.window_s)
    assert np.array_equal(again.requests.done_s, r.done_s)
    assert np.array_equal(again.requests.instance, r.instance)
