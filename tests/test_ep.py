"""Expert parallelism in the planner: ``[fleet] ep``, pools' ``ep``, candidates, MIP, results.

A mixture of experts may run vLLM's ``--enable-expert-parallel`` (``ep = tp``). ``[fleet] ep``
says which the planner may choose: ``off`` (the default: ep = 1, vLLM's default), ``on`` (ep = tp
at every TP > 1) or ``both`` (the solver chooses per pool). ``docs/config.md``.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import fleetopt as fo
from fleetopt.core.errors import FleetoptError
from fleetopt.evaluation import evaluate_plan
from fleetopt.physics.profiles import Deployment
from fleetopt.planners.baselines import homogeneous
from fleetopt.problem.config import problem_from_dict
from fleetopt.problem.fleet import Fleet, PoolSpec
from fleetopt.report import tables
from fleetopt.report.cli import main
from fleetopt.sizing.candidates import build_candidates
from fleetopt.studies.sweep.spec import normalise, scenario_problem

MOE = "qwen3-30b-a3b"  # 128 routed experts: EP at every TP


def cfg(ep: str | None = None, model: str = MOE, **fleet: object) -> dict:
    fl: dict = {"gpus": ["H100-SXM"], "tp": [1, 2, 4], "max_ctx": 8192, "max_pools": 2, **fleet}
    if ep is not None:
        fl["ep"] = ep
    return {"workload": {"name": "azure", "rate": 100, "over_max_ctx": "drop"},
            "model": {"name": model},
            "fleet": fl}


def problem(ep: str | None = None, **kw: object) -> fo.Problem:
    return problem_from_dict(cfg(ep, **kw))


@pytest.fixture(scope="module")
def solved() -> dict[str, fo.Solution]:
    return {ep: fo.solve(problem(ep)) for ep in ("off", "on", "both")}


# --- the setting -----------------------------------------------------------------------------
def test_default_is_off_and_moe_deployments_have_no_ep() -> None:
    p = problem()
    assert p.ep == "off"
    assert {d.ep for d in p.deployments()} == {1}
    assert p.settings_used()["ep"] == "off"


def test_deployments_per_mode() -> None:
    off = problem("off").deployments()
    on = problem("on").deployments()
    both = problem("both").deployments()
    assert [(d.tp, d.ep) for d in on] == [(1, 1), (2, 2), (4, 4)]  # TP 1 has nothing to shard
    assert set(both) == set(off) | set(on) and len(both) == 5
    assert all(d.ep in (1, d.tp) for d in both)
    # the config's choices are case-insensitive, like every choice in a config
    assert problem("Both").ep == "both"


@pytest.mark.parametrize("value", ["yes", "auto", 8, True, ""])
def test_bad_value_names_the_field(value: object) -> None:
    with pytest.raises(FleetoptError) as e:
        problem_from_dict(cfg(value))  # type: ignore[arg-type]
    assert e.value.field == "fleet.ep"
    assert "'off', 'on', 'both'" in str(e.value)


def test_python_and_with_settings_check_alike() -> None:
    wl = fo.builtin("azure", 100)
    with pytest.raises(FleetoptError, match="fleet.ep"):
        fo.Problem(wl, model=MOE, ep="sometimes")
    p = problem()
    assert p.with_settings({"fleet.ep": "both"}).ep == "both"
    with pytest.raises(FleetoptError, match="fleet.ep"):
        p.with_settings({"fleet.ep": "all"})


def test_on_refused_for_a_dense_model_both_only_warned() -> None:
    with pytest.raises(FleetoptError) as e:
        problem("on", model="llama-3.1-8b")
    assert e.value.field == "fleet.ep" and "dense" in str(e.value)
    p = problem("both", model="llama-3.1-8b")
    assert {d.ep for d in p.deployments()} == {1}
    assert any(w.startswith("fleet.ep:") and "dense" in w for w in p.warnings)
    assert p.deployments() == problem("off", model="llama-3.1-8b").deployments()


def test_on_without_tp_above_one_is_warned() -> None:
    p = problem("on", tp=[1])
    assert any(w.startswith("fleet.ep:") and "no effect" in w for w in p.warnings)
    assert not [w for w in problem("on").warnings if w.startswith("fleet.ep")]


def test_experts_that_do_not_divide_keep_ep_one() -> None:
    p = problem("both")
    m = p.catalog.model(MOE)
    assert p.ep_degrees(m, 4) == (1, 4)
    assert p.ep_degrees(replace(m, experts=6), 4) == (1,)  # 6 experts over 4 GPUs: no EP
    assert p.ep_degrees(m, 1) == (1,)
    assert problem("off").ep_degrees(m, 4) == (1,)
    assert problem("on").ep_degrees(m, 4) == (4,)


def test_cli_bad_ep_exits_2_with_one_line(capsys, tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[workload]\nname = "azure"\nrate = 100\n[model]\nname = "qwen3-30b-a3b"\n'
                    '[fleet]\ngpus = ["H100-SXM"]\ntp = [2]\nep = "sometimes"\n')
    code = main(["solve", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and "fleet.ep" in lines[0] and "Traceback" not in err


# --- candidates, MIP, baselines ----------------------------------------------------------------
def test_candidates_multiply_for_moe_only() -> None:
    n = {ep: len(build_candidates(problem(ep), prune=False).candidates)
         for ep in ("off", "both")}
    assert n["both"] > n["off"]
    dense = {ep: len(problem(ep, model="llama-3.1-8b").deployments()) for ep in ("off", "both")}
    assert dense["off"] == dense["both"]


def test_both_is_never_worse_than_off_or_on(solved: dict[str, fo.Solution]) -> None:
    assert all(s.usable for s in solved.values())
    w = {ep: s.result.power_w for ep, s in solved.items()}  # type: ignore[union-attr]
    tol = 1e-4  # HiGHS's default relative MIP gap
    assert w["both"] <= w["off"] * (1 + tol)
    assert w["both"] <= w["on"] * (1 + tol)
    # "on" really plans EP: every pool at TP > 1 shards its experts
    pools = solved["on"].result.pools  # type: ignore[union-attr]
    assert all(p.ep == (p.tp if p.tp > 1 else 1) for p in pools)
    assert all(p.ep == 1 for p in solved["off"].result.pools)  # type: ignore[union-attr]


def test_baselines_consider_ep() -> None:
    p = problem("on", tp=[2, 4])
    sol = homogeneous(p)
    assert sol.usable
    assert all(d.endswith("fp16") and " EP" in d for d in sol.details["deployments"])
    assert all(r.ep == r.tp for r in sol.result.pools)  # type: ignore[union-attr]


def test_the_chosen_ep_is_what_evaluate_prices(solved: dict[str, fo.Solution]) -> None:
    sol = solved["on"]
    p = problem("on")
    fleet = sol.fleet
    assert fleet is not None and any(s.ep > 1 for s in fleet.pools)
    again = fo.evaluate(fleet, p.workload, p.settings, model=p.model)
    assert again.power_w == pytest.approx(sol.result.power_w, rel=1e-12)  # type: ignore[union-attr]
    for a, b in zip(again.pools, sol.result.pools, strict=True):  # type: ignore[union-attr]
        assert (a.ep, a.power_w) == (b.ep, pytest.approx(b.power_w, rel=1e-12))
    # ... and ep changes the physics: the same fleet without EP is priced differently
    no_ep = Fleet(tuple(replace(s, ep=1) for s in fleet.pools))
    assert evaluate_plan(p, no_ep).power_w != pytest.approx(again.power_w, rel=1e-9)


def test_sizer_cache_keys_include_ep() -> None:
    from fleetopt.sizing.sizer import Sizer

    p = problem("both")
    sz = Sizer(p)
    a = sz.size(0, 8192, 8192, Deployment("H100-SXM", 4, "fp16", "fp16", 1))
    b = sz.size(0, 8192, 8192, Deployment("H100-SXM", 4, "fp16", "fp16", 4))
    assert (a.deployment.ep, b.deployment.ep) == (1, 4)
    assert (a.spec().ep, b.spec().ep) == (1, 4)
    assert sz.profile(a.deployment) is not sz.profile(b.deployment)
    assert sz.profile(b.deployment).ep == 4
    spec = PoolSpec.on(b.deployment, 0, 8192, 3, 8192)
    assert (spec.ep, spec.window_tokens, spec.deployment) == (4, None, b.deployment)


# --- JSON, FLEET.json, tables -----------------------------------------------------------------
def test_plan_json_carries_ep_after_tp_for_moe_only(solved: dict[str, fo.Solution]) -> None:
    d = solved["on"].to_dict()
    for pool in d["pools"]:
        keys = list(pool)
        assert keys[keys.index("tp") + 1] == "ep"
        assert pool["ep"] in (1, pool["tp"])
    dense = fo.solve(problem("off", model="llama-3.1-8b"))
    assert all("ep" not in pool for pool in dense.to_dict()["pools"])
    assert all(r.ep is None for r in dense.result.pools)  # type: ignore[union-attr]


def test_plan_round_trip_keeps_ep(solved: dict[str, fo.Solution], tmp_path) -> None:
    sol = solved["on"]
    path = tmp_path / "plan.json"
    path.write_text(sol.to_json())
    back = Fleet.from_json_file(path)

    def key(f: Fleet) -> list[tuple]:
        return [(s.ctx_lo, s.ctx_hi, s.window, s.instances, s.deployment) for s in f.pools]

    assert sol.fleet is not None and key(back) == key(sol.fleet)
    assert [s.ep for s in back.pools] == [r.ep for r in sol.result.pools]  # type: ignore[union-attr]
    assert any(s.ep > 1 for s in back.pools)
    # a FLEET.json written from the fleet (ep only where it is not 1)
    rows = back.to_list()
    assert all(("ep" in r) == (s.ep != 1) for r, s in zip(rows, back.pools, strict=True))
    assert Fleet.from_list(json.loads(json.dumps(rows))) == back


def test_cli_evaluates_a_written_plan_with_its_ep(capsys, tmp_path) -> None:
    conf = tmp_path / "moe.toml"
    conf.write_text('[workload]\nname = "azure"\nrate = 100\nover_max_ctx = "drop"\n[model]\nname = "qwen3-30b-a3b"\n'
                    '[fleet]\ngpus = ["H100-SXM"]\ntp = [2]\nep = "on"\nmax_ctx = 8192\n'
                    'max_pools = 1\n')
    plan = tmp_path / "plan.json"
    assert main(["solve", str(conf), "--format", "json", "--out", str(plan)]) == 0
    solved = json.loads(capsys.readouterr().out)
    assert [p["ep"] for p in solved["pools"]] == [2]
    assert main(["evaluate", str(conf), "--fleet", str(plan), "--format", "json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert [p["ep"] for p in ev["pools"]] == [2]
    assert ev["totals"]["power_w"] == pytest.approx(solved["totals"]["power_w"], rel=1e-12)
    assert main(["evaluate", str(conf), "--fleet", str(plan)]) == 0
    head = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("ctx_tokens"))
    assert head.split()[2:4] == ["tp", "ep"]


@pytest.mark.parametrize("pool, model, field, words", [
    ({"ep": 2, "tp": 4}, MOE, "fleet.pools[0].ep", "vLLM"),  # ep is 1 or tp
    ({"ep": 3, "tp": 4}, MOE, "fleet.pools[0].ep", "divide"),
    ({"ep": 8, "tp": 4}, MOE, "fleet.pools[0].ep", "at most"),
    ({"ep": 4, "tp": 4}, "llama-3.1-8b", "fleet.pools[0].ep", "dense"),
    ({"ep": 0, "tp": 4}, MOE, "fleet.pools[0].ep", "whole number >= 1"),
    ({"ep": "four", "tp": 4}, MOE, "fleet.pools[0].ep", "whole number"),
    ({"ep": 8, "tp": 8, "gpu": "1w-law-h100"}, "llama-3.1-70b", "fleet.pools[0].ep",
     "calibrated"),
])
def test_bad_pool_ep(pool: dict, model: str, field: str, words: str) -> None:
    row = {"ctx_lo": 0, "ctx_hi": 8192, "gpu": "H100-SXM", "instances": 4, "dtype": "fp16",
           "kv_dtype": "fp16", **pool}
    conf = cfg(None, model=model, gpus=[row["gpu"]], tp=[row["tp"]])
    with pytest.raises(FleetoptError) as e:  # a FLEET.json, evaluated
        evaluate_plan(problem_from_dict(conf), Fleet.from_list([row], "fleet"))
    assert e.value.field == field and words in str(e.value)
    with pytest.raises(FleetoptError) as e:  # [[fleet.pool]]: refused on load
        problem_from_dict({**conf, "fleet": {**conf["fleet"], "pool": [row]}})
    assert e.value.field == field and words in str(e.value)


def test_config_pool_ep_is_checked_on_load() -> None:
    pool = {"ctx_lo": 0, "ctx_hi": 8192, "gpu": "H100-SXM", "tp": 4, "instances": 4, "ep": 2}
    with pytest.raises(FleetoptError) as e:
        problem_from_dict(cfg(None, pool=[pool]))
    assert e.value.field == "fleet.pools[0].ep"
    ok = problem_from_dict(cfg(None, pool=[{**pool, "ep": 4}]))
    assert ok.fleet is not None and ok.fleet.pools[0].ep == 4
    assert ok.fleet.pools[0].deployment == Deployment("H100-SXM", 4, "fp16", "fp16", 4)


def test_tables_show_ep_only_where_a_pool_has_it() -> None:
    base = {"ctx_lo": 0, "ctx_hi": 8192, "gpu": "H100-SXM", "tp": 4, "dtype": "fp16",
            "instances": 1}
    head = tables.render([{**base, "ep": 4}], tables.POOL_COLS).splitlines()[0].split()
    assert head[head.index("tp") + 1] == "ep"
    for rows in ([{**base, "ep": 1}], [base]):
        assert "ep" not in tables.render(rows, tables.POOL_COLS).splitlines()[0].split()
    assert Deployment("H100-SXM", 4, "fp16", "fp16", 4).label() == "H100-SXM TP4 EP4 fp16"


def test_simulated_pools_report_ep(solved: dict[str, fo.Solution]) -> None:
    from fleetopt.sim import simulate_problem

    p = problem("on")
    fleet = solved["on"].fleet
    assert fleet is not None
    sim = simulate_problem(p, fleet, requests=300, seed=0)
    assert [x.ep for x in sim.pools] == [s.ep for s in fleet.pools]
    assert all(list(d)[list(d).index("tp") + 1] == "ep" for d in sim.to_dict()["pools"])


# --- sweeps -----------------------------------------------------------------------------------
def test_sweep_accepts_ep() -> None:
    assert normalise({"ep": "both"}, "scenario[0]") == {"ep": "both"}
    with pytest.raises(FleetoptError) as e:
        normalise({"ep": "sometimes"}, "scenario[0]")
    assert e.value.field == "scenario[0].ep"
    base = problem()
    assert scenario_problem(base, {"ep": "on"}).ep == "on"
    with pytest.raises(FleetoptError, match="fleet.ep"):
        scenario_problem(problem(model="llama-3.1-8b"), {"ep": "on"})


def test_sweep_over_ep_solves_each() -> None:
    from fleetopt.studies.sweep.study import Study

    base = problem(tp=[2], max_pools=1)
    study = Study(base, grid={"ep": ["off", "on"]})
    frame = study.run(executor="sequential", progress=False)
    assert list(frame["status"]) == ["optimal", "optimal"]
    plans = [json.loads(x) for x in frame["plan"]]
    assert [[pool.get("ep", 1) for pool in plan] for plan in plans] == [[1], [2]]
