#!/usr/bin/env python
"""Export AIConfigurator (AIC) step-time estimates as compact tables (``fleetopt[aic]``).

AIC (PyPI ``aiconfigurator-core`` >= 0.12.0, Apache-2.0, NVIDIA) ships measured kernel
databases ("silicon" tables: GEMM, attention, NCCL / custom all-reduce, MoE, elementwise ops
collected on real GPUs under vLLM / SGLang / TRT-LLM) and composes them op by op into a
forward-pass time. This script queries its compiled engine, offline, for

* the static decode step at (batch, context): ``EngineHandle.decode_step_per_op(batch,
  ctx - 2, osl=2)`` (AIC evaluates the step at ``s = isl + osl // 2 + 1``), every sequence at
  context ``ctx``;
* the prefill of one prompt of ``isl`` tokens (batch 1, no prefix):
  ``EngineHandle.run_static_per_op(batch_size=1, isl, mode="static_ctx")``;

and folds the per-op times into ``gemm`` (dense and MoE GEMMs, the logits GEMM), ``attn``
(attention; MLA's fused block), ``comm`` (all-reduce, MoE dispatch / combine, p2p) and
``other`` (embedding, norms, activation). Settings: vLLM backend (its latest database per
GPU), SILICON mode, KV cache and FMHA in bf16 (vLLM ``kv_cache_dtype=auto`` for these
checkpoints), mixtures of experts with expert parallelism EP = TP over the same GPUs (vLLM
``--enable-expert-parallel``), fp8 = AIC ``fp8`` (per-tensor) for checkpoints with
``AIC_MODEL`` lists no block-FP8 checkpoint (Llama, Mixtral, Qwen3-8B: the entry's ``quant``
says ``fp8``) and the block-FP8 checkpoint where it does (Qwen3 MoE ``-FP8``, DeepSeek-V3:
``fp8_block``).

Usage::

    pip install "fleetopt[aic]"
    python scripts/aic_export.py --all                 # every catalog combination AIC covers
    python scripts/aic_export.py --model llama-3.1-70b --gpu H100-SXM --tp 8 --dtype bf16 \\
        [--batch 1 8 64] [--ctx 1024 4096] [--isl 1024 8192] [--fit] [--out table.json]

``--all`` writes ``fleetopt/data/aic_estimates.json.gz`` (every (GPU, model, TP/EP, dtype)
of the catalog that AIC covers and whose weights fit, with provenance and the combinations AIC
refused); ``scripts/derive_calibration.py`` fits the step model's kernel parameters to it. One
combination prints (or writes with ``--out``) its table; ``--fit`` adds the step model's
kernel-level parameters fitted to that table alone and their errors against it: a calibrated
table for any (model, GPU, TP/EP, dtype) AIC covers. Deterministic: AIC is a pure function of
its packaged databases; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata as md
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fleetopt" / "data" / "aic_estimates.json.gz"

#: catalog GPU -> AIC system
AIC_SYSTEM = {"H100-SXM": "h100_sxm", "H200-SXM": "h200_sxm", "B200": "b200_sxm",
              "GB200": "gb200", "A100-SXM": "a100_sxm", "L40S": "l40s"}
#: catalog model -> (AIC bf16 model id, AIC block-FP8 model id or None)
AIC_MODEL = {
    "llama-3.1-8b": ("meta-llama/Meta-Llama-3.1-8B", None),
    "llama-3.1-70b": ("meta-llama/Meta-Llama-3.1-70B", None),
    "llama-3.1-405b": ("meta-llama/Meta-Llama-3.1-405B", None),
    "qwen3-8b": ("Qwen/Qwen3-8B", None),
    "qwen3-235b-a22b": ("Qwen/Qwen3-235B-A22B", "Qwen/Qwen3-235B-A22B-FP8"),
    "qwen3-30b-a3b": ("Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B-FP8"),
    "mixtral-8x7b": ("mistralai/Mixtral-8x7B-v0.1", None),
    "deepseek-v3": (None, "deepseek-ai/DeepSeek-V3"),  # native block FP8; no bf16 model
}
BACKEND = "vllm"
TP_DEGREES = (1, 2, 4, 8)
DTYPES = ("bf16", "fp8")
DECODE_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DECODE_CTX = (256, 1024, 2048, 4096, 8192, 16384)
PREFILL_ISL = (128, 512, 1024, 2048, 4096, 8192, 16384, 32768)
#: a combination is exported only if its weight shard leaves room for KV cache
MAX_WEIGHT_SHARE_OF_HBM = 0.80
CATEGORIES = ("gemm", "attn", "comm", "other")
#: AIC per-op latencies are rounded to this many decimals of a millisecond
DECIMALS = 5

log = logging.getLogger("aic_export")


def op_category(name: str) -> str:
    n = name.lower()
    if any(s in n for s in ("_ar", "allreduce", "all_reduce", "dispatch", "p2p", "all2all",
                            "alltoall", "allgather", "reduce_scatter", "_a2a")):
        return "comm"
    if "mla" in n or "attention" in n:
        return "attn"
    if "gemm" in n or "moe" in n or "ffn" in n or "bmm" in n:
        return "gemm"
    return "other"


def fold(ops: list[tuple[Any, ...]]) -> dict[str, Any]:
    cats = dict.fromkeys(CATEGORIES, 0.0)
    silicon = total = 0.0
    for name, lat, _energy, source, *_ in ops:
        lat = float(lat)
        cats[op_category(name)] += lat
        total += lat
        if source == "silicon":
            silicon += lat
    out: dict[str, Any] = {k: round(v, DECIMALS) for k, v in cats.items()}
    out["total"] = round(total, DECIMALS)
    out["silicon_frac"] = round(silicon / total, 4) if total > 0 else None
    return out


class AIC:
    """An AIC model + perf database + compiled engine per combination (aiconfigurator-core)."""

    def __init__(self) -> None:
        for name in ("aiconfigurator", "aiconfigurator_core"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            from aiconfigurator_core.sdk.config import ModelConfig
            from aiconfigurator_core.sdk.config_builders import build_model_config
            from aiconfigurator_core.sdk.models import check_is_moe, get_model
            from aiconfigurator_core.sdk.models.helpers import resolve_context_fmha_by_data
            from aiconfigurator_core.sdk.perf_database import (
                get_database_view,
                get_latest_database_version,
            )
            from aiconfigurator_core.sdk.rust_engine_step import _cached_engine_handle
        except ImportError as e:
            raise SystemExit(f"aiconfigurator-core is not installed ({e}); pip install "
                             "\"fleetopt[aic]\"") from None
        self.ModelConfig = ModelConfig
        self.build_model_config = build_model_config
        self.check_is_moe = check_is_moe
        self.get_model = get_model
        self.resolve_fmha = resolve_context_fmha_by_data
        self.get_db = get_database_view
        self.latest = get_latest_database_version
        self.handle_for = _cached_engine_handle
        self.version = md.version("aiconfigurator-core")
        self._dbs: dict[str, Any] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="aic_models_"))

    def database(self, system: str) -> tuple[Any, str]:
        if system not in self._dbs:
            ver = self.latest(system=system, backend=BACKEND)
            if ver is None:
                raise ValueError(f"no {BACKEND} database for {system}")
            db = self.get_db(system, BACKEND, ver, allow_missing_data=False,
                             database_mode="SILICON", transfer_policy=None)
            self._dbs[system] = (db, ver)
        return self._dbs[system]

    def local_path(self, model_path: str) -> str:
        """AIC resolves only its default models offline; others with a packaged config.json
        (Mixtral) are served from a temporary copy of that file (nothing is downloaded)."""
        from aiconfigurator_core.sdk.common import DefaultHFModels
        from aiconfigurator_core.sdk.utils import _get_model_config_path

        if model_path in DefaultHFModels:
            return model_path
        src = Path(_get_model_config_path()) / f"{model_path.replace('/', '--')}_config.json"
        if not src.exists():
            return model_path
        dst = self._tmp / model_path.replace("/", "--")
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "config.json").write_text(src.read_text())
        return str(dst)

    def engine(self, model_path: str, system: str, tp: int, ep: int,
               dtype: str) -> tuple[Any, dict[str, Any], str]:
        path = self.local_path(model_path)
        is_moe = self.check_is_moe(path)
        moe_tp, moe_ep = (None, None)
        if is_moe:
            cfg = self.ModelConfig(tp_size=tp, attention_dp_size=1, moe_tp_size=None,
                                   moe_ep_size=ep)
            moe_tp, moe_ep = cfg.resolve_moe_parallelism()
        block = "FP8" in model_path or "DeepSeek" in model_path
        gemm = "fp8" if (dtype == "fp8" and not block) else None
        moe_q = "fp8" if (gemm == "fp8" and is_moe) else None
        mc = self.build_model_config(tp, 1, 1, moe_tp, moe_ep, gemm, "bfloat16", "bfloat16",
                                     moe_q, None, forward_model=None, enable_encoder_dp=True,
                                     attention_backend=None)
        db, ver = self.database(system)
        if is_moe:
            sys.path.insert(0, str(REPO / "scripts"))
            from _aic_moe_comm import resolve_model_config_moe_comm

            resolve_model_config_moe_comm(
                mc, model_path=path, backend_name=BACKEND, database=db,
                required_phases=("context", "generation"), fmha_quant_mode_explicit=True,
                kvcache_quant_mode_explicit=True)
        self.resolve_fmha(mc, path, db, BACKEND, is_context_role=True)
        model = self.get_model(path, mc, BACKEND)
        h = self.handle_for(model, db)
        quant = {"gemm": mc.gemm_quant_mode.name, "moe": mc.moe_quant_mode.name,
                 "kvcache": mc.kvcache_quant_mode.name, "fmha": mc.fmha_quant_mode.name,
                 "comm": mc.comm_quant_mode.name, "moe_tp": moe_tp, "moe_ep": moe_ep}
        return h, quant, ver

    @staticmethod
    def decode(h: Any, batch: int, ctx: int) -> dict[str, Any]:
        return fold(h.decode_step_per_op(int(batch), int(ctx) - 2, 2))

    @staticmethod
    def prefill(h: Any, isl: int) -> dict[str, Any]:
        ctx_ops, _gen = h.run_static_per_op(batch_size=1, isl=int(isl), osl=1, prefix=0,
                                            mode="static_ctx")
        return fold(ctx_ops)


def combos(only_model: str | None = None, only_gpu: str | None = None,
           only_tp: int | None = None, only_dtype: str | None = None) -> Any:
    """(gpu, system, model, AIC model id, dtype, tp, ep, weight GB per GPU) of every catalog
    combination to export (``only_*`` restrict it; a given TP is exported even when large)."""
    from fleetopt.physics.catalog import default_catalog

    cat = default_catalog()
    for gname, system in AIC_SYSTEM.items():
        if only_gpu and gname != only_gpu:
            continue
        g = cat.gpu(gname)
        for mname, (bf16_id, fp8_id) in AIC_MODEL.items():
            if only_model and mname != only_model:
                continue
            m = cat.model(mname)
            for dtype in DTYPES:
                if only_dtype and dtype != only_dtype:
                    continue
                if dtype == "fp8" and g.fp8_tflops <= 0:
                    continue  # A100: no FP8 tensor cores (AIC marks FP8 incompatible)
                mid = bf16_id if dtype == "bf16" else (fp8_id or bf16_id)
                if mid is None:
                    continue
                for tp in TP_DEGREES:
                    if (only_tp and tp != only_tp) or tp > g.max_tp:
                        continue
                    if m.experts > 0 and m.experts % tp:
                        continue
                    w = m.params_total_b * (2.0 if dtype == "bf16" else 1.0) / tp
                    if w > MAX_WEIGHT_SHARE_OF_HBM * g.hbm_gb and not only_tp:
                        continue
                    ep = tp if m.experts > 0 else 1
                    yield gname, system, mname, mid, dtype, tp, ep, w


def export_one(aic: AIC, gname: str, system: str, mname: str, mid: str, dtype: str, tp: int,
               ep: int, batches: Any, ctxs: Any, isls: Any) -> dict[str, Any]:
    from fleetopt.physics.catalog import default_catalog

    h, quant, ver = aic.engine(mid, system, tp, ep, dtype)
    maxc = default_catalog().model(mname).max_context
    ctxs = [c for c in ctxs if c <= maxc]
    isls = [c for c in isls if c <= maxc]
    keys = ("total", *CATEGORIES, "silicon_frac")
    dec: dict[str, list[Any]] = {k: [] for k in keys}
    for c in ctxs:
        rows = [aic.decode(h, b, c) for b in batches]
        for k in keys:
            dec[k].append([r[k] for r in rows])
    pre: dict[str, list[Any]] = {k: [] for k in keys}
    for s in isls:
        r = aic.prefill(h, s)
        for k in keys:
            pre[k].append(r[k])
    return {
        "gpu": gname, "aic_system": system, "model": mname, "aic_model": mid, "dtype": dtype,
        "tp": tp, "ep": ep, "backend": BACKEND, "backend_version": ver, "quant": quant,
        "decode": {"batch": list(batches), "ctx": list(ctxs), "layout": "[ctx][batch]",
                   **{(f"{k}_ms" if k != "silicon_frac" else k): v for k, v in dec.items()}},
        "prefill": {"isl": list(isls), "batch": 1,
                    **{(f"{k}_ms" if k != "silicon_frac" else k): v for k, v in pre.items()}},
    }


def provenance(aic: AIC) -> dict[str, Any]:
    return {
        "source": f"AIConfigurator (aiconfigurator-core {aic.version}), NVIDIA, "
                  "github.com/ai-dynamo/aiconfigurator: measured kernel databases ('silicon') of "
                  f"backend {BACKEND}, database mode SILICON",
        "licence": "Apache-2.0",
        "derivation": "scripts/aic_export.py: EngineHandle.decode_step_per_op(batch, ctx - 2, "
                      "osl=2) for the decode step (every sequence at context ctx) and "
                      "EngineHandle.run_static_per_op(batch=1, isl, mode=static_ctx) for prefill; "
                      "per-op times folded into gemm / attn / comm / other (ms); KV cache and FMHA "
                      "bf16; mixtures of experts with EP = TP over the same GPUs",
        "quality": "estimated (AIC's composition of measured kernels: no framework or host "
                   "overhead, no scheduler, no sampling)",
        "units": "milliseconds per step (decode) or per prompt (prefill)",
        "silicon_frac": "share of the time from measured (silicon) op tables; the rest is AIC's "
                        "empirical / speed-of-light fallback",
    }


def write_gz_json(path: Path, obj: Any) -> None:
    """Deterministic gzip (mtime 0) of compact JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(obj, separators=(",", ":"), sort_keys=False).encode() + b"\n"
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0,
                                               compresslevel=9) as gz:
        gz.write(raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="export every covered combination")
    ap.add_argument("--model")
    ap.add_argument("--gpu")
    ap.add_argument("--tp", type=int)
    ap.add_argument("--ep", type=int, help="expert parallelism: 1 or --tp (MoE default: --tp)")
    ap.add_argument("--dtype", choices=DTYPES)
    ap.add_argument("--batch", type=int, nargs="*", default=list(DECODE_BATCH))
    ap.add_argument("--ctx", type=int, nargs="*", default=list(DECODE_CTX))
    ap.add_argument("--isl", type=int, nargs="*", default=list(PREFILL_ISL))
    ap.add_argument("--fit", action="store_true",
                    help="also fit the step model's kernel parameters to the one combination")
    ap.add_argument("--out", type=Path, help="write here (default: --all the shipped file, "
                    "one combination stdout)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    aic = AIC()
    if not a.all:
        if not (a.model and a.gpu and a.tp and a.dtype):
            ap.error("give --all, or --model --gpu --tp --dtype")
        found = list(combos(a.model, a.gpu, a.tp, a.dtype))
        if not found:
            print("AIC does not cover that combination (GPU, model, dtype, TP)", file=sys.stderr)
            return 2
        gname, system, mname, mid, dtype, tp, ep, _w = found[0]
        if a.ep is not None:
            if a.ep not in (1, tp) or (a.ep > 1 and ep == 1):
                print("--ep must be 1 or --tp, and > 1 only for a mixture of experts",
                      file=sys.stderr)
                return 2
            ep = a.ep
        entry = export_one(aic, gname, system, mname, mid, dtype, tp, ep, a.batch, a.ctx,
                           a.isl)
        out: dict[str, Any] = {"provenance": provenance(aic), "entries": [entry]}
        if a.fit:
            sys.path.insert(0, str(REPO / "scripts"))
            from derive_calibration import fit_kernel_table

            out["calibration"] = fit_kernel_table(out)
        text = json.dumps(out, indent=1) + "\n"
        if a.out:
            a.out.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    entries, skipped = [], []
    t0 = time.time()
    for gname, system, mname, mid, dtype, tp, ep, _w in combos():
        t = time.time()
        try:
            r = export_one(aic, gname, system, mname, mid, dtype, tp, ep, a.batch, a.ctx, a.isl)
        except Exception as e:  # noqa: BLE001  AIC raises for what its databases lack
            skipped.append({"gpu": gname, "model": mname, "dtype": dtype, "tp": tp,
                            "reason": f"{type(e).__name__}: {str(e)[:200]}"})
            log.info("skip %s %s %s tp%d: %s", gname, mname, dtype, tp, str(e)[:120])
            continue
        entries.append(r)
        log.info("%s %s %s tp%d ep%d: %.1fs", gname, mname, dtype, tp, ep, time.time() - t)
    obj = {"provenance": provenance(aic), "not_covered": ["MI300X (AIC has no AMD system)"],
           "skipped": skipped, "entries": entries}
    write_gz_json(a.out or OUT, obj)
    log.info("done in %.0fs: %d combinations, %d refused", time.time() - t0, len(entries),
             len(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
