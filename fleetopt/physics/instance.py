"""What one instance does: ``fleetopt instance`` (issue 11 item 8) and its Python form.

For a computed profile and a list of decode batches at one context, :func:`instance_summary`
gives the instance's KV capacity (paged tokens, and reserved slots at a window), its engine
limits and, per batch, the decode step (every sequence at context ``ctx``), the output
tokens per second ``batch / step``, the largest prefill rate beside that batch (the rest of the
token budget, ``token_budget - batch`` tokens, as one chunk of a fresh prompt: ``chunk /
step``) and the per-GPU power of the decode step (:class:`~fleetopt.physics.power.ActivityPower`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetopt.physics.catalog.specs import GIB
from fleetopt.physics.profiles import ComputedProfile

__all__ = ["instance_summary"]


def instance_summary(profile: ComputedProfile, batches: Sequence[int], ctx_tokens: int,
                     window_tokens: int) -> dict[str, Any]:
    """The body of a ``fleetopt.instance/1`` document (``docs/config.md``)."""
    p = profile
    c = p.step
    pw = p.power_model
    points = []
    for b in batches:
        k_d = float(b) * ctx_tokens
        te = c.scalar_terms(b, k_d)
        chunk = max(p.token_budget - int(b), 0)
        pre = 0.0
        if chunk > 0:
            t_pre = c.step_s(b, k_d, chunk, chunk * (chunk + 1) / 2.0, 0.0)
            pre = chunk / t_pre
        points.append({
            "batch": int(b), "ctx": int(ctx_tokens), "step_ms": 1e3 * te.t_step,
            "output_tok_per_s": b / te.t_step, "prefill_tok_per_s_max": pre,
            "power_w_per_gpu": pw.scalar_step_power_w(te, c),
            "compute_bound": te.t_cmp > te.t_mem,
            "within_limits": int(b) <= p.max_seqs and k_d <= p.kv_capacity_tokens,
        })
    return {
        "deployment": {
            "gpu": p.gpu, "model": p.model.name, "tp": p.tp, "ep": p.ep, "dtype": p.dtype,
            "kv_dtype": p.kv_dtype, "gpus": p.gpus_per_instance,
            "step_precision": p.step_precision, "calibration": p.calibration_quality,
            "calibration_set": p.calibration.set_name, "power_quality": pw.quality,
            "token_budget": p.token_budget, "max_seqs": p.max_seqs,
            "block_tokens": p.block_tokens, "idle_w_per_gpu": p.idle_w,
            "tdp_w_per_gpu": float(pw.tdp_w),
            "weight_gib_per_gpu": p.weight_bytes_per_gpu / GIB,
            "kv_bytes_per_token_per_gpu": p.kv_bytes_per_token,
        },
        "kv_tokens": p.kv_capacity_tokens,
        "window_tokens": int(window_tokens),
        "slots_reserved": p.slots(int(window_tokens)),
        "points": points,
    }
