"""Many pools at once: a :class:`PoolFamily` shares one upper edge and KV window.

The MIP's candidates, the baselines' searches and the explanations size pools in families
``(lo_l, hi]`` that share a window and the requests below ``hi``; a family evaluates the same
formulas as :class:`~fleetopt.sizing.poolmodel.PoolModel` (physical accounting) with matrix
operations (requests x pools) instead of one Python object per pool. (A *family* of pools, not
a batch: in this package a batch is the sequences an instance has in flight.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.physics.compression import compress
from fleetopt.physics.power import logistic_power_w
from fleetopt.physics.profiles import CalibratedProfile, ComputedProfile, Profile
from fleetopt.physics.queueing import erlang_c, ttft_exceed_prob, wait_tail_rate
from fleetopt.physics.step import roofline_terms
from fleetopt.problem.settings import Settings

__all__ = ["NotStackable", "PoolFamily", "weighted_quantile"]


class NotStackable(ValueError):
    """These profiles cannot share one family (:class:`PoolFamily` with several profiles)."""


def weighted_quantile(values: NDArray, weights: NDArray, q: float) -> float:
    """Smallest value whose cumulative weight reaches ``q`` (discrete distribution)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1] - 1e-12)), len(cum) - 1)])



class PoolFamily:
    """Many pools at once: one window and upper edge, several lower edges and deployments.

    Pools are columns ``c = d * L + l`` over deployments ``d`` (``profiles``) and lower edges
    ``l``. Several computed profiles of one model are stacked: their per-chunk prefill compute is
    one function of the prompt length scaled by a per-deployment constant, so all share one
    ordering of the prompts and one set of cumulative sums (profiles that do not stack raise
    :class:`NotStackable`; :meth:`fleetopt.sizing.sizer.Sizer.families` then makes one family per
    deployment). ``tests/test_candidates.py`` checks the families against one pool at a time.
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
            raise ValueError("PoolFamily implements physical accounting only")
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
                raise NotStackable("only computed profiles of one model and physics stack")
            gs = [p.prefill_terms(lin)[1] for p in profiles]
            ref = int(np.argmax(g)) if len(g) else -1
            self._scale = np.array([gd[ref] / g[ref] if ref >= 0 and g[ref] > 0 else 1.0
                                    for gd in gs])
            if not all(np.allclose(gd, sc * g, rtol=1e-9, atol=0.0)
                       for gd, sc in zip(gs, self._scale, strict=True)):
                raise NotStackable("prefill terms are not proportional across deployments")
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

        (``fleetopt.physics.queueing.ttft_exceed_prob``, one prompt mix per pool column).
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
        """Is ``E[S(n)]`` convex in the batch ``n`` for every deployment of the family?

        True for dense computed profiles (``max`` of affine memory and compute times) and for
        calibrated ones (affine in ``max(n, 1)``); then ``h(n) = n - lam E[S(n)] / N`` is concave
        with a single root in the bracket, and :meth:`operating_batch` returns THE fixed point
        (``docs/formulation.md`` §5). Not for mixtures of experts: the share of experts a batch
        streams is concave in ``n``.
        """
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
    computed = [p for p in profiles if isinstance(p, ComputedProfile)]
    if len(computed) != len(profiles):
        return None
    first = computed[0]
    if any(p.model.name != first.model.name or p.params != first.params for p in computed):
        return None
    kws = [p.roofline_kwargs() for p in computed]
    out: dict[str, Any] = {}
    for key, val in kws[0].items():
        vals = [kw[key] for kw in kws]
        out[key] = val if key in ("experts", "top_k", "mem_efficiency", "compute_efficiency") \
            else np.asarray(vals, dtype=float)
    out["gpus"] = np.array([p.gpus_counted("physical") for p in profiles], dtype=float)
    for key in ("idle_w", "plateau_w", "slope", "midpoint_log2"):
        out[key] = np.array([getattr(p.power, key) for p in profiles], dtype=float)
    return out
