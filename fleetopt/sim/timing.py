"""Scalar (pure-Python) versions of a profile's iteration and prefill times, for the simulator.

The simulator asks for an iteration time at every event; numpy's per-call overhead (several
microseconds per ufunc on a scalar) would dominate. For the two shipped profile kinds the
closed forms of :mod:`fleetopt.physics.profiles` are re-expressed on Python floats (tested equal to
the numpy versions); any other :class:`~fleetopt.physics.profiles.Profile` subclass falls back to
calling its own methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fleetopt.physics.profiles import CalibratedProfile, ComputedProfile, Profile

__all__ = ["DecodeFn", "PrefillFn", "scalar_timing"]

DecodeFn = Callable[[float, float], float]
"""``decode(batch, mean_ctx_tokens) -> seconds per iteration``."""
PrefillFn = Callable[[float, float, float], float]
"""``prefill(prompt_tokens, batch, mean_ctx_tokens) -> seconds``."""


def scalar_timing(profile: Profile) -> tuple[DecodeFn, PrefillFn]:
    """Fast scalar ``decode`` and ``prefill`` functions equal to the profile's own methods."""
    if type(profile) is CalibratedProfile:
        return _calibrated(profile)
    if type(profile) is ComputedProfile:
        return _computed(profile)

    def decode(n: float, ctx: float) -> float:
        return float(profile.decode_s(n, ctx))

    def prefill(lin: float, n: float, ctx: float) -> float:
        return float(profile.prefill_s(lin, n, ctx))

    return decode, prefill


def _calibrated(p: CalibratedProfile) -> tuple[DecodeFn, PrefillFn]:
    s = p.spec
    base = float(s.base_iter_s)
    slope = float(s.per_seq_s) / float(s.ref_ctx_tokens)
    chunk = float(s.chunk_tokens)
    ceil = math.ceil

    def decode(n: float, ctx: float) -> float:
        return base + slope * ctx * n

    def prefill(lin: float, n: float, ctx: float) -> float:
        k = ceil(lin / chunk)
        if k < 1:
            k = 1
        return k * (base + slope * ctx * (n if n > 1.0 else 1.0))

    return decode, prefill


def _computed(p: ComputedProfile) -> tuple[DecodeFn, PrefillFn]:
    m, pp = p.model, p.params
    dense = float(p.dense_bytes)
    expert = float(p.expert_bytes)
    experts, top_k = int(m.experts), int(m.experts_per_token)
    keep = (1.0 - top_k / experts) if experts > 0 else 0.0
    kvb = float(p.kv_bytes_per_token)
    fb = float(p.flops_per_token_base)
    attn = float(p.attn_flops_per_ctx_token)
    mem_rate = float(p.bandwidth) * pp.mem_efficiency
    cmp_rate = float(p.peak_flops) * pp.compute_efficiency
    overhead = float(pp.overhead_s)
    chunk = float(pp.chunk_tokens)
    eff_ratio = pp.compute_efficiency / pp.prefill_efficiency
    ceil = math.ceil
    moe = experts > 0

    def _iter(n: float, ctx: float, extra: float) -> float:
        nn = n if n > 1.0 else 1.0
        w = dense + expert * (1.0 - keep**nn) if moe else dense + expert
        t_mem = (w + n * ctx * kvb) / mem_rate
        t_cmp = (n * (fb + attn * ctx) + extra) / cmp_rate
        return (t_mem if t_mem > t_cmp else t_cmp) + overhead

    def decode(n: float, ctx: float) -> float:
        return _iter(n, ctx, 0.0)

    def prefill(lin: float, n: float, ctx: float) -> float:
        k = ceil(lin / chunk)
        if k < 1:
            k = 1
        f = (fb * lin + attn * lin * lin / 2.0) * eff_ratio
        return k * _iter(n, ctx, f / k)

    return decode, prefill
