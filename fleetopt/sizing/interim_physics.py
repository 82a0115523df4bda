"""TEMPORARY (issue 11, until the physics branch ``i11-physics`` merges): the iteration cost
and the activity power of a computed profile, so that the pool model
(:mod:`fleetopt.sizing.servemodel`) has an instance to run on.

THE SEAM. :func:`fleetopt.sizing.servemodel.physics_of` uses this module only for a
:class:`~fleetopt.physics.profiles.ComputedProfile` WITHOUT the contract attributes
(``profile.step``, ``profile.power_model``, ``kv_capacity_tokens``, ``token_budget``,
``max_seqs``, ``block_tokens``; ``/work/notes/physics_interface.md``). Once the physics branch
gives every computed profile those attributes, ``physics_of`` takes the contract path
(:class:`fleetopt.sizing.servemodel.ContractPhysics`) and this module is dead: delete it, its
import in ``servemodel.physics_of`` and ``tests/test_interim_physics.py``.

What it is: a line-by-line port of the research step model (``/work/research/calib/
stepmodel.py``, split form, host work overlapped, the saturating busy-time power form
``gpu_power_sat``) with the recommended calibration of each catalog GPU copied from
``/work/research/calib/calibration.json`` (ML.ENERGY fits for H100 and B200, AIC-derived or
projected elsewhere; a GPU it does not know uses the H100 set). Mapping to the package:
``fp16``/``bf16`` weights -> ``bf16``; ``fp8`` -> per-tensor ``fp8`` (the catalog does not say
which models use block scales); ``int4`` -> bf16 kernels streaming 0.5 bytes per weight. KV
capacity comes from the profile's own KV budget (:mod:`fleetopt.physics.kv`); the token budget
and sequence cap are vLLM V1's ``vllm serve`` defaults per GPU class (8192 tokens / 1024
sequences on >= 70 GiB GPUs other than A100, 2048 / 256 on A100 and L40S).
``tests/test_interim_physics.py`` checks the port against the research code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["CALIBRATION", "InterimPhysics", "interim_physics"]

_Q = ("bf16", "fp8", "fp8_block")
_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0}
_MLA = {"q_lora_rank": 1536, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128, "v_head_dim": 128}
_EMAX = {1: 0.0, 2: 0.5642, 4: 1.0294, 8: 1.4236, 16: 1.7660}

# calibration.json, recommended set per GPU (params) and the power fit (coef); copied verbatim
_H100: dict[str, Any] = {
    "params": {"t_seq": 4.581e-05, "t_host": 0.005853,
               "t_layer": {"bf16": 3.752e-05, "fp8": 4.46e-05, "fp8_block": 0.0001555},
               "eta_bw": {"bf16": 0.7857, "fp8": 0.6875, "fp8_block": 0.8857},
               "eta_moe": {"bf16": 0.5992, "fp8": 0.15, "fp8_block": 0.6278},
               "eta_cd": {"bf16": 0.8407, "fp8": 0.5219, "fp8_block": 0.05231},
               "eta_cp": {"bf16": 0.8525, "fp8": 0.5885, "fp8_block": 0.06307},
               "eta_mc": {"bf16": 0.1409, "fp8": 0.08545, "fp8_block": 0.5249},
               "eta_kv": 0.9071, "eta_ad": 0.3, "eta_ap": 0.5872, "t0": 0.0001013,
               "bw_ar": 53620000000.0, "bw_ar_hi": 317300000000.0, "m_ar": 1135000.0,
               "lat_ar": 4.355e-06},
    "power": {"p_idle": 75.0, "b0": 0.5012, "b_c": 3.429, "b_m": 0.7023, "b_x": 1.013,
              "b_s": 1.948, "tdp_w": 700.0},
    "quality": "fitted (ML.ENERGY)",
}
CALIBRATION: dict[str, dict[str, Any]] = {
    "H100-SXM": _H100,
    "H200-SXM": {
        "params": {"t_seq": 4.581e-05, "t_host": 0.005853,
                   "t_layer": {"bf16": 4.196e-05, "fp8": 4.914e-05, "fp8_block": 0.0001583},
                   "eta_bw": {"bf16": 0.7758, "fp8": 0.6466, "fp8_block": 0.8857},
                   "eta_moe": {"bf16": 0.5658, "fp8": 0.1072, "fp8_block": 0.5701},
                   "eta_cd": {"bf16": 0.8333, "fp8": 0.6161, "fp8_block": 0.0564},
                   "eta_cp": {"bf16": 0.8348, "fp8": 0.6713, "fp8_block": 0.06404},
                   "eta_mc": {"bf16": 0.1822, "fp8": 0.1086, "fp8_block": 1.0},
                   "eta_kv": 0.8701, "eta_ad": 0.3, "eta_ap": 0.5819, "t0": 1.337e-19,
                   "bw_ar": 44470000000.0, "bw_ar_hi": 324700000000.0, "m_ar": 902700.0,
                   "lat_ar": 4.364e-06},
        "power": {"p_idle": 75.0, "b0": 0.5012, "b_c": 3.429, "b_m": 0.7023, "b_x": 1.013,
                  "b_s": 1.948, "tdp_w": 700.0},
        "quality": "projected",
    },
    "B200": {
        "params": {"t_seq": 5.214e-05, "t_host": 0.005222,
                   "t_layer": {"bf16": 3.491e-05, "fp8": 4.847e-05, "fp8_block": 0.0002173},
                   "eta_bw": {"bf16": 0.6791, "fp8": 0.7284, "fp8_block": 0.824},
                   "eta_moe": {"bf16": 0.4437, "fp8": 0.3689, "fp8_block": 0.6478},
                   "eta_cd": {"bf16": 0.6995, "fp8": 0.4265, "fp8_block": 0.05857},
                   "eta_cp": {"bf16": 0.7459, "fp8": 0.4766, "fp8_block": 0.06622},
                   "eta_mc": {"bf16": 0.1732, "fp8": 0.1385, "fp8_block": 0.3456},
                   "eta_kv": 0.8821, "eta_ad": 0.3007, "eta_ap": 0.3738, "t0": 1.907e-05,
                   "bw_ar": 94350000000.0, "bw_ar_hi": 587000000000.0, "m_ar": 7685000.0,
                   "lat_ar": 7.08e-06},
        "power": {"p_idle": 140.0, "b0": 0.0, "b_c": 10.3, "b_m": 2.998, "b_x": 32.9,
                  "b_s": 0.0, "tdp_w": 1000.0},
        "quality": "fitted (ML.ENERGY)",
    },
    "GB200": {
        "params": {"t_seq": 5.214e-05, "t_host": 0.005222,
                   "t_layer": {"bf16": 3.608e-05, "fp8": 4.794e-05, "fp8_block": 0.000265},
                   "eta_bw": {"bf16": 0.6933, "fp8": 0.7503, "fp8_block": 0.1648},
                   "eta_moe": {"bf16": 0.4809, "fp8": 0.4325, "fp8_block": 0.2089},
                   "eta_cd": {"bf16": 0.6709, "fp8": 0.3989, "fp8_block": 0.08022},
                   "eta_cp": {"bf16": 0.6979, "fp8": 0.4543, "fp8_block": 0.07431},
                   "eta_mc": {"bf16": 0.1819, "fp8": 0.1582, "fp8_block": 0.236},
                   "eta_kv": 0.9172, "eta_ad": 0.3, "eta_ap": 0.3557, "t0": 1.589e-06,
                   "bw_ar": 197300000000.0, "bw_ar_hi": 562200000000.0, "m_ar": 27660000.0,
                   "lat_ar": 5.412e-06},
        "power": {"p_idle": 165.0, "b0": 0.0, "b_c": 10.3, "b_m": 2.998, "b_x": 32.9,
                  "b_s": 0.0, "tdp_w": 1200.0},
        "quality": "projected",
    },
    "A100-SXM": {
        "params": {"t_seq": 4.581e-05, "t_host": 0.005853, "t_layer": {"bf16": 5.894e-05},
                   "eta_bw": {"bf16": 0.6827}, "eta_moe": {"bf16": 0.482},
                   "eta_cd": {"bf16": 0.7095}, "eta_cp": {"bf16": 0.8573},
                   "eta_mc": {"bf16": 0.1676}, "eta_kv": 0.7447, "eta_ad": 0.423,
                   "eta_ap": 0.4731, "t0": 0.000111, "bw_ar": 129300000000.0,
                   "bw_ar_hi": 240800000000.0, "m_ar": 91650000.0, "lat_ar": 5.993e-06},
        "power": {"p_idle": 60.0, "b0": 0.5012, "b_c": 3.429, "b_m": 0.7023, "b_x": 1.013,
                  "b_s": 1.948, "tdp_w": 400.0},
        "quality": "projected",
    },
    "L40S": {
        "params": {"t_seq": 4.581e-05, "t_host": 0.005853,
                   "t_layer": {"bf16": 1.686e-05, "fp8": 2.306e-05, "fp8_block": 0.0004657},
                   "eta_bw": {"bf16": 0.6778, "fp8": 0.6034, "fp8_block": 0.1771},
                   "eta_moe": {"bf16": 0.6317, "fp8": 0.549, "fp8_block": 0.5197},
                   "eta_cd": {"bf16": 0.6117, "fp8": 0.364, "fp8_block": 0.07913},
                   "eta_cp": {"bf16": 0.6237, "fp8": 0.4763, "fp8_block": 0.1048},
                   "eta_mc": {"bf16": 0.1584, "fp8": 0.1426, "fp8_block": 0.1502},
                   "eta_kv": 0.8665, "eta_ad": 0.2961, "eta_ap": 0.4737, "t0": 0.0001027,
                   "bw_ar": 3695000000.0, "bw_ar_hi": 3602000000.0, "m_ar": 55210000.0,
                   "lat_ar": 1.137e-05},
        "power": {"p_idle": 35.0, "b0": 0.5012, "b_c": 3.429, "b_m": 0.7023, "b_x": 1.013,
                  "b_s": 1.948, "tdp_w": 350.0},
        "quality": "projected",
    },
    "MI300X": {"params": _H100["params"],
               "power": {**_H100["power"], "p_idle": 140.0, "tdp_w": 750.0},
               "quality": "projected"},
}
#: GPUs with vLLM's small-GPU defaults (2048 batched tokens, 256 sequences)
_SMALL_DEFAULTS = ("A100-SXM", "L40S")


def _pd(params: dict[str, Any], name: str, q: str) -> float:
    v = params[name]
    if isinstance(v, dict):
        for key in (q, "fp8" if q == "fp8_block" else q, "bf16"):
            if v.get(key) is not None:
                return float(v[key])
    return float(v)


# numeric fields of InterimPhysics that are arrays over deployments once stacked
_ARRAY_FIELDS = (
    "wd_bf16", "wd_fp8", "we_bf16", "we_fp8", "fd_bf16", "fd_fp8", "fe_bf16", "fe_fp8",
    "cd_bf16", "cd_fp8", "cp_bf16", "cp_fp8", "bw_bf16", "bw_fp8", "moe_bf16", "moe_fp8",
    "mc_bf16", "mc_fp8", "peak_bf16", "peak_fp8", "kv_tok", "f_dec", "f_pre", "e_tok",
    "layers", "hidden", "g", "experts", "top_k", "ep", "bw", "eta_kv", "eta_ad", "eta_ap",
    "t0", "t_layer", "t_layer_bf16", "t_seq", "t_host", "bw_ar", "bw_ar_hi", "m_ar", "lat_ar",
    "p_idle", "b0", "b_c", "b_m", "b_x", "b_s", "tdp",
    "gpus", "idle_w", "kv_capacity_tokens", "token_budget", "max_seqs", "block_tokens",
    "peak_flops", "peak_bw",
)


@dataclass(frozen=True)
class InterimPhysics:
    """The instance protocol of :mod:`fleetopt.sizing.servemodel` for computed profiles
    (TEMPORARY; see the module docstring). Numeric fields are floats for one deployment or
    1-D arrays over deployments after :meth:`stack`; :meth:`terms` broadcasts its inputs
    against them (last axis). Two precisions are carried: the bf16 kernels and the fp8 ones
    (weights of an fp8 checkpoint other than the LM head)."""

    wd_bf16: Any
    wd_fp8: Any
    we_bf16: Any
    we_fp8: Any
    fd_bf16: Any
    fd_fp8: Any
    fe_bf16: Any
    fe_fp8: Any
    cd_bf16: Any
    cd_fp8: Any
    cp_bf16: Any
    cp_fp8: Any
    bw_bf16: Any
    bw_fp8: Any
    moe_bf16: Any
    moe_fp8: Any
    mc_bf16: Any
    mc_fp8: Any
    peak_bf16: Any
    peak_fp8: Any
    kv_tok: Any
    f_dec: Any
    f_pre: Any
    e_tok: Any
    layers: Any
    hidden: Any
    g: Any
    experts: Any
    top_k: Any
    ep: Any
    bw: Any
    eta_kv: Any
    eta_ad: Any
    eta_ap: Any
    t0: Any
    t_layer: Any
    t_layer_bf16: Any
    t_seq: Any
    t_host: Any
    bw_ar: Any
    bw_ar_hi: Any
    m_ar: Any
    lat_ar: Any
    p_idle: Any
    b0: Any
    b_c: Any
    b_m: Any
    b_x: Any
    b_s: Any
    tdp: Any
    gpus: Any
    idle_w: Any
    kv_capacity_tokens: Any
    token_budget: Any
    max_seqs: Any
    block_tokens: Any
    peak_flops: Any
    peak_bw: Any
    #: the step terms :meth:`gpu_power_w` reads (time-averaged)
    power_terms: tuple[str, ...] = ("t_step", "t_gpu", "t_floor", "t_floor_x", "t_fixed",
                                    "flops_bf16eq", "bytes_mean")

    @staticmethod
    def stack(items: list[InterimPhysics]) -> InterimPhysics:
        """One object whose numeric fields are arrays over ``items`` (all stack)."""
        vals: dict[str, Any] = {f: np.asarray([float(getattr(x, f)) for x in items])
                                for f in _ARRAY_FIELDS}
        return InterimPhysics(**vals)

    def take(self, idx: ArrayLike) -> InterimPhysics:
        """The deployments ``idx`` of a stacked object (arrays indexed)."""
        i = np.asarray(idx)
        return replace(self, **{f: np.asarray(getattr(self, f))[i] for f in _ARRAY_FIELDS})

    def terms(self, D: ArrayLike, K_d: ArrayLike, P: ArrayLike = 0.0, A_p: ArrayLike = 0.0,
              K_p: ArrayLike = 0.0) -> dict[str, NDArray[np.float64]]:
        """Per-GPU step terms (seconds, FLOPs, bytes) of stepmodel.step_terms (split form)."""
        D = np.asarray(D, dtype=float)
        K_d = np.asarray(K_d, dtype=float)
        P = np.asarray(P, dtype=float)
        A_p = np.asarray(A_p, dtype=float)
        K_p = np.asarray(K_p, dtype=float)
        T = D + P
        E = np.asarray(self.experts, dtype=float)
        moe = E > 0
        frac: Any
        frac_mean: Any
        if not np.any(moe):  # dense: every expert term is zero
            frac = frac_mean = 1.0
        else:
            Tm = np.maximum(T, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                keep = np.where(moe, 1.0 - np.asarray(self.top_k) / np.where(moe, E, 1.0), 0.0)
                p = 1.0 - keep ** Tm
                n_loc = np.where(moe, E / np.maximum(np.asarray(self.ep, dtype=float), 1.0), 1.0)
                z = _z_ep(self.ep)
                frac = np.where(np.asarray(self.ep) > 1,
                                np.minimum(1.0, p + z * np.sqrt(p * (1.0 - p) / n_loc)), p)
            frac = np.where(moe, frac, 1.0)
            frac_mean = np.where(moe, p, 1.0)
        bw = self.bw
        t_wd = self.wd_bf16 / (bw * self.bw_bf16) + self.wd_fp8 / (bw * self.bw_fp8)
        t_cd = (self.fd_bf16 * (D / self.cd_bf16 + P / self.cp_bf16) / self.peak_bf16
                + self.fd_fp8 * (D / self.cd_fp8 + P / self.cp_fp8) / self.peak_fp8)
        t_we = (self.we_bf16 * frac / (bw * self.moe_bf16)
                + self.we_fp8 * frac / (bw * self.moe_fp8))
        t_ce = (self.fe_bf16 * T / (self.mc_bf16 * self.peak_bf16)
                + self.fe_fp8 * T / (self.mc_fp8 * self.peak_fp8))
        ratio8 = self.peak_bf16 / self.peak_fp8
        flops_g_eq = (self.fd_bf16 + self.fe_bf16) * T + (self.fd_fp8 + self.fe_fp8) * T * ratio8
        w_bytes_mean = (self.wd_bf16 + self.wd_fp8
                        + (self.we_bf16 + self.we_fp8) * frac_mean)
        kv_bytes = self.kv_tok * (K_d + K_p + P)
        t_kv = kv_bytes / (bw * self.eta_kv)
        flops_a = self.f_dec * K_d + self.f_pre * A_p
        t_ca = (self.f_dec * K_d / self.eta_ad + self.f_pre * A_p / self.eta_ap) / self.peak_bf16
        e_bytes = self.e_tok * T
        t_elem = e_bytes / (bw * self.bw_bf16)
        g = np.asarray(self.g, dtype=float)
        msg = T * self.hidden * 2.0
        bwm = self.bw_ar + (self.bw_ar_hi - self.bw_ar) * msg / (msg + self.m_ar)
        multi = g > 1
        t_comm = np.where(multi, 2.0 * self.layers * (2.0 * (g - 1.0) / g * msg / bwm
                                                      + self.lat_ar), 0.0)
        t_floor = self.t0 + self.t_layer * self.layers
        t_fixed = t_floor + self.t_seq * D
        t_gpu = (np.maximum(t_wd, t_cd) + np.maximum(t_we, t_ce) + np.maximum(t_kv, t_ca)
                 + t_elem + t_comm + t_fixed)
        t_step = np.maximum(t_gpu, self.t_host)
        t_floor_x = np.maximum(self.t_layer - self.t_layer_bf16, 0.0) * self.layers
        z0 = np.zeros_like(t_step)
        return {"t_step": t_step, "t_gpu": t_gpu + z0, "t_fixed": t_fixed + z0,
                "t_floor": t_floor + z0, "t_floor_x": t_floor_x + z0, "t_comm": t_comm + z0,
                "flops_bf16eq": flops_g_eq + flops_a + z0,
                "bytes_mean": w_bytes_mean + kv_bytes + e_bytes + z0}

    def gpu_power_w(self, rates: dict[str, ArrayLike]) -> NDArray[np.float64]:
        """Per-GPU watts at time-averaged step terms (stepmodel.gpu_power_sat of
        stepmodel.utilisation): ``rates[k]`` is term ``k`` per second of running steps."""
        t = np.asarray(rates["t_step"], dtype=float)
        f_floor = (np.asarray(rates["t_floor"]) - np.asarray(rates["t_floor_x"])) / t
        f_floor_x = np.asarray(rates["t_floor_x"]) / t
        f_seq = (np.asarray(rates["t_fixed"]) - np.asarray(rates["t_floor"])) / t
        u_c = np.asarray(rates["flops_bf16eq"]) / t / self.peak_bf16
        u_m = np.asarray(rates["bytes_mean"]) / t / self.bw
        f_idle = 1.0 - np.asarray(rates["t_gpu"]) / t
        busy = 1.0 - np.clip(f_floor + f_idle, 0.0, 1.0)
        x = self.b0 + (self.b_c * u_c + self.b_m * u_m + self.b_x * f_floor_x
                       + self.b_s * f_seq) / np.maximum(busy, 1e-9)
        p_busy = self.p_idle + (self.tdp - self.p_idle) * (1.0 - np.exp(-np.maximum(x, 0.0)))
        return np.asarray(self.p_idle + busy * (p_busy - self.p_idle), dtype=float)


def _z_ep(ep: Any) -> NDArray[np.float64]:
    e = np.asarray(ep, dtype=float)
    out = np.sqrt(2.0 * np.log(np.maximum(e, 1.0)))
    for k, v in _EMAX.items():
        out = np.where(e == k, v, out)
    return out


def interim_physics(profile: Any) -> InterimPhysics:
    """The interim instance of a :class:`~fleetopt.physics.profiles.ComputedProfile`."""
    m, gspec, pp = profile.model, profile.gpu_spec, profile.params
    cal = CALIBRATION.get(gspec.name, _H100)
    params, coef = cal["params"], cal["power"]
    tp = int(profile.tp)
    L = int(m.layers)
    h = float(m.hidden_size)
    H = float(m.attention_heads)
    kvh = float(m.kv_heads)
    hd = float(m.head_dim)
    V = float(m.vocab_size or 0)
    E = int(m.experts or 0)
    k = float(m.experts_per_token or 0)
    mla = str(m.attention).lower() == "mla"
    dt = profile.dtype.lower()
    wq = "fp8" if dt in ("fp8", "int8") else "bf16"
    wbytes = 0.5 if dt == "int4" else _BYTES[wq]
    g = tp
    P_total = float(m.params_total_b) * 1e9
    P_exp = float(m.expert_params_b or 0.0) * 1e9
    P_head = V * h
    P_emb = V * h
    if mla:
        qk_nope, v_hd = float(_MLA["qk_nope_head_dim"]), float(_MLA["v_head_dim"])
        r = float(m.kv_lora_rank or _MLA["kv_lora_rank"])
        rope = float(m.qk_rope_head_dim or _MLA["qk_rope_head_dim"])
        ql = float(_MLA["q_lora_rank"])
        attn = (h * ql + ql * H * (qk_nope + rope) + h * (r + rope) + r * H * (qk_nope + v_hd)
                + H * v_hd * h)
    else:
        attn = h * (H + 2 * kvh) * hd + H * hd * h
        r = rope = qk_nope = v_hd = 0.0
    P_attn = L * attn
    P_ffn = max(P_total - P_emb - P_head - P_exp - P_attn, 0.0)
    w = dict.fromkeys(("bf16", "fp8"), 0.0)
    f = dict.fromkeys(("bf16", "fp8"), 0.0)
    for p, q in ((P_attn, wq), (P_ffn, wq), (P_head, "bf16")):
        w[q] += p * (wbytes if q == wq else _BYTES[q]) / tp
        f[q] += 2.0 * p / tp
    we = dict.fromkeys(("bf16", "fp8"), 0.0)
    fe = dict.fromkeys(("bf16", "fp8"), 0.0)
    if E > 0:
        we[wq] = P_exp * wbytes / tp
        fe[wq] = 2.0 * P_exp * (k / E) / g
    kvb = 1.0 if profile.kv_dtype.lower() in ("fp8", "int8") else 2.0
    if mla:
        kv_tok = L * (r + rope) * kvb
        f_dec = 2.0 * L * (H / tp) * (2 * r + rope)
        f_pre = 2.0 * L * (H / tp) * (qk_nope + rope + v_hd)
    else:
        kv_tok = 2.0 * L * max(1.0, math.ceil(kvh / tp)) * hd * kvb
        f_dec = f_pre = 4.0 * L * (H / tp) * hd
    I_dense = float(m.intermediate_size or 0)
    dense_layers = L - int(m.moe_layers or 0) if E > 0 else L
    e_tok = (L * 8.0 * h + dense_layers * 3.0 * I_dense / tp) * 2.0
    peak16 = float(gspec.fp16_tflops) * 1e12
    peak8 = float(gspec.fp8_tflops or 0.0) * 1e12 or peak16
    bt = int(pp.block_tokens)
    cap = int(max(profile.kv_budget_bytes, 0.0) // (profile.kv_bytes_per_token * bt)) * bt
    small = gspec.name in _SMALL_DEFAULTS
    vals: dict[str, Any] = {
        "wd_bf16": w["bf16"], "wd_fp8": w["fp8"], "we_bf16": we["bf16"], "we_fp8": we["fp8"],
        "fd_bf16": f["bf16"], "fd_fp8": f["fp8"], "fe_bf16": fe["bf16"], "fe_fp8": fe["fp8"],
        "cd_bf16": _pd(params, "eta_cd", "bf16"), "cd_fp8": _pd(params, "eta_cd", "fp8"),
        "cp_bf16": _pd(params, "eta_cp", "bf16"), "cp_fp8": _pd(params, "eta_cp", "fp8"),
        "bw_bf16": _pd(params, "eta_bw", "bf16"), "bw_fp8": _pd(params, "eta_bw", "fp8"),
        "moe_bf16": _pd(params, "eta_moe", "bf16"), "moe_fp8": _pd(params, "eta_moe", "fp8"),
        "mc_bf16": _pd(params, "eta_mc", "bf16"), "mc_fp8": _pd(params, "eta_mc", "fp8"),
        "peak_bf16": peak16, "peak_fp8": peak8, "kv_tok": kv_tok, "f_dec": f_dec,
        "f_pre": f_pre, "e_tok": e_tok, "layers": float(L), "hidden": h, "g": float(g),
        "experts": float(E), "top_k": k, "ep": 1.0,
        "bw": float(gspec.hbm_bw_tb_s) * 1e12, "eta_kv": float(params["eta_kv"]),
        "eta_ad": float(params["eta_ad"]), "eta_ap": float(params["eta_ap"]),
        "t0": float(params["t0"]), "t_layer": _pd(params, "t_layer", wq),
        "t_layer_bf16": _pd(params, "t_layer", "bf16"), "t_seq": float(params["t_seq"]),
        "t_host": float(params["t_host"]), "bw_ar": float(params["bw_ar"]),
        "bw_ar_hi": float(params["bw_ar_hi"]), "m_ar": float(params["m_ar"]),
        "lat_ar": float(params["lat_ar"]), "p_idle": float(coef["p_idle"]),
        "b0": float(coef["b0"]), "b_c": float(coef["b_c"]), "b_m": float(coef["b_m"]),
        "b_x": float(coef["b_x"]), "b_s": float(coef["b_s"]),
        "tdp": float(gspec.tdp_w or coef["tdp_w"]),
        "gpus": float(profile.gpus_per_instance), "idle_w": float(coef["p_idle"]),
        "kv_capacity_tokens": float(cap), "token_budget": 2048.0 if small else 8192.0,
        "max_seqs": 256.0 if small else float(min(1024, pp.max_batch)),
        "block_tokens": float(bt), "peak_flops": peak16,
        "peak_bw": float(gspec.hbm_bw_tb_s) * 1e12,
    }
    assert set(vals) == set(_ARRAY_FIELDS) == {x.name for x in fields(InterimPhysics)} - {
        "power_terms"}
    return InterimPhysics(**vals)
