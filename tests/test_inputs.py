"""Input handling without silent defaults: trace timestamp units, requests beyond the context,
pool precisions, calibrated profiles, the auto peak factor, catalog overrides, warnings and the
settings every run reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fleetopt.core.errors import FleetoptError
from fleetopt.physics.burst import pool_peak_factors
from fleetopt.physics.catalog import Catalog, default_catalog
from fleetopt.problem.config import load_config, problem_from_dict
from fleetopt.problem.problem import Problem
from fleetopt.problem.workload import (
    MS_MEDIAN_GAP,
    auto_peak_factor,
    builtin,
    detect_timestamp_unit,
    fit_context,
    from_trace_file,
    read_trace,
    trace_of,
)
from fleetopt.report.cli import main
from fleetopt.report.tables import settings_line

# ------------------------------------------------------------------------------------------
# timestamp units


def _arrivals(rate_rps: float, n: int = 2000, seed: int = 0) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, n))


@pytest.mark.parametrize("rate", [0.05, 0.5, 5.0, 50.0, 500.0, 5000.0])
def test_relative_seconds_are_read_as_seconds(rate):
    assert detect_timestamp_unit(_arrivals(rate))[0] == "s"


@pytest.mark.parametrize("rate", [0.05, 0.5, 3.9, 10.0, 30.0])
def test_relative_milliseconds_are_read_as_milliseconds(rate):
    t = _arrivals(rate) * 1000.0
    assert detect_timestamp_unit(t)[0] == "ms"
    assert detect_timestamp_unit(np.floor(t))[0] == "ms"  # whole milliseconds, as Mooncake


@pytest.mark.parametrize("rate", [0.05, 5.0, 5000.0])
def test_epoch_times_in_either_unit(rate):
    t = 1.7e9 + _arrivals(rate)
    assert detect_timestamp_unit(t)[0] == "s"
    assert detect_timestamp_unit(t * 1000.0)[0] == "ms"


def test_column_name_decides_and_fine_epochs_are_refused():
    t = _arrivals(5.0) * 1000.0
    assert detect_timestamp_unit(t, "arrival_s") == ("s", "column 'arrival_s'")
    assert detect_timestamp_unit(_arrivals(5.0), "timestamp_ms")[0] == "ms"
    with pytest.raises(FleetoptError, match="micro"):
        detect_timestamp_unit((1.7e9 + _arrivals(5.0)) * 1e6)


def test_threshold_is_the_median_gap():
    gaps = np.full(100, MS_MEDIAN_GAP)
    assert detect_timestamp_unit(np.cumsum(gaps))[0] == "ms"
    assert detect_timestamp_unit(np.cumsum(gaps * 0.99))[0] == "s"


def _mooncake(path: Path, rate: float = 3.9, n: int = 3000) -> None:
    rng = np.random.default_rng(7)
    t = np.floor(np.cumsum(rng.exponential(1000.0 / rate, n))).astype(int)
    with open(path, "w") as f:
        for x in t:
            f.write(json.dumps({"timestamp": int(x), "input_length": int(rng.integers(50, 3000)),
                                "output_length": int(rng.integers(5, 400)),
                                "hash_ids": [1, 2, 3]}) + "\n")


def test_mooncake_jsonl_in_milliseconds_gives_the_right_rate(tmp_path):
    p = tmp_path / "conversation_trace.jsonl"
    _mooncake(p)
    w = from_trace_file(p)
    assert w.meta["timestamp_unit"] == "ms"
    assert w.rate_rps == pytest.approx(3.9, rel=0.06)
    forced = from_trace_file(p, timestamp_unit="s")
    assert forced.rate_rps == pytest.approx(w.rate_rps / 1000.0)
    # the auto peak factor reads the trace again in the same unit
    cfg = tmp_path / "c.toml"
    cfg.write_text('[workload]\ntrace = "conversation_trace.jsonl"\n[model]\nname = '
                   '"llama-3.1-8b"\n[fleet]\ntp = [1]\n[slo]\npeak_factor = "auto"\n')
    prob = load_config(cfg)
    used = prob.settings_used()
    assert used["rate_source"] == "trace" and used["timestamp_unit"] == "ms"
    assert used["trace_rate_rps"] == pytest.approx(w.rate_rps)
    assert used["peak_factor_source"] == "auto" and used["peak_factor"] >= 1.0
    assert "timestamps in ms" in settings_line(used)


def test_datetime_timestamps_and_shipped_traces():
    tr = read_trace(Path(__file__).parent.parent / "fleetopt/data/traces/azure-conv-2023.csv.gz")
    assert tr["timestamp_unit"] == "s" and tr["timestamp_rule"] == "column 'arrival_s'"


def test_datetime_strings(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("input_tokens,output_tokens,timestamp\n10,5,2023-11-16 18:15:46.5\n"
                 "20,5,2023-11-16 18:15:47.0\n30,5,2023-11-16 18:15:48.5\n")
    tr = read_trace(p)
    assert tr["timestamp_unit"] == "datetime"
    assert list(tr["arrival_s"]) == pytest.approx([0.0, 0.5, 2.0])


# ------------------------------------------------------------------------------------------
# requests longer than the context


def _cfg(**wl):
    return {"workload": {"name": "lmsys", "rate": 100, **wl}, "model": {"name": "mixtral-8x7b"},
            "fleet": {"tp": [4]}}


def test_over_max_ctx_error_names_count_share_and_followable_options():
    with pytest.raises(FleetoptError) as e:
        problem_from_dict(_cfg())
    msg = str(e.value)
    assert "over_max_ctx" in msg and "drop" in msg and "truncate" in msg
    assert "raise" not in msg  # the model's own maximum cannot be raised
    for model in ("llama-3.1-70b", "llama-3.1-8b"):  # the longer-context models it names
        assert model in msg
    # every option works
    assert problem_from_dict(_cfg(over_max_ctx="drop")).workload.max_total_tokens <= 32768
    assert problem_from_dict(_cfg(over_max_ctx="truncate")).workload.max_total_tokens <= 32768
    d = _cfg()
    d["model"]["name"] = "llama-3.1-70b"
    problem_from_dict(d)


def test_over_max_ctx_count_for_a_trace_and_raising_max_ctx():
    d = {"workload": {"name": "mooncake-conversation", "rate": 5},
         "fleet": {"max_ctx": 65536}}
    with pytest.raises(FleetoptError) as e:
        problem_from_dict(d)
    msg = str(e.value)
    assert e.value.field == "fleet.max_ctx" and "requests (" in msg
    assert "raise fleet.max_ctx to 124807 or more (up to 131072)" in msg
    d["fleet"]["max_ctx"] = 124807
    assert problem_from_dict(d).max_ctx == 124807  # the advice works


def test_drop_and_truncate():
    w = builtin("lmsys", 100)
    over = w.total_tokens > 16384
    share = float(w.weights[over].sum())
    assert share > 0
    dropped = fit_context(w, 16384, "drop")
    assert dropped.max_total_tokens <= 16384 and dropped.rate_rps == w.rate_rps
    assert dropped.weights.sum() == pytest.approx(1.0)
    assert dropped.meta["over_max_ctx"]["share"] == pytest.approx(share)
    # the kept requests keep their relative weights
    kept = w.weights[~over] / w.weights[~over].sum()
    assert float(dropped.weights @ dropped.total_tokens) == pytest.approx(
        float(kept @ w.total_tokens[~over]))
    cut = fit_context(w, 16384, "truncate")
    assert cut.max_total_tokens == 16384
    assert float(cut.weights[cut.total_tokens == 16384].sum()) >= share - 1e-12
    assert float(cut.weights @ cut.output_tokens) == pytest.approx(w.mean_output_tokens())
    p = problem_from_dict({**_cfg(over_max_ctx="drop"), "fleet": {"tp": [4], "max_ctx": 16384}})
    assert any("over_max_ctx" in x and "dropped" in x for x in p.warnings)
    assert p.settings_used()["over_max_ctx_applied"]["mode"] == "drop"


# ------------------------------------------------------------------------------------------
# pools, profiles, boundaries, peak factor, input fraction


def _pool_cfg(model_dtype=None, pool_extra=None, kv=None):
    model = {"name": "llama-3.1-70b"}
    if model_dtype is not None:
        model["dtype"] = model_dtype
    fleet = {"max_ctx": 16384, "pool": [{"ctx_lo": 0, "ctx_hi": 16384, "gpu": "H100-SXM",
                                         "tp": 8, "instances": 30, **(pool_extra or {})}]}
    if kv:
        fleet["kv_dtype"] = kv
    return {"workload": {"name": "azure", "rate": 100}, "model": model, "fleet": fleet}


def test_pool_without_dtype_takes_the_one_allowed():
    assert problem_from_dict(_pool_cfg()).fleet.pools[0].dtype == "fp16"
    p = problem_from_dict(_pool_cfg("fp8", kv="fp8"))
    assert (p.fleet.pools[0].dtype, p.fleet.pools[0].kv_dtype) == ("fp8", "fp8")
    assert problem_from_dict(_pool_cfg(["fp16", "fp8"], {"dtype": "fp8"})).fleet.pools[0].dtype \
        == "fp8"
    with pytest.raises(FleetoptError, match="fleet.pools.0..dtype"):
        problem_from_dict(_pool_cfg(["fp16", "fp8"]))


def test_fleet_json_pool_without_dtype_on_a_profile(capsys, tmp_path):
    f = tmp_path / "f.json"
    f.write_text(json.dumps([{"ctx_lo": 0, "ctx_hi": 65536, "gpu": "1w-law-h100", "tp": 8,
                              "instances": 200}]))
    code = main(["evaluate", "paper-azure", "--fleet", str(f), "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["pools"][0]["dtype"] == "fp16"


def test_evaluated_dtype_is_the_pools(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[workload]\nname = "azure"\nrate = 100\n[model]\ndtype = "fp8"\n'
                   '[fleet]\nmax_ctx = 16384\n[[fleet.pool]]\nctx_lo = 0\nctx_hi = 16384\n'
                   'gpu = "H100-SXM"\ntp = 8\ninstances = 30\n')
    assert main(["evaluate", str(cfg), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pools"][0]["dtype"] == "fp8"


def test_calibrated_profile_with_other_gpus():
    wl = builtin("azure", 100)
    p = Problem(workload=wl, gpus=("1w-law-h100", "H100-SXM"), tp=(4, 8), max_ctx=65536)
    assert {(d.gpu, d.tp) for d in p.deployments()} >= {("1w-law-h100", 8), ("H100-SXM", 4)}
    with pytest.raises(FleetoptError, match="has only TP8 fp16"):
        Problem(workload=wl, gpus=("1w-law-h100",), tp=(4,), max_ctx=65536)
    with pytest.raises(FleetoptError, match="model.dtype"):
        Problem(workload=wl, gpus=("1w-law-h100",), dtypes=("fp8",), max_ctx=65536)


def test_boundaries_in_order_only():
    wl = builtin("azure", 100)
    assert Problem(workload=wl, boundaries=(1024, 4096)).boundaries == (1024, 4096)
    for bad in ((4096, 1024), (1024, 1024)):
        with pytest.raises(FleetoptError, match="strictly increasing"):
            Problem(workload=wl, boundaries=bad)


def test_auto_peak_factor_follows_the_rate():
    d = {"workload": {"name": "azure-conv-2023", "rate": 1000}, "slo": {"peak_factor": "auto"},
         "fleet": {"max_ctx": 16384}}
    d["slo"]["peak_factor"] = "auto-global"  # one factor for every pool
    p = problem_from_dict(d)
    k = auto_peak_factor(builtin("azure-conv-2023", 1000))
    assert p.settings.peak_factor == pytest.approx(k) and k > 1.5
    assert p.settings_used()["peak_factor_source"] == "auto-global"
    assert not p.per_pool_peak_factors and p.pool_peak_factor(0, 2048) == pytest.approx(k)
    half = p.with_(workload=p.workload.with_rate(250))
    assert half.settings.peak_factor == pytest.approx(auto_peak_factor(
        builtin("azure-conv-2023", 250)))
    # "auto": one factor per pool, at the rate too; the settings' global factor is then 1
    d["slo"]["peak_factor"] = "auto"
    pp = problem_from_dict(d)
    assert pp.per_pool_peak_factors and pp.settings.peak_factor == 1.0
    assert pp.settings_used()["peak_factor_source"] == "auto"
    tr = trace_of(pp.workload)
    tot = np.asarray(tr["input"]) + np.asarray(tr["output"])
    for rate, prob in ((1000, pp), (250, pp.with_(workload=pp.workload.with_rate(250)))):
        want = pool_peak_factors(tr["arrival_s"], tot, [0, 2048, 16384], rate)
        assert [prob.pool_peak_factor(0, 2048), prob.pool_peak_factor(2048, 16384)] == \
            pytest.approx(want)
        assert prob.pool_settings(0, 2048).peak_factor == pytest.approx(want[0])
    fixed = p.with_(settings=replace(p.settings, peak_factor=2.0))
    assert fixed.settings.peak_factor == 2.0 and not fixed.peak_factor_auto
    assert fixed.settings_used()["peak_factor_source"] == "set"


def test_named_workload_rate_and_input_fraction():
    p = problem_from_dict({"workload": {"name": "azure-conv-2023"}, "fleet": {"max_ctx": 16384}})
    assert p.workload.rate_rps == pytest.approx(p.workload.meta["trace_rate_rps"])
    assert p.settings_used()["rate_source"] == "trace"
    half = problem_from_dict({"workload": {"name": "azure", "rate": 10, "input_fraction": 0.5}})
    w = half.workload
    assert float(w.weights @ w.input_tokens) == pytest.approx(
        float(w.weights @ w.output_tokens), rel=0.01)
    assert half.settings_used()["input_fraction_source"] == "config"


def test_default_max_ctx_follows_the_workload_in_with_():
    p = problem_from_dict({"workload": {"name": "azure", "rate": 10}})
    assert p.max_ctx == 16384 and p.settings_used()["max_ctx_source"] == "default"
    q = p.with_(workload=builtin("lmsys", 10))
    assert q.max_ctx == 65536
    fixed = p.with_(max_ctx=32768)
    assert fixed.max_ctx == 32768 and fixed.settings_used()["max_ctx_source"] == "set"


# ------------------------------------------------------------------------------------------
# catalog overrides


def test_override_one_field_of_a_shipped_gpu(tmp_path):
    f = tmp_path / "cat.toml"
    f.write_text("[gpu.H100-SXM]\nprice_per_gpu_hr = 2.10\n[profile.1w-law-h100]\n"
                 "price_per_gpu_hr = 3.0\n[model.\"llama-3.1-70b\"]\ndisplay = \"mine\"\n")
    cat = Catalog.default().extend_from_file(f)
    ship = default_catalog()
    g, g0 = cat.gpus["H100-SXM"], ship.gpus["H100-SXM"]
    assert g.price_per_gpu_hr == 2.10
    assert replace(g, price_per_gpu_hr=g0.price_per_gpu_hr) == g0  # nothing else changed
    assert cat.profiles["1w-law-h100"].price_per_gpu_hr == 3.0
    assert cat.models["llama-3.1-70b"].layers == ship.models["llama-3.1-70b"].layers
    assert ship.gpus["H100-SXM"].price_per_gpu_hr != 2.10  # the shipped catalog is untouched


def test_override_power_and_aliases(tmp_path):
    f = tmp_path / "cat.toml"
    f.write_text("[gpu.h100]\npower_idle_w = 90.0\n")
    g = Catalog.default().extend_from_file(f).gpus["H100-SXM"]
    g0 = default_catalog().gpus["H100-SXM"]
    assert g.power.idle_w == 90.0 and g.power.plateau_w == g0.power.plateau_w
    assert "power_idle_w overridden" in g.power.source


def test_price_override_reaches_the_plan(capsys, tmp_path):
    (tmp_path / "cat.toml").write_text("[gpu.H100-SXM]\nprice_per_gpu_hr = 1.0\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text('catalog = "cat.toml"\n[workload]\nname = "azure"\nrate = 100\n')
    assert main(["evaluate", str(cfg), "--format", "json"]) == 0
    t = json.loads(capsys.readouterr().out)["totals"]
    assert t["cost_per_hr"] == pytest.approx(t["gpus"] * 1.0)


def test_new_entry_still_needs_every_field(tmp_path):
    f = tmp_path / "cat.toml"
    f.write_text("[gpu.Mine]\nhbm_gb = 96.0\nprice_per_gpu_hr = 1.0\n")
    with pytest.raises(FleetoptError) as e:
        Catalog.default().extend_from_file(f)
    assert e.value.field == "catalog.gpu.Mine"
    for k in ("hbm_bw_tb_s", "fp16_tflops", "tdp_w", "power_idle_w"):
        assert k in str(e.value)
    assert "hbm_gb" not in str(e.value).split("missing:")[1]


# ------------------------------------------------------------------------------------------
# warnings and settings in every output


def test_inventory_of_a_gpu_not_allowed_warns(capsys, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[workload]\nname = "azure"\nrate = 100\n[inventory]\nB200 = 8\n')
    assert main(["evaluate", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert err == "fleetopt: warning: inventory.B200: B200 is not in fleet.gpus, so this cap " \
        "has no effect\n"


def test_unusable_tp_warns():
    p = Problem(workload=builtin("azure", 10), gpus=("H100-SXM",), tp=(8, 16))
    assert any(w.startswith("fleet.tp: no allowed GPU can run TP 16") for w in p.warnings)


def _json_run(capsys, *argv):
    code = main([*argv, "--format", "json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_settings_in_every_json_and_table(capsys, tmp_path):
    keys = {"rate_rps", "trace_rate_rps", "max_ctx", "peak_factor", "accounting", "profiles",
            "physics_overrides", "candidates"}
    ev = _json_run(capsys, "evaluate", "azure-h100")
    assert keys <= set(ev["settings"]) and ev["settings"]["max_ctx"] == 65536
    sol = _json_run(capsys, "solve", "paper-azure")
    assert sol["settings"]["candidates"] > 0 and sol["settings"]["accounting"] == "paper"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(sol))
    sim = _json_run(capsys, "simulate", "paper-azure", "--fleet", str(plan), "--requests", "500")
    assert sim["settings"]["profiles"] == "calibrated"
    for argv in (["evaluate", "azure-h100"], ["solve", "paper-azure"],
                 ["simulate", "paper-azure", "--fleet", str(plan), "--requests", "500"]):
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        used = [ln for ln in lines if ln.startswith("used: ")]
        assert len(used) == 1 and "rate 1,000 req/s" in used[0] and "peak factor 1" in used[0]
    assert "candidates" in _used_text(_table(capsys, "solve", "paper-azure"))


def _used_text(lines):
    """The ``used:`` line with its wrapped continuation lines (tables fit 120 columns)."""
    i = next(k for k, ln in enumerate(lines) if ln.startswith("used: "))
    out = [lines[i]]
    for ln in lines[i + 1:]:
        if not ln.startswith("  "):
            break
        out.append(ln.strip())
    return " ".join(out)


def _table(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


def test_settings_in_study_outputs(capsys, tmp_path):
    d = _json_run(capsys, "study", "procurement", "paper-azure", "--budgets", "500,900")
    assert d["settings"]["candidates"] > 0
    sweep = tmp_path / "s.toml"
    sweep.write_text('base = "paper-azure"\n[grid]\nrate_rps = [500, 1000]\n')
    out = tmp_path / "r.csv"
    assert main(["study", "sweep", str(sweep), "--out", str(out), "--executor",
                 "sequential"]) == 0
    text = capsys.readouterr().out
    assert "base used: rate 1,000 req/s" in text
    import pandas as pd

    rows = pd.read_csv(out)
    rates = sorted(json.loads(s)["rate_rps"] for s in rows["settings"])
    assert rates == [500.0, 1000.0]
    assert all(json.loads(s)["candidates"] > 0 for s in rows["settings"])


def test_calibrated_profile_kv_cache_is_fixed(capsys, tmp_path):
    p = Problem(workload=builtin("azure", 100), gpus=("1w-law-h100", "H100-SXM"), kv_dtype="fp8",
                max_ctx=65536)
    assert any(w.startswith("model.kv_dtype: fp8 does not apply to the calibrated profile "
                            "1w-law-h100") for w in p.warnings)
    assert {d.kv_dtype for d in p.deployments() if d.gpu == "1w-law-h100"} == {"fp16"}
    f = tmp_path / "f.json"
    f.write_text(json.dumps([{"ctx_lo": 0, "ctx_hi": 65536, "gpu": "1w-law-h100", "tp": 8,
                              "instances": 200, "kv_dtype": "fp8"}]))
    assert main(["evaluate", "paper-azure", "--fleet", str(f)]) == 2
    assert "fleet.pools[0].kv_dtype" in capsys.readouterr().err
