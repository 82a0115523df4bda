"""Every plan does its own arithmetic (issue 11): checked WITHOUT the pool model.

For every plan the solver returns, on every shipped physical-accounting example and every
built-in workload, each pool's demand per instance, from its requests' tokens per second and
per-token costs of the catalog's model and GPU alone, fits the instance:

* tensor FLOPs (2 x active parameters / TP per token for the linear layers, plus causal
  attention of the prompt and the decode context) <= utilisation cap x the GPU's dense peak at
  the weight precision;
* KV held (Little's law: each decode step of a request holds its context for at least the
  time one GPU needs to stream its weight shard at peak bandwidth) <= the instance's KV budget;
* HBM bytes per second (the KV each decode token reads, plus the weight shard once per step
  with at most max_num_seqs decoders in a step) <= peak bandwidth.

``paper`` accounting is exempt: it reproduces a published planner that does not do this.
"""

import numpy as np
import pytest

from fleetopt.physics.compression import compress
from fleetopt.physics.kv import dtype_bytes
from fleetopt.planners.mip.solve import solve
from fleetopt.problem.config import example_names, load_config
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import builtin, builtin_names
from fleetopt.sizing.poolmodel import Settings

MAX_SEQS = 1024  # vLLM's largest default max_num_seqs: fewer decoders per step need more steps


def _demands(p: Problem, pool) -> dict[str, float]:
    wl = p.workload
    tot = wl.total_tokens
    m = (tot > pool.ctx_lo) & (tot <= pool.ctx_hi)
    lin, lout, _ = compress(wl.input_tokens[m], wl.output_tokens[m], pool.window)
    rate = wl.rate_rps * wl.weights[m] / pool.instances  # req/s per instance, per point
    prof = p.profile(pool.deployment)
    model, g = prof.model, prof.gpu_spec
    tp = prof.tp
    lin, lout = lin.astype(float), lout.astype(float)
    nd = np.maximum(lout - 1.0, 0.0)
    lin_f = 2.0 * model.params_active_b * 1e9 / tp  # FLOPs per token, linear layers, per GPU
    att = 4.0 * model.layers * model.attention_heads * model.head_dim / tp  # per (query, key)
    flops = rate @ (lin * lin_f + att * lin * lin / 2.0  # prompts
                    + nd * lin_f + att * (nd * lin + nd * (nd + 1) / 2.0))  # decode tokens
    w_bytes = model.params_total_b * 1e9 * dtype_bytes(prof.dtype) / tp
    t_min = w_bytes / (g.hbm_bw_tb_s * 1e12)  # a step streams the weight shard at least once
    kv_tokens = rate @ ((nd * lin + nd * (nd + 1) / 2.0) * t_min)
    kv_cap = prof.kv_budget_bytes / prof.kv_bytes_per_token
    dec_tok = rate @ nd
    bw = rate @ ((nd * lin + nd * (nd + 1) / 2.0) * prof.kv_bytes_per_token) \
        + dec_tok / MAX_SEQS * w_bytes
    return {"flops": flops / (p.settings.utilization_cap * g.peak_flops(prof.dtype)),
            "kv": kv_tokens / kv_cap, "bw": bw / (g.hbm_bw_tb_s * 1e12)}


def _check(p: Problem) -> int:
    s = solve(p)
    assert s.result is not None, s.message
    worst = 0.0
    for pool in s.fleet.pools:
        if pool.instances < 1:
            continue
        prof = p.profile(pool.deployment)
        if prof.kind != "computed":
            continue
        d = _demands(p, pool)
        assert d["flops"] <= 1.0 + 1e-9, (pool, d)
        assert d["kv"] <= 1.0 + 1e-9, (pool, d)
        assert d["bw"] <= 1.0 + 1e-9, (pool, d)
        worst = max(worst, *d.values())
    return worst


@pytest.mark.parametrize("name", [n for n in example_names()
                                  if load_config(n).settings.accounting == "physical"])
def test_shipped_examples_fit_their_instances(name):
    assert _check(load_config(name)) > 0.0


@pytest.mark.parametrize("workload", builtin_names())
def test_builtin_workloads_fit_their_instances(workload):
    p = Problem(workload=builtin(workload, 300.0), model="llama-3.1-70b",
                gpus=("H100-SXM", "B200"), tp=(4, 8), dtypes=("fp16", "fp8"),
                settings=Settings(2000.0), over_max_ctx="drop",
                max_ctx=32768 if workload not in ("azure-code-2023",) else 8192)
    assert _check(p) > 0.0


def test_the_check_can_fail():
    """The old planner's kind of plan (a handful of instances for 1,000 req/s) breaks it."""
    from dataclasses import replace

    p = load_config("azure-h100")
    s = solve(p)
    pool = max(s.fleet.pools, key=lambda q: q.instances)
    thin = replace(pool, instances=max(1, pool.instances // 3))
    d = _demands(p, thin)
    assert max(d.values()) > 1.0
