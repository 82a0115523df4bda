"""Physics of LLM serving: power, roofline, KV capacity, prefill, queueing (pure functions)."""

from fleetopt.models.kv import (
    dtype_bytes,
    kv_budget_bytes,
    kv_bytes_per_token_per_gpu,
    kv_heads_per_gpu,
    slots_at_window,
)
from fleetopt.models.power import PowerCurve, gpu_power_w
from fleetopt.models.prefill import n_chunks, prefill_flops
from fleetopt.models.queueing import erlang_c, kimura_p99_wait_s, ttft_quantile_s, wait_tail_rate
from fleetopt.models.roofline import (
    decode_iteration_s,
    expected_expert_fraction,
    streamed_weight_bytes,
)

__all__ = [
    "PowerCurve", "decode_iteration_s", "dtype_bytes", "erlang_c", "expected_expert_fraction",
    "gpu_power_w", "kimura_p99_wait_s", "kv_budget_bytes", "kv_bytes_per_token_per_gpu",
    "kv_heads_per_gpu", "n_chunks", "prefill_flops", "slots_at_window", "streamed_weight_bytes",
    "ttft_quantile_s", "wait_tail_rate",
]
