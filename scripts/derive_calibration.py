#!/usr/bin/env python
"""Derive the step-model and power calibration shipped in ``fleetopt/data``.

Run from the repository root (deterministic: no random numbers, fixed quadrature; numpy and
scipy only; about 10 minutes with the leave-one-model-out refits, 1 without)::

    python scripts/derive_calibration.py --shared ../shared [--no-lomo]

Reads

* ``<shared>/data/mlenergy-leaderboard/*.json`` (ML.ENERGY leaderboard v3, task
  lm-arena-chat, Apache-2.0): measured median ITL, steady-state output throughput, mean
  running batch and steady-state power of vLLM deployments on H100 and B200;
* ``fleetopt/data/aic_estimates.json.gz`` (``scripts/aic_export.py --all``: AIConfigurator's
  decode-step and prefill estimates per (model, GPU, TP/EP, dtype), split into GEMM /
  attention / communication / other; Apache-2.0);
* the package's catalog (GPU peaks, model shapes) and formulas
  (:mod:`fleetopt.physics.iteration`, :mod:`fleetopt.physics.power`,
  :mod:`fleetopt.physics.fidelity`: one formula, shared with the package);

and writes

* ``fleetopt/data/mlenergy_configs.json``: the measurement table (every configuration, with
  provenance and the fitted workload parameter ``Lp``);
* ``fleetopt/data/calibration.json``: per GPU the end-to-end step parameters (``step``), the
  AIC kernel parameters (``kernel``), the power coefficients (``power``) and the idle power,
  each with quality, source, licence, derivation, fit and leave-one-model-out errors;
* the calibration section of ``docs/data.md`` (everything after its
  ``<!-- derive_calibration -->`` line).

Fits (``scipy.optimize.least_squares`` on log ratios; deterministic):

1. ``kernel`` set per GPU: each step sub-term fitted to the matching AIC op category
   (GEMM, attention, communication, other) over every model and TP/EP degree AIC covers on
   that GPU, decode and prefill weighted equally (:func:`fit_aic`); MLA models are validated
   only (AIC fuses MLA's GEMMs and attention).
2. ``mlenergy`` set, H100 and B200: ``eta_bw`` (bf16, fp8), ``eta_moe`` (bf16),
   ``t_layer`` (fp8_block), ``t_host``, ``t_seq`` free per GPU plus the workload's ``Lp``,
   everything else from the GPU's kernel set; targets: median ITL and throughput of every
   configuration through :func:`fleetopt.physics.fidelity.predict` (:func:`fit_mlenergy`).
3. power per GPU: ``b0, b_c, b_m, b_x, b_s >= 0`` of the ``busy_sat`` form with idle power
   (``IDLE_W``) and TDP fixed, on the ``mlenergy`` step model's activity at each measured
   operating point, robust Cauchy loss (:func:`fit_power`).
4. leave-one-model-out refits of 1 (per AIC model) and of 2 and 3 (per ML.ENERGY model).
5. GPUs without measurements: ``projected`` (the same generation's measured GPU's end-to-end /
   kernel ratios on this GPU's kernel set; power: its dimensionless coefficients with this
   GPU's idle power and TDP).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from fleetopt.physics import fidelity as fid
from fleetopt.physics import kv as kvm
from fleetopt.physics.catalog import default_catalog
from fleetopt.physics.catalog.specs import GIB, ModelSpec
from fleetopt.physics.iteration import (
    StepCoefficients,
    StepParams,
    step_coefficients,
    step_precision,
)
from fleetopt.physics.power import Activity, ActivityPower

REPO = Path(__file__).resolve().parent.parent
PKG_DATA = REPO / "fleetopt" / "data"
AIC_FILE = PKG_DATA / "aic_estimates.json.gz"
DERIVATION = "scripts/derive_calibration.py"
DOCS_MARK = "<!-- derive_calibration -->"

WEIGHT_KEYS = ("bf16", "fp8", "fp8_block")  # precisions with data (AIC, ML.ENERGY)
PER_DTYPE = ("eta_bw", "eta_moe", "eta_cd", "eta_cp", "eta_mc", "t_layer")
SCALAR = ("eta_kv", "eta_ad", "eta_ap", "t0", "t_host", "t_seq", "bw_ar", "bw_ar_hi", "m_ar",
          "lat_ar")

# ML.ENERGY model id -> (catalog model, deployment dtype, label)
MLE_MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": ("llama-3.1-8b", "bf16", "Llama-3.1-8B"),
    "meta-llama/Llama-3.1-70B-Instruct": ("llama-3.1-70b", "bf16", "Llama-3.1-70B"),
    "meta-llama/Llama-3.1-405B-Instruct-FP8": ("llama-3.1-405b", "fp8", "Llama-3.1-405B-FP8"),
    "Qwen/Qwen3-8B": ("qwen3-8b", "bf16", "Qwen3-8B"),
    "Qwen/Qwen3-235B-A22B-Instruct-2507": ("qwen3-235b-a22b-instruct-2507", "bf16",
                                           "Qwen3-235B"),
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": ("qwen3-235b-a22b-instruct-2507", "fp8",
                                               "Qwen3-235B-FP8"),
}
MLE_GPU = {"H100": "H100-SXM", "B200": "B200"}
# ML.ENERGY sends its 1,024-request list num_request_repeats times for the large max_num_seqs
# runs (ml-energy/benchmark c1d6557, configs/vllm/lm-arena-chat/<model>/<GPU>/sweeps.yaml)
REPEATS = {
    ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "B200"): {256: 2, 512: 2},
    ("Qwen/Qwen3-235B-A22B-Instruct-2507", "B200"): {512: 2, 1024: 2, 1536: 3, 2048: 3,
                                                     3072: 4, 4096: 6},
    ("Qwen/Qwen3-8B", "B200"): {256: 2, 512: 2, 1024: 4, 1536: 4, 2048: 6},
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "B200"): {768: 2, 1024: 2},
    ("meta-llama/Llama-3.1-70B-Instruct", "H100"): {512: 2, 768: 2, 1024: 2, 1536: 3, 2048: 3},
    ("meta-llama/Llama-3.1-70B-Instruct", "B200"): {512: 2, 1024: 2, 1536: 3, 2048: 3, 3072: 5},
    ("meta-llama/Llama-3.1-8B-Instruct", "H100"): {256: 2, 384: 2, 512: 2, 768: 3, 1024: 3},
    ("meta-llama/Llama-3.1-8B-Instruct", "B200"): {128: 2, 256: 2, 512: 3, 1024: 4, 2048: 8,
                                                   4096: 16},
}
#: the benchmark's engine and workload (ml-energy/benchmark c1d6557)
BENCHMARK = {
    "engine": "vLLM V1 (vllm serve --tensor-parallel-size <num_gpus>, + --enable-expert-parallel "
              "for mixtures of experts; max-num-batched-tokens 8192, max-model-len 20480, "
              "async scheduling, prefix caching on)",
    "workload": "lm-arena-chat: 1,024 requests (x num_request_repeats) sent at once, one turn "
                "of an LMArena conversation each",
    "n_requests": 1024, "n_between_repeats": 1024, "max_num_batched_tokens": 8192,
    "gpu_memory_utilization": 0.90, "reserve_bytes": 4e9, "block_tokens": 16,
}
STARVED_RATIO = 1.3  # model / measured throughput at or above: the GPU waits on the host

SOURCES = {
    "mlenergy": {"source": "ML.ENERGY leaderboard v3 (ml-energy/leaderboard public/data/models/, "
                           "task lm-arena-chat; benchmark configs ml-energy/benchmark c1d6557)",
                 "licence": "Apache-2.0"},
    "aic": {"source": "AIConfigurator (aiconfigurator-core 0.12.0, NVIDIA, "
                      "github.com/ai-dynamo/aiconfigurator), vLLM kernel databases (0.24.0; "
                      "0.14.0 on A100), SILICON mode; fleetopt/data/aic_estimates.json.gz",
            "licence": "Apache-2.0"},
}

BOUNDS = {
    "eta_bw": (0.2, 1.0), "eta_cd": (0.05, 1.0), "eta_cp": (0.05, 1.0), "eta_kv": (0.1, 1.0),
    "eta_ad": (0.02, 1.0), "eta_ap": (0.02, 1.0), "t0": (0.0, 0.02), "t_layer": (0.0, 1e-3),
    "t_seq": (0.0, 2e-4), "bw_ar": (2e9, 2e12), "lat_ar": (0.0, 1e-4), "Lp": (50.0, 6000.0),
    "t_host": (0.0, 0.05), "bw_ar_hi": (2e9, 2e12), "m_ar": (1e4, 1e9),
    "tau_g": (0.0, 5e-4), "tau_a": (0.0, 1e-4), "tau_o": (0.0, 1e-4), "eta_moe": (0.02, 1.0),
    "eta_mc": (0.02, 1.0),
}
INIT = {
    "eta_bw": 0.75, "eta_cd": 0.6, "eta_cp": 0.6, "eta_kv": 0.8, "eta_ad": 0.3, "eta_ap": 0.4,
    "t0": 5e-4, "t_layer": 1e-5, "t_seq": 0.0, "bw_ar": 3e11, "lat_ar": 5e-6, "Lp": 800.0,
    "t_host": 0.0, "bw_ar_hi": 4e11, "m_ar": 4e6, "tau_g": 5e-6, "tau_a": 5e-6,
    "tau_o": 5e-6, "eta_moe": 0.6, "eta_mc": 0.4,
}

# Idle draw of a GPU that runs no kernel (an instance with no iteration; also the power model's
# draw during latency floors and host-bound time). ML.ENERGY has no idle points: public
# nvidia-smi / rocm-smi readings of idle GPUs (P0, no load), rounded; quality "projected".
IDLE_W = {
    "H100-SXM": (75.0, "nvidia-smi of idle H100 80GB HBM3 (P0, 0 MiB used): 68-73 W in several "
                       "public dumps, e.g. a Kubernetes/Ray-cluster README of "
                       "nebius/nebius-solution-library (8 x H100 80GB HBM3 at 69-72 W / 700 W)"),
    "H200-SXM": (75.0, "nvidia-smi of idle H200 141GB (P0, 0-1 MiB): 73-76 W in public dumps "
                       "(some show 120-122 W with a process attached)"),
    "B200": (140.0, "nvidia-smi of idle B200 (P0, 0 MiB): 136-142 W (modal-labs/gpu-glossary "
                    "host-software/nvidia-smi.md, 8 GPUs); 137 W air-cooled B200 idle quoted in "
                    "ROCm/legacy-rocm-build issue #5219"),
    "GB200": (165.0, "nvidia-smi of idle GB200 (P0, 0-2 MiB): 156-181 W in public dumps"),
    "A100-SXM": (60.0, "nvidia-smi of idle A100-SXM4-80GB (P0, 0-4 MiB): 54-65 W in public "
                       "dumps"),
    "L40S": (35.0, "nvidia-smi of idle L40S: 22-34 W in P8; 83-105 W in P0 with a CUDA context "
                   "(memory allocated, 0 % util): a loaded but idle vLLM instance is nearer the "
                   "latter"),
    "MI300X": (140.0, "no clean idle reading found; rocm-smi of an MI300X with 95 % VRAM used "
                      "and 0 % GPU: 191 W socket power (ROCm/legacy-rocm-build issue #5231); "
                      "140 W (19 % of its TDP, like B200's 136-142 W) assumed for a GPU running "
                      "no kernel"),
}
POWER_COEFS = ("b0", "b_c", "b_m", "b_x", "b_s")
POWER_FEATS = {"b_c": "u_c", "b_m": "u_m", "b_x": "f_floor_x", "b_s": "f_seq"}
POWER_LOSS = ("cauchy", 0.05)
#: reference GPU (with ML.ENERGY data) whose end-to-end / kernel ratios a GPU inherits
PROJECTION_REF = {"H200-SXM": "H100-SXM", "GB200": "B200", "A100-SXM": "H100-SXM",
                  "L40S": "H100-SXM", "MI300X": "H100-SXM"}
DEFAULT_GPU = "H100-SXM"


def sig(x: float, n: int = 5) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{n}g}")


def rounded(p: Any, n: int = 4) -> Any:
    if isinstance(p, dict):
        return {k: rounded(v, n) for k, v in p.items() if v is not None}
    if isinstance(p, float):
        return sig(p, n)
    return p


# ----------------------------------------------------------------------------------------
# parameters (dicts while fitting; StepParams to evaluate)


class Space:
    """Free parameters: (group, name, precision | None); packs and unpacks vectors."""

    def __init__(self, keys: list[tuple[str, str, str | None]], init: dict | None = None,
                 bounds: dict | None = None) -> None:
        self.keys = keys
        self.init = init or {}
        self.kbounds = bounds or {}

    def x0(self) -> np.ndarray:
        out = []
        for k in self.keys:
            v = self.init.get(k, INIT[k[1]])
            lo, hi = self.kbounds.get(k, BOUNDS[k[1]])
            out.append(min(max(v, lo * 1.0001 + 1e-12), hi * 0.9999))
        return np.array(out, dtype=float)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.kbounds.get(k, BOUNDS[k[1]])[0] for k in self.keys])
        hi = np.array([self.kbounds.get(k, BOUNDS[k[1]])[1] for k in self.keys])
        return lo, hi

    def unpack(self, x: np.ndarray, base: dict[str, dict]) -> dict[str, dict]:
        out = {g: {n: (dict(v) if isinstance(v, dict) else v) for n, v in p.items()}
               for g, p in base.items()}
        for (g, n, q), v in zip(self.keys, x, strict=True):
            d = out.setdefault(g, {})
            if q is None:
                d[n] = float(v)
            else:
                d.setdefault(n, {})
                if not isinstance(d[n], dict):
                    d[n] = {"bf16": d[n]}
                d[n][q] = float(v)
        return out


def fill_defaults(p: dict) -> dict:
    p = dict(p)
    for n in PER_DTYPE:
        v = p.get(n, INIT[n])
        if not isinstance(v, dict):
            v = {"bf16": v}
        v = {q: x for q, x in v.items() if x is not None}
        v.setdefault("bf16", INIT[n])
        v.setdefault("fp8", v["bf16"])
        v.setdefault("fp8_block", v["fp8"])
        p[n] = v
    for n in SCALAR:
        p.setdefault(n, INIT[n])
    return p


def pd_get(p: dict, name: str, q: str) -> float:
    """A per-precision parameter with the fallback of ByPrecision (fp8_block -> fp8 -> bf16)."""
    v = p[name]
    if not isinstance(v, dict):
        return float(v)
    for key in (q, "fp8" if q == "fp8_block" else q, "bf16"):
        if v.get(key) is not None:
            return float(v[key])
    raise KeyError(f"{name}[{q}]")


def step_params(p: dict) -> StepParams:
    return StepParams.from_dict(fill_defaults(p))


# ----------------------------------------------------------------------------------------
# deployments


class Deps:
    """Catalog lookups and the step coefficients of a deployment ``(gpu, model, key, tp, ep)``
    (``key``: bf16 | fp8 | fp8_block, the step precision) at given parameters."""

    def __init__(self) -> None:
        self.cat = default_catalog()

    def model(self, name: str, key: str, scope: str | None = None) -> ModelSpec:
        m = self.cat.model(name)
        if key == "bf16":
            return m
        return replace(m, fp8_scheme="block" if key == "fp8_block" else "tensor",
                       fp8_scope=scope or m.fp8_scope)

    def coef(self, dep: tuple, params: StepParams) -> StepCoefficients:
        gpu, model, key, tp, ep, scope = dep
        m = self.model(model, key, scope)
        return step_coefficients(m, self.cat.gpu(gpu), params, tp=tp, ep=ep,
                                 dtype="bf16" if key == "bf16" else "fp8")

    def kv_capacity(self, dep: tuple, coef: StepCoefficients) -> float:
        """The benchmark's vLLM KV capacity (tokens, whole blocks)."""
        g = self.cat.gpu(dep[0])
        budget = kvm.kv_budget_bytes(hbm_bytes=g.hbm_gb * GIB,
                                     weight_bytes_per_gpu=float(coef.resident_bytes),
                                     memory_utilization=BENCHMARK["gpu_memory_utilization"],
                                     reserve_bytes=BENCHMARK["reserve_bytes"])
        return float(kvm.kv_capacity_tokens(budget_bytes=budget,
                                            kv_bytes_per_token=float(coef.kv_tok),
                                            block_tokens=BENCHMARK["block_tokens"]))


# ----------------------------------------------------------------------------------------
# AIC


def load_aic(path: Path = AIC_FILE) -> tuple[list[dict], dict]:
    obj = json.loads(gzip.decompress(path.read_bytes()))
    pts = []
    for e in obj["entries"]:
        key = "fp8_block" if e["quant"]["gemm"] == "fp8_block" else e["dtype"]
        dep = (e["gpu"], e["model"], key, e["tp"], e["ep"], "linear")
        dec = e["decode"]
        for ci, c in enumerate(dec["ctx"]):
            for bi, b in enumerate(dec["batch"]):
                pts.append({"dep": dep, "kind": "decode", "B": b, "ctx": c,
                            "ms": dec["total_ms"][ci][bi],
                            "cat": {k: dec[f"{k}_ms"][ci][bi] for k in
                                    ("gemm", "attn", "comm", "other")}})
        pre = e["prefill"]
        for si, s in enumerate(pre["isl"]):
            pts.append({"dep": dep, "kind": "prefill", "isl": s, "ms": pre["total_ms"][si],
                        "cat": {k: pre[f"{k}_ms"][si] for k in ("gemm", "attn", "comm",
                                                                "other")}})
    return pts, obj


def aic_arrays(pts: list[dict]) -> dict:
    groups: dict = defaultdict(lambda: defaultdict(list))
    for i, p in enumerate(pts):
        g = groups[p["dep"]]
        if p["kind"] == "decode":
            g["D"].append(p["B"])
            g["Kd"].append(p["B"] * p["ctx"])
            g["P"].append(0.0)
            g["Ap"].append(0.0)
        else:
            s = p["isl"]
            g["D"].append(0.0)
            g["Kd"].append(0.0)
            g["P"].append(s)
            g["Ap"].append(s * (s + 1) / 2)
        g["y"].append(p["ms"] / 1e3)
        g["idx"].append(i)
        for k in ("gemm", "attn", "comm", "other"):
            g[f"cat_{k}"].append(p["cat"][k] / 1e3)
    return {d: {k: np.array(v, dtype=float) for k, v in g.items()} for d, g in groups.items()}


CAT_PARAMS = {
    "comm": [("bw_ar", None), ("bw_ar_hi", None), ("m_ar", None), ("lat_ar", None)],
    "gemm": [("eta_bw", "q"), ("eta_moe", "q"), ("eta_cd", "q"), ("eta_cp", "q"),
             ("eta_mc", "q"), ("tau_g", "q")],
    "attn": [("eta_kv", None), ("eta_ad", None), ("eta_ap", None), ("tau_a", None)],
    "other": [("tau_o", None), ("t0", None)],
}


def model_cats(a: dict, c: StepCoefficients, p: dict, key: str) -> dict[str, np.ndarray]:
    te = c.terms(a["D"], a["Kd"], a["P"], a["Ap"], 0.0)
    L = float(c.layers)
    return {"gemm": np.asarray(te.t_gemm) + pd_get(p, "tau_g", key) * L,
            "attn": np.asarray(te.t_attn) + p.get("tau_a", 0.0) * L,
            "comm": np.asarray(te.t_comm),
            "other": np.asarray(te.t_elem) + p.get("tau_o", 0.0) * L + p["t0"]}


def fit_aic(arr: dict, deps: Deps, exclude_model: str | None = None) -> tuple[dict, dict]:
    """Per GPU, each step sub-term fitted to the matching AIC op category, so that no term
    compensates another; the categories' per-layer floors add up to ``t_layer``."""
    params, stats = {}, {}
    for gpu in sorted({d[0] for d in arr}):
        use_deps = [d for d in arr if d[0] == gpu and deps.cat.model(d[1]).attention != "mla"
                    and d[1] != exclude_model]
        dts = sorted({d[2] for d in use_deps})
        prm = fill_defaults({"t_seq": 0.0, "t_host": 0.0, "t_layer": 0.0})
        prm.update({"tau_g": dict.fromkeys(WEIGHT_KEYS, INIT["tau_g"]), "tau_a": INIT["tau_a"],
                    "tau_o": INIT["tau_o"]})
        stats[gpu] = {}
        for cat in ("comm", "gemm", "attn", "other"):
            keys = []
            for n, q in CAT_PARAMS[cat]:
                if q == "q":
                    for qq in dts:
                        if n in ("eta_moe", "eta_mc") and not any(
                                deps.cat.model(d[1]).experts and d[2] == qq for d in use_deps):
                            continue
                        keys.append((gpu, n, qq))
                else:
                    keys.append((gpu, n, None))
            use = [d for d in use_deps if np.any(arr[d][f"cat_{cat}"] > 0)]
            if cat == "comm":
                use = [d for d in use if max(d[3], d[4]) > 1]
            if not use:
                continue
            space = Space(keys, {k: (prm[k[1]][k[2]] if k[2] else prm[k[1]]) for k in keys})
            n_dec = sum(int(np.sum((arr[d][f"cat_{cat}"] > 0) & (arr[d]["P"] == 0))) for d in use)
            n_pre = sum(int(np.sum((arr[d][f"cat_{cat}"] > 0) & (arr[d]["P"] > 0))) for d in use)
            n_tot = n_dec + n_pre
            w_dec = math.sqrt(n_tot / (2.0 * max(n_dec, 1)))
            w_pre = math.sqrt(n_tot / (2.0 * max(n_pre, 1)))

            def resid(x: np.ndarray, cat: str = cat, use: list = use, space: Space = space,
                      gpu: str = gpu, prm: dict = prm, w_pre: float = w_pre,
                      w_dec: float = w_dec) -> np.ndarray:
                pp = space.unpack(x, {gpu: prm})[gpu]
                sp = step_params(pp)
                out = []
                for d in use:
                    mcat = model_cats(arr[d], deps.coef(d, sp), pp, d[2])[cat]
                    y = arr[d][f"cat_{cat}"]
                    ok = y > 0
                    w = np.where(arr[d]["P"][ok] > 0, w_pre, w_dec)
                    out.append(w * np.log(np.maximum(mcat[ok], 1e-9) / y[ok]))
                return np.concatenate(out)

            r = least_squares(resid, space.x0(), bounds=space.bounds(), loss="soft_l1",
                              f_scale=0.05, x_scale="jac", max_nfev=4000)
            prm = space.unpack(r.x, {gpu: prm})[gpu]
            res = resid(r.x)
            stats[gpu][cat] = {"n_points": int(res.size), "median_abs_pct_weighted":
                               sig(100 * np.median(np.abs(np.expm1(res))), 3)}
        prm["t_layer"] = {q: prm["tau_g"][q] + prm["tau_a"] + prm["tau_o"] for q in WEIGHT_KEYS}
        for q in WEIGHT_KEYS:  # precisions this GPU has no AIC data for: no value
            if q not in dts:
                for n in (*PER_DTYPE, "tau_g"):
                    prm[n][q] = None
        params[gpu] = prm
    return params, stats


def predict_aic(arr: dict, deps: Deps, params: dict[str, dict]) -> dict:
    out = {}
    for d, a in arr.items():
        if d[0] not in params:
            continue
        c = deps.coef(d, step_params(params[d[0]]))
        out[d] = np.asarray(c.terms(a["D"], a["Kd"], a["P"], a["Ap"], 0.0).t_step)
    return out


def aic_rows(arr: dict, pred: dict) -> tuple[list[dict], np.ndarray, np.ndarray]:
    rows, p, m = [], [], []
    for d, a in arr.items():
        if d not in pred:
            continue
        for j in range(len(a["y"])):
            rows.append({"gpu": d[0], "model": d[1], "key": d[2], "tp": d[3],
                         "kind": "decode" if a["P"][j] == 0 else "prefill"})
            p.append(pred[d][j])
            m.append(a["y"][j])
    return rows, np.array(p), np.array(m)


def fit_kernel_table(obj: dict) -> dict[str, Any]:
    """``scripts/aic_export.py --fit``: the kernel-level step parameters fitted to the AIC
    estimates in ``obj`` alone (one or more combinations), and their errors against them."""
    deps = Deps()
    pts = []
    for e in obj["entries"]:
        key = "fp8_block" if e["quant"]["gemm"] == "fp8_block" else e["dtype"]
        dep = (e["gpu"], e["model"], key, e["tp"], e["ep"], "linear")
        for kind in ("decode", "prefill"):
            t = e[kind]
            if kind == "decode":
                for ci, c in enumerate(t["ctx"]):
                    for bi, b in enumerate(t["batch"]):
                        pts.append({"dep": dep, "kind": kind, "B": b, "ctx": c,
                                    "ms": t["total_ms"][ci][bi],
                                    "cat": {k: t[f"{k}_ms"][ci][bi] for k in
                                            ("gemm", "attn", "comm", "other")}})
            else:
                for si, s in enumerate(t["isl"]):
                    pts.append({"dep": dep, "kind": kind, "isl": s, "ms": t["total_ms"][si],
                                "cat": {k: t[f"{k}_ms"][si] for k in
                                        ("gemm", "attn", "comm", "other")}})
    arr = aic_arrays(pts)
    prm, stats = fit_aic(arr, deps)
    rows, p, m = aic_rows(arr, predict_aic(arr, deps, prm))
    return {g: {"params": rounded(v), "quality": "fitted (to these AIC estimates)",
                **SOURCES["aic"], "derivation": "scripts/aic_export.py --fit "
                "(derive_calibration.fit_aic on these estimates only)",
                "category_fit": stats[g],
                "errors": {k: fid.error_stats(p[[i for i, r in enumerate(rows)
                                                 if r["kind"] == k and r["gpu"] == g]],
                                              m[[i for i, r in enumerate(rows)
                                                 if r["kind"] == k and r["gpu"] == g]])
                           for k in ("decode", "prefill")}}
            for g, v in prm.items()}


# ----------------------------------------------------------------------------------------
# ML.ENERGY


def load_mlenergy(shared: Path) -> list[fid.MeasuredConfig]:
    rows = []
    for f in sorted((shared / "data" / "mlenergy-leaderboard").glob("*.json")):
        d = json.loads(f.read_text())
        model, dtype, label = MLE_MODELS[d["model_id"]]
        for c in d["configurations"]:
            h = c["output_length_distribution"]
            b = np.array(h["bins"], float)
            n = np.array(h["counts"], float)
            mid, w = (b[1:] + b[:-1]) / 2, np.diff(b)
            el = float((n * mid).sum() / n.sum())
            el2 = float((n * (mid ** 2 + w ** 2 / 12)).sum() / n.sum())
            g = int(c["num_gpus"])
            ep = int(c["parallelization"].get("expert_parallel", 1))
            # `vllm serve --tensor-parallel-size <num_gpus>` (+ --enable-expert-parallel):
            # attention TP over every GPU; the leaderboard's tensor_parallel=1 of EP runs is
            # its parser's default, not the launch flag
            rows.append(fid.MeasuredConfig(
                gpu=MLE_GPU[c["gpu_model"]], model=model, label=label, dtype=dtype, tp=g,
                ep=ep if ep > 1 else 1, num_gpus=g, max_num_seqs=int(c["max_num_seqs"]),
                batch=sig(float(c["avg_batch_size"]), 6),
                out_mean=sig(float(c["avg_output_len"]), 6),
                gen_ctx_mean=sig(el2 / (2 * el), 6),
                repeats=REPEATS.get((d["model_id"], c["gpu_model"]), {}).get(
                    int(c["max_num_seqs"]), 1),
                itl_ms=sig(float(c["median_itl_ms"]), 6),
                p90_itl_ms=sig(float(c["p90_itl_ms"]), 6),
                tput_tok_s=sig(float(c["output_throughput_tokens_per_sec"]), 6),
                power_w_per_gpu=sig(float(c["avg_power_watts"]) / g, 6)))
    rows.sort(key=lambda r: (r.gpu, r.label, r.num_gpus, r.max_num_seqs))
    return rows


def mle_dep(c: fid.MeasuredConfig) -> tuple:
    """The deployment of a measured configuration (its step precision from the catalog's
    ``fp8_scheme``, its FP8 scope the catalog's)."""
    key = step_precision(c.dtype, default_catalog().model(c.model))
    return (c.gpu, c.model, key, c.tp, c.ep, None)


def deployment_fn(deps: Deps, params: dict[str, dict]) -> Callable:
    cache: dict = {}
    sps = {g: step_params(p) for g, p in params.items()}

    def of(c: fid.MeasuredConfig) -> tuple[Any, StepCoefficients, float]:
        d = mle_dep(c)
        if d not in cache:
            coef = deps.coef(d, sps[c.gpu])
            cache[d] = (coef, deps.kv_capacity(d, coef))
        return d, cache[d][0], cache[d][1]

    return of


def predict_mle(rows: list, nodes: list, deps: Deps, params: dict[str, dict], lp: float,
                ramp: bool = True) -> fid.Prediction:
    return fid.predict(rows, nodes, deployment_fn(deps, params), lp, ramp=ramp,
                       n_requests=BENCHMARK["n_requests"],
                       n_between_repeats=BENCHMARK["n_between_repeats"])


# Free in the ML.ENERGY fit (why the rest is not: docs/model.md, "Calibration"): the per-layer
# floors t_layer are confounded with weight streaming for the dense models (0.42-0.47 GB of
# weights per layer per GPU for the 8B models and 70B TP2), so they are AIC's, except the
# block-FP8 floor, which only Qwen3-235B-FP8 constrains (bounded below by AIC's bf16 floor);
# eta_kv is confounded with t_seq (both grow with B) and stays AIC's.
MLE_FREE = [("eta_bw", "bf16"), ("eta_bw", "fp8"), ("eta_moe", "bf16"),
            ("t_layer", "fp8_block"), ("t_host", None), ("t_seq", None)]


def fit_mlenergy(rows: list, nodes: list, deps: Deps, aic_params: dict,
                 free: list = MLE_FREE) -> tuple[dict, float, Any]:
    gpus_present = sorted({r.gpu for r in rows})
    keys = []
    for gpu in gpus_present:
        dts = {mle_dep(r)[2] for r in rows if r.gpu == gpu}
        for n, q in free:
            if q in ("fp8", "fp8_block") and q not in dts:
                continue
            if n == "eta_moe" and not any(r.gpu == gpu and mle_dep(r)[2] == q and r.ep > 1
                                          for r in rows):
                continue
            keys.append((gpu, n, q))
    keys.append(("_w", "Lp", None))
    init, kb = {}, {}
    for gpu in gpus_present:
        for n, q in free:
            v = aic_params[gpu].get(n, INIT[n])
            v = v[q] if isinstance(v, dict) else v
            init[(gpu, n, q)] = INIT[n] if v is None else v
            if n == "t_layer" and q != "bf16":
                fl = aic_params[gpu]["t_layer"]["bf16"]
                kb[(gpu, n, q)] = (fl, BOUNDS[n][1])
                init[(gpu, n, q)] = max(fl * 1.5, min(init[(gpu, n, q)], 5e-4))
        init[(gpu, "t_host", None)] = 0.8 * min(r.itl_ms for r in rows if r.gpu == gpu) / 1e3
    space = Space(keys, init, kb)
    base = {g: fill_defaults(aic_params[g]) for g in gpus_present}
    y_itl = np.array([r.itl_ms / 1e3 for r in rows])
    y_tp = np.array([r.tput_tok_s for r in rows])

    def unpack(x: np.ndarray) -> tuple[dict, float]:
        prm = space.unpack(x, base)
        lp = prm.pop("_w")["Lp"]
        for gpu in gpus_present:
            a = aic_params[gpu]
            for q in ("fp8", "fp8_block"):
                # floors of a precision ML.ENERGY does not constrain keep AIC's offset
                if (gpu, "t_layer", q) not in space.keys and a["t_layer"].get(q) is not None:
                    prm[gpu]["t_layer"][q] = (prm[gpu]["t_layer"]["bf16"] + a["t_layer"][q]
                                              - a["t_layer"]["bf16"])
                # efficiencies it does not constrain keep AIC's value x the bf16 ratio
                for n in ("eta_bw", "eta_moe"):
                    if ((gpu, n, q) in space.keys or a[n].get(q) is None
                            or (gpu, n, "bf16") not in space.keys):
                        continue
                    prm[gpu][n][q] = a[n][q] * prm[gpu][n]["bf16"] / a[n]["bf16"]
        return prm, lp

    def resid(x: np.ndarray) -> np.ndarray:
        prm, lp = unpack(x)
        pr = predict_mle(rows, nodes, deps, prm, lp)
        return np.concatenate([np.log(pr.itl_s / y_itl), np.log(pr.tput_tok_s / y_tp)])

    r = least_squares(resid, space.x0(), bounds=space.bounds(), loss="soft_l1", f_scale=0.05,
                      x_scale="jac", max_nfev=3000)
    prm, lp = unpack(r.x)
    return prm, lp, r


# ----------------------------------------------------------------------------------------
# power


def power_features(pred: fid.Prediction, idx: Any) -> dict[str, np.ndarray]:
    a = pred.activity
    return {k: np.asarray(getattr(a, k))[idx] for k in
            ("u_c", "u_m", "f_floor", "f_floor_x", "f_seq", "f_idle")}


def power_model(gpu: str, coefs: dict, tdp: float, quality: str = "fitted") -> ActivityPower:
    return ActivityPower(idle_w=IDLE_W[gpu][0], tdp_w=tdp,
                         **{k: float(coefs.get(k, 0.0)) for k in POWER_COEFS}, quality=quality)


def fit_power(rows: list, pred: fid.Prediction, deps: Deps) -> dict[str, dict]:
    """Per GPU: the busy_sat coefficients fitted to per-GPU watts on log ratios (robust Cauchy
    loss); a feature that is zero on every training point is unidentified: coefficient 0."""
    out = {}
    for gpu in sorted({r.gpu for r in rows}):
        idx = np.array([i for i, r in enumerate(rows) if r.gpu == gpu])
        y = np.array([rows[i].power_w_per_gpu for i in idx])
        act = power_features(pred, idx)
        tdp = deps.cat.gpu(gpu).tdp_w
        free = [k for k in POWER_COEFS
                if k == "b0" or np.max(np.abs(act[POWER_FEATS[k]])) > 1e-9]

        def model(th: np.ndarray, free: list = free, gpu: str = gpu,
                  tdp: float = tdp) -> ActivityPower:
            return power_model(gpu, dict(zip(free, map(float, th), strict=True)), tdp)

        def resid(th: np.ndarray, act: dict = act, y: np.ndarray = y,
                  model: Callable = model) -> np.ndarray:
            a = Activity(**act, f_fixed=0.0, f_comm=0.0)
            return np.log(np.maximum(model(th).gpu_power_w(a), 1.0) / y)

        th0 = np.array([0.2 if k == "b0" else 3.0 for k in free])
        r = least_squares(resid, th0, bounds=(np.zeros(len(free)),
                                               np.array([10.0 if k == "b0" else 50.0
                                                         for k in free])),
                          loss=POWER_LOSS[0], f_scale=POWER_LOSS[1])
        th = np.where(r.x < 1e-6, 0.0, r.x)
        out[gpu] = dict.fromkeys(POWER_COEFS, 0.0) | dict(zip(free, map(float, th), strict=True))
    return out


def power_predict(rows: list, pred: fid.Prediction, pw: dict, deps: Deps) -> np.ndarray:
    models = [power_model(r.gpu, pw[r.gpu], deps.cat.gpu(r.gpu).tdp_w) for r in rows]
    return pred.power_w(models)


# ----------------------------------------------------------------------------------------
# projections


def project_params(gpu: str, aic: dict, mle: dict, has_fp8: bool) -> tuple[dict, str]:
    ref = PROJECTION_REF[gpu]
    m, a_ref = mle[ref], aic[ref]
    if gpu not in aic:
        return dict(m), (f"no AIC or ML.ENERGY data: {ref}'s ML.ENERGY-calibrated efficiencies, "
                         "floors and host costs applied to this GPU's catalog peaks (ROCm "
                         "kernels, RCCL and the MI300X memory system are not represented)")
    a = aic[gpu]
    p = fill_defaults({k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()})
    for n in ("eta_bw", "eta_moe"):
        for q in WEIGHT_KEYS:
            if p[n].get(q) is None or a_ref[n].get(q) is None or m[n].get(q) is None:
                continue
            p[n][q] = min(1.0, p[n][q] * m[n][q] / a_ref[n][q])
    for q in WEIGHT_KEYS:
        if a["t_layer"].get(q) is not None and a_ref["t_layer"].get(q) and m["t_layer"].get(q):
            p["t_layer"][q] = a["t_layer"][q] * m["t_layer"][q] / a_ref["t_layer"][q]
    p["t_host"], p["t_seq"] = m["t_host"], m["t_seq"]
    if not has_fp8:  # no FP8 tensor cores: fp8 runs weight-only at the bf16 parameters
        for n in PER_DTYPE:
            p[n] = {"bf16": p[n]["bf16"]}
    return p, (f"AIC-fitted kernel parameters of {gpu}, with the end-to-end / kernel ratios of "
               f"{ref} (ML.ENERGY vs AIC: eta_bw, eta_moe, t_layer per precision) and {ref}'s "
               "host costs t_host, t_seq (same vLLM, same host software)")


def project_power(gpu: str, pw: dict, tdp: float) -> tuple[dict, str]:
    ref = PROJECTION_REF[gpu]
    return dict(pw[ref]), (
        f"{ref}'s fitted dimensionless activity coefficients (b0, b_c, b_m, b_x, b_s) with this "
        f"GPU's idle power ({IDLE_W[gpu][0]:.0f} W, projected) and power limit (catalog TDP "
        f"{tdp:.0f} W): busy-time power spans idle..TDP of this GPU; no power measurement of "
        "this GPU")


# ----------------------------------------------------------------------------------------
# error tables


def grouped(rows: list, pred: Any, meas: Any, keyf: Callable, with_all: bool = True) -> dict:
    g: dict = defaultdict(list)
    for i, r in enumerate(rows):
        g[keyf(r)].append(i)
    out = {"all": fid.error_stats(pred, meas)} if with_all else {}
    for k in sorted(g):
        out[k] = fid.error_stats(np.asarray(pred)[g[k]], np.asarray(meas)[g[k]])
    return out


def brief(stats: dict) -> dict:
    """n, median abs, bias, p90 of each group (the compact form shipped)."""
    return {k: {kk: v[kk] for kk in ("n", "median_abs_pct", "median_bias_pct", "p90_abs_pct")
                if kk in v} for k, v in stats.items()}


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO / ".." / "shared",
                    help="the shared folder holding data/ (default ../shared)")
    ap.add_argument("--aic", type=Path, default=AIC_FILE, help="AIC estimates (aic_export.py)")
    ap.add_argument("--no-lomo", action="store_true", help="skip the leave-one-model-out refits "
                    "(the shipped files keep their LOMO errors only from a full run)")
    ap.add_argument("--out", type=Path, default=REPO, help="repository root to write into")
    a = ap.parse_args(argv)
    shared = a.shared.resolve()
    if not (shared / "data" / "mlenergy-leaderboard").is_dir():
        raise SystemExit(f"no data/mlenergy-leaderboard under {shared}")
    root = a.out.resolve()
    deps = Deps()

    # ---- 1. AIC kernel set -------------------------------------------------------------
    pts, aic_obj = load_aic(a.aic)
    arr = aic_arrays(pts)
    aic_params, aic_stats = fit_aic(arr, deps)
    a_rows, a_pred, a_meas = aic_rows(arr, predict_aic(arr, deps, aic_params))
    kgd = lambda r: f"{r['gpu']} {r['key']}"  # noqa: E731
    dec = [i for i, r in enumerate(a_rows) if r["kind"] == "decode"]
    pre = [i for i, r in enumerate(a_rows) if r["kind"] == "prefill"]
    aic_lomo = np.full(len(a_rows), np.nan)
    if not a.no_lomo:
        for held in sorted({r["model"] for r in a_rows}):
            prm_h, _ = fit_aic(arr, deps, held)
            r_h, p_h, _ = aic_rows(arr, predict_aic(arr, deps, prm_h))
            for i, (r1, p1) in enumerate(zip(r_h, p_h, strict=True)):
                if r1["model"] == held:
                    aic_lomo[i] = p1
            print(f"AIC LOMO {held}", file=sys.stderr)
    print("AIC kernel fit done", file=sys.stderr)

    # ---- 2. ML.ENERGY end-to-end set ----------------------------------------------------
    rows = load_mlenergy(shared)
    nodes = fid.step_nodes(rows)
    mle_params, lp, _ = fit_mlenergy(rows, nodes, deps, aic_params)
    pred = predict_mle(rows, nodes, deps, mle_params, lp)
    print(f"ML.ENERGY fit done: Lp = {lp:.1f}", file=sys.stderr)
    y_itl = np.array([r.itl_ms / 1e3 for r in rows])
    y_tp = np.array([r.tput_tok_s for r in rows])
    y_p = np.array([r.power_w_per_gpu for r in rows])

    # ---- 3. power ----------------------------------------------------------------------
    pw = fit_power(rows, pred, deps)
    p_pred = power_predict(rows, pred, pw, deps)
    starved = pred.tput_tok_s / y_tp >= STARVED_RATIO
    in_dom = [i for i in range(len(rows)) if not starved[i] and pred.kv_occupancy[i] <= 1.0]

    # ---- 4. LOMO -------------------------------------------------------------------------
    li, lt, lpw = (np.full(len(rows), np.nan) for _ in range(3))
    lp_without: dict[str, float] = {}
    if not a.no_lomo:
        for held in sorted({r.label for r in rows}):
            tr = [i for i, r in enumerate(rows) if r.label != held]
            te = [i for i, r in enumerate(rows) if r.label == held]
            rtr = [rows[i] for i in tr]
            prm_h, lp_h, _ = fit_mlenergy(rtr, [nodes[i] for i in tr], deps, aic_params)
            lp_without[held] = round(lp_h, 1)
            pr_all = predict_mle(rows, nodes, deps, prm_h, lp_h)
            li[te], lt[te] = pr_all.itl_s[te], pr_all.tput_tok_s[te]
            pr_tr = fid.predict(rtr, [nodes[i] for i in tr], deployment_fn(deps, prm_h), lp_h)
            pw_h = fit_power(rtr, pr_tr, deps)
            lpw[te] = power_predict(rows, pr_all, pw_h, deps)[te]
            print(f"ML.ENERGY LOMO {held}: Lp = {lp_h:.0f}", file=sys.stderr)

    # ---- 5. the shipped files ----------------------------------------------------------
    kml = lambda r: r.label  # noqa: E731
    kdt = lambda r: mle_dep(r)[2]  # noqa: E731
    meas_table = {
        "description": "ML.ENERGY leaderboard v3 (task lm-arena-chat): every in-sample "
                       "configuration, measured steady state per vLLM deployment",
        **SOURCES["mlenergy"], "derivation": DERIVATION,
        "fields": {
            "gpu": "catalog GPU", "model": "catalog model", "label": "the measured checkpoint",
            "dtype": "deployment weight dtype (fp8: the checkpoint's fp8_scheme)",
            "tp": "attention tensor parallelism (= num_gpus)", "ep": "expert parallelism",
            "num_gpus": "GPUs of the instance", "max_num_seqs": "vLLM max_num_seqs of the run",
            "batch": "mean running batch (vllm:num_requests_running over the steady state)",
            "out_mean": "mean generated tokens per request",
            "gen_ctx_mean": "E[L^2] / (2 E[L]) of the generated-length histogram: a running "
                            "sequence's mean generated context",
            "repeats": "times the 1,024-request list was sent (prefix-cache hits)",
            "itl_ms": "median inter-token latency over every token of the run, ms",
            "p90_itl_ms": "90th percentile of the same, ms",
            "tput_tok_s": "steady-state output tokens per second",
            "power_w_per_gpu": "steady-state average power / num_gpus, W"},
        "benchmark": BENCHMARK,
        "workload": {"Lp_tokens": sig(lp, 4), "quality": "fitted",
                     "meaning": "mean uncached prompt tokens per request of this benchmark (also "
                                "its mean prompt context), fitted with the step parameters "
                                "(scripts/derive_calibration.py); an operating-point parameter "
                                "of lm-arena-chat, not a hardware parameter",
                     "lomo_refits": lp_without},
        "configs": [{k: getattr(r, k) for k in r.__dataclass_fields__} for r in rows],
    }
    cal_gpus: dict[str, Any] = {}
    for gpu in deps.cat.gpus:
        g = deps.cat.gpu(gpu)
        e: dict[str, Any] = {}
        if gpu in mle_params:
            sel = [i for i, r in enumerate(rows) if r.gpu == gpu]
            rs = [rows[i] for i in sel]
            e["step"] = {
                "set": "mlenergy", "quality": "fitted", **SOURCES["mlenergy"],
                "params": rounded(mle_params[gpu]),
                "derivation": "scripts/derive_calibration.py fit_mlenergy: " + ", ".join(
                    f"{n}[{q}]" if q else n for n, q in MLE_FREE) + " free per GPU plus the "
                    "benchmark's Lp; the rest from this GPU's kernel set; targets: median ITL "
                    "and steady-state output throughput of every configuration",
                "n_points": len(sel),
                "fit_errors": {"itl": brief(grouped(rs, pred.itl_s[sel], y_itl[sel], kdt)
                                            | grouped(rs, pred.itl_s[sel], y_itl[sel], kml,
                                                      False)),
                               "tput": brief(grouped(rs, pred.tput_tok_s[sel], y_tp[sel], kdt)
                                             | grouped(rs, pred.tput_tok_s[sel], y_tp[sel],
                                                       kml, False))},
            }
            if not a.no_lomo:
                e["step"]["lomo_errors"] = {
                    "itl": brief(grouped(rs, li[sel], y_itl[sel], kml)),
                    "tput": brief(grouped(rs, lt[sel], y_tp[sel], kml))}
            e["power"] = {
                "form": "busy_sat", **rounded(pw[gpu]), "tdp_w": g.tdp_w, "quality": "fitted",
                **SOURCES["mlenergy"], "n_points": len(sel),
                "derivation": "scripts/derive_calibration.py fit_power: avg_power_watts / "
                              "num_gpus of every configuration against the busy_sat form on "
                              "the end-to-end step model's activity at each measured operating "
                              f"point; robust {POWER_LOSS[0]} loss (scale {POWER_LOSS[1]}) on "
                              "log ratios; idle_w and TDP fixed",
                "fit_errors": brief(grouped(rs, p_pred[sel], y_p[sel], kml)),
                "fit_errors_in_domain": brief(grouped(
                    [rows[i] for i in sel if i in in_dom],
                    p_pred[[i for i in sel if i in in_dom]],
                    y_p[[i for i in sel if i in in_dom]], kml, True))["all"],
            }
            if not a.no_lomo:
                e["power"]["lomo_errors"] = brief(grouped(rs, lpw[sel], y_p[sel], kml))
        else:
            pp, how = project_params(gpu, aic_params, mle_params, g.fp8_tflops > 0)
            e["step"] = {"set": "projected", "quality": "projected", "params": rounded(pp),
                         "derivation": how}
            cp, how_p = project_power(gpu, pw, g.tdp_w)
            e["power"] = {"form": "busy_sat", **rounded(cp), "tdp_w": g.tdp_w, "quality": "projected",
                          "derivation": how_p}
        if gpu in aic_params:
            sel = [i for i in dec if a_rows[i]["gpu"] == gpu]
            selp = [i for i in pre if a_rows[i]["gpu"] == gpu]
            sub = [a_rows[i] for i in sel]
            subp = [a_rows[i] for i in selp]
            e["kernel"] = {
                "set": "aic", "quality": "fitted", **SOURCES["aic"],
                "params": rounded({k: v for k, v in aic_params[gpu].items()
                                   if not k.startswith("tau_")}),
                "derivation": "scripts/derive_calibration.py fit_aic: each step sub-term fitted "
                              "to the matching AIC op category (GEMM, attention, communication, "
                              "other) over every catalog model and TP/EP degree AIC covers on "
                              "this GPU (no host or per-sequence cost: kernels only)",
                "category_floors_s": rounded({k: v for k, v in aic_params[gpu].items()
                                              if k.startswith("tau_")}),
                "n_points": {"decode": len(sel), "prefill": len(selp)},
                "fit_errors": {"decode": brief(grouped(sub, a_pred[sel], a_meas[sel],
                                                       lambda r: r["key"])),
                               "prefill": brief(grouped(subp, a_pred[selp], a_meas[selp],
                                                        lambda r: r["key"]))},
            }
            if not a.no_lomo:
                e["kernel"]["lomo_errors"] = {"decode": brief(grouped(
                    sub, aic_lomo[sel], a_meas[sel], lambda r: r["key"]))}
        e["idle_w"] = {"watts": IDLE_W[gpu][0], "quality": "projected",
                       "meaning": "per-GPU draw of an instance that runs no iteration (no "
                                  "kernel); also the power model's draw in latency floors and "
                                  "host-bound time", "basis": IDLE_W[gpu][1]}
        cal_gpus[gpu] = e
    cal = {
        "description": "fleetopt's calibration of the step model (fleetopt/physics/iteration.py) "
                       "and the activity power model (fleetopt/physics/power.py), per GPU",
        "derivation": DERIVATION, "sources": SOURCES,
        "units": "efficiencies: fractions of the catalog peaks (hbm_bw_tb_s, fp16_tflops, "
                 "fp8_tflops); times s; bw_ar, bw_ar_hi bytes/s; m_ar bytes; power W per GPU",
        "default_gpu": DEFAULT_GPU,
        "summary": {
            "mlenergy_itl": brief(grouped(rows, pred.itl_s, y_itl, lambda r: r.gpu)),
            "mlenergy_tput": brief(grouped(rows, pred.tput_tok_s, y_tp, lambda r: r.gpu)),
            "mlenergy_power": brief(grouped(rows, p_pred, y_p, lambda r: r.gpu)),
            "aic_decode": brief(grouped([a_rows[i] for i in dec], a_pred[dec], a_meas[dec], kgd)),
            "aic_prefill": brief(grouped([a_rows[i] for i in pre], a_pred[pre], a_meas[pre],
                                         kgd)),
            **({} if a.no_lomo else {
                "lomo_mlenergy_itl": brief(grouped(rows, li, y_itl, lambda r: r.gpu)),
                "lomo_mlenergy_tput": brief(grouped(rows, lt, y_tp, lambda r: r.gpu)),
                "lomo_mlenergy_power": brief(grouped(rows, lpw, y_p, lambda r: r.gpu)),
                "lomo_aic_decode": brief(grouped([a_rows[i] for i in dec], aic_lomo[dec],
                                                 a_meas[dec], kgd))}),
        },
        "gpus": cal_gpus,
    }
    out = root / "fleetopt" / "data"
    (out / "calibration.json").write_text(json.dumps(cal, indent=1) + "\n")
    (out / fid.MEASUREMENTS_FILE).write_text(
        json.dumps({k: v for k, v in meas_table.items() if k != "configs"}, indent=1)[:-2]
        + ',\n "configs": [\n  '
        + ",\n  ".join(json.dumps(c) for c in meas_table["configs"]) + "\n ]\n}\n")
    write_docs(root / "docs" / "data.md", cal, meas_table, aic_obj)
    print("wrote fleetopt/data/calibration.json, fleetopt/data/mlenergy_configs.json, "
          "docs/data.md (calibration section)")
    return 0


def _e(s: dict, k: str = "median_abs_pct") -> str:
    v = s.get(k)
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:g}"


def write_docs(path: Path, cal: dict, meas: dict, aic_obj: dict) -> None:
    """The calibration section of docs/data.md (everything after DOCS_MARK)."""
    s = cal["summary"]
    lines = [DOCS_MARK, "", "## Step and power calibration (`calibration.json`, "
             "`mlenergy_configs.json`, `aic_estimates.json.gz`)", "",
             "Written by `scripts/derive_calibration.py --shared ../shared` (deterministic; "
             "numpy, scipy; rewrites this section). Formulas: `docs/model.md`.", "",
             md_table(["file", "what", "source", "licence"], [
                 ["`mlenergy_configs.json`", f"{len(meas['configs'])} measured configurations: "
                  "GPU, model, TP, EP, dtype, max_num_seqs, mean batch, median ITL, throughput, "
                  "per-GPU watts, output-length facts, repeats; the fitted workload `Lp`",
                  meas["source"], meas["licence"]],
                 ["`aic_estimates.json.gz`", f"{len(aic_obj['entries'])} (GPU, model, TP/EP, "
                  "dtype) combinations: AIC decode step (batch 1-1024 x context 256-16K) and "
                  "prefill (128-32K tokens) per op category; the combinations AIC refused",
                  aic_obj["provenance"]["source"], aic_obj["provenance"]["licence"]],
                 ["`calibration.json`", "per GPU: end-to-end step parameters (`step`), AIC "
                  "kernel parameters (`kernel`), power coefficients (`power`), idle power, each "
                  "with quality, source, derivation, fit and leave-one-model-out errors",
                  "the two above", "Apache-2.0"]]), "",
             f"Fitted workload of the benchmark: `Lp` = {meas['workload']['Lp_tokens']:g} mean "
             "uncached prompt tokens (leave-one-model-out refits: "
             + (", ".join(f"{k} {v:g}" for k, v in meas["workload"]["lomo_refits"].items())
                or "not run") + ").", "",
             "Errors (median absolute %, median bias %, in sample; LOMO: the step parameters, "
             "`Lp` and the power coefficients refitted without the model scored):", ""]
    rows = []
    for key, what in (("mlenergy_itl", "ML.ENERGY median ITL"),
                      ("mlenergy_tput", "ML.ENERGY throughput"),
                      ("mlenergy_power", "ML.ENERGY per-GPU power")):
        for grp, st in s[key].items():
            lo = s.get("lomo_" + key, {}).get(grp, {})
            rows.append([what, grp, st["n"], _e(st), _e(st, "median_bias_pct"),
                         _e(st, "p90_abs_pct"), _e(lo), _e(lo, "median_bias_pct")])
    lines.append(md_table(["target", "group", "n", "median abs %", "bias %", "p90 abs %",
                           "LOMO median abs %", "LOMO bias %"], rows))
    lines += ["", "AIC decode step (kernel set against AIC's estimates; LOMO refits the kernel "
              "set without each model):", ""]
    rows = []
    for grp, st in s["aic_decode"].items():
        lo = s.get("lomo_aic_decode", {}).get(grp, {})
        pst = s["aic_prefill"].get(grp, {})
        rows.append([grp, st["n"], _e(st), _e(st, "median_bias_pct"), _e(lo), _e(pst)])
    lines.append(md_table(["GPU precision", "decode points", "decode median abs %", "bias %",
                           "LOMO decode median abs %", "prefill median abs %"], rows))
    lines += ["", "Per GPU (quality of the end-to-end step set and of the power coefficients; "
              "idle power):", ""]
    rows = []
    for gpu, e in cal["gpus"].items():
        pw = e["power"]
        rows.append([gpu, e["step"]["quality"], pw["quality"], f"{e['idle_w']['watts']:g}",
                     ", ".join(f"{k} {pw[k]:g}" for k in POWER_COEFS),
                     "yes" if "kernel" in e else "no (AIC has no MI300X)"])
    lines.append(md_table(["GPU", "step", "power", "idle W (projected)", "power coefficients",
                           "AIC kernel set"], rows))
    lines += ["", "Quality labels: `fitted` = fitted to measurements of that GPU; `projected` = "
              "no measurement of that GPU (its AIC kernel set scaled by the same generation's "
              "end-to-end / kernel ratios: H200, A100, L40S from H100, GB200 from B200; MI300X: "
              "H100's end-to-end set on its own peaks; power: the reference GPU's dimensionless "
              "coefficients with its own idle power and TDP). Idle powers are public nvidia-smi / "
              "rocm-smi readings of GPUs running no kernel (`calibration.json` gives each "
              "basis); a loaded but idle vLLM replica reads 1.0-1.6x higher.", ""]
    text = path.read_text() if path.exists() else ""
    head = text.split(DOCS_MARK)[0].rstrip() + "\n\n" if text else ""
    path.write_text(head + "\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
