"""A corpus of bad inputs: every one exits 2 with one line naming the field, no traceback, and
no file written.

Each case is data: the files to create (a config, a catalog, a trace, a FLEET.json, a sweep),
the command line, and the field its message must name. Every case runs the CLI in-process;
a handful also run as a real process (``python -m fleetopt.report.cli``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetopt.report.cli import main

# ------------------------------------------------------------------------------------------
# building the inputs

DEL = object()  # remove a key
BASE: dict[str, Any] = {
    "workload": {"name": "azure", "rate": 100},
    "model": {"name": "llama-3.1-70b"},
    "slo": {"ttft_p99_ms": 500},
    "fleet": {"gpus": ["H100-SXM"], "tp": [8], "max_ctx": 65536},
}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return repr(v)


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml(d: dict[str, Any]) -> str:
    """A small TOML writer: top-level keys, [tables] and [[arrays of tables]] one level down."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for sec, body in d.items():
        if not isinstance(body, dict):
            continue
        lines.append(f"[{_key(sec)}]")
        arrays = {}
        for k, v in body.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                arrays[k] = v
            else:
                lines.append(f"{_key(k)} = {_value(v)}")
        for k, rows in arrays.items():
            for r in rows:
                lines.append(f"[[{_key(sec)}.{_key(k)}]]")
                lines += [f"{_key(a)} = {_value(b)}" for a, b in r.items()]
    return "\n".join(lines) + "\n"


def conf(sections: dict[str, Any] | None = None, **changes: Any) -> str:
    """BASE with ``sections`` replaced whole and ``changes`` (``"sec.key"``) set or deleted."""
    d = {k: dict(v) for k, v in BASE.items()}
    for sec, body in (sections or {}).items():
        if body is DEL:
            d.pop(sec, None)
        else:
            d[sec] = body
    for dotted, v in changes.items():
        sec, key = dotted.split("__") if "__" in dotted else (dotted, None)
        if key is None:
            d[sec] = v
        elif v is DEL:
            d.get(sec, {}).pop(key, None)
        else:
            d.setdefault(sec, {})[key] = v
    return toml(d)


def pool(**kw: Any) -> dict[str, Any]:
    d = {"ctx_lo": 0, "ctx_hi": 65536, "gpu": "H100-SXM", "tp": 8, "instances": 40,
         "dtype": "fp16"}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not DEL}


GPU_H100_FULL = """
hbm_gb = 80.0
hbm_bw_tb_s = 3.35
fp16_tflops = 989.0
fp8_tflops = 1979.0
tdp_w = 700.0
price_per_gpu_hr = 2.0
power_idle_w = 100.0
power_plateau_w = 600.0
power_slope = 1.0
power_midpoint_log2 = 4.2
"""

CSV_OK = "input_tokens,output_tokens,arrival_s\n100,20,0.0\n200,40,0.5\n300,60,1.0\n"


@dataclass
class Case:
    id: str
    argv: str  # {d}: the case's folder
    field: str  # must appear in the message
    files: dict[str, str] = field(default_factory=dict)
    hint: str = ""  # another string the message must hold


def cfg_case(id: str, body: str, fld: str, hint: str = "", *, cmd: str = "evaluate",
             **files: str) -> Case:
    return Case(id, f"{cmd} {{d}}/c.toml", fld, {"c.toml": body, **files}, hint)


def trace_case(id: str, name: str, text: str, fld: str = "workload.trace", hint: str = "",
               **wl: Any) -> Case:
    return cfg_case(id, conf({"workload": {"trace": name, "rate": 10, **wl}},
                             fleet__max_ctx=8192), fld, hint=hint, **{name: text})


CASES: list[Case] = [
    # --- [workload] --------------------------------------------------------------------
    cfg_case("wl-rate-zero", conf(workload__rate=0), "workload.rate"),
    cfg_case("wl-rate-string", conf(workload__rate="fast"), "workload.rate"),
    cfg_case("wl-rate-huge", conf(workload__rate=1e300), "workload.rate", "at most"),
    cfg_case("wl-two-sources", conf(workload__trace="t.csv"), "workload", "exactly one"),
    cfg_case("wl-unknown-name", conf(workload__name="azur"), "workload.name", "Did you mean"),
    cfg_case("wl-name-not-string", conf(workload__name=5), "workload.name"),
    cfg_case("wl-unknown-key", conf(workload__rat=5), "workload", "unknown keys"),
    cfg_case("wl-cdf-without-rate", conf({"workload": {"cdf": "c.json"}}), "workload.rate",
             **{"c.json": "[[1000, 0.5], [4000, 1.0]]"}),
    cfg_case("wl-cdf-name-without-rate", conf(workload__rate=DEL), "workload.rate"),
    cfg_case("wl-timestamp-unit-bad", conf({"workload": {"trace": "t.csv",
                                                          "timestamp_unit": "h"}},
                                           fleet__max_ctx=8192),
             "workload.timestamp_unit", **{"t.csv": CSV_OK}),
    cfg_case("wl-timestamp-unit-on-name", conf(workload__timestamp_unit="ms"),
             "workload.timestamp_unit"),
    cfg_case("wl-over-max-ctx-bad", conf(workload__over_max_ctx="clip"), "workload.over_max_ctx"),
    cfg_case("wl-input-fraction-trace", conf({"workload": {"trace": "t.csv",
                                                            "input_fraction": 0.7}},
                                             fleet__max_ctx=8192),
             "workload.input_fraction", **{"t.csv": CSV_OK}),
    cfg_case("wl-input-fraction-histogram", conf({"workload": {"name": "azure-conv-2023",
                                                                "rate": 100,
                                                                "input_fraction": 0.7}}),
             "workload.input_fraction", "own split"),
    cfg_case("wl-input-fraction-range", conf(workload__input_fraction=1.5),
             "workload.input_fraction"),
    cfg_case("wl-longer-than-model", conf(workload__name="lmsys", model__name="mixtral-8x7b",
                                          fleet__tp=[4], fleet__max_ctx=DEL),
             "workload", "over_max_ctx"),
    cfg_case("wl-longer-than-max-ctx", conf(fleet__max_ctx=8192), "fleet.max_ctx",
             "over_max_ctx"),
    cfg_case("wl-not-a-table", conf(workload=5), "workload", "table"),
    # --- [model] -----------------------------------------------------------------------
    cfg_case("model-unknown", conf(model__name="llama-3-70b"), "model.name"),
    cfg_case("model-dtype-unknown", conf(model__dtype="fp12"), "model.dtype"),
    cfg_case("model-dtype-empty", conf(model__dtype=[]), "model.dtype"),
    cfg_case("model-unknown-key", conf(model__dtypes="fp8"), "model", "unknown keys"),
    cfg_case("model-kv-dtype-conflict", conf(model__kv_dtype="fp8", fleet__kv_dtype="fp16"),
             "kv_dtype"),
    cfg_case("model-kv-dtype-unknown", conf(model__kv_dtype="fp3"), "model.kv_dtype"),
    # --- [slo] -------------------------------------------------------------------------
    cfg_case("slo-negative", conf(slo__ttft_p99_ms=-5), "slo.ttft_p99_ms"),
    cfg_case("slo-quantile", conf(slo__quantile=1.5), "slo.quantile"),
    cfg_case("slo-peak-word", conf(slo__peak_factor="high"), "slo.peak_factor"),
    cfg_case("slo-peak-auto-no-timestamps", conf(slo__peak_factor="auto"), "slo.peak_factor",
             "timestamps"),
    cfg_case("slo-peak-auto-global-no-timestamps", conf(slo__peak_factor="auto-global"),
             "slo.peak_factor", "timestamps"),
    cfg_case("slo-peak-range", conf(slo__peak_factor=20), "slo.peak_factor"),
    cfg_case("slo-tail-share", conf(slo__prefill_tail_share=2), "slo.prefill_tail_share"),
    cfg_case("slo-unknown-key", conf(slo__ttft_p99=5), "slo", "unknown keys"),
    # --- [fleet] -----------------------------------------------------------------------
    cfg_case("fleet-unknown-gpu", conf(fleet__gpus=["H100-SMX"]), "fleet.gpus", "Did you mean"),
    cfg_case("fleet-tp-3", conf(fleet__tp=[3]), "fleet.tp"),
    cfg_case("fleet-tp-string", conf(fleet__tp=["8"]), "fleet.tp"),
    cfg_case("fleet-max-pools-zero", conf(fleet__max_pools=0), "fleet.max_pools"),
    cfg_case("fleet-max-pools-bool", conf(fleet__max_pools=True), "fleet.max_pools"),
    cfg_case("fleet-boundaries-order", conf(fleet__boundaries=[4096, 1024]),
             "fleet.boundaries", "increasing"),
    cfg_case("fleet-boundaries-repeat", conf(fleet__boundaries=[1024, 1024, 2048]),
             "fleet.boundaries", "repeats"),
    cfg_case("fleet-boundaries-range", conf(fleet__boundaries=[1024, 70000]), "fleet.boundaries"),
    cfg_case("fleet-boundaries-text", conf(fleet__boundaries=["a"]), "fleet.boundaries"),
    cfg_case("fleet-util-cap", conf(fleet__utilization_cap=1.5), "fleet.utilization_cap"),
    cfg_case("fleet-gamma", conf(fleet__compress_gamma=3), "fleet.compress_gamma"),
    cfg_case("fleet-max-ctx-beyond-model", conf(fleet__max_ctx=200000), "fleet.max_ctx"),
    cfg_case("fleet-max-gpus", conf(fleet__max_gpus=0), "fleet.max_gpus"),
    cfg_case("fleet-profile-tp", conf(fleet__gpus=["1w-law-h100"], fleet__tp=[4]), "fleet.tp",
             "TP8"),
    cfg_case("fleet-profile-dtype", conf(fleet__gpus=["1w-law-h100"], model__dtype="fp8"),
             "model.dtype", "fp16"),
    cfg_case("fleet-unknown-key", conf(fleet__gpu=["B200"]), "fleet", "unknown keys"),
    cfg_case("fleet-does-not-fit", conf(fleet__gpus=["L40S"], fleet__tp=[1]), "fleet.gpus",
             "would fit at"),
    # --- [[fleet.pool]] ------------------------------------------------------------------
    cfg_case("pool-missing-key", conf(fleet__pool=[pool(instances=DEL)]), "fleet.pools[0]",
             "instances"),
    cfg_case("pool-misspelt-key", conf(fleet__pool=[pool(dtype=DEL, dtyp="fp8")]),
             "fleet.pools[0].dtyp", "did you mean 'dtype'"),
    cfg_case("pool-dtype-ambiguous", conf(model__dtype=["fp16", "fp8"],
                                          fleet__pool=[pool(dtype=DEL)]),
             "fleet.pools[0].dtype", "fp16, fp8"),
    cfg_case("pool-not-contiguous", conf(fleet__pool=[pool(ctx_hi=4096),
                                                      pool(ctx_lo=8192)]),
             "fleet.pools[1].ctx_lo"),
    cfg_case("pool-tp-word", conf(fleet__pool=[pool(tp="eight")]), "fleet.pools[0].tp"),
    cfg_case("pool-too-short", conf(fleet__pool=[pool(ctx_hi=8192)]), "fleet.pools[0].ctx_hi",
             "over_max_ctx"),
    cfg_case("pool-not-tables", conf(fleet__pool=5), "fleet.pool"),
    # --- [budget] [inventory] [objective] [accounting] [physics] -------------------------
    cfg_case("budget-negative", conf(budget={"cost_per_hr": -1}), "budget.cost_per_hr"),
    cfg_case("budget-word", conf(budget={"cost_per_hr": "lots"}), "budget.cost_per_hr"),
    cfg_case("budget-unknown-key", conf(budget={"cost": 5}), "budget", "unknown keys"),
    cfg_case("inventory-negative", conf(inventory={"H100-SXM": -1}), "inventory.H100-SXM"),
    cfg_case("inventory-fraction", conf(inventory={"H100-SXM": 1.5}), "inventory.H100-SXM"),
    cfg_case("inventory-unknown-gpu", conf(inventory={"B300": 3}), "inventory.B300"),
    cfg_case("objective-unknown", conf(objective={"minimize": "speed"}), "objective.minimize"),
    cfg_case("objective-unknown-key", conf(objective={"maximize": "power"}), "objective",
             "unknown keys"),
    cfg_case("accounting-mode", conf(accounting={"mode": "virtual"}), "accounting.mode"),
    cfg_case("accounting-mode-type", conf(accounting={"mode": 5}), "accounting.mode"),
    cfg_case("physics-type", conf(physics={"mem_efficiency": "x"}), "physics.mem_efficiency"),
    cfg_case("physics-range", conf(physics={"block_tokens": 0}), "physics.block_tokens"),
    cfg_case("physics-overhead-huge", conf(physics={"overhead_s": 1e300}), "physics.overhead_s"),
    cfg_case("physics-unknown-key", conf(physics={"mem_eff": 0.5}), "physics", "unknown keys"),
    # --- config file and catalog key -----------------------------------------------------
    cfg_case("config-unknown-section", conf(fleeet={"x": 1}), "CONFIG", "unknown sections"),
    cfg_case("config-malformed", "[workload\nname=", "CONFIG", "not valid TOML"),
    Case("config-missing", "evaluate {d}/nope.toml", "CONFIG", hint="no such file"),
    cfg_case("catalog-key-type", conf(catalog=5), "catalog"),
    cfg_case("catalog-missing-file", conf(catalog="nope.toml"), "catalog", "not found"),
    # --- catalog TOML --------------------------------------------------------------------
    cfg_case("cat-gpu-type", conf(catalog="cat.toml"), "catalog.gpu.H100-SXM.hbm_gb",
             **{"cat.toml": '[gpu.H100-SXM]\nhbm_gb = "80"\n'}),
    cfg_case("cat-gpu-negative-hbm", conf(catalog="cat.toml"), "gpu.H100-SXM.hbm_gb",
             **{"cat.toml": "[gpu.H100-SXM]\nhbm_gb = -80\n"}),
    cfg_case("cat-gpu-zero-bandwidth", conf(catalog="cat.toml"), "gpu.H100-SXM.hbm_bw_tb_s",
             **{"cat.toml": "[gpu.H100-SXM]\nhbm_bw_tb_s = 0\n"}),
    cfg_case("cat-gpu-negative-price", conf(catalog="cat.toml"), "gpu.b200.price_per_gpu_hr",
             **{"cat.toml": "[gpu.b200]\nprice_per_gpu_hr = -1.0\n"}),
    cfg_case("cat-gpu-huge", conf(catalog="cat.toml"), "gpu.H100-SXM.tdp_w", "to 1e+09",
             **{"cat.toml": "[gpu.H100-SXM]\ntdp_w = 1e300\n"}),
    cfg_case("cat-gpu-tiny-bandwidth", conf(catalog="cat.toml"), "gpu.H100-SXM.hbm_bw_tb_s",
             **{"cat.toml": "[gpu.H100-SXM]\nhbm_bw_tb_s = 1e-300\n"}),
    cfg_case("cat-gpu-max-tp", conf(catalog="cat.toml"), "gpu.H100-SXM.max_tp",
             **{"cat.toml": "[gpu.H100-SXM]\nmax_tp = 3\n"}),
    cfg_case("cat-new-gpu-missing", conf(catalog="cat.toml"), "gpu.MyGPU", "missing: hbm_bw_tb_s",
             **{"cat.toml": "[gpu.MyGPU]\nhbm_gb = 80.0\n"}),
    cfg_case("cat-gpu-unknown-field", conf(catalog="cat.toml"), "gpu.H100-SXM.hbmgb",
             "did you mean 'hbm_gb'", **{"cat.toml": "[gpu.H100-SXM]\nhbmgb = 80\n"}),
    cfg_case("cat-gpu-power-order", conf(catalog="cat.toml"), "gpu.H100-SXM.power_plateau_w",
             **{"cat.toml": "[gpu.H100-SXM]\npower_idle_w = 500\npower_plateau_w = 400\n"}),
    cfg_case("cat-gpu-alias-clash", conf(catalog="cat.toml"), "gpu.Mine.aliases", "H100-SXM",
             **{"cat.toml": "[gpu.Mine]\naliases = [\"h100\"]\n" + GPU_H100_FULL}),
    cfg_case("cat-model-dotted-name", conf(catalog="cat.toml"), "model.llama-3", "quoted",
             **{"cat.toml": "[model.llama-3.1-70b]\nmax_context = 8192\n"}),
    cfg_case("cat-model-active-gt-total", conf(catalog="cat.toml"),
             "model.llama-3.1-70b.params_active_b",
             **{"cat.toml": '[model."llama-3.1-70b"]\nparams_active_b = 99.0\n'}),
    cfg_case("cat-model-layers-fraction", conf(catalog="cat.toml"), "model.llama-3.1-70b.layers",
             **{"cat.toml": '[model."llama-3.1-70b"]\nlayers = 80.5\n'}),
    cfg_case("cat-profile-tp", conf(catalog="cat.toml"), "profile.1w-law-h100.tp",
             **{"cat.toml": "[profile.1w-law-h100]\ntp = 3\n"}),
    cfg_case("cat-profile-negative-price", conf(catalog="cat.toml"),
             "profile.1w-law-h100.price_per_gpu_hr",
             **{"cat.toml": "[profile.1w-law-h100]\nprice_per_gpu_hr = -4.0\n"}),
    cfg_case("cat-unknown-table", conf(catalog="cat.toml"), "catalog", "unknown top-level",
             **{"cat.toml": "[gpus.H100-SXM]\nhbm_gb = 80\n"}),
    cfg_case("cat-gpu-not-table", conf(catalog="cat.toml"), "catalog.gpu",
             **{"cat.toml": "gpu = 5\n"}),
    # --- FLEET.json ----------------------------------------------------------------------
    Case("fleet-json-missing", "evaluate {d}/c.toml --fleet {d}/nope.json", "--fleet",
         {"c.toml": conf()}, "not found"),
    Case("fleet-json-invalid", "evaluate {d}/c.toml --fleet {d}/f.json", "--fleet",
         {"c.toml": conf(), "f.json": "[{"}, "not valid JSON"),
    Case("fleet-json-not-list", "evaluate {d}/c.toml --fleet {d}/f.json", "--fleet",
         {"c.toml": conf(), "f.json": '{"a": 1}'}, "list of pools"),
    Case("fleet-json-misspelt", "evaluate {d}/c.toml --fleet {d}/f.json", "--fleet.pools[0].dtyp",
         {"c.toml": conf(), "f.json": json.dumps([pool(dtype=DEL, dtyp="fp8")])}, "known:"),
    Case("fleet-json-dtype-ambiguous", "evaluate {d}/c.toml --fleet {d}/f.json",
         "--fleet.pools[0].dtype",
         {"c.toml": conf(model__dtype=["fp16", "fp8"]), "f.json": json.dumps([pool(dtype=DEL)])}),
    Case("fleet-json-null-key", "evaluate {d}/c.toml --fleet {d}/f.json", "--fleet.pools[0]",
         {"c.toml": conf(), "f.json": json.dumps([pool(ctx_hi=None)])}, "ctx_hi"),
    Case("fleet-json-gpu-type", "evaluate {d}/c.toml --fleet {d}/f.json", "--fleet.pools[0].gpu",
         {"c.toml": conf(), "f.json": json.dumps([pool(gpu=5)])}),
    Case("fleet-json-negative", "evaluate {d}/c.toml --fleet {d}/f.json",
         "fleet.pools[0].instances",
         {"c.toml": conf(), "f.json": json.dumps([pool(instances=-1)])}),
    Case("fleet-json-profile-tp", "evaluate {d}/c.toml --fleet {d}/f.json", "fleet.pools[0].tp",
         {"c.toml": conf(), "f.json": json.dumps([pool(gpu="1w-law-h100", tp=2)])}, "TP8"),
    Case("fleet-json-unknown-gpu", "evaluate {d}/c.toml --fleet {d}/f.json", "fleet.pools[0].gpu",
         {"c.toml": conf(), "f.json": json.dumps([pool(gpu="H100-SMX")])}),
    # --- traces: CSV ---------------------------------------------------------------------
    trace_case("csv-timestamp-word", "t.csv", "input_tokens,output_tokens,timestamp\n10,20,abc\n"
               "30,40,def\n", hint="line 2"),
    trace_case("csv-timestamp-mixed", "t.csv", "input_tokens,output_tokens,timestamp\n10,20,1.0\n"
               "30,40,soon\n", hint="line 3"),
    trace_case("csv-timestamp-nan", "t.csv", "input_tokens,output_tokens,timestamp\n10,20,1.0\n"
               "30,40,nan\n", hint="finite"),
    trace_case("csv-length-word", "t.csv", "input_tokens,output_tokens\n10,twenty\n"),
    trace_case("csv-length-negative", "t.csv", "input_tokens,output_tokens\n-10,20\n"),
    trace_case("csv-length-huge", "t.csv", "input_tokens,output_tokens\n1e300,20\n"),
    trace_case("csv-length-fraction", "t.csv", "input_tokens,output_tokens\n10.5,20\n"),
    trace_case("csv-length-missing", "t.csv", "input_tokens,output_tokens\n10\n"),
    trace_case("csv-no-output-column", "t.csv", "input_tokens,n\n10,20\n", hint="output_tokens"),
    trace_case("csv-header-only", "t.csv", "input_tokens,output_tokens\n", hint="no requests"),
    cfg_case("csv-missing-file", conf({"workload": {"trace": "nope.csv", "rate": 10}}),
             "workload.trace", "not found"),
    cfg_case("csv-no-timestamps-no-rate", conf({"workload": {"trace": "t.csv"}},
                                              fleet__max_ctx=8192),
             "workload.rate", **{"t.csv": "input_tokens,output_tokens\n10,20\n"}),
    trace_case("csv-unit-without-column", "t.csv", "input_tokens,output_tokens\n10,20\n",
               "workload.timestamp_unit", timestamp_unit="ms"),
    trace_case("csv-unit-on-datetimes", "t.csv", "input_tokens,output_tokens,timestamp\n"
               "10,20,2023-11-16 18:15:46\n30,40,2023-11-16 18:15:47\n",
               "workload.timestamp_unit", timestamp_unit="ms"),
    # --- traces: JSONL -------------------------------------------------------------------
    trace_case("jsonl-missing-key", "t.jsonl", '{"input_tokens": 10, "output_tokens": 5}\n'
               '{"input_tokens": 10}\n', hint="line 2"),
    trace_case("jsonl-not-objects", "t.jsonl", "[1, 2, 3]\n[4, 5, 6]\n", hint="JSON object"),
    trace_case("jsonl-invalid-line", "t.jsonl", '{"input_tokens": 10, "output_tokens": 5}\n{x\n',
               hint="line 2"),
    trace_case("jsonl-length-string", "t.jsonl", '{"input_length": "abc", "output_length": 5}\n'),
    trace_case("jsonl-length-null", "t.jsonl", '{"input_length": null, "output_length": 5}\n'),
    trace_case("jsonl-microseconds", "t.jsonl", '{"timestamp": 1700000000000000, '
               '"input_length": 10, "output_length": 5}\n{"timestamp": 1700000001000000, '
               '"input_length": 10, "output_length": 5}\n', hint="micro"),
    # --- CDFs ----------------------------------------------------------------------------
    cfg_case("cdf-input-fraction-string", conf({"workload": {"cdf": "c.json", "rate": 10}}),
             "input_fraction", **{"c.json": json.dumps({"knots": [[1000, 0.5], [4000, 1.0]],
                                                        "input_fraction": "a"})}),
    cfg_case("cdf-not-monotone", conf({"workload": {"cdf": "c.json", "rate": 10}}),
             "workload.cdf", "not monotone",
             **{"c.json": "[[100, 0.5], [200, 0.4], [300, 1.0]]"}),
    cfg_case("cdf-not-ending-at-1", conf({"workload": {"cdf": "c.json", "rate": 10}}),
             "workload.cdf", "must end at 1", **{"c.json": "[[100, 0.5], [200, 0.9]]"}),
    cfg_case("cdf-two-input-fractions", conf({"workload": {"cdf": "c.json", "rate": 10,
                                                           "input_fraction": 0.7}}),
             "workload.input_fraction", "remove one",
             **{"c.json": json.dumps({"knots": [[1000, 1.0]], "input_fraction": 0.8})}),
    cfg_case("cdf-unknown-key", conf({"workload": {"cdf": "c.json", "rate": 10}}),
             "workload.cdf", "unknown keys", **{"c.json": json.dumps({"knot": [[1000, 1.0]]})}),
    cfg_case("cdf-not-json", conf({"workload": {"cdf": "c.json", "rate": 10}}), "workload.cdf",
             **{"c.json": "[[1000, 1.0]"}),
    cfg_case("cdf-not-pairs", conf({"workload": {"cdf": "c.json", "rate": 10}}), "workload.cdf",
             **{"c.json": "[[1000, 0.5, 3], [2000, 1.0, 3]]"}),
    cfg_case("cdf-histogram-file", conf({"workload": {"cdf": "c.json", "rate": 10}}),
             "workload.cdf", "not a CDF", **{"c.json": json.dumps({"kind": "histogram",
                                                                   "points": []})}),
    # --- sweep TOML ----------------------------------------------------------------------
    Case("sweep-no-base", "study sweep {d}/s.toml", "sweep.base", {"s.toml": "[grid]\n"
                                                                     "rate_rps = [100]\n"}),
    Case("sweep-unknown-key", "study sweep {d}/s.toml", "sweep",
         {"s.toml": 'base = "paper-azure"\ngrids = 1\n'}, "unknown key"),
    Case("sweep-grid-unknown-key", "study sweep {d}/s.toml", "grid",
         {"s.toml": 'base = "paper-azure"\n[grid]\nrate = [100]\n'}, "rate_rps"),
    Case("sweep-grid-not-list", "study sweep {d}/s.toml", "grid.rate_rps",
         {"s.toml": 'base = "paper-azure"\n[grid]\nrate_rps = 100\n'}),
    Case("sweep-scenario-rate", "study sweep {d}/s.toml", "scenario[0].rate_rps",
         {"s.toml": 'base = "paper-azure"\n[[scenario]]\nrate_rps = -1\n'}),
    Case("sweep-scenario-gpu", "study sweep {d}/s.toml", "scenario[0].gpus",
         {"s.toml": 'base = "paper-azure"\n[[scenario]]\ngpus = ["H100-SMX"]\n'}),
    Case("sweep-time-limit-type", "study sweep {d}/s.toml", "solve.time_limit",
         {"s.toml": 'base = "paper-azure"\n[solve]\ntime_limit = "x"\n'}),
    Case("sweep-compress-type", "study sweep {d}/s.toml", "solve.compress",
         {"s.toml": 'base = "paper-azure"\n[solve]\ncompress = "no"\n'}),
    Case("sweep-seed-negative", "study sweep {d}/s.toml", "simulate.seed",
         {"s.toml": 'base = "paper-azure"\n[simulate]\nseed = -1\n'}),
    Case("sweep-enabled-type", "study sweep {d}/s.toml", "simulate.enabled",
         {"s.toml": 'base = "paper-azure"\n[simulate]\nenabled = "yes"\n'}),
    Case("sweep-clash", "study sweep {d}/s.toml", "scenario[0]",
         {"s.toml": 'base = "paper-azure"\n[grid]\nmax_pools = [2]\n[[scenario]]\nmax_pools = 3\n'},
         "one place"),
    Case("sweep-malformed", "study sweep {d}/s.toml", "SWEEP", {"s.toml": "base = \n"}),
    Case("sweep-base-missing", "study sweep {d}/s.toml", "sweep.base",
         {"s.toml": 'base = "nope.toml"\n'}),
    Case("sweep-out-unwritable", "study sweep {d}/s.toml --executor sequential --out "
         "/proc/fleetopt-corpus.csv", "--out",
         {"s.toml": 'base = "paper-azure"\n[grid]\nrate_rps = [100]\n'}),
    Case("sweep-out-suffix", "study sweep {d}/s.toml --out {d}/r.txt", "--out",
         {"s.toml": 'base = "paper-azure"\n'}),
    # --- CLI flags -----------------------------------------------------------------------
    Case("flag-time-limit-negative", "solve azure-h100 --time-limit -1", "--time-limit"),
    Case("flag-time-limit-word", "solve azure-h100 --time-limit abc", "--time-limit"),
    Case("flag-time-limit-nan", "compare azure-h100 --time-limit nan", "--time-limit"),
    Case("flag-mip-gap", "solve azure-h100 --mip-gap -0.1", "--mip-gap"),
    Case("flag-threads", "solve azure-h100 --threads 0", "--threads"),
    Case("flag-seed-negative", "simulate azure-h100 --seed -1", "--seed"),
    Case("flag-requests-zero", "simulate azure-h100 --requests 0", "--requests"),
    Case("flag-requests-huge", "simulate azure-h100 --requests 100000000000", "--requests"),
    Case("flag-threads-huge", "solve azure-h100 --threads 100000000", "--threads"),
    Case("flag-format", "evaluate azure-h100 --format xml", "--format"),
    Case("flag-replay-cdf", "simulate azure-h100 --replay --requests 200", "--replay"),
    Case("flag-budgets", "study procurement azure-h100 --budgets a:b", "--budgets"),
    Case("flag-inventory", "study procurement azure-h100 --budgets 100 --inventory B200",
         "--inventory"),
    Case("flag-workers", "study sweep sweep-example --workers 0", "--workers"),
    Case("flag-scheduler", "study sweep sweep-example --scheduler tcp://x:1", "--scheduler"),
    Case("flag-unknown-command", "solv azure-h100", "command", hint="invalid choice"),
    Case("flag-missing-config", "solve", "config", hint="required"),
    Case("flag-unknown-flag", "solve azure-h100 --time-limt 3", "--time-limt"),
    Case("flag-out-folder", "evaluate azure-h100 --out {d}/no/x.json", "--out",
         hint="does not exist"),
    Case("flag-plot-folder", "compare azure-h100 --plot {d}/no/x.png", "--plot"),
]

_OUT_COMMANDS = {"evaluate": "out.json", "solve": "out.json", "compare": "out.json",
                 "simulate": "out.json", "procurement": "out.json", "sweep": "out.csv"}


def _argv(case: Case, d: Path) -> tuple[list[str], Path | None]:
    argv = case.argv.format(d=d).split()
    out = None
    cmd = argv[1] if argv[0] == "study" and len(argv) > 1 else argv[0]
    if cmd in _OUT_COMMANDS and "--out" not in argv:
        out = d / _OUT_COMMANDS[cmd]
        argv += ["--out", str(out)]
    return argv, out


def _setup(case: Case, tmp_path: Path) -> tuple[list[str], Path | None, set[Path]]:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    argv, out = _argv(case, tmp_path)
    return argv, out, set(tmp_path.rglob("*"))


def _check(case: Case, code: int, out: str, err: str, out_file: Path | None, before: set[Path],
           tmp_path: Path) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in out + err
    assert err.startswith("fleetopt: error: ") and err.count("\n") == 1, err
    assert case.field in err, err
    assert case.hint in err, err
    if out_file is not None:
        assert not out_file.exists()
    assert set(tmp_path.rglob("*")) == before  # nothing written (no checkpoint, no temp file)
    assert not Path("/proc/fleetopt-corpus.csv.checkpoint.jsonl").exists()


def test_the_corpus_is_large_and_covers_every_kind_of_input():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    prefixes = {i.split("-")[0] for i in ids}
    assert {"wl", "model", "slo", "fleet", "pool", "budget", "inventory", "objective",
            "accounting", "physics", "cat", "config", "csv", "jsonl", "cdf", "sweep",
            "flag"} <= prefixes


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_in_process(case: Case, tmp_path: Path, capsys: Any) -> None:
    argv, out_file, before = _setup(case, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    _check(case, code, out, err, out_file, before, tmp_path)


_SUBPROCESS = ["jsonl-not-objects", "csv-timestamp-word", "cat-gpu-type", "flag-seed-negative",
               "flag-time-limit-word", "pool-misspelt-key", "sweep-out-unwritable"]


@pytest.mark.parametrize("case_id", _SUBPROCESS)
def test_bad_input_in_a_real_process(case_id: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    argv, out_file, before = _setup(case, tmp_path)
    r = subprocess.run([sys.executable, "-m", "fleetopt", *argv], capture_output=True,
                       text=True, timeout=300)
    _check(case, r.returncode, r.stdout, r.stderr, out_file, before, tmp_path)


# ------------------------------------------------------------------------------------------
# internal errors: exit 1, one line saying it is a bug; --debug shows the traceback


def _boom(_args: Any) -> int:
    raise ZeroDivisionError("float division by zero\nsecond line")


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_is_one_line_unless_debug(monkeypatch, capsys, debug):
    import fleetopt.report.cli as cli

    monkeypatch.setattr(cli, "cmd_catalog", _boom)
    argv = (["--debug"] if debug else []) + ["catalog"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("fleetopt: internal error (this is a bug in fleetopt): "
                           "ZeroDivisionError: float division by zero second line")
    assert "report" in last
    if debug:
        assert "Traceback" in err and "_boom" in err
    else:
        assert "Traceback" not in err and err.count("\n") == 1 and "--debug" in err


def test_debug_anywhere_shows_the_traceback_of_an_input_error(capsys):
    code = main(["solve", "azure-h100", "--time-limit", "-1", "--debug"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and err.rstrip().endswith("got -1")


def test_help_and_version_exit_0(capsys):
    assert main(["--version"]) == 0
    assert main(["solve", "--help"]) == 0
    assert "--time-limit" in capsys.readouterr().out
