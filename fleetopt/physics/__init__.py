"""Per-instance physics of LLM serving, as pure functions: KV capacity, the iteration (step)
model and its calibration, the activity power model, prefill, queueing, burstiness, the
compression of compress bands; the catalogs of GPUs, models and calibrated profiles, and the
profiles built from them (``docs/model.md``).

Nothing here knows of pools, problems or planners. Names load lazily (:mod:`fleetopt.core.lazy`).
"""

from typing import TYPE_CHECKING

from fleetopt.core.lazy import attach

if TYPE_CHECKING:
    from fleetopt.physics.burst import estimate_peak_factor, peak_factor, rescale
    from fleetopt.physics.calibration import GPUCalibration, gpu_calibration
    from fleetopt.physics.catalog import (
        CalibratedSpec,
        Catalog,
        GPUSpec,
        ModelSpec,
        default_catalog,
    )
    from fleetopt.physics.compression import compress, compress_paper
    from fleetopt.physics.instance import instance_summary
    from fleetopt.physics.iteration import (
        StepCoefficients,
        StepParams,
        StepTerms,
        step_coefficients,
    )
    from fleetopt.physics.kv import (
        dtype_bytes,
        kv_budget_bytes,
        kv_bytes_per_token_per_gpu,
        kv_capacity_tokens,
        kv_heads_per_gpu,
        slots_at_window,
    )
    from fleetopt.physics.power import (
        Activity,
        ActivityPower,
        PowerCurve,
        activity,
        activity_power_floor_w,
        gpu_power_w,
    )
    from fleetopt.physics.prefill import n_chunks, prefill_flops
    from fleetopt.physics.profiles import (
        CalibratedProfile,
        ComputedProfile,
        Deployment,
        PhysicsParams,
        Profile,
        resolve,
    )
    from fleetopt.physics.queueing import (
        erlang_c,
        kimura_p99_wait_s,
        ttft_exceed_prob,
        ttft_quantile_s,
        wait_tail_rate,
    )
    from fleetopt.physics.step import (
        decode_iteration_s,
        expected_expert_fraction,
        roofline_terms,
        streamed_weight_bytes,
    )

__all__ = [
    "Activity", "ActivityPower", "CalibratedProfile", "CalibratedSpec", "Catalog",
    "ComputedProfile", "Deployment", "GPUCalibration", "GPUSpec", "ModelSpec", "PhysicsParams",
    "PowerCurve", "Profile", "StepCoefficients", "StepParams", "StepTerms", "activity",
    "activity_power_floor_w", "compress", "compress_paper", "decode_iteration_s", "default_catalog", "dtype_bytes",
    "erlang_c", "estimate_peak_factor", "expected_expert_fraction", "gpu_calibration",
    "gpu_power_w", "instance_summary", "kimura_p99_wait_s", "kv_budget_bytes",
    "kv_bytes_per_token_per_gpu", "kv_capacity_tokens", "kv_heads_per_gpu", "n_chunks",
    "peak_factor", "prefill_flops", "rescale", "resolve", "roofline_terms", "slots_at_window",
    "step_coefficients", "streamed_weight_bytes", "ttft_exceed_prob", "ttft_quantile_s",
    "wait_tail_rate",
]
__getattr__, __dir__ = attach(__name__, globals())
