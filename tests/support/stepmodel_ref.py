"""Iteration (step) time and per-GPU power of an LLM serving instance: pure numpy.

One engine iteration ("step") of an instance carries

* ``D`` decode tokens (one per running sequence) whose cached contexts sum to ``K_d``;
* ``P`` prefill tokens (chunks) whose causal attention pairs sum to ``A_p`` (a chunk that
  covers positions ``s+1 .. s+c`` has ``c*s + c*(c+1)/2`` pairs, :func:`chunk_pairs`) and
  whose chunks read ``K_p`` cached tokens of KV (``s`` for a chunk starting at ``s``).

The instance has ``tp`` tensor-parallel GPUs; a mixture of experts may also use expert
parallelism ``ep`` over the same GPUs (vLLM ``--tensor-parallel-size N
--enable-expert-parallel``: attention TP-sharded over N, experts split over N). Everything
is per GPU. With ``T = D + P``, ``L`` layers and ``q`` running over the weight precisions of
the checkpoint::

  t_step  = max(t_gpu, t_host)            host work overlapped (vLLM V1 async scheduling);
                                          host="serial": t_gpu + t_host
  t_gpu   = t_gemm + t_attn + t_elem + t_comm + t_fixed                       ("split" form)
  t_gemm  = max( sum_q Wd_q / (BW eta_bw[q]),                                 dense GEMMs:
                 sum_q Fd_q (D / eta_cd[q] + P / eta_cp[q]) / PEAK[q] )       bytes or math
          + max( sum_q We_q(T) / (BW eta_moe[q]),                             routed experts
                 sum_q Fe_q T / (eta_mc[q] PEAK[q]) )                         (fused MoE)
  t_attn  = max( kv_tok (K_d + K_p + P) / (BW eta_kv),                        KV read/write
                 (f_dec K_d / eta_ad + f_pre A_p / eta_ap) / PEAK[bf16] )     or math
  t_elem  = e_tok T / (BW eta_bw[bf16])                                       norms, act
  t_comm  = n_ar L (2 (g-1)/g m / bw(m) + lat_ar),   m = T hidden a,   g = GPUs > 1
            bw(m) = bw_ar + (bw_ar_hi - bw_ar) m / (m + m_ar)                 bus bandwidth
  t_fixed = t0 + t_layer[q_w] L + t_seq D           kernel floors, per-sequence sampling
  t_host  = t_host                                  scheduler / output work per step

Terms (all computed by :func:`model_terms` from a catalog model table):

* ``q`` in ``bf16``, ``fp8`` (per-tensor/per-channel scales, e.g. Llama FP8) and
  ``fp8_block`` (128x128 block scales, e.g. Qwen3-FP8, DeepSeek-V3): an FP8 checkpoint's
  quantised linears are streamed and multiplied in fp8, the rest (LM head; for Meta's
  Llama-3.1-405B-FP8 also attention and the first/last layer) in bf16; ``q_w`` is the
  checkpoint's precision. The two FP8 schemes run different kernels: own efficiencies.
* ``Wd_q``: dense weight shard (attention, dense FFN, shared experts, LM head; the input
  embedding is a gather and is neither streamed nor multiplied); ``Fd_q = 2 x`` its
  parameters per token.
* ``We_q(T)``: routed-expert bytes the critical GPU streams, ``n x share`` of its ``n =
  E/ep`` resident experts (``E/tp``-width slices of all ``E`` when ``ep == 1``), where each
  expert is touched with ``p = 1 - (1 - k/E)^T`` (independent uniform top-k routing) and the
  step waits for the GPU that touched the most (:func:`expert_fraction`). ``Fe_q = 2
  P_experts k/E / GPUs`` per token (balanced); ``eta_mc`` carries the grouped GEMM's
  efficiency including its load imbalance.
* ``kv_tok``: KV bytes per token per GPU: GQA ``2 L ceil(kv_heads/tp) hd b_kv``; MLA
  ``L (kv_lora_rank + rope) b_kv`` (latent replicated on every rank).
* Attention FLOPs per (query, cached token) pair per GPU: GQA ``4 L (H/tp) hd`` (QK^T and PV)
  for both phases. MLA decode, absorbed form: ``2 L (H/tp) (2 kv_lora_rank + rope)``
  (scores over the ``kv_lora_rank + rope`` latent, output over ``kv_lora_rank``): 4.25x the
  GQA-style count at DeepSeek-V3's sizes; MLA prefill, decompressed form: ``2 L (H/tp)
  (qk_nope + rope + v_head)``.
* ``e_tok = (8 hidden L + 3 (I/tp) L_dense) a`` elementwise bytes per token (two fused
  add+RMSNorm passes reading residual and input and writing both; SiLU-gate reading 2 I/tp
  and writing I/tp; MoE layers' gate is inside the fused expert kernel); ``a`` = 2 (bf16).
* ``n_ar = 2`` all-reduces per layer (after attention and after the FFN / expert combine;
  vLLM's TP+EP layout reduces the expert outputs across the same group).
  ``comm="a2a"`` (projected, uncalibrated): data-parallel attention (``tp == 1``, attention
  replicated, each rank holding 1/g of the sequences) with EP dispatch + combine of each
  rank's ``T/g`` tokens x top-k: ``t_comm = 2 L (m / bw(m) + lat_ar)``, ``m = (T/g) k
  hidden a (g-1)/g``; pass instance totals for ``D, K_d, P, A_p``.

The "single" form is the plain roofline the package had plus comm and fixed costs:
``t_gpu = max(t_mem, t_cmp) + t_comm + t_fixed`` (all bytes vs all FLOPs).

Per-GPU power follows the step's activity at the operating point (:func:`utilisation`,
:func:`gpu_power_sat`, the fitted form)::

  s_lo   = f_floor + f_idle                 latency floors + host-bound time: idle power
  x      = b0 + (b_c U_c + b_m U_m + b_x f_floor_x + b_s f_seq) / (1 - s_lo)
  P_busy = p_idle + (TDP - p_idle) (1 - exp(-x))        busy-time draw, saturating at TDP
  P_gpu  = s_lo p_idle + (1 - s_lo) P_busy

``U_c`` = achieved tensor FLOP/s / bf16 peak, ``U_m`` = achieved HBM bytes/s / peak BW (the
average GPU), ``f_floor`` = share of the step in the bf16-level kernel floors (``t0 +
t_layer[bf16] L``), ``f_floor_x`` = the precision's floor above that (block-FP8
dequantising kernels), ``f_seq`` = per-sequence work, ``f_idle`` = host-bound share;
``p_idle`` is the draw of a GPU running no kernel (an instance with no iteration draws
``p_idle``). The earlier linear form ``p_base + a_c U_c + a_m U_m + a_f f_fixed``
(:func:`gpu_power` without ``form``) is kept as a baseline.

The functions take plain ``dict`` specs (the catalog's TOML tables) and fitted parameter
dicts (``calibration.json``), and broadcast over numpy arrays of ``D, K_d, P, A_p, K_p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp8_block": 1.0, "int8": 1.0,
         "int4": 0.5}
WEIGHT_DTYPES = ("bf16", "fp8", "fp8_block")

# Parameter names of one (GPU[, dtype]) calibration. Per-precision entries are dicts
# {"bf16": x, "fp8": y}; the others are scalars.
PER_DTYPE = ("eta_bw", "eta_moe", "eta_cd", "eta_cp", "eta_mc", "t_layer")
SCALAR = ("eta_kv", "eta_ad", "eta_ap", "t0", "t_host", "t_seq", "bw_ar", "bw_ar_hi", "m_ar", "lat_ar")

# MLA dimensions the catalog does not carry (DeepSeek-V3 config.json defaults)
MLA_DEFAULTS = {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
                "qk_nope_head_dim": 128, "v_head_dim": 128}


def _dt(dtype: str) -> str:
    d = dtype.lower()
    return "bf16" if d in ("bf16", "fp16", "bfloat16", "float16") else d


def model_terms(model: Mapping[str, Any], *, tp: int = 1, ep: int = 1, dtype: str = "bf16",
                kv_dtype: str = "bf16", fp8_scope: str = "linear", act_bytes: float = 2.0,
                comm: str = "allreduce") -> dict[str, Any]:
    """Per-GPU constants of ``model`` on an instance of ``max(tp, ep)`` GPUs.

    ``model`` is a catalog model table (``layers, hidden_size, attention_heads, kv_heads,
    head_dim, intermediate_size, vocab_size, params_total_b, expert_params_b, experts,
    experts_per_token, moe_layers, attention`` [+ MLA keys]). ``dtype`` is the weight
    precision of the checkpoint; with ``fp8``, ``fp8_scope`` says which linears are fp8:
    ``"linear"`` (every linear except the LM head: Qwen3-FP8, DeepSeek-V3 block FP8) or
    ``"ffn"`` (only the FFN of layers 1..L-2: Meta's Llama-3.1-405B-Instruct-FP8, whose
    attention and first/last layers stay bf16). ``comm``: ``"allreduce"`` (TP, and vLLM's
    TP+EP layout where attention is TP-sharded and the expert outputs are reduced across the
    same group) or ``"a2a"`` (data-parallel attention + EP dispatch/combine, projected).
    """
    m = model
    L = int(m["layers"])
    h = float(m["hidden_size"])
    H = float(m["attention_heads"])
    kvh = float(m["kv_heads"])
    hd = float(m["head_dim"])
    V = float(m["vocab_size"])
    E = int(m.get("experts", 0) or 0)
    k = int(m.get("experts_per_token", 0) or 0)
    moe_layers = int(m.get("moe_layers", 0) or 0)
    mla = str(m.get("attention", "gqa")).lower() == "mla"
    wq = _dt(dtype)
    if wq not in WEIGHT_DTYPES:
        raise ValueError(f"weight dtype {dtype!r}: only bf16/fp16, fp8 (per-tensor/channel "
                         "scales) and fp8_block (128x128 block scales) are modelled")
    ep = int(ep) if E > 0 else 1
    g = max(int(tp), ep)
    if comm == "a2a" and tp != 1:
        raise ValueError("comm='a2a' models data-parallel attention: use tp=1, ep=GPUs")
    dp = g if comm == "a2a" else 1  # data-parallel ranks sharing the instance's tokens

    P_total = float(m["params_total_b"]) * 1e9
    P_exp = float(m.get("expert_params_b", 0.0) or 0.0) * 1e9
    P_emb = V * h  # input embedding: a gather, neither streamed nor multiplied
    P_head = V * h  # LM head (untied in every catalog model)
    if mla:
        d = {kk: float(m.get(kk, MLA_DEFAULTS[kk])) for kk in MLA_DEFAULTS}
        qk_nope = d["qk_nope_head_dim"] if "qk_nope_head_dim" in m else hd
        v_hd = d["v_head_dim"] if "v_head_dim" in m else hd
        r, rope, ql = d["kv_lora_rank"], d["qk_rope_head_dim"], d["q_lora_rank"]
        attn_per_layer = (h * ql + ql * H * (qk_nope + rope) + h * (r + rope)
                          + r * H * (qk_nope + v_hd) + H * v_hd * h)
    else:
        attn_per_layer = h * (H + 2 * kvh) * hd + H * hd * h
        r = rope = qk_nope = v_hd = 0.0
    P_attn = L * attn_per_layer
    P_dense_ffn = max(P_total - P_emb - P_head - P_exp - P_attn, 0.0)  # dense FFN, shared
    # experts, routers, norms

    # precision of each component
    fp8 = wq in ("fp8", "fp8_block")
    if fp8 and fp8_scope == "ffn":
        ffn_fp8_share = max(L - 2, 0) / L
        comp = {"attn": (P_attn, "bf16"), "ffn8": (P_dense_ffn * ffn_fp8_share, wq),
                "ffn16": (P_dense_ffn * (1 - ffn_fp8_share), "bf16"), "head": (P_head, "bf16")}
        exp_q = wq
    elif fp8:
        comp = {"attn": (P_attn, wq), "ffn": (P_dense_ffn, wq), "head": (P_head, "bf16")}
        exp_q = wq
    else:
        comp = {"attn": (P_attn, "bf16"), "ffn": (P_dense_ffn, "bf16"), "head": (P_head, "bf16")}
        exp_q = "bf16"

    w_dense = dict.fromkeys(WEIGHT_DTYPES, 0.0)
    f_tok = dict.fromkeys(WEIGHT_DTYPES, 0.0)
    for _name, (p, q) in comp.items():
        w_dense[q] += p * BYTES[q] / tp
        f_tok[q] += 2.0 * p / tp / dp
    # routed experts: all resident bytes of this GPU, and balanced FLOPs per token
    exp_shard = ep if ep > 1 else tp
    w_exp = dict.fromkeys(WEIGHT_DTYPES, 0.0)
    f_exp = dict.fromkeys(WEIGHT_DTYPES, 0.0)
    if E > 0:
        w_exp[exp_q] = P_exp * BYTES[exp_q] / exp_shard
        f_exp[exp_q] = 2.0 * P_exp * (k / E) / g

    kvb = BYTES[_dt(kv_dtype)]
    if mla:
        kv_tok = L * (r + rope) * kvb / dp  # latent replicated on every TP rank
        f_dec = 2.0 * L * (H / tp) * (2 * r + rope) / dp
        f_pre = 2.0 * L * (H / tp) * (qk_nope + rope + v_hd) / dp
    else:
        kv_tok = 2.0 * L * max(1.0, math.ceil(kvh / tp)) * hd * kvb / dp
        f_dec = f_pre = 4.0 * L * (H / tp) * hd / dp

    I_dense = float(m.get("intermediate_size", 0) or 0)
    dense_layers = L - moe_layers if E > 0 else L
    e_tok = (L * 8.0 * h + dense_layers * 3.0 * I_dense / tp) * act_bytes / dp

    return {
        "layers": L, "hidden": h, "tp": int(tp), "ep": ep, "gpus": g, "dtype": wq,
        "experts": E, "top_k": k, "w_dense": w_dense, "w_exp": w_exp, "f_tok": f_tok,
        "f_exp": f_exp,
        "kv_tok": kv_tok, "f_dec": f_dec, "f_pre": f_pre, "e_tok": e_tok,
        "act_bytes": act_bytes, "n_ar": 2, "comm": comm if g > 1 else "none",
        "p_matmul_active": sum(p for p, _ in comp.values()) + (P_exp * k / E if E else 0.0),
    }


def hw_terms(gpu: Mapping[str, Any]) -> dict[str, float]:
    """Peak numbers of a catalog GPU table (bytes/s, FLOP/s per precision)."""
    bf16 = float(gpu["fp16_tflops"]) * 1e12
    fp8 = float(gpu.get("fp8_tflops", 0.0) or 0.0) * 1e12
    return {"bw": float(gpu["hbm_bw_tb_s"]) * 1e12,
            "peak": {"bf16": bf16, "fp8": fp8 or bf16, "fp8_block": fp8 or bf16},
            "tdp": float(gpu.get("tdp_w", 0.0) or 0.0)}


# E[max of g iid standard normals], g = 1, 2, 4, 8, 16 (Tippett / Harter tables)
_EMAX_NORMAL = {1: 0.0, 2: 0.5642, 4: 1.0294, 8: 1.4236, 16: 1.7660}


def expert_fraction(tokens: ArrayLike, experts: int, top_k: int, ep: int = 1) -> NDArray[np.float64]:
    """Share of a layer's routed experts whose weights the critical GPU streams in a step of
    ``tokens`` tokens: ``p = 1 - (1 - k/E)^T`` per expert (independent uniform top-k routing).

    With expert parallelism over ``ep`` GPUs each GPU holds ``n = E/ep`` experts and the step
    waits for the GPU that touched the most: ``E[max] ~ n p + z_ep sqrt(n p (1-p))`` (normal
    approximation of the maximum of ``ep`` binomials), returned as a share of ``n``.
    """
    t = np.maximum(np.asarray(tokens, dtype=float), 0.0)
    if experts <= 0:
        return np.ones_like(t)
    p = 1.0 - (1.0 - top_k / experts) ** t
    if ep <= 1:
        return p
    n = experts / ep
    z = _EMAX_NORMAL.get(int(ep), math.sqrt(2.0 * math.log(ep)))
    return np.minimum(1.0, p + z * np.sqrt(p * (1.0 - p) / n))


def ar_bandwidth(msg: ArrayLike, params: Mapping[str, Any]) -> NDArray[np.float64]:
    """Bus bandwidth of an all-reduce of ``msg`` bytes: ``bw_ar`` for small messages rising
    to ``bw_ar_hi`` for large ones (NCCL protocol/pipelining), half-way at ``m_ar`` bytes."""
    lo = float(params["bw_ar"])
    hi = params.get("bw_ar_hi")
    if hi is None:
        return np.full(np.shape(msg), lo) if np.ndim(msg) else lo
    m = np.asarray(msg, dtype=float)
    return lo + (float(hi) - lo) * m / (m + float(params["m_ar"]))


def _pd(params: Mapping[str, Any], name: str, q: str) -> float:
    """Per-precision parameter; fp8_block falls back to fp8, fp8 to bf16."""
    v = params[name]
    if isinstance(v, Mapping):
        for key in (q, "fp8" if q == "fp8_block" else q, "bf16"):
            x = v.get(key)
            if x is not None:
                return float(x)
        raise KeyError(f"{name}[{q}]")
    return float(v)


def step_terms(D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
               K_p: ArrayLike = 0.0, *, mt: Mapping[str, Any], hw: Mapping[str, Any],
               params: Mapping[str, Any], form: str = "split",
               host: str = "overlap") -> dict[str, NDArray[np.float64]]:
    """All terms of one step (seconds, per GPU) plus its bytes and FLOPs, broadcast."""
    D = np.asarray(D, dtype=float)
    K_d = np.asarray(K_d, dtype=float)
    P = np.asarray(P, dtype=float)
    A_p = np.asarray(A_p, dtype=float)
    K_p = np.asarray(K_p, dtype=float)
    T = D + P
    bw = float(hw["bw"])
    peak = hw["peak"]
    frac = expert_fraction(np.maximum(T, 1.0), mt["experts"], mt["top_k"], mt["ep"])
    frac_mean = expert_fraction(np.maximum(T, 1.0), mt["experts"], mt["top_k"], 1)
    bytes_mean = 0.0  # what the average GPU streams (the critical one streams `frac`)
    t_wd = t_we = t_cd = t_ce = 0.0
    bytes_w = 0.0
    flops_g = 0.0
    flops_g_bf16eq = 0.0
    fl_dense = fl_moe = 0.0  # bf16-equivalent GEMM FLOPs by kernel class
    fl_fp8 = 0.0  # FLOPs run in an fp8 precision (actual, not bf16-equivalent)
    b_dense = b_moe = 0.0  # weight bytes (dense; experts touched by the average GPU)
    for q in WEIGHT_DTYPES:
        wd, we = mt["w_dense"][q], mt["w_exp"][q] * frac
        fd, fe = mt["f_tok"][q], mt["f_exp"][q]
        if wd == 0 and mt["w_exp"][q] == 0 and fd == 0 and fe == 0:
            continue
        t_wd = t_wd + wd / (bw * _pd(params, "eta_bw", q))
        t_cd = t_cd + fd * (D / _pd(params, "eta_cd", q) + P / _pd(params, "eta_cp", q)) / peak[q]
        if mt["w_exp"][q] > 0:
            t_we = t_we + we / (bw * _pd(params, "eta_moe", q))
            t_ce = t_ce + fe * T / (_pd(params, "eta_mc", q) * peak[q])
        bytes_w = bytes_w + wd + we
        bytes_mean = bytes_mean + wd + mt["w_exp"][q] * frac_mean
        flops_g = flops_g + (fd + fe) * T
        flops_g_bf16eq = flops_g_bf16eq + (fd + fe) * T * peak["bf16"] / peak[q]
        fl_dense = fl_dense + fd * T * peak["bf16"] / peak[q]
        fl_moe = fl_moe + fe * T * peak["bf16"] / peak[q]
        if q != "bf16":
            fl_fp8 = fl_fp8 + (fd + fe) * T
        b_dense = b_dense + wd
        b_moe = b_moe + mt["w_exp"][q] * frac_mean
    t_w = t_wd + t_we
    t_cg = t_cd + t_ce
    kv_bytes = mt["kv_tok"] * (K_d + K_p + P)
    t_kv = kv_bytes / (bw * float(params["eta_kv"]))
    flops_a = mt["f_dec"] * K_d + mt["f_pre"] * A_p
    t_ca = (mt["f_dec"] * K_d / float(params["eta_ad"])
            + mt["f_pre"] * A_p / float(params["eta_ap"])) / peak["bf16"]
    e_bytes = mt["e_tok"] * T
    t_elem = e_bytes / (bw * _pd(params, "eta_bw", "bf16"))
    L = mt["layers"]
    g = mt["gpus"]
    if mt["comm"] == "allreduce":
        msg = T * mt["hidden"] * mt["act_bytes"]
        t_comm = mt["n_ar"] * L * (2.0 * (g - 1) / g * msg / ar_bandwidth(msg, params)
                                   + float(params["lat_ar"]))
    elif mt["comm"] == "a2a":  # dispatch + combine of T/g local tokens x top-k (projected)
        msg = (T / g) * max(mt["top_k"], 1) * mt["hidden"] * mt["act_bytes"] * (g - 1) / g
        t_comm = 2.0 * L * (msg / ar_bandwidth(msg, params) + float(params["lat_ar"]))
    else:
        t_comm = np.zeros_like(T)
    t_fixed = (float(params["t0"]) + _pd(params, "t_layer", mt["dtype"]) * L
               + float(params.get("t_seq", 0.0)) * D)
    t_host = float(params.get("t_host", 0.0)) + 0.0 * D
    if form == "split":
        t_gemm = np.maximum(t_wd, t_cd) + np.maximum(t_we, t_ce)
        t_attn = np.maximum(t_kv, t_ca)
        t_gpu = t_gemm + t_attn + t_elem + t_comm + t_fixed
    elif form == "single":
        t_gemm = np.maximum(t_w + t_kv + t_elem, t_cg + t_ca)
        t_attn = np.zeros_like(t_gemm)
        t_elem = np.zeros_like(t_gemm)
        t_gpu = t_gemm + t_comm + t_fixed
    else:
        raise ValueError(f"form must be 'split' or 'single', got {form!r}")
    if host == "overlap":
        t_step = np.maximum(t_gpu, t_host)
    elif host == "serial":
        t_step = t_gpu + t_host
    else:
        raise ValueError(f"host must be 'overlap' or 'serial', got {host!r}")
    zeros = np.zeros_like(T)
    t_floor = float(params["t0"]) + _pd(params, "t_layer", mt["dtype"]) * L
    # the checkpoint precision's floor above the bf16 one (block-FP8: slow dequantising GEMM
    # kernels, compute-busy, not latency gaps)
    t_floor_x = max(_pd(params, "t_layer", mt["dtype"]) - _pd(params, "t_layer", "bf16"), 0.0) * L
    if form == "split":
        t_gemm_dense = np.maximum(t_wd, t_cd)
        t_gemm_moe = np.maximum(t_we, t_ce)
    else:  # no separate kernel classes in the single form
        t_gemm_dense = t_gemm
        t_gemm_moe = np.zeros_like(t_gemm)
    return {
        "t_step": t_step + zeros, "t_gpu": t_gpu + zeros, "t_host": t_host + zeros,
        "t_gemm_dense": t_gemm_dense + zeros, "t_gemm_moe": t_gemm_moe + zeros,
        "t_floor": t_floor + zeros, "t_floor_x": t_floor_x + zeros,
        "t_seqwork": t_fixed - t_floor + zeros,
        "t_gemm": t_gemm + zeros, "t_attn": t_attn + zeros,
        "t_elem": t_elem + zeros, "t_comm": t_comm + zeros, "t_fixed": t_fixed + zeros,
        "t_w": t_w + zeros, "t_cg": t_cg + zeros, "t_kv": t_kv + zeros, "t_ca": t_ca + zeros,
        "bytes": bytes_w + kv_bytes + e_bytes + zeros,
        "bytes_mean": bytes_mean + kv_bytes + e_bytes + zeros,
        "flops": flops_g + flops_a + zeros,
        "flops_bf16eq": flops_g_bf16eq + flops_a + zeros,
        "flops_dense_bf16eq": fl_dense + zeros, "flops_moe_bf16eq": fl_moe + zeros,
        "flops_attn": flops_a + zeros, "flops_fp8": fl_fp8 + zeros,
        "bytes_dense": b_dense + zeros, "bytes_moe_mean": b_moe + zeros,
        "bytes_kv": kv_bytes + zeros, "bytes_elem": e_bytes + zeros,
        "tokens_decode": D + zeros, "tokens_prefill": P + zeros,
    }


def step_time(D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0, **kw: Any) -> NDArray[np.float64]:
    """Seconds of one step (see :func:`step_terms` for the keyword arguments)."""
    return step_terms(D, K_d, P, A_p, K_p, **kw)["t_step"]


def decode_step_time(batch: ArrayLike, ctx: ArrayLike, **kw: Any) -> NDArray[np.float64]:
    """A decode-only step of ``batch`` sequences each at context ``ctx``."""
    b = np.asarray(batch, dtype=float)
    return step_time(b, b * np.asarray(ctx, dtype=float), **kw)


def chunk_pairs(start: ArrayLike, length: ArrayLike) -> NDArray[np.float64]:
    """Causal attention pairs of a chunk covering positions ``start+1 .. start+length``."""
    s = np.asarray(start, dtype=float)
    c = np.asarray(length, dtype=float)
    return c * s + c * (c + 1.0) / 2.0


def prefill_time(prompt: ArrayLike, *, chunk: int = 8192, decode_batch: ArrayLike = 0.0,
                 decode_ctx: ArrayLike = 0.0, **kw: Any) -> NDArray[np.float64]:
    """Seconds to prefill one prompt in chunks of ``chunk`` tokens, each chunk sharing its
    step with ``decode_batch`` decode sequences at ``decode_ctx`` (0: prefill alone).

    The prompt's last partial chunk is a step of its own; every chunk pays the fixed cost.
    """
    lp = np.atleast_1d(np.asarray(prompt, dtype=float))
    out = np.zeros_like(lp)
    b = np.asarray(decode_batch, dtype=float)
    kd = b * np.asarray(decode_ctx, dtype=float)
    for i, ell in enumerate(lp):
        n = max(1, int(math.ceil(ell / chunk)))
        starts = np.arange(n, dtype=float) * chunk
        lens = np.minimum(chunk, ell - starts)
        t = step_time(b + 0 * lens, kd + 0 * lens, lens, chunk_pairs(starts, lens), starts, **kw)
        out[i] = float(np.sum(t))
    return out.reshape(np.shape(prompt)) if np.ndim(prompt) else out[0]


def utilisation(terms: Mapping[str, ArrayLike], hw: Mapping[str, Any]) -> dict[str, NDArray]:
    """Activity of a step (or of a mix of steps: pass time-weighted sums) on the average GPU:

    * ``u_c``: achieved tensor FLOP/s / peak bf16 FLOP/s (fp8 FLOPs counted at the bf16 rate
      ratio, so a fully busy fp8 pipe is 1);
    * ``u_m``: achieved HBM bytes/s / peak bandwidth (average GPU: under EP the MoE experts it
      touches on average, not the critical GPU's);
    * ``f_fixed``: share of the step in per-layer kernel floors and per-sequence work
      (latency-bound kernels that keep the GPU clocked up but move little data);
    * ``f_comm``, ``f_idle`` (host-bound share with no GPU work);
    * for :func:`gpu_power_sat`: ``f_floor`` (latency floors at the bf16 level, ``t0 +
      t_layer[bf16] L``), ``f_floor_x`` (the checkpoint precision's floor above it: block-FP8
      dequantising kernels), ``f_seq`` (per-sequence work ``t_seq D``).
    """
    t = np.asarray(terms["t_step"], dtype=float)
    fl = np.asarray(terms.get("t_floor", terms["t_fixed"]), dtype=float)
    flx = np.asarray(terms.get("t_floor_x", 0.0), dtype=float)
    return {
        "f_floor": (fl - flx) / t, "f_floor_x": flx / t,
        "f_seq": (np.asarray(terms["t_fixed"], dtype=float) - fl) / t,
        "u_c": np.asarray(terms["flops_bf16eq"], dtype=float) / t / float(hw["peak"]["bf16"]),
        "u_m": np.asarray(terms.get("bytes_mean", terms["bytes"]), dtype=float) / t / float(hw["bw"]),
        "f_fixed": np.asarray(terms["t_fixed"], dtype=float) / t,
        "f_comm": np.asarray(terms["t_comm"], dtype=float) / t,
        "f_idle": 1.0 - np.asarray(terms["t_gpu"], dtype=float) / t,
    }


def gpu_power(util: Mapping[str, ArrayLike], coef: Mapping[str, float],
              tdp: float | None = None) -> NDArray[np.float64]:
    """Per-GPU watts ``p_base + a_c U_c + a_m U_m + a_f f_fixed``, clipped to ``[p_base, tdp]``
    (the earlier linear utilisation model, kept as a baseline); with ``coef["form"] ==
    "busy_sat"`` it evaluates :func:`gpu_power_sat` (the fitted model).

    ``coef``: ``p_base`` (serving GPU at zero modelled utilisation, not an idle GPU) and
    ``a_c, a_m, a_f`` (watts at full utilisation of each kind); ``util`` from
    :func:`utilisation` (time-averaged over the steps of an operating point).
    """
    if coef.get("form") == "busy_sat":
        return gpu_power_sat(util, coef, tdp)
    base = float(coef.get("p_base", coef.get("p_idle", 0.0)))
    p = (base + float(coef["a_c"]) * np.asarray(util["u_c"], dtype=float)
         + float(coef["a_m"]) * np.asarray(util["u_m"], dtype=float)
         + float(coef.get("a_f", 0.0)) * np.asarray(util.get("f_fixed", 0.0), dtype=float))
    hi = np.inf if not tdp else float(tdp)
    return np.clip(p, base, hi)


def gpu_power_sat(util: Mapping[str, ArrayLike], coef: Mapping[str, float],
                  tdp: float | None = None) -> NDArray[np.float64]:
    """Per-GPU watts, saturating busy-time form (the fitted power model).

    A step is split into low-power time and busy time. Low-power time is the latency-floor
    share ``f_floor`` (launch gaps, tiny kernels at the bf16 floor level) plus the host-bound
    share ``f_idle``; the GPU draws its idle power ``p_idle`` there. In the busy rest the
    draw rises with what the GPU does per second of busy time and saturates at the power
    limit ``tdp``::

      s_lo   = f_floor + f_idle
      x      = b0 + (b_c U_c + b_m U_m + b_x f_floor_x + b_s f_seq) / (1 - s_lo)
      P_busy = p_idle + (tdp - p_idle) (1 - exp(-x))
      P      = s_lo p_idle + (1 - s_lo) P_busy

    ``U_c`` (tensor FLOP/s / bf16 peak), ``U_m`` (HBM bytes/s / peak), ``f_floor_x`` (block-FP8
    dequantising-kernel time) and ``f_seq`` (per-sequence work) come from :func:`utilisation`
    (time-averaged over the steps of an operating point); divided by ``1 - s_lo`` they are
    intensities during busy time. ``coef``: ``p_idle`` (W), dimensionless ``b0, b_c, b_m,
    b_x, b_s`` (>= 0). A GPU that runs no iteration (``f_idle = 1``) draws ``p_idle``.
    """
    u = {k: np.asarray(util.get(k, 0.0), dtype=float) for k in
         ("u_c", "u_m", "f_floor", "f_floor_x", "f_seq", "f_idle")}
    p_lo = float(coef["p_idle"])
    cap = float(tdp if tdp else coef["tdp_w"])
    busy = 1.0 - np.clip(u["f_floor"] + u["f_idle"], 0.0, 1.0)
    x = float(coef.get("b0", 0.0)) + (float(coef.get("b_c", 0.0)) * u["u_c"]
                                      + float(coef.get("b_m", 0.0)) * u["u_m"]
                                      + float(coef.get("b_x", 0.0)) * u["f_floor_x"]
                                      + float(coef.get("b_s", 0.0)) * u["f_seq"]) / np.maximum(busy, 1e-9)
    p_busy = p_lo + (cap - p_lo) * (1.0 - np.exp(-np.maximum(x, 0.0)))
    return p_lo + busy * (p_busy - p_lo)
