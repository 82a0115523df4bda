"""Burstiness of arrivals: a peak factor ``k`` for sizing pools at ``k * lambda``.

The planner's queueing model (:mod:`fleetopt.sizing.poolmodel`) assumes Poisson arrivals at the mean
rate ``lambda``. Real traces are burstier: in the Azure 2023 conversation trace the long
requests arrive in clusters, and a pool sized at the mean rate missed the P99 TTFT SLO by
6-20x under replay in the earlier event simulator (``docs/simulation.md``).
``Settings(peak_factor=k)`` sizes every pool for the design rate ``k * lambda`` (queueing test
and utilisation cap) while watts and tokens stay at ``lambda``; this module estimates ``k`` from
a trace's timestamps.

Method (:func:`estimate_peak_factor`)
    Rescale the arrival times to the target mean rate (``t * native_rate / rate_rps``: at a
    high rate the trace is time-compressed, so a burst that lasts minutes in the trace lasts
    a second or so in the plan). Keep the requests of total length ``(lo, hi]`` (the ones a
    pool with those bounds serves), cut time into windows of ``window_s`` and count the
    arrivals in each. The factor is the ``quantile`` of the window count *seen by a request*
    (windows weighted by their counts, since the SLO is a quantile over requests) divided by
    the mean count per window. With ``net_of_poisson=True`` the Poisson noise of a count is
    removed first: a window whose underlying rate gives ``x`` expected arrivals shows
    ``x + z_q sqrt(x)`` at its ``q``-quantile, so the peak count ``Q`` is mapped to the ``x``
    solving ``x + z sqrt(x) = Q``; the queueing model already charges Poisson fluctuations at
    the design rate, and this way they are not charged twice. The result is never below 1.

Which window (:func:`auto_peak_factor`)
    The wait tail is driven by bursts that last longer than about one service time of the
    pool: a shorter burst is absorbed by the slots that free up meanwhile (and its Poisson part
    is already in the M/G/c model); a longer one is a sustained overload of a pool sized at the
    mean rate. The long pools of the shipped catalog have mean service times of 0.5-4 s, so by
    default the factor is the largest over windows of 0.5, 1, 2 and 4 s (in rescaled time;
    windows giving fewer than 10 windows over the trace are skipped, and a window is lengthened
    to hold at least 5 arrivals of the class on average) and over the length
    classes ``total > L`` for ``L`` at the 0, 50, 75, 85, 90 and 95 % points of the trace's
    total length (a class of at least 5 % of the requests: the tail pools a planner forms; a
    smaller class holds too few requests for a 99 % quantile from an hour of trace).
    One global factor (``[slo] peak_factor = "auto-global"``): it is set by the burstiest class,
    so short pools that would need less get the same headroom (the price of a single knob, see
    the watts in ``docs/simulation.md``).

Per pool (:func:`pool_peak_factors`)
    The same estimate restricted to each pool's own length range ``(lo, hi]``, over the default
    windows or windows the caller gives per pool (the validation study uses multiples of each
    pool's simulated mean time in system): a factor for every pool instead of one for all.
    ``[slo] peak_factor = "auto"`` sizes every pool (every candidate pool of the MIP) at it, over
    the default windows (:class:`TraceBursts`: the trace prepared once for many ranges).

Workloads without timestamps (the CDF workloads ``azure``, ``lmsys``, ``agent-heavy``, a user's
CDF, a trace file without an arrival-time column) get ``1.0`` here: Poisson arrivals, the
model's own assumption; a config's ``[slo] peak_factor = "auto"`` (or ``"auto-global"``) on such
a workload is an error
(:class:`fleetopt.problem.problem.Problem`), so that no plan assumes Poisson arrivals silently.
Nothing in a length distribution says how bursty the traffic is, and any default
above 1 would charge every such plan for burstiness it may not have; set ``[slo] peak_factor``
explicitly when the traffic is known to be bursty (``docs/simulation.md`` gives values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fleetopt.core.errors import FleetoptError

__all__ = ["CLASS_QUANTILES", "DEFAULT_WINDOWS_S", "MAX_PEAK_FACTOR", "MIN_CLASS_SHARE",
           "MIN_MEAN_COUNT", "MIN_WINDOWS", "TraceBursts", "estimate_peak_factor", "peak_factor",
           "pool_peak_factors", "rescale"]

#: default windows (seconds, in rescaled time) over which :func:`auto_peak_factor` takes the max
DEFAULT_WINDOWS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: quantiles of total length at which the length classes ``total > L`` start
CLASS_QUANTILES: tuple[float, ...] = (0.0, 0.5, 0.75, 0.85, 0.9, 0.95)
#: smallest share of requests a length class must hold to be counted
MIN_CLASS_SHARE = 0.05
#: fewest windows over the trace for a window length to be used
MIN_WINDOWS = 10
#: fewest arrivals of a class per window on average (shorter windows are lengthened to this)
MIN_MEAN_COUNT = 5.0
#: upper bound of ``Settings.peak_factor``
MAX_PEAK_FACTOR = 10.0


def _z(q: float) -> float:
    """Standard normal ``q``-quantile."""
    return NormalDist().inv_cdf(q)


def rescale(arrival_s: ArrayLike, rate_rps: float) -> NDArray[np.float64]:
    """Sorted arrival times shifted to start at 0 and rescaled to a mean rate of ``rate_rps``
    (``(n - 1) / span`` becomes ``rate_rps``; the simulator's replay uses the same scaling)."""
    t = np.sort(np.asarray(arrival_s, dtype=float))
    if len(t) < 2 or t[-1] <= t[0]:
        raise FleetoptError("arrival_s", "need at least two distinct arrival times")
    if not rate_rps > 0:
        raise FleetoptError("rate_rps", f"must be > 0, got {rate_rps}")
    t = t - t[0]
    native = (len(t) - 1) / t[-1]
    return t * (native / float(rate_rps))


def estimate_peak_factor(
    arrival_s: ArrayLike,
    total_tokens: ArrayLike,
    lo: float,
    hi: float,
    *,
    rate_rps: float,
    window_s: float,
    quantile: float = 0.99,
    net_of_poisson: bool = False,
) -> float:
    """Peak-to-mean ratio of the arrival count of the requests of total length ``(lo, hi]``.

    ``arrival_s`` (any order, any origin) and ``total_tokens`` (input + output) describe the
    whole trace; its times are rescaled so that ALL requests arrive at ``rate_rps`` on average
    (as the simulator replays them), then the requests in ``(lo, hi]`` are counted in windows
    of ``window_s`` seconds laid from the first arrival to the last. The result is the
    ``quantile`` of the count seen by a request (each window weighted by its count) over the
    mean count per window, at least 1. ``net_of_poisson``: map the peak count ``Q`` to the
    expected count ``x`` with ``x + z_q sqrt(x) = Q`` first (remove Poisson noise). Returns 1.0
    when the class is empty.
    """
    t = np.asarray(arrival_s, dtype=float)
    tot = np.asarray(total_tokens, dtype=float)
    if t.shape != tot.shape:
        raise FleetoptError("total_tokens", "needs one length per arrival")
    if not window_s > 0:
        raise FleetoptError("window_s", f"must be > 0 s, got {window_s}")
    if not 0.0 < quantile < 1.0:
        raise FleetoptError("quantile", f"must be in (0, 1), got {quantile}")
    ts, tot_s = _prepare(t, tot, rate_rps)
    return _estimate(ts, tot_s, lo, hi, window_s, quantile, net_of_poisson)


def _prepare(t: NDArray[np.float64], tot: NDArray[np.float64], rate_rps: float
             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Arrival times sorted and rescaled (:func:`rescale`) with the total lengths in the same
    order: the form every estimate works on (prepared once for many length ranges)."""
    order = np.argsort(t, kind="stable")
    return rescale(t[order], rate_rps), tot[order]


def _estimate(ts: NDArray[np.float64], tot: NDArray[np.float64], lo: float, hi: float,
              window_s: float, quantile: float, net_of_poisson: bool) -> float:
    """:func:`estimate_peak_factor` on prepared arrays (:func:`_prepare`)."""
    sel = ts[(tot > lo) & (tot <= hi)]
    if len(sel) == 0:
        return 1.0
    nwin = max(1, math.ceil(ts[-1] / window_s - 1e-9))
    idx = np.minimum((sel / window_s).astype(np.int64), nwin - 1)
    counts = np.bincount(idx, minlength=nwin).astype(float)
    mean = counts.mean()
    c = np.sort(counts[counts > 0])
    cum = np.cumsum(c)
    peak = float(c[min(int(np.searchsorted(cum, quantile * cum[-1] - 1e-9)), len(c) - 1)])
    if net_of_poisson:
        z = _z(quantile)
        peak = ((-z + math.sqrt(z * z + 4.0 * peak)) / 2.0) ** 2
    return max(1.0, peak / mean)


def _windows(span_s: float, share: float, rate_rps: float,
             window_s: float | Sequence[float] | None) -> list[float]:
    """The windows to take the max over: the given ones (or :data:`DEFAULT_WINDOWS_S`), less
    those giving fewer than :data:`MIN_WINDOWS` windows over the rescaled trace (unless none is
    left: then the shortest), each lengthened to hold :data:`MIN_MEAN_COUNT` arrivals of a
    class holding ``share`` of the requests on average."""
    if window_s is None:
        wins: tuple[float, ...] = DEFAULT_WINDOWS_S
    elif isinstance(window_s, int | float):
        wins = (float(window_s),)
    else:
        wins = tuple(float(w) for w in window_s)
    if not wins or not all(w > 0 for w in wins):
        raise FleetoptError("window_s", f"windows must be > 0 s, got {window_s!r}")
    use = [w for w in wins if span_s / w >= MIN_WINDOWS] or [min(wins)]
    return sorted({max(w, MIN_MEAN_COUNT / (share * rate_rps)) for w in use})


def _class_factor(ts: NDArray[np.float64], tot: NDArray[np.float64], lo: float, hi: float,
                  rate_rps: float, window_s: float | Sequence[float] | None,
                  quantile: float) -> float:
    """The largest net-of-Poisson :func:`estimate_peak_factor` of the class ``(lo, hi]`` over
    the windows (:func:`_windows`), on prepared arrays (:func:`_prepare`); 1.0 for an empty
    class."""
    share = float(np.mean((tot > lo) & (tot <= hi)))
    if share == 0.0:
        return 1.0
    if not 0.0 < quantile < 1.0:
        raise FleetoptError("quantile", f"must be in (0, 1), got {quantile}")
    best = 1.0
    for w in _windows(float(ts[-1]), share, rate_rps, window_s):
        best = max(best, _estimate(ts, tot, lo, hi, w, quantile, True))
    return best


def peak_factor(arrival_s: ArrayLike, total_tokens: ArrayLike, rate_rps: float, *,
                window_s: float | None = None, quantile: float = 0.99) -> float:
    """One global peak factor for a trace replayed at ``rate_rps`` (the method of the module
    docstring; :func:`fleetopt.problem.workload.auto_peak_factor` is its workload-level form).

    The largest :func:`estimate_peak_factor` (net of Poisson noise, ``quantile``) over the length
    classes ``total > L`` (``L`` at the :data:`CLASS_QUANTILES` of the trace's total length,
    classes of at least :data:`MIN_CLASS_SHARE` of the requests) and the windows
    :data:`DEFAULT_WINDOWS_S` (or the given ``window_s``; windows giving fewer than
    :data:`MIN_WINDOWS` over the rescaled trace are skipped unless none is left, then the
    shortest is used; a window holding fewer than :data:`MIN_MEAN_COUNT` arrivals of the class on
    average is lengthened to hold that many, as the Poisson correction is a normal
    approximation), with the trace rescaled to ``rate_rps``; capped at :data:`MAX_PEAK_FACTOR`.
    """
    ts, tot = _prepare(np.asarray(arrival_s, dtype=float),
                       np.asarray(total_tokens).astype(float), rate_rps)
    best = 1.0
    for q in CLASS_QUANTILES:
        lo = -math.inf if q == 0.0 else float(np.quantile(tot, q))
        share = float(np.mean(tot > lo))
        if share < MIN_CLASS_SHARE:
            continue
        best = max(best, _class_factor(ts, tot, lo, math.inf, rate_rps, window_s, quantile))
    return float(min(best, MAX_PEAK_FACTOR))


def pool_peak_factors(arrival_s: ArrayLike, total_tokens: ArrayLike, edges: Sequence[float],
                      rate_rps: float, *,
                      window_s: float | Sequence[float] | Sequence[Sequence[float]] | None = None,
                      quantile: float = 0.99) -> list[float]:
    """One peak factor per pool of a fleet whose pools hold the requests of total length
    ``(edges[k], edges[k + 1]]`` (``edges`` from 0 to the last pool's upper bound), for the
    trace replayed at ``rate_rps``.

    Each is the factor of :func:`peak_factor` restricted to the pool's own requests: the largest
    :func:`estimate_peak_factor` (net of Poisson noise, at ``quantile``) of the arrivals in the
    pool's length range, over the windows (:data:`DEFAULT_WINDOWS_S`, one window, or one
    sequence of windows per pool, e.g. a few of the pool's own mean times in system; too short
    and too long windows are handled as in :func:`peak_factor`), capped at
    :data:`MAX_PEAK_FACTOR`; 1.0 for a pool that receives no request. The last pool also takes
    the requests longer than its upper bound (as the simulator routes them).

    A pool's factor is at most what the burstiest pool needs and often far less: a short pool
    of most of the traffic sees the smooth aggregate, a long pool the clusters of long requests.
    """
    t = np.asarray(arrival_s, dtype=float)
    tot = np.asarray(total_tokens).astype(float)
    e = [float(x) for x in edges]
    if len(e) < 2 or any(b <= a for a, b in zip(e[:-1], e[1:], strict=True)):
        raise FleetoptError("edges", f"need at least two increasing pool edges, got {edges!r}")
    if t.shape != tot.shape:
        raise FleetoptError("total_tokens", "needs one length per arrival")
    npools = len(e) - 1
    if window_s is not None and not isinstance(window_s, int | float) and \
            len(window_s) and not isinstance(window_s[0], int | float):
        per: list[Any] = list(window_s)
        if len(per) != npools:
            raise FleetoptError("window_s", f"give one window sequence per pool ({npools})")
    else:
        per = [window_s] * npools
    bursts = TraceBursts(t, tot, rate_rps)
    return [bursts.factor(e[k], math.inf if k == npools - 1 else e[k + 1], window_s=per[k],
                          quantile=quantile) for k in range(npools)]


class TraceBursts:
    """A trace's arrivals prepared once (sorted, rescaled to ``rate_rps``) for the peak
    factors of many length ranges: the per-pool factors of a planner's candidate pools
    (:meth:`fleetopt.problem.problem.Problem.pool_peak_factor`)."""

    def __init__(self, arrival_s: ArrayLike, total_tokens: ArrayLike, rate_rps: float) -> None:
        t = np.asarray(arrival_s, dtype=float)
        tot = np.asarray(total_tokens).astype(float)
        if t.shape != tot.shape:
            raise FleetoptError("total_tokens", "needs one length per arrival")
        self.rate_rps = float(rate_rps)
        self._ts, self._tot = _prepare(t, tot, self.rate_rps)

    def factor(self, lo: float, hi: float, *, window_s: float | Sequence[float] | None = None,
               quantile: float = 0.99) -> float:
        """The peak factor of the requests of total length ``(lo, hi]`` (``hi = inf``: every
        request longer than ``lo``), as one pool of :func:`pool_peak_factors`: the largest
        net-of-Poisson estimate over the windows, capped at :data:`MAX_PEAK_FACTOR`; 1.0 for an
        empty range."""
        return float(min(_class_factor(self._ts, self._tot, float(lo), float(hi), self.rate_rps,
                                       window_s, quantile), MAX_PEAK_FACTOR))
