"""Queueing per pool: M/G/c over KV slots.

A pool of ``N`` instances with ``s`` slots each is an M/G/c queue with ``c = N * s`` servers
(a request holds one KV slot from admission to completion). With arrival rate ``lam`` and
mean service time ``E[S]`` the offered load is ``a = lam * E[S]`` and the utilisation
``rho = a / c``.

* ``P(wait > 0)`` is Erlang C, computed stably for large ``c`` (hundreds of thousands of
  slots) from Poisson log-probabilities: ``B = pmf(c; a) / cdf(c; a)`` (Erlang B) and
  ``C = B / (1 - rho * (1 - B))``.
* The conditional wait is taken exponential with mean ``(1 + cv2) / 2 / (c*mu - lam)``
  (the Allen-Cunneen / Lee-Longton two-moment scaling of the M/M/c wait), so
  ``P(W > t) = C * exp(-theta * t)``, ``theta = 2 (c*mu - lam) / (1 + cv2)``. Its 99th
  percentile is Kimura's ``W99 = ln(C / 0.01) / theta`` (0 when ``C <= 0.01``), the form the
  published planner uses.
* TTFT = wait + prefill. fleetopt's SLO test uses the 99th percentile of that SUM over the
  pool's prompt mix (``ttft_quantile_s``), not the wait alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = ["erlang_c", "kimura_p99_wait_s", "ttft_exceed_prob", "ttft_quantile_s", "wait_tail_rate"]


def erlang_c(servers: ArrayLike, offered_load: ArrayLike) -> NDArray[np.float64] | float:
    """Probability that an arrival waits in M/M/c (Erlang C); 1 when ``a >= c`` (a float for
    scalar arguments)."""
    c = np.asarray(servers, dtype=float)
    a = np.asarray(offered_load, dtype=float)
    c, a = np.broadcast_arrays(c, a)
    out = np.ones(c.shape, dtype=float)
    ok = (a < c) & (c > 0)
    if np.any(ok):
        cc, aa = c[ok], a[ok]
        log_pmf = special.xlogy(cc, aa) - aa - special.gammaln(cc + 1.0)
        log_b = log_pmf - np.log(special.pdtr(cc, aa))
        b = np.exp(log_b)
        rho = aa / cc
        out[ok] = b / (1.0 - rho * (1.0 - b))
    out = np.where(a <= 0, 0.0, out)
    return out if out.ndim else float(out)


def wait_tail_rate(
    servers: ArrayLike, service_rate: ArrayLike, arrival_rate: ArrayLike, cv2: ArrayLike
) -> NDArray[np.float64]:
    """``theta`` in ``P(W > t) = C exp(-theta t)``: ``2 (c mu - lam) / (1 + cv2)`` (<= 0: unstable)."""
    c = np.asarray(servers, dtype=float)
    mu = np.asarray(service_rate, dtype=float)
    lam = np.asarray(arrival_rate, dtype=float)
    return 2.0 * (c * mu - lam) / (1.0 + np.asarray(cv2, dtype=float))


def kimura_p99_wait_s(
    servers: ArrayLike, service_rate: ArrayLike, arrival_rate: ArrayLike, cv2: ArrayLike,
    quantile: float = 0.99,
) -> NDArray[np.float64]:
    """Kimura's P99 wait ``ln(C / (1-q)) / theta``; 0 when ``C <= 1-q``; inf if unstable."""
    c = np.asarray(servers, dtype=float)
    mu = np.asarray(service_rate, dtype=float)
    lam = np.asarray(arrival_rate, dtype=float)
    pw = erlang_c(c, lam / mu)
    theta = wait_tail_rate(c, mu, lam, cv2)
    tail = 1.0 - quantile
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(theta > 0, np.log(np.maximum(pw, tail) / tail) / theta, np.inf)
    return w


def ttft_quantile_s(
    prob_wait: ArrayLike,
    theta: ArrayLike,
    prefill_s: ArrayLike,
    weights: ArrayLike,
    quantile: float = 0.99,
    iterations: int = 60,
) -> NDArray[np.float64]:
    """Quantile of TTFT = W + P, W ~ (1-C) delta_0 + C Exp(theta), P discrete over the prompt mix.

    ``prob_wait`` and ``theta`` may be arrays (one entry per candidate pool size); ``prefill_s``
    and ``weights`` describe the pool's prompt mix. Solved by bisection on
    ``P(W + P > t) = 1 - q``; ``inf`` where the queue is unstable (``theta <= 0``).
    """
    pw = np.atleast_1d(np.asarray(prob_wait, dtype=float))
    th = np.atleast_1d(np.asarray(theta, dtype=float))
    pw, th = np.broadcast_arrays(pw, th)
    p = np.asarray(prefill_s, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    tail = 1.0 - quantile
    stable = th > 0
    th_safe = np.where(stable, th, 1.0)
    lo = np.zeros(pw.shape)
    # an upper bound: max prefill plus the wait quantile of the exponential part alone
    hi = p.max() + np.log(np.maximum(pw, tail) / tail) / th_safe + 1e-9
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_low = ttft_exceed_prob(pw, th_safe, p, w, mid) > tail
        lo = np.where(too_low, mid, lo)
        hi = np.where(too_low, hi, mid)
    out = np.where(stable, hi, np.inf)
    return out if np.ndim(prob_wait) else out[0]


def ttft_exceed_prob(
    prob_wait: ArrayLike, theta: ArrayLike, prefill_s: ArrayLike, weights: ArrayLike,
    t_s: ArrayLike,
) -> NDArray[np.float64]:
    """``P(W + P > t)`` for W ~ (1-C) delta_0 + C Exp(theta): the SLO test without a quantile search.

    ``P(W + P > t) = sum_i w_i [1{p_i > t} + 1{p_i <= t} C exp(-theta (t - p_i))]``. The
    ``q``-quantile of TTFT is <= t iff this is <= 1 - q, so sizing needs one pass over the prompt
    mix per candidate size. ``prefill_s`` and ``weights`` are one prompt mix (shape ``(P,)``,
    shared by every entry of ``prob_wait``/``theta``) or one mix per entry (shape ``(P, n)``);
    ``t_s`` is one target or one per entry.
    """
    pw = np.atleast_1d(np.asarray(prob_wait, dtype=float))
    th = np.atleast_1d(np.asarray(theta, dtype=float))
    p = np.asarray(prefill_s, dtype=float)
    w = np.asarray(weights, dtype=float)
    if p.ndim == 1:
        p, w = p[:, None], w[:, None]
    tot = w.sum(axis=0)
    w = np.divide(w, tot, out=np.zeros_like(w), where=tot > 0)
    d = np.asarray(t_s, dtype=float) - p  # slack left for waiting, per prompt
    late = (w * (d < 0)).sum(axis=0)  # prefill alone is too slow: late whether or not it waits
    th_safe = np.where(th > 0, th, 1.0)
    wait_late = pw * (w * np.where(d >= 0, np.exp(-th_safe[None, :] * np.maximum(d, 0.0)),
                                   0.0)).sum(axis=0)
    return np.where(th > 0, np.minimum(1.0, late + wait_late), 1.0)
