"""The CLI for people: tables within 120 columns (``--wide`` for all), SLO verdicts and
``--check`` (exit 3), and ``fleetopt example``."""

import json
import tomllib
from importlib import resources

import pytest

from fleetopt.report import tables as report
from fleetopt.report.cli import EXIT_CHECK_FAILED, main

EXAMPLES = ("azure-h100", "azure-mixed", "paper-azure")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _too_long(text: str, width: int = report.WIDTH) -> list[str]:
    return [line for line in text.splitlines() if len(line) > width]


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """The plan JSON of each shipped example (solved once)."""
    d = tmp_path_factory.mktemp("plans")
    out = {}
    for ex in EXAMPLES:
        p = d / f"{ex}.json"
        assert main(["solve", ex, "--format", "json", "--out", str(p)]) == 0
        out[ex] = p
    return out


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_table_fits_120_columns(capsys, plans, example):
    commands = [
        ["evaluate", example],
        ["solve", example],
        ["solve", example, "--compress"],
        ["solve", example, "--validate", "--requests", "1500"],
        ["simulate", example, "--fleet", plans[example], "--requests", "1500"],
        ["compare", example],
        ["study", "procurement", example, "--budgets", "100,400,2000"],
    ]
    for argv in commands:
        code, out, err = run(capsys, *argv)
        assert code == 0, (argv, err)
        assert _too_long(out) == [], argv
        assert "ctx_tokens" in out or "approach" in out or "budget_$/hr" in out


def test_catalog_example_and_sweep_tables_fit(capsys, tmp_path):
    for argv in (["catalog"], ["example"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and _too_long(out) == [], argv
    sw = tmp_path / "s.toml"
    sw.write_text('base = "paper-azure"\n[grid]\nrate_rps = [500, 1000]\n'
                  'gpus = [["1w-law-h100"]]\n[[scenario]]\nname = "a scenario with a long name, '
                  'longer than any column should be"\n')
    code, out, _ = run(capsys, "study", "sweep", sw, "--out", tmp_path / "r.csv",
                       "--executor", "sequential")
    assert code == 0 and _too_long(out) == [] and "..." in out


def test_wide_shows_every_column(capsys, plans):
    code, narrow, _ = run(capsys, "evaluate", "azure-h100")
    code2, wide, _ = run(capsys, "evaluate", "azure-h100", "--wide")
    assert code == code2 == 0
    for col in ("mean_batch", "min_instances", "slots", "kv_dtype", "output_tok/s"):
        assert col not in narrow and col in wide
    assert _too_long(wide) != []
    code, wide, _ = run(capsys, "simulate", "paper-azure", "--fleet", plans["paper-azure"],
                        "--requests", "1500", "--wide")
    assert code == 0 and "p50_ttft_ms" in wide and "energy_j" in wide and "all totals:" in wide
    for argv, col in ((["compare", "paper-azure"], "instances"),
                      (["study", "procurement", "paper-azure", "--budgets", "300"], "warm_started"),
                      (["catalog"], "source")):
        code, narrow, _ = run(capsys, *argv)
        code2, wide, _ = run(capsys, *argv, "--wide")
        assert code == code2 == 0 and col in wide and col not in narrow.split("Workloads")[0]


def test_units_in_headers_and_compressed_share(capsys):
    code, out, _ = run(capsys, "solve", "azure-h100", "--compress")
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("ctx_tokens"))
    for h in ("p99_ttft_ms", "power_kW", "compressed_%", "window_tok"):
        assert h in header
    assert "compressed 63.2 % of requests" in out.replace("\n  ", " ")
    code, out, _ = run(capsys, "solve", "azure-h100")
    header = next(line for line in out.splitlines() if line.startswith("ctx_tokens"))
    assert "compressed_%" not in header and "window_tok" not in header  # no compression
    for h in ("rate_rps", "$/hr", "tok/W"):
        assert h in header


def test_render_drops_the_least_important_columns_and_says_so():
    rows = [{"a": "x" * 50, "b": 1.0, "c": 2.0, "d": 3.0}]
    cols = (report.Col("a", "a", str), report.Col("b_ms", "b", drop=1),
            report.Col("c_W", "c", drop=2), report.Col("d", "d", wide=True))
    text = report.render(rows, cols, width=60)
    assert "c_W" not in text.splitlines()[0] and "b_ms" in text.splitlines()[0]
    assert "not shown for width: c_W" in text and "--wide" in text
    assert all(len(s) <= 60 for s in text.splitlines())
    wide = report.render(rows, cols, wide=True, width=60)
    assert all(h in wide.splitlines()[0] for h in ("b_ms", "c_W", "d"))


def test_join_wrapped_breaks_between_parts():
    parts = [f"part number {i}" for i in range(20)]
    text = report.join_wrapped("fleet: ", parts, width=50)
    assert all(len(s) <= 50 for s in text.splitlines())
    assert text.replace("\n  ", " ") == "fleet: " + ", ".join(parts)


# ------------------------------------------------------------------------------------------
# SLO verdicts and --check


def _starved(plan_path, tmp_path):
    """The plan with its busiest pool at a third of its instances: it must miss the SLO."""
    plan = json.loads(plan_path.read_text())
    pools = [{k: p[k] for k in ("ctx_lo", "ctx_hi", "gpu", "tp", "dtype", "instances")}
             for p in plan["pools"]]
    busiest = max(range(len(pools)), key=lambda i: plan["pools"][i]["arrival_rate"])
    pools[busiest]["instances"] = max(1, pools[busiest]["instances"] // 3)
    f = tmp_path / "starved.json"
    f.write_text(json.dumps(pools))
    return f, busiest


def test_simulate_verdicts_and_check(capsys, plans, tmp_path):
    good = plans["paper-azure"]
    code, out, _ = run(capsys, "simulate", "paper-azure", "--fleet", good, "--requests", "20000",
                       "--check")
    assert code == 0 and "SLO verdict" in out and "fleet: SLO met" in out and "MISSED" not in out
    bad, k = _starved(good, tmp_path)
    code, out, _ = run(capsys, "simulate", "paper-azure", "--fleet", bad, "--requests", "20000")
    assert code == 0 and "MISSED" in out  # without --check, a verdict but exit 0
    code, out, _ = run(capsys, "simulate", "paper-azure", "--fleet", bad, "--requests", "20000",
                       "--check")
    assert code == EXIT_CHECK_FAILED == 3
    assert "fleet: SLO MISSED in 1 of" in out and "> 500 ms" in out
    code, out, _ = run(capsys, "simulate", "paper-azure", "--fleet", bad, "--requests", "20000",
                       "--check", "--format", "json")
    d = json.loads(out)
    assert code == 3 and d["totals"]["slo_met"] is False and d["totals"]["pools_missed"] == 1
    p = d["pools"][k]
    assert p["slo_met"] is False and p["slo_ttft_ms"] > p["ttft_target_ms"] == 500
    assert p["slo_ttft_ms"] == pytest.approx(p["p99_ttft_ms"])  # quantile 0.99


def test_solve_validate_check(capsys, monkeypatch, plans, tmp_path):
    code, _, err = run(capsys, "solve", "paper-azure", "--check")
    assert code == 2 and "--check" in err and "--validate" in err
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "20000",
                       "--check")
    assert code == 0 and "SLO verdict" in out and "fleet: SLO met" in out
    # the same command when the simulated fleet misses: exit 3
    import fleetopt.sim.api
    from fleetopt.problem.fleet import Fleet

    bad, _ = _starved(plans["paper-azure"], tmp_path)
    real = fleetopt.sim.api.simulate_problem
    monkeypatch.setattr(fleetopt.sim.api, "simulate_problem",
                        lambda problem, fleet, **kw: real(problem, Fleet.from_json_file(bad)
                                                          .with_precisions(problem.dtypes,
                                                                           problem.kv_dtype,
                                                                           problem.catalog), **kw))
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "20000",
                       "--check")
    assert code == 3 and "MISSED" in out
    code, out, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "20000",
                       "--check", "--format", "json")
    assert code == 3 and json.loads(out)["validation"]["totals"]["slo_met"] is False
    code, _, _ = run(capsys, "solve", "paper-azure", "--validate", "--requests", "20000")
    assert code == 0  # no --check: the verdict is reported, the exit code is not changed


# ------------------------------------------------------------------------------------------
# fleetopt example


def test_example_prints_writes_and_lists(capsys, tmp_path):
    shipped = resources.files("fleetopt.examples").joinpath("azure-h100.toml").read_text()
    code, out, _ = run(capsys, "example", "azure-h100")
    assert code == 0 and out == shipped and tomllib.loads(out)["workload"]["rate"] == 1000
    dest = tmp_path / "mine.toml"
    code, out, _ = run(capsys, "example", "AZURE-H100", "--out", dest)
    assert code == 0 and dest.read_text() == shipped and str(dest) in out
    code, out, _ = run(capsys, "evaluate", dest, "--format", "json")
    assert code == 0 and json.loads(out)["schema"] == "fleetopt.evaluation/1"
    code, out, _ = run(capsys, "example", "sweep-example", "--out", "-")
    assert code == 0 and tomllib.loads(out)["base"] == "paper-azure"
    code, out, _ = run(capsys, "example")
    assert code == 0 and all(n in out for n in (*EXAMPLES, "sweep-example"))


def test_example_unknown_name_lists_them(capsys, tmp_path):
    dest = tmp_path / "x.toml"
    code, out, err = run(capsys, "example", "azure-h10", "--out", dest)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "NAME" in err and "Did you mean 'azure-h100'" in err
    assert all(n in err for n in (*EXAMPLES, "sweep-example"))
    assert not dest.exists()
    code, _, err = run(capsys, "example", "azure-h100", "--out", tmp_path)
    assert code == 2 and "directory" in err
