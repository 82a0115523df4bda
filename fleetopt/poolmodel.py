"""The exact model of one pool: queueing, TTFT, batch, power and cost as functions of size.

:class:`PoolModel` holds everything about a pool that does not depend on its instance count
(routed traffic, slots at its window, service-time moments, prefill times); ``metrics(N)``
evaluates any array of instance counts at once. The fleet evaluator, the MIP's candidate
generation, the baselines and the enumerator all call this one class: one formula, one place.

Conventions (``docs/model.md``):

* ``physical`` accounting (default):
  - service time of request i at batch n: ``S_i(n) = prefill_s(l_in_i, n, Lbar) + l_out_i *
    decode_s(n, Lbar)``, with ``Lbar`` the time-averaged context of the sequences in flight,
    ``Lbar = E[l_out (l_in + l_out/2)] / E[l_out]``;
  - queueing uses the full-batch service time ``S(s)``: a request waits only when every slot is
    busy, and then the batch is ``s``; utilisation ``rho = lam E[S(s)] / (N s)``;
  - the SLO test is ``q``-quantile of (wait + prefill at full batch) <= target, and ``rho <= cap``;
  - the operating batch (for power) is the largest fixed point ``n = lam E[S(n)] / N <= rho s``;
  - power = ``N * tp * P(n)``.
* ``paper`` accounting reproduces the published planner: service time at full batch with each
  request's own length as context, ``cv2`` floored at 0.01, SLO test on Kimura's P99 wait alone
  (prefill only added to the reported figure, as mean prefill at batch 1 with the profile's
  reference context), a pool is never smaller than ``ceil(lam / mu_instance) + 1`` (the planner's
  search starts there), power ``N * P(int(rho s))`` with ONE GPU per instance, and a request
  longer than the window is modelled as a request of exactly ``window`` tokens with its input
  share kept (:func:`compress_paper`). The published figures also depend on the planner's
  sampling of the length CDF (3,000 draws per pool, seed 42): pass the draws of
  :func:`fleetopt.workload.paper_sampled` to reproduce them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.models.power import logistic_power_w
from fleetopt.models.queueing import (
    erlang_c,
    kimura_p99_wait_s,
    ttft_exceed_prob,
    ttft_quantile_s,
    wait_tail_rate,
)
from fleetopt.models.roofline import roofline_terms
from fleetopt.profiles import Profile


@dataclass(frozen=True)
class Settings:
    """What counts as meeting the SLO, and how watts and dollars are counted."""

    ttft_p99_ms: float = 500.0
    utilization_cap: float = 0.85
    accounting: str = "physical"  # physical | paper
    quantile: float = 0.99
    peak_factor: float = 1.0  # size pools for peak_factor x the mean rate (bursty arrivals)
    prefill_tail_share: float = 0.5  # of the 1-q tail, the most that prefill-alone-late prompts take

    @property
    def prefill_late_budget(self) -> float:
        """Largest share of requests that may miss the target by prefill alone (no waiting)."""
        return (1.0 - self.quantile) * self.prefill_tail_share + 1e-12

    def __post_init__(self) -> None:
        from fleetopt.errors import FleetoptError

        if not (math.isfinite(self.ttft_p99_ms) and self.ttft_p99_ms > 0):
            raise FleetoptError("slo.ttft_p99_ms", f"must be > 0 ms, got {self.ttft_p99_ms}")
        if not 0 < self.utilization_cap <= 1:
            raise FleetoptError("fleet.utilization_cap", f"must be in (0, 1], got {self.utilization_cap}")
        if self.accounting not in ("physical", "paper"):
            raise FleetoptError("accounting.mode", f"must be 'physical' or 'paper', got {self.accounting!r}")
        if not (math.isfinite(self.peak_factor) and 1.0 <= self.peak_factor <= 10.0):
            raise FleetoptError("slo.peak_factor", f"must be in [1, 10], got {self.peak_factor}")
        if not 0.0 <= self.prefill_tail_share <= 1.0:
            raise FleetoptError("slo.prefill_tail_share",
                                f"must be in [0, 1], got {self.prefill_tail_share}")
        if not 0.5 <= self.quantile < 1:
            raise FleetoptError("slo.quantile", f"must be in [0.5, 1), got {self.quantile}")

    @property
    def slo_s(self) -> float:
        return self.ttft_p99_ms / 1000.0


def compress(
    lin: NDArray, lout: NDArray, window: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Fit requests into ``window`` tokens by truncating the prompt (output kept when it fits).

    A request with ``l_in + l_out > window`` keeps its output (capped at ``window - 1``) and its
    prompt is cut to ``window - l_out``.
    """
    lin = np.asarray(lin, dtype=np.int64)
    lout = np.asarray(lout, dtype=np.int64)
    over = lin + lout > window
    lout2 = np.where(over, np.minimum(lout, window - 1), lout)
    lin2 = np.where(over, np.maximum(1, window - lout2), lin)
    return lin2, lout2, over


def compress_paper(
    lin: NDArray, lout: NDArray, window: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The published planner's compression: an over-long request becomes exactly ``window``
    tokens, input ``floor(window * share_in)`` (at least 1), output the rest (at least 1)."""
    lin = np.asarray(lin, dtype=np.int64)
    lout = np.asarray(lout, dtype=np.int64)
    over = lin + lout > window
    share_in = lin / np.maximum(lin + lout, 1)
    lin_c = np.clip(np.floor(window * share_in + 1e-9).astype(np.int64), 1, max(window - 1, 1))
    lin2 = np.where(over, lin_c, lin)
    lout2 = np.where(over, np.maximum(1, window - lin_c), lout)
    return lin2, lout2, over


_NO_LIMIT = 1 << 62  # an upper edge above any request


class PoolModel:
    """A pool's size-independent statistics and its size-dependent metrics."""

    def __init__(
        self,
        profile: Profile,
        input_tokens: ArrayLike,
        output_tokens: ArrayLike,
        weights: ArrayLike,
        rate_rps: float,
        window: int,
        settings: Settings,
    ) -> None:
        self.profile = profile
        self.settings = settings
        self.window = int(window)
        lin0 = np.asarray(input_tokens, dtype=np.int64)
        lout0 = np.asarray(output_tokens, dtype=np.int64)
        w = np.asarray(weights, dtype=float)
        keep = w > 0
        lin0, lout0, w = lin0[keep], lout0[keep], w[keep]
        self.share = float(w.sum())  # of the workload's requests
        self.rate_rps = float(rate_rps)
        self.slots = profile.slots(self.window)
        if self.rate_rps <= 0 or len(w) == 0:
            self.empty = True
            self.compressed_share = 0.0
            self.input_tokens_cut = 0.0
            self.mean_output = 0.0
            return
        self.empty = False
        w = w / w.sum()
        cut = compress_paper if settings.accounting == "paper" else compress
        lin, lout, over = cut(lin0, lout0, self.window)
        self.compressed_share = float(w[over].sum())
        self.input_tokens_cut = float(w @ (lin0 - lin))  # per request, mean
        self.lin, self.lout, self.w = lin, lout, w
        self.mean_output = float(w @ lout)
        self.ctx = float(w @ (lout * (lin + lout / 2.0)) / max(self.mean_output, 1e-12))
        s = max(self.slots, 1)
        if settings.accounting == "paper":
            own = (lin + lout).astype(float)
            S = profile.prefill_s(lin, s, own) + lout * profile.decode_s(s, own)
            # reported prefill: chunks x one iteration at batch 1, at the reference context
            ref = getattr(getattr(profile, "spec", None), "ref_ctx_tokens", None)
            self.prefill_report_s = float(w @ profile.prefill_s(lin, 1.0, own if ref is None else ref))
            self.prefill_full_s = np.asarray(profile.prefill_s(lin, s, own))
            self.mean_service_s = float(w @ S)
            var = float(w @ (S - self.mean_service_s) ** 2)
            self.cv2 = max(0.01, var / self.mean_service_s**2)  # the planner's floor
            self._batch: PoolBatch | None = None
        else:
            # physical accounting: the formulas live in PoolBatch (one pool = one column)
            b = PoolBatch(profile, lin0, lout0, w, self.rate_rps, [-1], _NO_LIMIT, self.window,
                          settings)
            self._batch = b
            self.ctx = float(b.ctx[0])
            self.prefill_full_s = b.prefill_full_s[:, 0]
            self.prefill_report_s = float(w @ self.prefill_full_s)
            self.mean_service_s = float(b.mean_service_s[0])
            self.cv2 = float(b.cv2[0])
        # the least target any size can meet: prompts slower than it must fit the margin
        self.ttft_floor_s = _weighted_quantile(self.prefill_full_s, self.w,
                                               1.0 - settings.prefill_late_budget) \
            if settings.accounting == "physical" else 0.0
        # no size meets the SLO when prefill alone (no waiting) misses it too often
        self.prefill_late_share = float(self.w[self.prefill_full_s > settings.slo_s].sum())

    @property
    def feasible_at_any_size(self) -> bool:
        """False when no instance count can meet the SLO (no slots, or prefill alone too slow)."""
        if self.empty:
            return self.slots >= 1
        if self.settings.accounting == "paper":
            return self.slots >= 1
        return self.slots >= 1 and self.prefill_late_share <= self.settings.prefill_late_budget

    def min_instances_util(self) -> int:
        """Fewest instances that keep utilisation at or below the cap."""
        if self.empty:
            return 1  # coverage: a range with no sampled traffic still needs one instance
        a = self.rate_rps * self.settings.peak_factor * self.mean_service_s
        return max(1, math.ceil(a / (self.slots * self.settings.utilization_cap) - 1e-9))

    def metrics(self, instances: ArrayLike) -> dict[str, NDArray]:
        """Vectorised metrics for an array of instance counts."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        st = self.settings
        acct = st.accounting
        if self.empty:
            z = np.zeros_like(N)
            return {
                "instances": N, "utilization": z, "mean_batch": z, "p99_ttft_ms": z,
                "p99_wait_ms": z, "slo_met": (N >= 1) & (self.slots >= 1),  # coverage
                "power_w": N * self.profile.instance_power_w(0.0, acct),
                "cost_per_hr": N * self.profile.instance_cost_per_hr(acct),
                "output_tok_per_s": z,
            }
        if np.any(N < 1):  # no instance for real traffic: nothing is served
            out = self.metrics(np.maximum(N, 1.0))
            zero = N < 1
            for key, val in (("utilization", np.inf), ("mean_batch", 0.0), ("p99_ttft_ms", np.inf),
                             ("p99_wait_ms", np.inf), ("power_w", 0.0), ("cost_per_hr", 0.0),
                             ("output_tok_per_s", 0.0)):
                out[key] = np.where(zero, val, out[key])
            out["slo_met"] = np.where(zero, False, out["slo_met"])
            out["instances"] = N
            return out
        lam = self.rate_rps
        q = self._queue(N)
        rho = q["rho_mean"]
        if acct == "paper":
            ttft = q["w99"] + self.prefill_report_s
            batch = self.paper_batch(N)
        else:
            ttft = ttft_quantile_s(np.atleast_1d(q["pw"]), np.atleast_1d(q["theta"]),
                                   self.prefill_full_s, self.w, st.quantile)
            batch = self.operating_batch(N)
        slo_ok = self._slo_ok(N, q)
        w99 = q["w99"]
        power = self._power(N, batch)
        stable = q["rho"] < 1.0
        return {
            "instances": N,
            "utilization": rho,
            "mean_batch": batch,
            "p99_ttft_ms": np.where(stable, ttft * 1000.0, np.inf),
            "p99_wait_ms": np.where(stable, w99 * 1000.0, np.inf),
            "slo_met": slo_ok & stable,
            "power_w": power,
            "cost_per_hr": N * self.profile.instance_cost_per_hr(acct),
            "output_tok_per_s": np.full(N.shape, lam * self.mean_output),
        }

    def _power(self, N: NDArray, batch: NDArray) -> NDArray:
        return N * self.profile.instance_power_w(np.maximum(batch, 0.0), self.settings.accounting)

    def power_w(self, instances: ArrayLike) -> NDArray[np.float64]:
        """Pool watts at each instance count (the operating batch and power curve only)."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        if self.empty:
            return N * self.profile.instance_power_w(0.0, self.settings.accounting)
        if self._batch is None:  # paper
            return self._power(N, self.paper_batch(N))
        return self._batch.power_w(np.zeros(len(N), dtype=int), N)

    def paper_batch(self, instances: ArrayLike) -> NDArray[np.float64]:
        """``paper`` accounting's batch for power, ``int(rho s)`` with full-batch service times:
        non-increasing in the instance count."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        rho = np.minimum(self.rate_rps * self.mean_service_s / (N * self.slots), 1.0)
        return np.floor(rho * self.slots)

    @property
    def batch(self) -> PoolBatch | None:
        """The one-column :class:`PoolBatch` behind a physical-accounting pool (else None)."""
        return None if self.empty else self._batch

    def mean_service_at(self, batch: ArrayLike) -> NDArray[np.float64]:
        """``E[S(n)]`` over the pool's mix at decode batch ``n`` (physical accounting)."""
        n = np.atleast_1d(np.asarray(batch, dtype=float))
        return self._require_batch().mean_service_at(np.zeros(len(n), dtype=int), n)

    def operating_batch(self, instances: ArrayLike) -> NDArray[np.float64]:
        """Sequences in flight per instance at each count (physical accounting, Little's law)."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        return self._require_batch().operating_batch(np.zeros(len(N), dtype=int), N)

    def _require_batch(self) -> PoolBatch:
        if self._batch is None:
            raise ValueError("available in physical accounting only")
        return self._batch

    def min_instances(self, limit: int = 1_000_000) -> int | None:
        """Smallest instance count meeting the SLO and the utilisation cap; None if none can."""
        if not self.feasible_at_any_size:
            return None
        if self.empty:
            return 1  # coverage: one instance serves the range's (unsampled) requests
        if self._batch is not None:
            n = int(self._batch.min_instances(limit)[0])
            return None if n < 0 else n
        lo = self.min_instances_util()
        block = 32
        start = lo
        while start <= limit:
            cand = np.arange(start, start + block)
            ok = self._slo_ok(cand)
            if ok.any():
                return int(cand[np.argmax(ok)])
            start += block
            block *= 2
        return None

    def _paper_floor(self) -> int:
        """``paper`` mode: the planner's SLO search starts at ``ceil(lam / mu_instance) + 1``."""
        mu_instance = self.slots / self.mean_service_s
        return max(1, math.ceil(self.rate_rps / mu_instance) + 1)

    def _queue(self, N: NDArray) -> dict[str, NDArray]:
        """Queue quantities at the DESIGN rate ``peak_factor * lam`` (the mean rate for rho_mean)."""
        st = self.settings
        Nf = np.asarray(N, dtype=float)
        c = Nf * self.slots
        lam = self.rate_rps * st.peak_factor
        mu = 1.0 / self.mean_service_s
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(c > 0, lam * self.mean_service_s / np.maximum(c, 1e-300), np.inf)
        out = {"c": c, "rho": rho, "rho_mean": rho / st.peak_factor,
               "w99": kimura_p99_wait_s(c, mu, lam, self.cv2, st.quantile)}
        if self._batch is not None:
            out.update(self._batch.queue(np.zeros(len(np.atleast_1d(Nf)), dtype=int),
                                         np.atleast_1d(Nf)))
        return out

    def _slo_ok(self, N: NDArray, q: dict[str, NDArray] | None = None) -> NDArray:
        """Does each instance count meet the SLO test and the utilisation cap (at design rate)?"""
        st = self.settings
        q = q if q is not None else self._queue(N)
        cap_ok = (q["rho"] <= st.utilization_cap + 1e-12) & (q["rho"] < 1)
        if st.accounting == "paper":
            return (q["w99"] <= st.slo_s + 1e-12) & cap_ok & (
                np.asarray(N, dtype=float) >= self._paper_floor())
        Nf = np.atleast_1d(np.asarray(N, dtype=float))
        return self._require_batch().slo_ok(np.zeros(len(Nf), dtype=int), Nf, q)


def _weighted_quantile(values: NDArray, weights: NDArray, q: float) -> float:
    """Smallest value whose cumulative weight reaches ``q`` (discrete distribution)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1] - 1e-12)), len(cum) - 1)])


class PoolBatch:
    """Many pools at once: one window and upper edge, several lower edges and deployments.

    The MIP's candidates come in families ``(lo_l, hi]`` that share a window and the points below
    ``hi``; this evaluates the same formulas as :class:`PoolModel` (physical accounting) for a
    whole family with matrix operations (points x pools) instead of one Python object per pool.
    Pools are columns ``c = d * L + l`` over deployments ``d`` (``profiles``) and lower edges
    ``l``. Several computed profiles of one model are stacked: their per-chunk prefill compute is
    one function of the prompt length scaled by a per-deployment constant, so all share one
    ordering of the prompts and one set of cumulative sums. ``tests/test_candidates.py`` checks
    the batches against one pool at a time.
    """

    @staticmethod
    def mix(input_tokens: NDArray, output_tokens: NDArray, weights: NDArray,
            total_rate_rps: float, lows: list[int], hi: int, window: int) -> dict[str, Any]:
        """The deployment-independent part of a family: routed, compressed, weighted points."""
        tot = np.asarray(input_tokens) + np.asarray(output_tokens)
        keep = (tot <= hi) & (np.asarray(weights) > 0)
        lin, lout, over = compress(np.asarray(input_tokens)[keep], np.asarray(output_tokens)[keep],
                                   int(window))
        w = np.asarray(weights, dtype=float)[keep]
        lows_a = np.asarray(lows)
        W = w[:, None] * (tot[keep][:, None] > lows_a[None, :])  # P x L
        share = W.sum(axis=0)
        Wn = np.divide(W, share, out=np.zeros_like(W), where=share > 0)
        mean_output = lout @ Wn
        with np.errstate(divide="ignore", invalid="ignore"):
            ctx = np.where(mean_output > 0, (lout * (lin + lout / 2.0)) @ Wn / mean_output, 0.0)
        cut = (np.asarray(input_tokens)[keep] - lin).astype(float) @ Wn  # prompt tokens cut
        return {"lin": lin, "lout": lout, "lows": lows_a, "Wn": Wn, "share": share,
                "rate_rps": total_rate_rps * share, "compressed_share": (Wn * over[:, None]).sum(axis=0),
                "input_tokens_cut": cut, "mean_output": mean_output, "ctx": ctx,
                "window": int(window)}

    def __init__(self, profile: Profile | list[Profile], input_tokens: NDArray,
                 output_tokens: NDArray, weights: NDArray, total_rate_rps: float,
                 lows: list[int], hi: int, window: int, settings: Settings,
                 mix: dict[str, Any] | None = None) -> None:
        if settings.accounting != "physical":
            raise ValueError("PoolBatch implements physical accounting only")
        profiles = list(profile) if isinstance(profile, list | tuple) else [profile]
        self.profiles, self.settings, self.window = profiles, settings, int(window)
        self.profile = profiles[0]
        m = mix if mix is not None else self.mix(input_tokens, output_tokens, weights,
                                                 total_rate_rps, lows, hi, window)
        lin, lout = m["lin"], m["lout"]
        L, D = len(m["lows"]), len(profiles)
        self.lows = m["lows"]
        self.dep = np.repeat(np.arange(D), L)  # column -> deployment
        self.lc = np.tile(np.arange(L), D)  # column -> lower edge
        lc = self.lc
        self.nonempty = (m["share"] > 0)[lc]
        self.rate_rps = m["rate_rps"][lc]
        self.compressed_share = m["compressed_share"][lc]
        self.input_tokens_cut = m["input_tokens_cut"][lc]
        self.share = m["share"][lc]
        self.mean_output = m["mean_output"][lc]
        self.ctx = m["ctx"][lc]
        self.Wn = m["Wn"][:, lc]
        self.slots_d = np.array([p.slots(self.window) for p in profiles])
        self.slots = self.slots_d[self.dep]
        s = np.maximum(self.slots, 1).astype(float)
        self._lin = lin
        self._stack = _stack_params(profiles)
        try:
            k, g = self.profile.prefill_terms(lin)
            self._terms = True
        except NotImplementedError:  # a custom profile: average prefill directly
            k, g = np.ones(len(lin)), np.zeros(len(lin))
            self._terms = False
        if D > 1:  # stacked: g of deployment d is scale[d] * g of deployment 0
            if self._stack is None:
                raise ValueError("only computed profiles of one model and physics stack")
            gs = [p.prefill_terms(lin)[1] for p in profiles]
            ref = int(np.argmax(g)) if len(g) else -1
            self._scale = np.array([gd[ref] / g[ref] if ref >= 0 and g[ref] > 0 else 1.0
                                    for gd in gs])
            if not all(np.allclose(gd, sc * g, rtol=1e-9, atol=0.0)
                       for gd, sc in zip(gs, self._scale, strict=True)):
                raise ValueError("prefill terms are not proportional across deployments")
        else:
            self._scale = np.ones(1)
        if self._terms:
            M, C = self._iter_terms(s, self.ctx, self.dep)
            oh = self._overhead
            gc = g[:, None] * self._scale[self.dep][None, :]
            self.prefill_full_s = k[:, None] * (np.maximum(M[None, :], C[None, :] + gc) + oh)
            dec = np.maximum(M, C) + oh
        else:
            p0 = self.profile
            self.prefill_full_s = np.asarray(p0.prefill_s(lin[:, None], s[None, :],
                                                          self.ctx[None, :]), dtype=float)
            dec = np.asarray(p0.decode_s(s, self.ctx), dtype=float)
        S = self.prefill_full_s + lout[:, None] * dec[None, :]
        Wn = self.Wn
        self.mean_service_s = (Wn * S).sum(axis=0)
        var = (Wn * (S - self.mean_service_s[None, :]) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.cv2 = np.where(self.mean_service_s > 0, var / self.mean_service_s**2, 0.0)
        # share of requests late by prefill alone: at most the margin's part of the tail
        self.prefill_late_share = (Wn * (self.prefill_full_s > settings.slo_s)).sum(axis=0)
        self.prefill_ok = self.prefill_late_share <= settings.prefill_late_budget
        self.feasible = self.nonempty & (self.slots >= 1) & self.prefill_ok
        # cumulative sums over prompts sorted by g, per lower edge (shared by deployments)
        order = np.argsort(g, kind="stable")
        self._g_sorted = g[order]
        wk = m["Wn"][order] * k[order][:, None]
        zeros = np.zeros((1, wk.shape[1]))
        self._wk_cum = np.vstack([zeros, np.cumsum(wk, axis=0)])
        self._wkg_cum = np.vstack([zeros, np.cumsum(wk * self._g_sorted[:, None], axis=0)])

    @property
    def _overhead(self) -> float:
        return self.profile.overhead_s

    def _iter_terms(self, n: NDArray, ctx: NDArray, dep: NDArray) -> tuple[NDArray, NDArray]:
        if self._stack is None or len(self.profiles) == 1:
            M, C = self.profile.iter_terms(n, ctx)
            return np.broadcast_to(M, np.shape(n)), np.broadcast_to(C, np.shape(n))
        hw = {k: (v[dep] if isinstance(v, np.ndarray) else v) for k, v in self._stack.items()
              if k not in _POWER_KEYS}
        return roofline_terms(n, ctx, **hw)

    def _instance_power_w(self, batch: NDArray, dep: NDArray) -> NDArray:
        if self._stack is None or len(self.profiles) == 1:
            return np.asarray(self.profile.instance_power_w(batch, "physical"), dtype=float)
        st = self._stack
        return st["gpus"][dep] * logistic_power_w(batch, st["idle_w"][dep], st["plateau_w"][dep],
                                                  st["slope"][dep], st["midpoint_log2"][dep])

    # --- sizing ---------------------------------------------------------------------------
    def queue(self, cols: NDArray, N: NDArray) -> dict[str, NDArray]:
        """M/G/c quantities at the design rate ``peak_factor * lam`` for (pool, count) pairs."""
        lam = self.rate_rps[cols] * self.settings.peak_factor
        es = self.mean_service_s[cols]
        c = np.asarray(N, dtype=float) * self.slots[cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(c > 0, lam * es / np.maximum(c, 1e-300), np.inf)
        return {"c": c, "rho": rho, "pw": np.atleast_1d(erlang_c(c, lam * es)),
                "theta": np.atleast_1d(wait_tail_rate(c, 1.0 / es, lam, self.cv2[cols]))}

    def slo_ok(self, cols: NDArray, N: NDArray, q: dict[str, NDArray] | None = None) -> NDArray:
        """The sizing test: ``P(wait + prefill > target) <= 1 - q`` and ``rho <= cap``.

        (``fleetopt.models.queueing.ttft_exceed_prob``, one prompt mix per pool column).
        """
        st = self.settings
        q = q if q is not None else self.queue(cols, N)
        late = ttft_exceed_prob(q["pw"], q["theta"], self.prefill_full_s[:, cols],
                                self.Wn[:, cols], st.slo_s)
        rho = q["rho"]
        return ((late <= 1.0 - st.quantile + 1e-12) & self.prefill_ok[cols]
                & (rho <= st.utilization_cap + 1e-12) & (rho < 1))

    def min_instances(self, limit: int = 1_000_000) -> NDArray:
        """Per pool, the smallest SLO-meeting count (-1 where none or the pool is empty)."""
        st = self.settings
        out = np.full(len(self.dep), -1, dtype=np.int64)
        cols = np.flatnonzero(self.feasible)
        if not len(cols):
            return out
        a = self.rate_rps[cols] * st.peak_factor * self.mean_service_s[cols]
        N = np.maximum(1, np.ceil(a / (self.slots[cols] * st.utilization_cap) - 1e-9)).astype(np.int64)
        pending = np.ones(len(cols), dtype=bool)
        step = 1
        lo_fail = N - 1  # largest count known to fail (or below the util floor)
        while pending.any():
            idx = np.flatnonzero(pending)
            ok = self.slo_ok(cols[idx], N[idx].astype(float))
            # a pass after a jump: bisect back between the last failure and this pass
            for j, o in zip(idx, ok, strict=True):
                if o:
                    lo, hi = int(lo_fail[j]), int(N[j])
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        if self.slo_ok(cols[[j]], np.array([float(mid)]))[0]:
                            hi = mid
                        else:
                            lo = mid
                    out[cols[j]] = hi
                    pending[j] = False
                else:
                    lo_fail[j] = N[j]
            N = np.where(pending, N + step, N)
            step *= 2
            pending &= N <= limit  # beyond the limit: no size found (stays -1)
        return out

    # --- power ----------------------------------------------------------------------------
    def mean_service_at(self, cols: NDArray, n: NDArray) -> NDArray:
        """``E[S(n)]`` for (pool, batch) pairs.

        With ``prefill_s = k (max(M, C + g) + overhead)`` and ``decode_s = max(M, C) + overhead``
        (``Profile.iter_terms``), ``E[k max(M, C + g)] = C E[k] + E[k g] + E[k (u - g)^+]``,
        ``u = M - C``; the last term comes from cumulative sums over prompts sorted by ``g``, so
        each pair costs O(log P).
        """
        p = self.profile
        ctx = self.ctx[cols]
        n = np.asarray(n, dtype=float)
        if not self._terms:
            pf = np.asarray(p.prefill_s(self._lin[:, None], n[None, :], ctx[None, :]))
            return (self.Wn[:, cols] * pf).sum(axis=0) + self.mean_output[cols] * p.decode_s(n, ctx)
        dep = self.dep[cols]
        lc = self.lc[cols]
        M, C = self._iter_terms(n, ctx, dep)
        u = M - C
        sc = self._scale[dep]
        # prompts with scale * g < u, i.e. g < u / scale (one ordering for all deployments)
        idx = np.searchsorted(self._g_sorted, u / sc, side="left")
        A = self._wk_cum[idx, lc]
        B = sc * self._wkg_cum[idx, lc]
        wk_t = self._wk_cum[-1, lc]
        wkg_t = sc * self._wkg_cum[-1, lc]
        oh = self._overhead
        prefill = C * wk_t + wkg_t + (u * A - B) + oh * wk_t
        return prefill + self.mean_output[cols] * (np.maximum(M, C) + oh)

    def operating_batch(self, cols: NDArray, N: NDArray, iterations: int = 100) -> NDArray:
        """Sequences in flight per instance: the root of ``h(n) = n - lam E[S(n)] / N``.

        The bracket is ``[0, rho s]`` (``rho`` at full-batch service times), where ``h(0) < 0 <=
        h(rho s)``. ``E[S(n)]`` is convex piecewise linear in ``n`` for dense models, so ``h`` is
        concave with one root in the bracket; the Illinois variant of regula falsi finds it
        superlinearly, vectorised over all pairs.
        """
        N = np.asarray(N, dtype=float)
        lam = self.rate_rps[cols]
        slots = self.slots[cols]
        rho = np.minimum(lam * self.mean_service_s[cols] / (N * slots), 1.0)
        hi = rho * slots

        def h(n: NDArray) -> NDArray:
            return n - lam * self.mean_service_at(cols, n) / N

        lo = np.zeros_like(hi)
        f_lo, f_hi = h(lo), h(hi)
        done = f_hi <= 1e-12 * np.maximum(hi, 1.0)  # full occupancy
        side = np.zeros(hi.shape, dtype=int)
        x = hi.copy()
        for _ in range(iterations):
            if done.all():
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.where(done, x, (lo * f_hi - hi * f_lo) / (f_hi - f_lo))
            x = np.where(np.isfinite(x), x, 0.5 * (lo + hi))
            fx = h(x)
            right = fx >= 0
            # Illinois: halve the stale end's value when the same end moves twice
            f_lo = np.where(right & (side == 1), 0.5 * f_lo, f_lo)
            f_hi = np.where(~right & (side == -1), 0.5 * f_hi, f_hi)
            hi = np.where(right, x, hi)
            f_hi = np.where(right, fx, f_hi)
            lo = np.where(right, lo, x)
            f_lo = np.where(right, f_lo, fx)
            side = np.where(right, 1, -1)
            tol = 1e-10 * np.maximum(hi, 1.0)
            done |= (np.abs(fx) <= tol) | ((hi - lo) <= tol)
        return np.maximum(x, 0.0)

    def power_w(self, cols: NDArray, N: NDArray) -> NDArray:
        """Pool watts for (pool, instance count) pairs: ``N * GPUs * P(operating batch)``."""
        N = np.asarray(N, dtype=float)
        return N * self._instance_power_w(self.operating_batch(cols, N), self.dep[cols])

    def instance_power_w(self, cols: NDArray, batch: NDArray) -> NDArray:
        """Watts of one instance of each pool at the given batch (non-decreasing in it)."""
        return self._instance_power_w(np.asarray(batch, dtype=float), self.dep[cols])

    @property
    def service_convex(self) -> bool:
        """Is ``E[S(n)]`` convex in the batch ``n`` for every deployment of the batch?

        True for dense computed profiles (``max`` of affine memory and compute times) and for
        calibrated ones (affine in ``max(n, 1)``); then ``h(n) = n - lam E[S(n)] / N`` is concave
        with a single root in the bracket, and :meth:`operating_batch` returns THE fixed point
        (``docs/formulation.md`` §5). Not for mixtures of experts: the share of experts a batch
        streams is concave in ``n``.
        """
        from fleetopt.profiles import CalibratedProfile, ComputedProfile

        for p in self.profiles:
            if isinstance(p, ComputedProfile):
                if p.model.experts > 0:
                    return False
            elif not isinstance(p, CalibratedProfile):
                return False
        return True

    def batch_floor(self, cols: NDArray, N: NDArray, batch: NDArray | None = None,
                    iterations: int = 200) -> NDArray:
        """A lower bound on the operating batch of pool ``cols`` at EVERY count ``N' <= N``.

        ``E[S(n)]`` is non-decreasing in ``n``, so with ``F_N(n) = min(s, lam E[S(n)] / N)``,
        ``F_N' >= F_N`` for ``N' <= N`` and the least fixed point of ``F_N'`` is at least the
        least fixed point of ``F_N`` (Knaster-Tarski); any fixed point, which is what
        :meth:`operating_batch` returns, is at least the least one. When the fixed point is
        unique (:attr:`service_convex`) the operating batch at ``N`` itself is that bound (with a
        relative margin of 1e-6 for the root finder's tolerance); otherwise the Kleene iterates
        ``m_0 = 0, m_(k+1) = F_N(m_k)``, each below the least fixed point, are used.
        """
        N = np.asarray(N, dtype=float)
        if self.service_convex:
            b = self.operating_batch(cols, N) if batch is None else np.asarray(batch, dtype=float)
            return np.maximum(b * (1.0 - 1e-6) - 1e-9, 0.0)
        lam = self.rate_rps[cols]
        s = self.slots[cols].astype(float)
        m = np.zeros_like(N)
        for _ in range(iterations):
            nxt = np.minimum(s, lam * self.mean_service_at(cols, m) / N)
            done = nxt - m <= 1e-9 * np.maximum(m, 1.0)
            m = np.maximum(m, nxt)
            if done.all():
                break
        return m * (1.0 - 1e-9)


_POWER_KEYS = ("gpus", "idle_w", "plateau_w", "slope", "midpoint_log2")


def _stack_params(profiles: list[Profile]) -> dict[str, Any] | None:
    """Roofline and power parameters of computed profiles of one model, as arrays over them.

    None when the profiles cannot be stacked (another kind, other models or physics).
    """
    from fleetopt.profiles import ComputedProfile

    if not all(isinstance(p, ComputedProfile) for p in profiles):
        return None
    first = profiles[0]
    if any(p.model.name != first.model.name or p.params != first.params for p in profiles):
        return None
    kws = [p.roofline_kwargs() for p in profiles]
    out: dict[str, Any] = {}
    for key, val in kws[0].items():
        vals = [kw[key] for kw in kws]
        out[key] = val if key in ("experts", "top_k", "mem_efficiency", "compute_efficiency") \
            else np.asarray(vals, dtype=float)
    out["gpus"] = np.array([p.gpus_counted("physical") for p in profiles], dtype=float)
    for key in ("idle_w", "plateau_w", "slope", "midpoint_log2"):
        out[key] = np.array([getattr(p.power, key) for p in profiles], dtype=float)
    return out
