"""Exact evaluation of a fleet against a workload: watts, tokens, dollars, P99 TTFT per pool.

Fleet in, exact result out: :func:`evaluate` (the judge of every plan: each pool through
:class:`~fleetopt.sizing.poolmodel.PoolModel`), :func:`evaluate_plan` (the same with a
problem's workload, settings, model, catalog and physics) and :func:`size_fleet` (a default
fleet, sized by :class:`~fleetopt.sizing.sizer.Sizer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import jsonable, to_json, versioned
from fleetopt.physics import kv as kvm
from fleetopt.physics.burst import MAX_PEAK_FACTOR
from fleetopt.physics.catalog import Catalog, ModelSpec, default_catalog
from fleetopt.physics.profiles import ComputedProfile, PhysicsParams, Profile, resolve
from fleetopt.problem.fleet import Fleet, PoolSpec, with_ep
from fleetopt.problem.settings import Settings
from fleetopt.problem.workload import Workload, describe_share, requests_over
from fleetopt.sizing.poolmodel import SERVE_KEYS
from fleetopt.sizing.sizer import WHY_NO_SLOT, Sizer, pool_model

if TYPE_CHECKING:
    import pandas as pd

    from fleetopt.problem.problem import Problem

__all__ = ["FleetResult", "PoolResult", "evaluate", "evaluate_plan", "evaluate_pool",
           "no_slot_advice", "pool_model", "saturated_point", "size_fleet"]


@dataclass(frozen=True)
class PoolResult:
    """Exact metrics of one pool at its instance count."""

    ctx_lo: int
    ctx_hi: int
    gpu: str
    tp: int
    dtype: str
    instances: int
    gpus: int
    arrival_rate: float
    utilization: float
    mean_batch: float
    slots: int
    window_tokens: int
    p99_ttft_ms: float
    slo_met: bool
    power_w: float
    output_tok_per_s: float
    tok_per_w: float
    cost_per_hr: float
    min_instances: int | None
    compressed_share: float = 0.0
    kv_dtype: str = "fp16"
    # the serving model's figures (physical accounting; None in paper accounting)
    p99_tpot_ms: float | None = None  # P99 over requests of their mean inter-token time
    mean_tpot_ms: float | None = None
    p99_ttlt_ms: float | None = None  # time to last token
    mean_ttlt_ms: float | None = None
    prefill_share: float | None = None  # time share of an instance in prompt steps
    kv_util: float | None = None  # mean KV occupancy / KV capacity (paged)
    kv_overflow_bound: float | None = None  # bound on P(in-flight KV > capacity)
    decode_util: float | None = None  # running decoders / max_num_seqs
    token_util: float | None = None  # tokens per second / full-step capacity
    mean_step_ms: float | None = None
    tpot_slo_ms: float | None = None  # the TPOT target in the verdict (None: no target)
    #: expert parallelism (1, or tp: ``--enable-expert-parallel``) of a mixture of experts;
    #: None for a dense model, which has none (and then left out of the JSON)
    ep: int | None = None
    #: the pool's own design-rate factor when the factors are per pool (``[slo] peak_factor =
    #: "auto"``); None when one factor sizes every pool (the settings'; left out of the JSON)
    peak_factor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The pool's JSON object; ``ep`` follows ``tp`` and is there for a mixture of experts;
        ``peak_factor`` is there when the pools have their own."""
        d = jsonable(asdict(self))
        if d["peak_factor"] is None:
            d.pop("peak_factor")
        return with_ep(d, d.pop("ep"))

    def spec(self) -> PoolSpec:
        return PoolSpec(self.ctx_lo, self.ctx_hi, self.gpu, self.tp, self.instances, self.dtype,
                        self.kv_dtype, None if self.window_tokens == self.ctx_hi else
                        self.window_tokens, self.ep or 1)


@dataclass(frozen=True)
class FleetResult:
    """Per-pool and fleet totals of an evaluated fleet."""

    pools: tuple[PoolResult, ...]
    accounting: str
    ttft_p99_ms_target: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def totals(self) -> dict[str, Any]:
        power = sum(p.power_w for p in self.pools)
        tok = sum(p.output_tok_per_s for p in self.pools)
        served = sum(p.arrival_rate for p in self.pools)
        comp = (sum(p.compressed_share * p.arrival_rate for p in self.pools) / served) if served else 0.0
        worst = max((p.p99_ttft_ms for p in self.pools if p.arrival_rate > 0), default=0.0)
        tps = [p.p99_tpot_ms for p in self.pools if p.arrival_rate > 0
               and p.p99_tpot_ms is not None and not math.isnan(p.p99_tpot_ms)]
        worst_tpot = max(tps) if tps else None
        return {
            "instances": sum(p.instances for p in self.pools),
            "gpus": sum(p.gpus for p in self.pools),
            "power_w": power,
            "cost_per_hr": sum(p.cost_per_hr for p in self.pools),
            "output_tok_per_s": tok,
            "tok_per_w": tok / power if power > 0 else 0.0,
            "worst_p99_ttft_ms": worst if math.isfinite(worst) else None,
            "worst_p99_tpot_ms": worst_tpot if worst_tpot is None or math.isfinite(worst_tpot)
            else None,
            "slo_met": all(p.slo_met for p in self.pools),
            "compressed_share": comp,
            "accounting": self.accounting,
        }

    @property
    def feasible(self) -> bool:
        return all(p.slo_met for p in self.pools)

    @property
    def power_w(self) -> float:
        return float(sum(p.power_w for p in self.pools))

    @property
    def cost_per_hr(self) -> float:
        return float(sum(p.cost_per_hr for p in self.pools))

    def fleet(self) -> Fleet:
        return Fleet(tuple(p.spec() for p in self.pools))

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([p.to_dict() for p in self.pools])

    def to_dict(self) -> dict[str, Any]:
        """The ``fleetopt.evaluation/1`` JSON document (``docs/config.md``)."""
        return versioned("evaluation", {"totals": self.totals,
                                        "pools": [p.to_dict() for p in self.pools]})

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self.to_dict(), indent)


def evaluate_pool(
    spec: PoolSpec, profile: Profile, workload: Workload, settings: Settings,
    field_name: str = "fleet.pools",
) -> PoolResult:
    """Exact metrics of one pool."""
    if spec.window > profile.max_context:
        raise FleetoptError(
            f"{field_name}.ctx_hi", f"window {spec.window} tokens exceeds the model's maximum "
            f"context {profile.max_context}; lower it or use a compress band"
        )
    pm = pool_model(spec, profile, workload, settings)
    if pm.slots < 1:
        raise FleetoptError(
            f"{field_name}.gpu", f"{profile.label()} has no KV slot for a {spec.window}-token "
            f"window; "
            + no_slot_advice(profile, "a smaller window (window_tokens: a compress band)")
        )
    m = pm.metrics([spec.instances])
    power = float(m["power_w"][0])
    tok = float(m["output_tok_per_s"][0])
    serve = {k: _opt(m[k][0]) for k in SERVE_KEYS}
    return PoolResult(
        ctx_lo=spec.ctx_lo, ctx_hi=spec.ctx_hi, gpu=profile.gpu, tp=profile.tp,
        dtype=profile.dtype, instances=spec.instances,
        gpus=spec.instances * profile.gpus_counted(settings.accounting),
        arrival_rate=pm.rate_rps, utilization=float(m["utilization"][0]),
        mean_batch=float(m["mean_batch"][0]), slots=pm.slots, window_tokens=spec.window,
        p99_ttft_ms=float(m["p99_ttft_ms"][0]), slo_met=bool(m["slo_met"][0]),
        power_w=power, output_tok_per_s=tok, tok_per_w=tok / power if power > 0 else 0.0,
        cost_per_hr=float(m["cost_per_hr"][0]), min_instances=pm.min_instances(),
        compressed_share=pm.compressed_share, kv_dtype=profile.kv_dtype,
        tpot_slo_ms=settings.tpot_p99_ms if settings.accounting == "physical" else None,
        ep=profile.moe_ep,
        **serve,
    )


def _opt(x: Any) -> float | None:
    """A figure of the serving model, or None where the accounting has none (NaN)."""
    v = float(x)
    return None if math.isnan(v) else v


def evaluate(
    fleet: Fleet,
    workload: Workload,
    settings: Settings | None = None,
    *,
    model: str = "llama-3.1-70b",
    catalog: Catalog | None = None,
    physics: PhysicsParams | None = None,
    peak_factors: Sequence[float] | None = None,
) -> FleetResult:
    """Evaluate ``fleet`` serving ``workload`` exactly (``docs/model.md``).

    ``peak_factors``: one design-rate factor per pool, each replacing ``settings.peak_factor``
    for its pool and reported in its :attr:`PoolResult.peak_factor` (per-pool factors,
    :meth:`fleetopt.problem.problem.Problem.fleet_peak_factors`); None: the settings' one.

    Raises :class:`FleetoptError` if the pools do not cover every request, a deployment does
    not fit the model, or a window exceeds the model's context.
    """
    settings = settings or Settings()
    if fleet.max_ctx < workload.max_total_tokens:
        cat = catalog or default_catalog()
        mmax = (model if isinstance(model, ModelSpec) else cat.model(model)).max_context
        share, count = requests_over(workload, fleet.max_ctx)
        longest = workload.max_total_tokens
        fix = f"raise the last pool's ctx_hi to {longest}" if longest <= mmax else \
            f"raise the last pool's ctx_hi (up to the model's maximum {mmax})"
        raise FleetoptError(
            f"fleet.pools[{len(fleet.pools) - 1}].ctx_hi",
            f"the last pool ends at {fleet.max_ctx} tokens, but {describe_share(share, count)} "
            f"are longer (up to {longest}); {fix}, or set [fleet] max_ctx = "
            f"{min(fleet.max_ctx, mmax)} "
            'with [workload] over_max_ctx = "drop" or "truncate"'
        )
    if peak_factors is not None:
        peak_factors = [float(k) for k in peak_factors]
        if len(peak_factors) != len(fleet.pools) or not all(
                1.0 <= k <= MAX_PEAK_FACTOR for k in peak_factors):
            raise FleetoptError("peak_factors", f"give one factor in [1, {MAX_PEAK_FACTOR:g}] "
                                f"per pool ({len(fleet.pools)}), got {peak_factors!r}")
    results = []
    for i, spec in enumerate(fleet.pools):
        f = f"fleet.pools[{i}]"
        prof = resolve(spec.deployment, model, catalog, physics, field_name=f"{f}.gpu")
        if prof.kind == "calibrated" and (spec.tp, spec.dtype, spec.kv_dtype) != (
                prof.tp, prof.dtype, prof.kv_dtype):
            bad = "tp" if spec.tp != prof.tp else "dtype" if spec.dtype != prof.dtype \
                else "kv_dtype"
            raise FleetoptError(
                f"{f}.{bad}", f"calibrated profile {prof.gpu!r} is TP{prof.tp} {prof.dtype} with "
                f"a {prof.kv_dtype} KV cache; set tp = {prof.tp}, dtype = {prof.dtype!r} and "
                f"kv_dtype = {prof.kv_dtype!r} (or leave them out), or pick a GPU type"
            )
        err = prof.fit_error()
        if err:
            raise FleetoptError(f"{f}.gpu", err)
        if peak_factors is None:
            results.append(evaluate_pool(spec, prof, workload, settings, f))
        else:
            k = peak_factors[i]
            res = evaluate_pool(spec, prof, workload, replace(settings, peak_factor=k), f)
            results.append(replace(res, peak_factor=k))
    notes: tuple[str, ...] = ()
    if settings.accounting == "paper":
        notes = ("paper accounting: ONE GPU's watts and price per instance, as published; "
                 "physical figures are gpus_per_instance times higher",)
    return FleetResult(tuple(results), settings.accounting, settings.ttft_p99_ms, notes)


def evaluate_plan(problem: Problem, fleet: Fleet) -> FleetResult:
    """:func:`evaluate` of ``fleet`` with ``problem``'s workload, settings, model, catalog and
    physics (what every planner, study and command evaluates a plan with)."""
    return evaluate(fleet, problem.workload, problem.settings, model=problem.model,
                    catalog=problem.catalog, physics=problem.physics,
                    peak_factors=problem.fleet_peak_factors(fleet))


def size_fleet(problem: Problem, boundaries: list[int] | None = None,
               deployment: Any = None, sizer: Sizer | None = None) -> Fleet:
    """Pools split at ``boundaries`` (default: one pool up to ``max_ctx``) on ``deployment``
    (default: the first allowed deployment on which every pool meets the SLO, else the first
    allowed, whose error is raised), each sized to its smallest SLO-meeting instance count
    (:meth:`Sizer.size`)."""
    sizer = sizer or Sizer(problem)
    if deployment is not None:
        return _size_on(problem, boundaries, deployment, sizer)
    first: FleetoptError | None = None
    for d in problem.deployments():  # the first that can be sized, else the first's error
        try:
            return _size_on(problem, boundaries, d, sizer)
        except FleetoptError as e:
            first = first or e
    assert first is not None
    raise first


def _size_on(problem: Problem, boundaries: list[int] | None, d: Any, sizer: Sizer) -> Fleet:
    """:func:`size_fleet` on one deployment."""
    bnds = boundaries or []
    edges = [0, *sorted(bnds), problem.max_ctx]
    pools = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sp = sizer.size(lo, hi, hi, d)
        if sp.why == WHY_NO_SLOT:
            lower = "lower fleet.max_ctx (the longest request has " \
                f"{problem.workload.max_total_tokens} tokens), " \
                if problem.workload.max_total_tokens < hi else ""
            raise FleetoptError(
                "fleet.max_ctx", f"{d.label()} has no KV slot for a {hi}-token window; {lower}"
                + no_slot_advice(sizer.profile(d))
            )
        if sp.instances is None:
            raise FleetoptError(
                "slo.ttft_p99_ms", f"pool ({lo}, {hi}] on {d.label()} cannot meet "
                f"{problem.settings.ttft_p99_ms:g} ms at any size (prefill alone is too slow); "
                "raise slo.ttft_p99_ms or slo.prefill_tail_share, or give the pools yourself "
                "([[fleet.pool]] or --fleet) or let `fleetopt solve` split them"
            )
        pools.append(sp.spec())
    return Fleet(tuple(pools))


def no_slot_advice(profile: Profile, window: str | None = None) -> str:
    """What can give a deployment a KV slot at a window: only the options still open."""
    opts = []
    gspec = getattr(profile, "gpu_spec", None)
    if gspec is not None and profile.tp < gspec.max_tp:
        opts.append(f"a higher TP (up to {gspec.max_tp} on {profile.gpu})")
    if profile.kind == "computed" and kvm.dtype_bytes(profile.kv_dtype) > 1:
        opts.append("an fp8 KV cache (kv_dtype = \"fp8\")")
    if profile.kind == "computed" and kvm.dtype_bytes(profile.dtype) > 0.5:
        opts.append("lower-precision weights")
    if window:
        opts.append(window)
    opts.append("a GPU with more memory")
    return "use " + ", or ".join(opts)


def saturated_point(profile: Profile, window_tokens: int, accounting: str = "physical") -> dict[str, float]:
    """One instance at full batch at a context window (the paper's Table 1 convention).

    Batch = slots at the window, mean context = half the window; returns slots, watts, output
    tokens/s and tokens per watt. A computed profile in physical accounting runs its iteration
    model (:func:`fleetopt.physics.instance.instance_summary`, the batch capped at
    ``max_num_seqs``); otherwise the profile's own decode curve and power.
    """
    s = profile.slots(window_tokens)
    if s < 1:
        return {"window_tokens": window_tokens, "slots": 0, "power_w": float("nan"),
                "tok_per_s": 0.0, "tok_per_w": 0.0}
    if accounting == "physical" and isinstance(profile, ComputedProfile):
        # the iteration model (issue 11): the batch is also capped by max_num_seqs
        from fleetopt.physics.instance import instance_summary

        b = min(s, int(profile.max_seqs))
        pt = instance_summary(profile, [b], window_tokens // 2, window_tokens)["points"][0]
        power = float(profile.gpus_per_instance * pt["power_w_per_gpu"])
        tok = float(pt["output_tok_per_s"])
        return {"window_tokens": window_tokens, "slots": s, "power_w": power, "tok_per_s": tok,
                "tok_per_w": tok / power}
    t = float(profile.decode_s(s, window_tokens / 2.0))
    power = float(profile.instance_power_w(s, accounting))
    return {"window_tokens": window_tokens, "slots": s, "power_w": power, "tok_per_s": s / t,
            "tok_per_w": s / t / power}
