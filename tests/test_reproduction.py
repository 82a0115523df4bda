"""The paper's Table 1 (H100) and its fleet table, in published accounting."""

import importlib.util
from pathlib import Path

import pytest

from fleetopt.evaluation import saturated_point
from fleetopt.physics.profiles import Deployment, resolve
from fleetopt.problem.workload import paper_sampled
from fleetopt.sizing.poolmodel import PoolModel, Settings

TABLE1_H100 = {  # context window: (slots, tok/W), 1/W-law paper Table 1
    2048: (512, 35.0), 4096: (256, 17.6), 8192: (128, 8.97), 16384: (64, 4.69),
    32768: (32, 2.58), 65536: (16, 1.50), 131072: (8, 0.88),
}


@pytest.mark.parametrize("window", sorted(TABLE1_H100))
def test_table1_h100(window):
    prof = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b")
    pt = saturated_point(prof, window, "paper")
    slots, tpw = TABLE1_H100[window]
    assert pt["slots"] == pytest.approx(slots, rel=0.02)
    assert pt["tok_per_w"] == pytest.approx(tpw, rel=0.02)


def test_tok_per_w_halves_per_doubling():
    prof = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b")
    a = saturated_point(prof, 4096, "paper")["tok_per_w"]
    b = saturated_point(prof, 8192, "paper")["tok_per_w"]
    assert 0.45 < b / a < 0.55


PUBLISHED = {  # (workload, topology): (instances, kW) in published accounting
    ("azure", "homogeneous"): (141, 58.3), ("azure", "pool-routing"): (68, 32.0),
    ("azure", "fleetopt"): (40, 23.1), ("lmsys", "homogeneous"): (69, 28.5),
    ("lmsys", "pool-routing"): (38, 16.4), ("lmsys", "fleetopt"): (29, 12.9),
}
B = {"azure": 4096, "lmsys": 1536}
# rows where the published planner's long-pool sampling flaw changes the figure (docs/reproduction.md)
FLAW_ROWS = {("azure", "pool-routing"), ("lmsys", "pool-routing"), ("lmsys", "fleetopt")}


def _layout(wl, topo):
    b = B[wl]
    return {"homogeneous": [(0, 65536, 65536)], "pool-routing": [(0, b, b), (b, 65536, 65536)],
            "fleetopt": [(0, 2 * b, b), (2 * b, 65536, 65536)]}[topo]


def _size(wl_obj, lay):
    prof = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b")
    st = Settings(500, 0.85, "paper")
    tot = wl_obj.total_tokens
    n_tot, kw = 0, 0.0
    for lo, hi, win in lay:
        m = (tot > lo) & (tot <= hi)
        w = wl_obj.weights[m]
        pm = PoolModel(prof, wl_obj.input_tokens[m], wl_obj.output_tokens[m], w,
                       wl_obj.rate_rps * float(w.sum()), win, st)
        n = pm.min_instances()
        n_tot += n
        kw += float(pm.metrics([n])["power_w"][0]) / 1000
    return n_tot, kw


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_fleet_table(key):
    wl, topo = key
    lay = _layout(wl, topo)
    n, kw = _size(paper_sampled(wl, 1000, lay), lay)
    pub_n, pub_kw = PUBLISHED[key]
    if key in FLAW_ROWS:
        # we do not copy the flaw: our long pool is sized from its true length mix and needs
        # MORE instances than published; the emulated flaw reproduces the published row
        assert n > pub_n
        return
    assert abs(n - pub_n) <= 2
    assert kw == pytest.approx(pub_kw, rel=0.05)


def test_flaw_emulation_reproduces_the_rest():
    path = Path(__file__).resolve().parents[1] / "scripts" / "reproduce_paper_flaw.py"
    spec = importlib.util.spec_from_file_location("repro", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main()
    for name, r in rows.items():
        pub_n, pub_kw, _ = r["published"]
        n, kw = r["paper+flaw"][0], r["paper+flaw"][1]
        assert abs(n - pub_n) <= 2, name
        assert kw == pytest.approx(pub_kw, rel=0.05), name


def test_saturated_point_of_a_computed_profile_runs_the_iteration_model():
    """Physical accounting on a computed profile: the step and watts of the iteration model
    (instance_summary), not the old roofline; the tok/W fall with the window (fewer slots)."""
    from fleetopt.physics.catalog import default_catalog
    from fleetopt.physics.instance import instance_summary
    from fleetopt.physics.profiles import Deployment, resolve

    prof = resolve(Deployment("H100-SXM", 8, "fp16"), "llama-3.1-70b", default_catalog())
    pts = [saturated_point(prof, w) for w in (4096, 16384, 65536)]
    for w, pt in zip((4096, 16384, 65536), pts, strict=True):
        ref = instance_summary(prof, [min(prof.slots(w), prof.max_seqs)], w // 2, w)["points"][0]
        assert pt["tok_per_s"] == ref["output_tok_per_s"]
        assert pt["power_w"] == 8 * ref["power_w_per_gpu"]
    assert pts[0]["tok_per_w"] > pts[1]["tok_per_w"] > pts[2]["tok_per_w"]
