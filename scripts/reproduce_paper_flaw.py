"""Reproduce the published fleet table (1/W-law paper, Table 3, H100 rows) in ``paper`` mode.

Docs/test-only script: it is NOT part of the planner. For each of the six published fleets it
prints

* ``paper``: fleetopt's ``paper`` accounting on the published sampling convention
  (:func:`fleetopt.problem.workload.paper_sampled`: 3,000 draws per pool, seed 42), every pool drawn
  from its own routing range -- the published planner's long-pool flaw is NOT copied;
* ``paper+flaw``: the same, but the long pool's first CDF interval drawn from 1 token instead
  of from the routing boundary, as the published planner does (emulated here only, by
  :func:`draw_with_flaw`), plus tok/W with the planner's numerator convention
  (``int(0.2 * mean of knot-interval midpoints)`` of the pool's uncompressed sub-CDF);
* ``paper/exact``: ``paper`` accounting on fleetopt's default CDF discretisation (no
  Monte-Carlo noise);
* ``physical``: fleetopt's physical accounting on its default discretisation.

Run: ``python scripts/reproduce_paper_flaw.py``
"""

from __future__ import annotations

import json

import numpy as np

from fleetopt.physics.profiles import Deployment, resolve
from fleetopt.problem.workload import (
    _package_json,
    builtin,
    paper_draw,
    paper_pool_sample,
    paper_sampled,
    paper_sub_cdf,
)
from fleetopt.sizing.poolmodel import PoolModel, Settings

RATE = 1000.0
PUBLISHED = {  # (workload, topology): instances, kW, tok/W  -- arXiv 2603.17280, Table 3, H100
    ("azure", "homogeneous 64K"): (141, 58.3, 5.58),
    ("azure", "pool routing 4K"): (68, 32.0, 9.16),
    ("azure", "FleetOpt gamma=2"): (40, 23.1, 14.08),
    ("lmsys", "homogeneous 64K"): (69, 28.5, 4.77),
    ("lmsys", "pool routing 1.5K"): (38, 16.4, 7.91),
    ("lmsys", "FleetOpt gamma=2"): (29, 12.9, 10.30),
}
BOUNDARY = {"azure": 4096, "lmsys": 1536}
LONG = 65536


def layouts(wl: str) -> dict[str, list[tuple[int, int, int]]]:
    """(ctx_lo, ctx_hi, window) of every pool of the three published topologies."""
    b = BOUNDARY[wl]
    k = "4K" if wl == "azure" else "1.5K"
    return {
        "homogeneous 64K": [(0, LONG, LONG)],
        f"pool routing {k}": [(0, b, b), (b, LONG, LONG)],
        "FleetOpt gamma=2": [(0, 2 * b, b), (2 * b, LONG, LONG)],
    }


def draw_with_flaw(knots, lo, hi, window):
    """The published planner's draws for a pool, flaw included: the pool's conditional CDF is
    walked from 0, so the first interval of a pool with ``lo > 0`` is drawn from 1 token."""
    lin, lout, share = paper_pool_sample(knots, lo, hi, window)  # for the share
    lin, lout = paper_draw(paper_sub_cdf(knots, lo, hi), 0, window)
    return lin, lout, share


def published_mean_output(knots, lo, hi) -> int:
    """The planner's tok/W numerator per request: ``int(0.2 * sum(midpoint * mass))`` over the
    pool's UNcompressed sub-CDF, its first interval taken from 0 (flaw included)."""
    sub = paper_sub_cdf(knots, lo, hi)
    prev_x, prev_g, mean = 0, 0.0, 0.0
    for x, g in sub:
        mean += (prev_x + (x - prev_x) / 2.0) * (g - prev_g)
        prev_x, prev_g = x, g
    return max(1, int(0.2 * mean))


def size(pools: list[PoolModel]) -> tuple[int, float, float, list[int]]:
    n_tot, p_tot, t_tot, ns = 0, 0.0, 0.0, []
    for pm in pools:
        n = pm.min_instances()
        m = pm.metrics([n])
        n_tot += n
        ns.append(n)
        p_tot += float(m["power_w"][0])
        t_tot += float(m["output_tok_per_s"][0])
    return n_tot, p_tot / 1000.0, t_tot / p_tot, ns


def route(profile, wl_obj, lay, settings) -> list[PoolModel]:
    tot = wl_obj.total_tokens
    out = []
    for lo, hi, window in lay:
        m = (tot > lo) & (tot <= hi)
        w = wl_obj.weights[m]
        out.append(PoolModel(profile, wl_obj.input_tokens[m], wl_obj.output_tokens[m], w,
                             wl_obj.rate_rps * float(w.sum()), window, settings))
    return out


def main() -> dict:
    profile = resolve(Deployment("1w-law-h100", 8), "llama-3.1-70b")
    paper = Settings(500, 0.85, "paper")
    phys = Settings(500, 0.85, "physical")
    rows = {}
    for wl in ("azure", "lmsys"):
        knots = _package_json(wl)["knots"]
        exact = builtin(wl, RATE)
        for topo, lay in layouts(wl).items():
            r = {"published": PUBLISHED[(wl, topo)]}
            r["paper"] = size(route(profile, paper_sampled(wl, RATE, lay), lay, paper))
            # flaw emulated: every pool with lo > 0 drawn from 1 token
            pms, num = [], 0.0
            for lo, hi, window in lay:
                lin, lout, share = (draw_with_flaw(knots, lo, hi, window) if lo > 0
                                    else paper_pool_sample(knots, lo, hi, window))
                pms.append(PoolModel(profile, lin, lout, np.ones(len(lin)), RATE * share,
                                     window, paper))
                num += RATE * share * published_mean_output(knots, lo, hi)
            n, kw, tpw, ns = size(pms)
            r["paper+flaw"] = (n, kw, tpw, ns, num / (kw * 1000.0))
            r["paper/exact"] = size(route(profile, exact, lay, paper))
            r["physical"] = size(route(profile, exact, lay, phys))
            rows[f"{wl} | {topo}"] = r
    return rows


if __name__ == "__main__":
    rows = main()
    for name, r in rows.items():
        p = r["published"]
        print(f"{name}: published {p[0]} inst {p[1]} kW {p[2]} tok/W")
        for k in ("paper", "paper+flaw", "paper/exact", "physical"):
            v = r[k]
            extra = f"  (published numerator: {v[4]:.2f} tok/W)" if k == "paper+flaw" else ""
            print(f"   {k:12s} {v[0]:4d} inst {v[1]:7.2f} kW {v[2]:6.2f} tok/W  pools {v[3]}{extra}")
    print(json.dumps({k: {kk: [float(x) if not isinstance(x, list) else x for x in vv]
                          for kk, vv in v.items()} for k, v in rows.items()}))
