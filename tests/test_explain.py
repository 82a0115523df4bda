"""Infeasibility explained: what binds, with numbers, and relaxations that really work.

Every relaxation the explanation offers (``Solution.details["relaxations"]``) is applied here,
through this test's own reading of the field names, and the relaxed problem must have a plan.
"""

import json
from dataclasses import replace

import numpy as np
import pytest

from fleetopt.planners.mip.solve import solve
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import Workload, builtin
from fleetopt.sizing.poolmodel import Settings


def _base(**kw) -> Problem:
    return Problem(workload=builtin("azure-conv-2023", 120), model="llama-3.1-8b",
                   gpus=("H100-SXM", "A100-SXM", "L40S"), tp=(1, 2), max_pools=3,
                   boundaries=(1024, 2048, 4096), max_ctx=16384, settings=Settings(500), **kw)


def _apply(p: Problem, changes: list[dict]) -> Problem:
    """The test's own mapping from config fields to the problem (not the library's)."""
    kw: dict = {}
    st: dict = {}
    inv = dict(p.inventory)
    for ch in changes:
        f, v, cur = ch["field"], ch["value"], ch["current"]
        if f == "budget.cost_per_hr":
            assert cur == p.budget_per_hr and v > cur
            kw["budget_per_hr"] = v
        elif f.startswith("inventory."):
            g = f.split(".", 1)[1]
            assert isinstance(v, int) and v > cur == inv[g]
            inv[g] = v
        elif f == "fleet.max_gpus":
            assert isinstance(v, int) and v > cur == p.max_gpus
            kw["max_gpus"] = v
        elif f == "fleet.max_pools":
            assert isinstance(v, int) and v > cur == p.max_pools
            assert v <= len(p.candidate_boundaries()) + 1  # no more pools than ranges
            kw["max_pools"] = v
        elif f == "slo.ttft_p99_ms":
            assert v > cur == p.settings.ttft_p99_ms
            st["ttft_p99_ms"] = v
        elif f == "slo.prefill_tail_share":
            assert cur == p.settings.prefill_tail_share < v <= 1.0
            st["prefill_tail_share"] = v
        elif f == "fleet.kv_dtype":
            assert v != cur == p.kv_dtype
            kw["kv_dtype"] = v
        elif f == "fleet.tp":
            assert set(cur) == set(p.tp) and set(v) > set(p.tp) and max(v) <= 16
            kw["tp"] = tuple(v)
        elif f == "fleet.max_ctx":
            assert p.workload.max_total_tokens <= v < cur == p.max_ctx
            kw["max_ctx"] = v
        else:
            raise AssertionError(f"unexpected field {f}")
    if inv != dict(p.inventory):
        kw["inventory"] = tuple(inv.items())
    if st:
        kw["settings"] = replace(p.settings, **st)
    return p.with_(**kw)


def _explained(p: Problem) -> tuple[str, list[dict]]:
    s = solve(p)
    assert s.status == "infeasible" and s.result is None
    rel = s.details["relaxations"]
    assert rel, s.message
    doc = json.loads(s.to_json())  # the plan JSON carries them too
    assert [r["text"] for r in doc["relaxations"]] == [r["text"] for r in rel]
    for r in rel:
        assert r["changes"] and r["text"] in s.message
        relaxed = solve(_apply(p, r["changes"]), explain=False)
        assert relaxed.status == "optimal", (r, relaxed.message)
    return s.message, rel


@pytest.fixture(scope="module")
def free():
    return solve(_base(), mip_gap=1e-9)


def _fields(rel: list[dict]) -> list[set[str]]:
    return [{c["field"] for c in r["changes"]} for r in rel]


def test_budget_alone(free):
    need = solve(_base(objective="cost"), mip_gap=1e-9).objective
    msg, rel = _explained(_base(budget_per_hr=need * 0.5))
    assert _fields(rel) == [{"budget.cost_per_hr"}]
    v = rel[0]["changes"][0]["value"]
    assert need - 1e-6 <= v <= need + 0.01 + 1e-9  # the least budget, rounded up to a cent
    assert f"budget must be at least ${v:,.2f}/hr" in msg


def test_each_inventory_type_alone():
    msg, rel = _explained(_base(inventory=(("H100-SXM", 0), ("A100-SXM", 0), ("L40S", 0))))
    assert {f for fs in _fields(rel) for f in fs} >= {"inventory.H100-SXM"}
    assert all(len(fs) == 1 for fs in _fields(rel))  # one type is enough, each named
    assert "inventory.H100-SXM must be at least" in msg


def test_budget_or_inventory_with_numbers(free):
    """Both bind: a little more budget with this inventory, or more GPUs with this budget."""
    cost = free.totals["cost_per_hr"]
    inv = tuple((g, 8) for g in ("H100-SXM", "A100-SXM", "L40S"))
    msg, rel = _explained(_base(budget_per_hr=cost * 0.95, inventory=inv))
    fs = _fields(rel)
    assert {"budget.cost_per_hr"} in fs and any(f <= {f"inventory.{g}" for g, _ in inv}
                                                for f in fs)
    assert "budget must be at least $" in msg and "GPUs (is 8)" in msg


def test_budget_and_inventory_together(free):
    """Neither alone helps (no GPUs at all, and half the least budget): both, with numbers."""
    need = solve(_base(objective="cost"), mip_gap=1e-9).objective
    inv = (("H100-SXM", 0), ("A100-SXM", 0), ("L40S", 0))
    msg, rel = _explained(_base(budget_per_hr=need * 0.5, inventory=inv))
    assert all("budget.cost_per_hr" in f and any(x.startswith("inventory.") for x in f)
               for f in _fields(rel))
    assert len(rel) >= 2  # both ends of the trade-off
    assert "together with" in msg and "these limits cannot all hold" in msg


def test_gpu_cap_and_pools(free):
    _, rel = _explained(_base(max_gpus=max(1, free.totals["gpus"] // 3)))
    assert {"fleet.max_gpus"} in _fields(rel)
    p = Problem(workload=builtin("azure-conv-2023", 120), model="llama-3.1-8b",
                gpus=("H100-SXM",), tp=(1,), max_pools=1, boundaries=(1024, 2048, 4096),
                max_ctx=16384, settings=Settings(500), inventory=(("H100-SXM", 1),))
    s = solve(p)
    if s.status == "infeasible":
        for r in s.details["relaxations"]:
            assert solve(_apply(p, r["changes"]), explain=False).status == "optimal"


def test_prefill_tail_share_is_named_when_it_binds():
    """0.7 % of prompts are late by prefill alone against a 0.5 % margin: raising
    slo.prefill_tail_share (to 0.7+) fixes it, as does a larger target."""
    wl = Workload("t", 50.0, np.array([500, 30000]), np.array([200, 200]), np.array([0.993, 0.007]))
    p = Problem(workload=wl, model="llama-3.1-70b", gpus=("H100-SXM",), tp=(8,), max_ctx=32768,
                settings=Settings(500))
    msg, rel = _explained(p)
    assert "slo.prefill_tail_share" in msg and "0.700%" in msg
    share = [c["value"] for r in rel for c in r["changes"] if c["field"] == "slo.prefill_tail_share"]
    assert share and 0.7 <= share[0] <= 0.71
    assert any(c["field"] == "slo.ttft_p99_ms" for r in rel for c in r["changes"])


def test_tight_slo_says_no_share_helps():
    p = Problem(workload=builtin("mooncake-conversation", 5), model="llama-3.1-70b",
                gpus=("H100-SXM",), tp=(8,), max_ctx=131072, settings=Settings(300))
    msg, rel = _explained(p)
    assert "no prefill_tail_share helps" in msg
    assert _fields(rel) == [{"slo.ttft_p99_ms"}] and "at least" in msg


def test_no_kv_slot_suggests_only_changes_that_work():
    p = Problem(workload=builtin("mooncake-conversation", 2), model="llama-3.1-70b",
                gpus=("L40S",), tp=(2,), dtypes=("fp8",), max_ctx=131072,
                settings=Settings(60000))
    msg, rel = _explained(p)
    assert "no allowed deployment has a KV slot" in msg
    assert any("fleet.tp" in f for f in _fields(rel))
    assert all("fleet.max_ctx" not in f for f in _fields(rel))  # the trace needs that context
