"""The burst correction: peak-factor estimator, ``auto_peak_factor``, and an end-to-end replay."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.burst import estimate_peak_factor, peak_factor, pool_peak_factors
from fleetopt.problem.config import load_config
from fleetopt.problem.fleet import Fleet
from fleetopt.problem.workload import auto_peak_factor, builtin, from_trace_file, trace_of
from fleetopt.sim import simulate_problem


def _rate(t: np.ndarray) -> float:
    """The stream's own mean rate (no rescaling)."""
    return (len(t) - 1) / (t.max() - t.min())


def test_poisson_arrivals_give_about_one():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(1 / 100.0, 200_000))  # 100 req/s for ~2,000 s
    tot = np.full(len(t), 1000)
    raw = estimate_peak_factor(t, tot, 0, np.inf, rate_rps=_rate(t), window_s=10.0)
    net = estimate_peak_factor(t, tot, 0, np.inf, rate_rps=_rate(t), window_s=10.0,
                               net_of_poisson=True)
    # 1,000 arrivals per window: the raw 99 % count is ~ 1 + 2.33 / sqrt(1000) = 1.07 x the mean
    assert 1.0 <= raw < 1.12
    assert 1.0 <= net < 1.03
    # fewer arrivals per window: the raw ratio grows with the Poisson noise, the net one does not
    raw_short = estimate_peak_factor(t, tot, 0, np.inf, rate_rps=_rate(t), window_s=0.1)
    net_short = estimate_peak_factor(t, tot, 0, np.inf, rate_rps=_rate(t), window_s=0.1,
                                     net_of_poisson=True)
    assert raw_short > 1.5
    assert net_short < 1.15


def _on_off(rate_on: float, on_s: float, off_s: float, cycles: int, rng=None) -> np.ndarray:
    """Arrivals at ``rate_on`` during ``on_s`` seconds, none for ``off_s``; repeated."""
    out = []
    for c in range(cycles):
        start = c * (on_s + off_s)
        if rng is None:
            n = int(rate_on * on_s)
            out.append(start + (np.arange(n) + 0.5) / rate_on)
        else:
            n = rng.poisson(rate_on * on_s)
            out.append(start + np.sort(rng.uniform(0, on_s, n)))
    return np.concatenate(out)


def test_on_off_process_gives_its_peak_ratio():
    # on 10 s, off 30 s: the rate is 4x its mean while on -> peak factor 4
    t = _on_off(200.0, 10.0, 30.0, 50)
    tot = np.full(len(t), 3000)
    k = estimate_peak_factor(t, tot, 0, np.inf, rate_rps=_rate(t), window_s=1.0)
    assert k == pytest.approx(4.0, rel=0.02)
    # Poisson arrivals inside the on periods: the net estimate recovers 4, the raw one is higher
    ts = _on_off(200.0, 10.0, 30.0, 50, np.random.default_rng(1))
    tot = np.full(len(ts), 3000)
    net = estimate_peak_factor(ts, tot, 0, np.inf, rate_rps=_rate(ts), window_s=1.0,
                               net_of_poisson=True)
    raw = estimate_peak_factor(ts, tot, 0, np.inf, rate_rps=_rate(ts), window_s=1.0)
    assert net == pytest.approx(4.0, rel=0.06)
    assert raw > net
    # rescaling the stream to 10x its rate with 10x shorter windows changes nothing
    k10 = estimate_peak_factor(t, np.full(len(t), 3000), 0, np.inf, rate_rps=10 * _rate(t),
                               window_s=0.1)
    assert k10 == pytest.approx(k, rel=0.01)


def test_length_class_selects_the_bursty_requests():
    rng = np.random.default_rng(2)
    smooth = np.cumsum(rng.exponential(1 / 200.0, 400_000))       # short, Poisson
    bursty = _on_off(100.0, 10.0, 40.0, 40, rng)                   # long, on/off (peak 5)
    t = np.concatenate([smooth[smooth < bursty.max()], bursty])
    tot = np.concatenate([np.full((smooth < bursty.max()).sum(), 500), np.full(len(bursty), 8000)])
    kw = dict(rate_rps=_rate(t), window_s=2.0, net_of_poisson=True)
    assert estimate_peak_factor(t, tot, 0, 1000, **kw) < 1.1
    # 40 on periods over a span of 40 x 50 - 40 s: the peak is 5 x 1960 / 2000 = 4.9
    assert estimate_peak_factor(t, tot, 1000, np.inf, **kw) == pytest.approx(4.9, rel=0.06)
    assert estimate_peak_factor(t, tot, 9000, np.inf, **kw) == 1.0  # empty class


def test_pool_factors_give_each_pool_its_own_burstiness():
    """Per pool: the smooth short pool about 1, the bursty long pool its peak ratio, an empty
    pool 1; the one global factor is the burstiest pool's (or more)."""
    rng = np.random.default_rng(2)
    smooth = np.cumsum(rng.exponential(1 / 200.0, 400_000))
    bursty = _on_off(100.0, 10.0, 40.0, 40, rng)
    keep = smooth < bursty.max()
    t = np.concatenate([smooth[keep], bursty])
    tot = np.concatenate([np.full(keep.sum(), 500), np.full(len(bursty), 8000)])
    rate = _rate(t)
    k = pool_peak_factors(t, tot, [0, 1000, 4000, 16384], rate, window_s=2.0)
    assert k[0] < 1.1 and k[1] == 1.0 and k[2] == pytest.approx(4.9, rel=0.06)
    assert max(k) <= peak_factor(t, tot, rate, window_s=2.0) + 1e-12
    # a window per pool; the last pool also takes the requests beyond its upper bound
    k2 = pool_peak_factors(t, tot, [0, 1000, 4000], rate, window_s=[[2.0], [1.0]])
    assert k2[0] == pytest.approx(k[0]) and k2[1] == pytest.approx(4.9, rel=0.06)
    # on Poisson arrivals every pool is about 1 at the default windows (a small pool at the
    # shortest window: a few arrivals per window, where the normal approximation is loose)
    tp = np.cumsum(rng.exponential(1 / 300.0, 300_000))
    lens = rng.choice([500, 3000, 9000], len(tp), p=[0.8, 0.15, 0.05])
    assert all(1.0 <= x < 1.2 for x in pool_peak_factors(tp, lens, [0, 1000, 5000, 16384], 300.0))
    with pytest.raises(FleetoptError) as e:
        pool_peak_factors(t, tot, [0, 1000, 1000], rate)
    assert e.value.field == "edges"
    with pytest.raises(FleetoptError) as e:
        pool_peak_factors(t, tot, [0, 1000, 4000], rate, window_s=[[1.0]])
    assert e.value.field == "window_s"


def test_estimator_rejects_bad_input():
    t = np.arange(10.0)
    with pytest.raises(FleetoptError):
        estimate_peak_factor(t, np.ones(10), 0, 1, rate_rps=1.0, window_s=0.0)
    with pytest.raises(FleetoptError):
        estimate_peak_factor(t, np.ones(9), 0, 1, rate_rps=1.0, window_s=1.0)
    with pytest.raises(FleetoptError):
        estimate_peak_factor(np.zeros(10), np.ones(10), 0, 1, rate_rps=1.0, window_s=1.0)


def test_auto_peak_factor_cdf_and_traces(tmp_path):
    assert auto_peak_factor(builtin("azure", 1000)) == 1.0          # CDF: no timestamps
    assert auto_peak_factor(builtin("lmsys", 250)) == 1.0
    conv = auto_peak_factor(builtin("azure-conv-2023", 1000))
    assert 2.0 < conv < 4.0                                          # the long requests' bursts
    assert auto_peak_factor(builtin("azure-conv-2023", 500)) > 2.0
    assert trace_of(builtin("azure")) is None
    # a user trace: with timestamps (Poisson on/off, peak 4) -> about 4; without -> 1
    t = _on_off(50.0, 10.0, 30.0, 40, np.random.default_rng(3))
    p = tmp_path / "bursty.csv"
    p.write_text("arrival_s,input,output\n" + "".join(f"{x:.4f},3000,200\n" for x in t))
    wl = from_trace_file(p)
    assert auto_peak_factor(wl) == pytest.approx(4.0, rel=0.1)
    q = tmp_path / "notime.csv"
    q.write_text("input,output\n" + "".join("3000,200\n" for _ in range(50)))
    assert auto_peak_factor(from_trace_file(q, 10.0)) == 1.0


def test_config_auto_uses_the_estimate(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[workload]\nname = "azure-conv-2023"\nrate = 500\n[slo]\npeak_factor = "auto"\n'
                   '[fleet]\ngpus = ["H100-SXM"]\ntp = [8]\nmax_ctx = 65536\n')
    prob = load_config(cfg)  # "auto": per pool; the global factor stays 1
    assert prob.per_pool_peak_factors and prob.settings.peak_factor == 1.0
    assert prob.pool_peak_factor(0, 65536) > 1.0
    glob = load_config(cfg, peak_factor_global=True)
    assert not glob.per_pool_peak_factors
    assert glob.settings.peak_factor == pytest.approx(auto_peak_factor(glob.workload))
    assert glob.settings.peak_factor > 2.0
    assert glob.pool_peak_factor(0, 2048) == glob.settings.peak_factor
    cfg.write_text(cfg.read_text().replace('"auto"', '"auto-global"'))
    assert load_config(cfg).settings.peak_factor == glob.settings.peak_factor
    cfg.write_text(cfg.read_text().replace('"auto-global"', '"per-pool"'))
    with pytest.raises(FleetoptError) as e:
        load_config(cfg)
    assert e.value.field == "slo.peak_factor" and "auto-global" in str(e.value)


def _mixed_auto():
    """azure-mixed (the conversation trace at 500 req/s) with per-pool factors, and its
    trace's arrival times and total lengths."""
    prob = load_config("azure-mixed").with_(peak_factor_auto=True)
    tr = trace_of(prob.workload)
    return prob, tr["arrival_s"], np.asarray(tr["input"]) + np.asarray(tr["output"])


def test_each_pool_is_sized_at_its_own_factor():
    """Per-pool auto: a plan's pools carry pool_peak_factors of its edges; the short pool of
    most of the traffic gets less than the global factor; each pool is sized (in a family, as
    the MIP's candidates are, and alone) as with its factor as the one global factor."""
    from fleetopt.evaluation import evaluate, evaluate_plan
    from fleetopt.planners.baselines import pool_routing
    from fleetopt.sizing.sizer import Sizer

    prob, t, tot = _mixed_auto()
    sol = pool_routing(prob, boundary=3072)
    assert sol.feasible
    edges = [0, 3072, prob.max_ctx]
    want = pool_peak_factors(t, tot, edges, prob.workload.rate_rps)
    ev = evaluate_plan(prob, sol.fleet)
    assert [p.peak_factor for p in ev.pools] == pytest.approx(want)
    assert [p["peak_factor"] for p in ev.to_dict()["pools"]] == pytest.approx(want)
    back = Fleet.from_list(ev.to_dict()["pools"])  # a plan JSON reads back
    assert [(q.ctx_lo, q.ctx_hi, q.deployment, q.instances) for q in back.pools] == \
        [(q.ctx_lo, q.ctx_hi, q.deployment, q.instances) for q in sol.fleet.pools]
    assert want[0] < auto_peak_factor(prob.workload) < want[1]  # smooth majority, bursty tail
    # one number for every pool: no per-pool factor in the results
    with pytest.raises(FleetoptError) as e:  # one factor per pool, each in [1, 10]
        evaluate(sol.fleet, prob.workload, prob.settings, model=prob.model,
                 catalog=prob.catalog, physics=prob.physics, peak_factors=[1.2])
    assert e.value.field == "peak_factors"
    fixed = prob.with_(settings=dataclasses.replace(prob.settings, peak_factor=1.5))
    assert all("peak_factor" not in p for p in evaluate_plan(fixed, sol.fleet).to_dict()["pools"])
    deps = [p.deployment for p in sol.fleet.pools]
    fam, one = Sizer(prob), Sizer(prob)
    fam.prefetch([(lo, hi, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)], deps)
    for p, k, dep in zip(sol.fleet.pools, want, deps, strict=True):
        lo, hi = p.ctx_lo, p.ctx_hi
        at_k = prob.with_(settings=dataclasses.replace(prob.settings, peak_factor=k))
        n = Sizer(at_k).size(lo, hi, hi, dep).instances
        assert fam.size(lo, hi, hi, dep).instances == one.size(lo, hi, hi, dep).instances == n
        assert n is not None and n > Sizer(load_config("azure-mixed")).size(lo, hi, hi,
                                                                             dep).instances
    # one family, two lower edges at their own factors (columns of a MIP's candidate family)
    top = prob.max_ctx
    fam2 = Sizer(prob)
    fam2.prefetch([(0, top, top), (3072, top, top)], deps[1:])
    k_all = prob.pool_peak_factor(0, top)
    assert k_all != pytest.approx(want[1])
    for lo, k in ((0, k_all), (3072, want[1])):
        assert (lo, top, top, deps[1]) in fam2._pools  # sized in the family, not alone
        at_k = prob.with_(settings=dataclasses.replace(prob.settings, peak_factor=k))
        assert fam2.size(lo, top, top, deps[1]).instances == \
            Sizer(at_k).size(lo, top, top, deps[1]).instances


def test_per_pool_auto_plans_fewer_watts_than_global_auto():
    from fleetopt.planners.mip.solve import solve

    prob, _, _ = _mixed_auto()
    per_pool = solve(prob)
    glob = solve(prob.with_(peak_factor_global=True))
    none = solve(load_config("azure-mixed"))
    assert per_pool.feasible and glob.feasible and none.feasible
    w = [s.totals["power_w"] for s in (none, per_pool, glob)]
    assert w[0] < w[1] < w[2]
    assert per_pool.result is not None
    assert [p.peak_factor for p in per_pool.result.pools] == pytest.approx(
        prob.fleet_peak_factors(per_pool.fleet))
    assert all(p.peak_factor is None for p in glob.result.pools)


def test_per_pool_plan_meets_slo_under_replay():
    """azure-mixed planned with per-pool factors (pool routing at 3072) meets the 500 ms target
    under replay of the trace within the P99's confidence interval (at k = 1 the long pool
    misses it by several x: the test below)."""
    from fleetopt.planners.baselines import pool_routing

    prob, _, _ = _mixed_auto()
    sol = pool_routing(prob, boundary=3072)
    res = simulate_problem(prob, sol.fleet, requests=4000, seed=0, replay=True)
    slo = prob.settings.ttft_p99_ms
    live = [p for p in res.pools if p.stats.requests]
    assert len(live) == 2
    for p in live:
        assert p.stats.p99_ttft_ms - p.stats.p99_ttft_ci_ms <= slo
    # the predictions beside the simulated figures are at the pools' own factors
    assert sol.result is not None
    assert [p.predicted_p99_ttft_ms for p in res.pools] == pytest.approx(
        [p.p99_ttft_ms for p in sol.result.pools])


def test_corrected_plan_meets_slo_under_replay_uncorrected_misses():
    """azure-mixed (the conversation trace at 500 req/s), pool routing: at k = 1 the long pool
    misses the 500 ms SLO by several x under replay; planned with auto it meets it."""
    from fleetopt.planners.baselines import pool_routing

    prob = load_config("azure-mixed")
    slo = prob.settings.ttft_p99_ms
    out = {}
    for k in (1.0, auto_peak_factor(prob.workload)):
        pk = prob.with_(settings=dataclasses.replace(prob.settings, peak_factor=k))
        sol = pool_routing(pk, boundary=3072)
        assert sol.feasible
        res = simulate_problem(pk, sol.fleet, requests=None, seed=0, replay=True)
        out[k] = max(p.stats.p99_ttft_ms for p in res.pools if p.stats.requests)
    before, after = out.values()
    assert before > 2 * slo
    assert after <= slo
