"""The command line: outputs, round trips, and bad input (exit 2, one line, nothing written)."""

import json
import subprocess
import sys

import pytest

from fleetopt.report.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_catalog_lists_everything(capsys):
    code, out, _ = run(capsys, "catalog", "--format", "json")
    d = json.loads(out)
    assert code == 0
    assert {g["name"] for g in d["gpus"]} == {"H100-SXM", "H200-SXM", "B200", "GB200", "A100-SXM",
                                              "L40S", "MI300X"}
    assert {m["name"] for m in d["models"]} == {
        "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen3-235b-a22b", "qwen3-30b-a3b",
        "mixtral-8x7b", "deepseek-v3", "qwen3-235b-a22b-instruct-2507",
        "qwen3-30b-a3b-instruct-2507", "qwen3-8b"}
    cal = {g["name"]: g["step_calibration"] for g in d["gpus"]}
    assert cal == {"H100-SXM": "fitted", "B200": "fitted", "H200-SXM": "projected",
                   "GB200": "projected", "A100-SXM": "projected", "L40S": "projected",
                   "MI300X": "projected"}
    assert all(g["power_model_quality"] == cal[g["name"]] for g in d["gpus"])
    assert "1w-law-h100" in {p["name"] for p in d["profiles"]}
    assert {"azure-conv-2023", "azure-code-2023", "mooncake-conversation", "azure", "lmsys",
            "agent-heavy"} <= {w["name"] for w in d["workloads"]}
    code, out, _ = run(capsys, "catalog")
    assert code == 0 and "GPUs" in out and "Example configs" in out
    assert "step_cal" in out and "projected" in out and "fitted" in out


def test_evaluate_json_shape(capsys):
    code, out, _ = run(capsys, "evaluate", "azure-h100", "--format", "json")
    d = json.loads(out)
    assert code == 0
    assert set(d["totals"]) >= {"instances", "gpus", "power_w", "cost_per_hr", "output_tok_per_s",
                                "tok_per_w"}
    assert set(d["pools"][0]) >= {"ctx_lo", "ctx_hi", "gpu", "tp", "dtype", "instances", "gpus",
                                  "arrival_rate", "utilization", "p99_ttft_ms", "power_w"}


def test_solve_then_evaluate_the_plan(capsys, tmp_path):
    plan = tmp_path / "plan.json"
    code, out, _ = run(capsys, "solve", "paper-azure", "--format", "json", "--out", str(plan))
    d = json.loads(out)
    assert code == 0 and d["status"] == "optimal"
    assert set(d) >= {"status", "objective", "linearization_error", "totals", "pools", "timing"}
    assert set(d["timing"]) >= {"build_s", "translate_s", "solve_s", "total_s"}
    assert json.loads(plan.read_text())["pools"] == d["pools"]
    code, out, _ = run(capsys, "evaluate", "paper-azure", "--fleet", str(plan), "--format", "json")
    e = json.loads(out)
    assert code == 0
    assert e["totals"]["power_w"] == pytest.approx(d["totals"]["power_w"])


def test_solve_table_output(capsys):
    code, out, _ = run(capsys, "solve", "azure-h100")
    assert code == 0
    assert "status: optimal" in out and "linearisation error" in out and "fleet:" in out


def _cfg(tmp_path, body: str, name="c.toml"):
    p = tmp_path / name
    p.write_text(body)
    return str(p)


BASE = """
[workload]
name = "azure"
rate = {rate}
[model]
name = "{model}"
[slo]
ttft_p99_ms = {slo}
[fleet]
gpus = ["{gpu}"]
tp = [{tp}]
max_ctx = {max_ctx}
"""


def base(**kw):
    d = dict(rate=100, model="llama-3.1-70b", slo=500, gpu="H100-SXM", tp=8, max_ctx=65536)
    d.update(kw)
    return BASE.format(**d)


BAD = [
    ("unknown gpu", base(gpu="H100-SMX"), "fleet.gpus", "Did you mean 'H100-SXM'"),
    ("unknown model", base(model="llama-3-70b"), "model.name", "unknown model"),
    ("zero rate", base(rate=0), "workload.rate", "> 0"),
    ("negative slo", base(slo=-5), "slo.ttft_p99_ms", "> 0"),
    ("does not fit", base(gpu="L40S", tp=1), "fleet.gpus", "needs"),
    ("beyond max context", base(model="mixtral-8x7b", max_ctx=65536), "fleet.max_ctx", "maximum context"),
    ("malformed toml", "[workload\nname=", "CONFIG", "not valid TOML"),
    ("unknown section", base() + "\n[fleeet]\nx=1\n", "CONFIG", "unknown sections"),
    ("bad objective", base() + "\n[objective]\nminimize = 'speed'\n", "objective.minimize", "power"),
    ("bad tp", base(tp=3), "fleet.tp", "TP"),
    ("bad boundaries", base() + 'boundaries = ["a"]\n', "fleet.boundaries", "token counts"),
    ("fractional boundary", base() + "boundaries = [1.5]\n", "fleet.boundaries", "whole"),
    ("physics type", base() + '\n[physics]\nmem_efficiency = "x"\n', "physics.mem_efficiency", "number"),
    ("physics range", base() + "\n[physics]\nblock_tokens = 0\n", "physics.block_tokens", ">= 1"),
    ("unknown slo key", base().replace("ttft_p99_ms", "ttft_p99"), "slo", "unknown keys"),
    ("unknown budget key", base() + "\n[budget]\ncost = 5\n", "budget", "unknown keys"),
    ("input fraction", base().replace('name = "azure"', 'cdf = "x.json"\ninput_fraction = "a"'),
     "workload.input_fraction", "number"),
]


@pytest.mark.parametrize("label, body, field, hint", BAD, ids=[b[0] for b in BAD])
def test_bad_config_exit_2(capsys, tmp_path, label, body, field, hint):
    out_file = tmp_path / "plan.json"
    code, out, err = run(capsys, "solve", _cfg(tmp_path, body), "--out", str(out_file))
    assert code == 2
    assert err.startswith("fleetopt: error: ") and err.count("\n") == 1
    assert field in err and hint in err
    assert "Traceback" not in err
    assert not out_file.exists()  # nothing half-written


@pytest.mark.parametrize("knots, hint", [
    ([[100, 0.5], [200, 0.4], [300, 1.0]], "not monotone"),
    ([[100, 0.5], [200, 0.9]], "must end at 1"),
])
def test_bad_cdf_file(capsys, tmp_path, knots, hint):
    (tmp_path / "c.json").write_text(json.dumps(knots))
    body = '[workload]\ncdf = "c.json"\nrate = 10\n'
    code, _, err = run(capsys, "evaluate", _cfg(tmp_path, body))
    assert code == 2 and "workload.cdf" in err and hint in err


def test_bad_fleet_file_and_out_folder(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", "azure-h100", "--fleet", str(tmp_path / "nope.json"))
    assert code == 2 and "--fleet" in err and "not found" in err
    bad = tmp_path / "f.json"
    bad.write_text(json.dumps([{"ctx_lo": 0, "ctx_hi": 4096, "gpu": "H100-SXM", "tp": 8}]))
    code, _, err = run(capsys, "evaluate", "azure-h100", "--fleet", str(bad))
    assert code == 2 and "instances" in err
    code, _, err = run(capsys, "solve", "paper-azure", "--out", str(tmp_path / "no" / "p.json"))
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "no").exists()


def test_console_script_exit_code_and_no_traceback(tmp_path):
    p = _cfg(tmp_path, base(rate=-1))
    r = subprocess.run([sys.executable, "-m", "fleetopt", "evaluate", p],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "workload.rate" in r.stderr


def test_relative_paths_resolve_against_config_folder(capsys, tmp_path):
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "lengths.json").write_text(json.dumps([[1024, 0.7], [4096, 1.0]]))
    p = _cfg(sub, '[workload]\ncdf = "lengths.json"\nrate = 50\n[fleet]\nmax_ctx = 4096\n')
    code, out, _ = run(capsys, "evaluate", p, "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["instances"] >= 1


def test_solve_validate_reports_simulated_and_predicted(capsys):
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "3000",
                       "--format", "json")
    d = json.loads(out)
    assert code == 0 and d["status"] == "optimal"
    v = d["validation"]
    assert list(v) == ["schema", "pools", "totals"] and v["schema"] == "fleetopt.simulation/1"
    for pool in v["pools"]:
        for k in ("p50_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "power_w", "output_tok_per_s",
                  "predicted_p99_ttft_ms", "predicted_power_w", "predicted_output_tok_per_s"):
            assert k in pool
    assert [(p["ctx_lo"], p["ctx_hi"]) for p in v["pools"]] == \
        [(p["ctx_lo"], p["ctx_hi"]) for p in d["pools"]]


def test_simulate_cli(capsys, tmp_path):
    plan = tmp_path / "plan.json"
    assert run(capsys, "solve", "paper-azure", "--out", str(plan), "--format", "json")[0] == 0
    code, out, _ = run(capsys, "simulate", "paper-azure", "--fleet", str(plan), "--requests", "2000",
                       "--seed", "3", "--format", "json")
    a = json.loads(out)
    code2, out2, _ = run(capsys, "simulate", "paper-azure", "--fleet", str(plan), "--requests",
                         "2000", "--seed", "3", "--format", "json")
    assert code == code2 == 0
    assert a["totals"]["p99_ttft_ms"] == json.loads(out2)["totals"]["p99_ttft_ms"]  # seeded
    code, _, err = run(capsys, "simulate", "paper-azure", "--replay")
    assert code == 2 and "--replay" in err


@pytest.mark.parametrize("pool, field", [
    ({"dtype": 5}, "dtype"), ({"instances": 1e400}, "instances"), ({"tp": "eight"}, "tp"),
])
def test_bad_fleet_json_fields(capsys, tmp_path, pool, field):
    d = {"ctx_lo": 0, "ctx_hi": 65536, "gpu": "H100-SXM", "tp": 8, "instances": 10, **pool}
    f = tmp_path / "f.json"
    f.write_text(json.dumps([d]).replace("Infinity", "1e400"))
    code, _, err = run(capsys, "evaluate", "azure-h100", "--fleet", str(f))
    assert code == 2 and field in err and "Traceback" not in err


def test_unwritable_outputs_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "solve", "paper-azure", "--out", "/proc/fleetopt-x.json")
    assert code == 2 and "--out" in err
    code, _, err = run(capsys, "compare", "paper-azure", "--plot", str(tmp_path / "no" / "x.png"))
    assert code == 2 and "--plot" in err


def test_no_kv_slot_is_named_as_such(capsys, tmp_path):
    body = base(model="llama-3.1-8b", tp=1, max_ctx=131072) + "\n[physics]\nmemory_utilization = 0.3\n"
    code, out, _ = run(capsys, "solve", _cfg(tmp_path, body))
    assert code == 1 and "no allowed deployment has a KV slot" in out


def test_docs_list_every_flag():
    """docs/config.md's flag table names every flag of every command (README points there)."""
    import argparse
    from pathlib import Path

    from fleetopt.report.cli import build_parser

    text = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    missing = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, [*prefix, name])
            elif a.option_strings and "--help" not in a.option_strings:
                row = f"| `{' '.join(prefix)}` | `{a.option_strings[0]}`"
                if row not in text:
                    missing.append(row)

    walk(build_parser(), ["fleetopt"])
    assert not missing, missing


def test_simulation_flags(capsys):
    """--policy and --replications reach the simulator; without --validate solve refuses them;
    the CLI's policy list is the simulator's."""
    from fleetopt.report.cli import SIM_POLICIES
    from fleetopt.sim.dispatch import POLICIES

    assert SIM_POLICIES == POLICIES
    code, out, _ = run(capsys, "simulate", "paper-azure", "--requests", "600", "--policy",
                       "round_robin", "--replications", "2", "--format", "json")
    t = json.loads(out)["totals"]
    assert code == 0 and t["policy"] == "round_robin" and t["replications"] == 2
    assert t["ci_method"] == "replications"
    for flag, val in (("--policy", "least_loaded"), ("--replications", "2"), ("--check", None)):
        code, _, err = run(capsys, "solve", "paper-azure", flag, *([val] if val else []))
        assert code == 2 and flag in err and "--validate" in err
    code, _, err = run(capsys, "simulate", "paper-azure", "--replications", "0")
    assert code == 2 and "--replications" in err
    code, _, err = run(capsys, "simulate", "paper-azure", "--policy", "random")
    assert code == 2 and "--policy" in err
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "600",
                       "--policy", "least_loaded", "--format", "json")
    assert code == 0 and json.loads(out)["validation"]["totals"]["policy"] == "least_loaded"


# ------------------------------------------------------------------------------ instance


def test_instance_json_shape(capsys):
    code, out, _ = run(capsys, "instance", "--model", "llama-3.1-70b", "--gpu", "H100-SXM",
                       "--tp", "8", "--dtype", "fp16", "--batch", "1,8,64", "--ctx", "2048",
                       "--window", "16384", "--format", "json")
    d = json.loads(out)
    assert code == 0 and d["schema"] == "fleetopt.instance/1"
    assert list(d)[:5] == ["schema", "deployment", "kv_tokens", "window_tokens", "slots_reserved"]
    dep = d["deployment"]
    assert (dep["gpu"], dep["model"], dep["tp"], dep["ep"], dep["gpus"]) == \
        ("H100-SXM", "llama-3.1-70b", 8, 1, 8)
    assert dep["calibration"] == "fitted" and dep["token_budget"] == 8192
    from fleetopt.physics.profiles import Deployment, resolve

    prof = resolve(Deployment("H100-SXM", 8), "llama-3.1-70b")
    assert d["kv_tokens"] == prof.kv_capacity_tokens and d["slots_reserved"] == prof.slots(16384)
    assert [p["batch"] for p in d["points"]] == [1, 8, 64]
    for p in d["points"]:
        assert {"batch", "ctx", "step_ms", "output_tok_per_s", "prefill_tok_per_s_max",
                "power_w_per_gpu"} <= set(p)
        assert p["ctx"] == 2048
        assert p["step_ms"] == pytest.approx(1e3 * prof.step.step_s(p["batch"],
                                                                     p["batch"] * 2048.0))
        assert p["output_tok_per_s"] == pytest.approx(p["batch"] / p["step_ms"] * 1e3)
        assert 75.0 <= p["power_w_per_gpu"] <= 700.0
    steps = [p["step_ms"] for p in d["points"]]
    assert steps == sorted(steps)


def test_instance_table_and_expert_parallelism(capsys):
    code, out, _ = run(capsys, "instance", "--model", "qwen3-235b-a22b-instruct-2507", "--gpu",
                       "B200", "--tp", "8", "--ep", "8", "--dtype", "fp8")
    assert code == 0 and "EP8" in out and "fp8_block" in out and "out_tok/s" in out


@pytest.mark.parametrize("args, flag", [
    (["--ep", "8"], "--ep"),  # a dense model
    (["--tp", "3"], "--tp"),
    (["--batch", "1,x"], "--batch"),
    (["--batch", "0"], "--batch"),
    (["--dtype", "fp4"], "--dtype"),
    (["--gpu", "H900"], "--gpu"),
    (["--gpu", "1w-law-h100"], "--gpu"),
    (["--model", "llama-9"], "--model"),
    (["--tp", "1", "--model", "llama-3.1-405b"], "--tp"),  # does not fit
])
def test_instance_bad_flags_exit_2(capsys, args, flag):
    base = {"--model": "llama-3.1-70b", "--gpu": "H100-SXM", "--tp": "8", "--dtype": "fp16"}
    extra = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["instance"] + [x for k, v in {**base, **extra}.items() for x in (k, v)]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith(f"fleetopt: error: {flag}")
