"""The exact model of one pool: queueing, TTFT, batch, power and cost as functions of size.

:class:`PoolModel` holds everything about a pool that does not depend on its instance count
(routed traffic, slots at its window, service-time moments, prefill times); ``metrics(N)``
evaluates any array of instance counts at once. The fleet evaluator, the MIP's candidate
generation, the baselines and the enumerator all call this one class: one formula, one place.

Conventions (``docs/model.md``):

* ``physical`` accounting (default): the serving model of
  :mod:`fleetopt.sizing.servemodel` (shared iterations, paged or reserved KV, TTFT and TPOT
  tails, activity power), one pool as a one-column :class:`~fleetopt.sizing.servemodel.
  ServeFamily`, so a pool gets the same numbers alone as in the MIP's families.
* ``paper`` accounting reproduces the published planner: service time at full batch with each
  request's own length as context, ``cv2`` floored at 0.01, SLO test on Kimura's P99 wait alone
  (prefill only added to the reported figure, as mean prefill at batch 1 with the profile's
  reference context), a pool is never smaller than ``ceil(lam / mu_instance) + 1`` (the planner's
  search starts there), power ``N * P(int(rho s))`` with ONE GPU per instance, and a request
  longer than the window is modelled as a request of exactly ``window`` tokens with its input
  share kept (:func:`compress_paper`). The published figures also depend on the planner's
  sampling of the length CDF (3,000 draws per pool, seed 42): pass the draws of
  :func:`fleetopt.problem.workload.paper_sampled` to reproduce them exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.physics.compression import compress, compress_paper
from fleetopt.physics.profiles import Profile
from fleetopt.physics.queueing import (
    erlang_c,
    kimura_p99_wait_s,
    ttft_exceed_prob,
    wait_tail_rate,
)
from fleetopt.problem.settings import Settings
from fleetopt.sizing.family import family_mix
from fleetopt.sizing.servemodel import ServeFamily, idle_instance_w, physics_of

__all__ = ["SERVE_KEYS", "PoolModel"]

#: figures of the serving model (physical accounting) that ``paper`` accounting leaves NaN
SERVE_KEYS = ("p99_tpot_ms", "mean_tpot_ms", "p99_ttlt_ms", "mean_ttlt_ms", "prefill_share",
              "kv_util", "kv_overflow_bound", "decode_util", "token_util", "mean_step_ms")


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
        hit: float | None = None,
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
            self._family: ServeFamily | None = None
            self.ttft_floor_s = 0.0
            self.prefill_late_share = float(self.w[self.prefill_full_s > settings.slo_s].sum())
        else:
            # physical accounting: the serving model, one pool = one column
            mix = family_mix(lin0, lout0, w, self.rate_rps, [-1], _NO_LIMIT, self.window)
            fam = ServeFamily([physics_of(profile, settings)], mix, settings, [self.slots],
                              settings.hit_share if hit is None else hit)
            self._family = fam
            self.ctx = float(fam.Lbar[0])
            # the least target any size can meet: prompts slower than it must fit the margin
            self.ttft_floor_s = fam.prefill_floor_s(0)
            self.prefill_late_share = float(fam.prefill_late_share[0])

    @property
    def feasible_at_any_size(self) -> bool:
        """False when no instance count can meet the SLO (no slots, or prefill alone too slow)."""
        if self.empty:
            return self.slots >= 1
        if self.settings.accounting == "paper":
            return self.slots >= 1
        return self.slots >= 1 and self.prefill_late_share <= self.settings.prefill_late_budget

    def min_instances_util(self) -> int:
        """Fewest instances that keep utilisation at or below the cap (``paper`` accounting)."""
        if self.empty:
            return 1  # coverage: a range with no sampled traffic still needs one instance
        a = self.rate_rps * self.settings.peak_factor * self.mean_service_s
        return max(1, math.ceil(a / (self.slots * self.settings.utilization_cap) - 1e-9))

    def metrics(self, instances: ArrayLike) -> dict[str, NDArray]:
        """Vectorised metrics for an array of instance counts (the serving model's figures in
        physical accounting; NaN for those ``paper`` accounting does not model)."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        st = self.settings
        acct = st.accounting
        nan = np.full(N.shape, np.nan)
        if self.empty:
            z = np.zeros_like(N)
            out = {key: nan.copy() for key in SERVE_KEYS}
            out.update({
                "instances": N, "utilization": z, "mean_batch": z, "p99_ttft_ms": z,
                "p99_wait_ms": z, "slo_met": (N >= 1) & (self.slots >= 1),  # coverage
                "power_w": N * idle_instance_w(self.profile, st),
                "cost_per_hr": N * self.profile.instance_cost_per_hr(acct),
                "output_tok_per_s": z,
            })
            return out
        if np.any(N < 1):  # no instance for real traffic: nothing is served
            out = self.metrics(np.maximum(N, 1.0))
            zero = N < 1
            for key, val in (("utilization", np.inf), ("mean_batch", 0.0), ("p99_ttft_ms", np.inf),
                             ("p99_wait_ms", np.inf), ("power_w", 0.0), ("cost_per_hr", 0.0),
                             ("output_tok_per_s", 0.0), ("p99_tpot_ms", np.inf),
                             ("mean_tpot_ms", np.inf), ("p99_ttlt_ms", np.inf),
                             ("mean_ttlt_ms", np.inf)):
                out[key] = np.where(zero, val, out[key])
            out["slo_met"] = np.where(zero, False, out["slo_met"])
            out["instances"] = N
            return out
        lam = self.rate_rps
        base = {"instances": N, "cost_per_hr": N * self.profile.instance_cost_per_hr(acct),
                "output_tok_per_s": np.full(N.shape, lam * self.mean_output)}
        if self._family is not None:
            ev = self._family.evaluate(np.zeros(len(N), dtype=np.int64), N)
            out = {key: ev[key] for key in SERVE_KEYS}
            out.update(base)
            out.update({"utilization": ev["utilization"], "mean_batch": ev["mean_batch"],
                        "p99_ttft_ms": ev["p99_ttft_ms"], "p99_wait_ms": ev["p99_wait_ms"],
                        "slo_met": ev["ok"].astype(bool) & ev["stable"].astype(bool),
                        "power_w": ev["power_w"]})
            return out
        q = self._queue(N)
        rho = q["rho_mean"]
        ttft = q["w99"] + self.prefill_report_s
        batch = self.paper_batch(N)
        slo_ok = self._slo_ok(N, q)
        stable = q["rho"] < 1.0
        out = {key: nan.copy() for key in SERVE_KEYS}
        out.update(base)
        out.update({
            "utilization": rho,
            "mean_batch": batch,
            "p99_ttft_ms": np.where(stable, ttft * 1000.0, np.inf),
            "p99_wait_ms": np.where(stable, q["w99"] * 1000.0, np.inf),
            "slo_met": slo_ok & stable,
            "power_w": self._power(N, batch),
        })
        return out

    def _power(self, N: NDArray, batch: NDArray) -> NDArray:
        return N * self.profile.instance_power_w(np.maximum(batch, 0.0), self.settings.accounting)

    def power_w(self, instances: ArrayLike) -> NDArray[np.float64]:
        """Pool watts at each instance count."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        if self.empty:
            return N * idle_instance_w(self.profile, self.settings)
        if self._family is None:  # paper
            return self._power(N, self.paper_batch(N))
        return self._family.power_w(np.zeros(len(N), dtype=np.int64), N)

    def ttft_exceed_prob(self, instances: int, t_s: ArrayLike) -> NDArray[np.float64]:
        """``P(TTFT > t)`` at ``instances`` for every ``t`` in ``t_s`` (the sizing test's tail:
        the serving model's in physical accounting; wait + reported prefill in ``paper``)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        if self.empty:
            return np.zeros(len(t))
        if self._family is not None:
            return self._family.ttft_ccdf(0, float(instances), t)
        c = instances * self.slots
        lam = self.rate_rps * self.settings.peak_factor
        pw = float(erlang_c(c, lam * self.mean_service_s))
        th = float(wait_tail_rate(c, 1.0 / self.mean_service_s, lam, self.cv2))
        return np.asarray(ttft_exceed_prob(np.full(len(t), pw), np.full(len(t), th),
                                           np.array([self.prefill_report_s]), np.ones(1), t))

    def paper_batch(self, instances: ArrayLike) -> NDArray[np.float64]:
        """``paper`` accounting's batch for power, ``int(rho s)`` with full-batch service times:
        non-increasing in the instance count."""
        N = np.atleast_1d(np.asarray(instances, dtype=float))
        rho = np.minimum(self.rate_rps * self.mean_service_s / (N * self.slots), 1.0)
        return np.floor(rho * self.slots)

    @property
    def family(self) -> ServeFamily | None:
        """The one-column :class:`ServeFamily` behind a physical-accounting pool (else None)."""
        return None if self.empty else self._family

    def min_instances(self, limit: int = 1_000_000) -> int | None:
        """Smallest instance count meeting the SLO and the utilisation cap; None if none can."""
        if not self.feasible_at_any_size:
            return None
        if self.empty:
            return 1  # coverage: one instance serves the range's (unsampled) requests
        if self._family is not None:
            n = int(self._family.min_instances(limit)[0])
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
        """``paper`` accounting's queue at the DESIGN rate ``peak_factor * lam`` (the mean rate
        for rho_mean)."""
        st = self.settings
        Nf = np.asarray(N, dtype=float)
        c = Nf * self.slots
        lam = self.rate_rps * st.peak_factor
        mu = 1.0 / self.mean_service_s
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(c > 0, lam * self.mean_service_s / np.maximum(c, 1e-300), np.inf)
        return {"c": c, "rho": rho, "rho_mean": rho / st.peak_factor,
                "w99": kimura_p99_wait_s(c, mu, lam, self.cv2, st.quantile)}

    def _slo_ok(self, N: NDArray, q: dict[str, NDArray] | None = None) -> NDArray:
        """Does each instance count meet the SLO test and the utilisation cap (at design rate)?"""
        st = self.settings
        if self._family is not None:
            Nf = np.atleast_1d(np.asarray(N, dtype=float))
            return self._family.slo_ok(np.zeros(len(Nf), dtype=np.int64), Nf)
        q = q if q is not None else self._queue(N)
        cap_ok = (q["rho"] <= st.utilization_cap + 1e-12) & (q["rho"] < 1)
        return (q["w99"] <= st.slo_s + 1e-12) & cap_ok & (
            np.asarray(N, dtype=float) >= self._paper_floor())
