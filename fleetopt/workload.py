"""Workloads: an arrival rate plus a distribution of (input, output) token lengths.

Built-in workloads (``fleetopt catalog``) are compact tables derived from public traces by
``scripts/derive_data.py`` (``docs/data.md``):

* ``azure-conv-2023``, ``azure-code-2023``, ``mooncake-conversation``: 2-D histograms of
  (input, output) lengths from the traces;
* ``azure``, ``lmsys``, ``agent-heavy``: the published CDFs of TOTAL length, split 80 % input /
  20 % output as the published planner does.

A CDF given as knots ``[[tokens, F], ...]`` is discretised with :data:`CDF_SUBBINS` equal-width
sub-bins per knot interval (the CDF is linear between knots, the mass below the first knot is
spread over ``(0, first]``), each represented by its midpoint. A user's own trace (CSV or JSONL
with input/output length columns) or CDF (JSON knots) is loaded the same way.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.errors import FleetoptError, unknown_name

CDF_SUBBINS = 16
DEFAULT_INPUT_FRACTION = 0.8
_INPUT_COLS = ("input_tokens", "input_length", "input", "contexttokens", "prompt_tokens", "l_in")
_OUTPUT_COLS = ("output_tokens", "output_length", "output", "generatedtokens",
                "completion_tokens", "l_out")
_TIME_COLS = ("arrival_s", "timestamp", "time", "arrival_time")


@dataclass(frozen=True, eq=False)
class Workload:
    """An arrival rate and a weighted set of (input, output) length points (weights sum to 1)."""

    name: str
    rate_rps: float
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    weights: NDArray[np.float64]
    description: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not np.isfinite(self.rate_rps) or self.rate_rps <= 0:
            raise FleetoptError("workload.rate", f"arrival rate must be > 0 req/s, got {self.rate_rps}")
        n = len(self.weights)
        if n == 0 or len(self.input_tokens) != n or len(self.output_tokens) != n:
            raise FleetoptError("workload", "length distribution is empty or ragged")
        if np.any(self.weights < 0) or not np.isclose(self.weights.sum(), 1.0, atol=1e-6):
            raise FleetoptError("workload", "weights must be >= 0 and sum to 1")
        if np.any(self.input_tokens < 1) or np.any(self.output_tokens < 1):
            raise FleetoptError("workload", "input and output lengths must be >= 1 token")

    @property
    def total_tokens(self) -> NDArray[np.int64]:
        return self.input_tokens + self.output_tokens

    @property
    def max_total_tokens(self) -> int:
        return int(self.total_tokens[self.weights > 0].max())

    def with_rate(self, rate_rps: float) -> Workload:
        return replace(self, rate_rps=float(rate_rps))

    def mean_output_tokens(self) -> float:
        return float(self.weights @ self.output_tokens)

    def share_at_most(self, tokens: float) -> float:
        """Fraction of requests with total length <= ``tokens``."""
        return float(self.weights[self.total_tokens <= tokens].sum())

    def quantile_total(self, q: float) -> int:
        order = np.argsort(self.total_tokens, kind="stable")
        cum = np.cumsum(self.weights[order])
        return int(self.total_tokens[order][min(np.searchsorted(cum, q - 1e-12), len(cum) - 1)])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "rate_rps": self.rate_rps, "points": len(self.weights),
            "mean_input_tokens": float(self.weights @ self.input_tokens),
            "mean_output_tokens": self.mean_output_tokens(),
            "p50_total_tokens": self.quantile_total(0.5),
            "p99_total_tokens": self.quantile_total(0.99),
            "max_total_tokens": self.max_total_tokens,
        }


def _from_points(name: str, rate: float, pts: NDArray, **kw: Any) -> Workload:
    w = pts[:, 2].astype(float)
    return Workload(name, float(rate), np.maximum(1, np.rint(pts[:, 0])).astype(np.int64),
                    np.maximum(1, np.rint(pts[:, 1])).astype(np.int64), w / w.sum(), **kw)


def cdf_points(
    knots: list[list[float]], input_fraction: float = DEFAULT_INPUT_FRACTION,
    field_name: str = "workload.cdf", subbins: int = CDF_SUBBINS,
) -> NDArray[np.float64]:
    """Validate total-length CDF knots and discretise them into (input, output, weight) points."""
    try:
        arr = np.asarray(knots, dtype=float)
    except (TypeError, ValueError):
        raise FleetoptError(field_name, "CDF must be a list of [tokens, cumulative fraction] pairs") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 1:
        raise FleetoptError(field_name, "CDF must be a list of [tokens, cumulative fraction] pairs")
    x, f = arr[:, 0], arr[:, 1]
    if np.any(np.diff(x) <= 0) or x[0] <= 0:
        raise FleetoptError(field_name, "CDF token values must be positive and strictly increasing")
    if np.any(np.diff(f) < -1e-12) or f[0] < 0:
        raise FleetoptError(field_name, "CDF is not monotone: cumulative fractions must never decrease")
    if abs(f[-1] - 1.0) > 1e-6:
        raise FleetoptError(field_name, f"CDF must end at 1, ends at {f[-1]:.6g}; add a final knot [max_tokens, 1.0]")
    if not 0 < input_fraction < 1:
        raise FleetoptError("workload.input_fraction", "must be in (0, 1)")
    xs = np.concatenate([[0.0], x])
    fs = np.concatenate([[0.0], np.clip(f, 0, 1)])
    rows = []
    for k in range(1, len(xs)):
        mass = fs[k] - fs[k - 1]
        if mass <= 1e-15:
            continue
        edges = np.linspace(xs[k - 1], xs[k], subbins + 1)
        mids = np.maximum(2.0, np.rint(0.5 * (edges[:-1] + edges[1:])))
        for t in mids:
            lin = max(1.0, np.rint(input_fraction * t))
            rows.append((lin, max(1.0, t - lin), mass / subbins))
    pts = np.asarray(rows)
    # merge identical lengths
    keys, inv = np.unique(pts[:, :2], axis=0, return_inverse=True)
    w = np.bincount(inv.ravel(), weights=pts[:, 2])
    return np.column_stack([keys, w])


def _package_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files("fleetopt.data").joinpath("workloads", f"{name}.json").read_text())


def builtin_names() -> list[str]:
    d = resources.files("fleetopt.data").joinpath("workloads")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".json"))


def builtin_info() -> list[dict[str, Any]]:
    out = []
    for n in builtin_names():
        d = _package_json(n)
        out.append({"name": n, "kind": d["kind"], "description": d.get("description", ""),
                    "source": d.get("source", ""), "license": d.get("license", "")})
    return out


def builtin(name: str, rate_rps: float = 1000.0, field_name: str = "workload.name") -> Workload:
    """A built-in workload by name (case-insensitive) at ``rate_rps``."""
    names = builtin_names()
    key = {n.lower(): n for n in names}.get(str(name).lower())
    if key is None:
        raise unknown_name(field_name, str(name), names, "workload")
    d = _package_json(key)
    meta = {k: d[k] for k in ("source", "license", "derivation", "stats", "requests",
                              "trace_rate_rps") if k in d}
    if d["kind"] == "cdf":
        pts = cdf_points(d["knots"], d.get("input_fraction", DEFAULT_INPUT_FRACTION), field_name)
    else:
        pts = np.asarray(d["points"], dtype=float)
    return _from_points(key, rate_rps, pts, description=d.get("description", ""),
                        source=d.get("source", ""), meta=meta)


def from_cdf_file(path: str | Path, rate_rps: float, input_fraction: float = DEFAULT_INPUT_FRACTION,
                  field_name: str = "workload.cdf") -> Workload:
    """A workload from a JSON file of total-length CDF knots ``[[tokens, F], ...]``."""
    from fleetopt.io import read_json

    p = Path(path)
    data = read_json(p, field_name)
    if isinstance(data, dict):
        input_fraction = data.get("input_fraction", input_fraction)
        data = data.get("knots", data.get("cdf"))
    pts = cdf_points(data, input_fraction, field_name)
    return _from_points(p.stem, rate_rps, pts, source=str(p))


def read_trace(path: str | Path, field_name: str = "workload.trace") -> dict[str, NDArray]:
    """Read a CSV(.gz) or JSONL trace: ``input``, ``output`` lengths and ``arrival_s`` if present."""
    p = Path(path)
    if not p.is_file():
        raise FleetoptError(field_name, f"file not found: {p}")
    opener = gzip.open if p.suffix == ".gz" else open
    rows: list[dict[str, Any]] = []
    try:
        with opener(p, "rt") as f:
            if ".jsonl" in p.name or ".ndjson" in p.name:
                rows = [json.loads(line) for line in f if line.strip()]
            else:
                rows = list(csv.DictReader(f))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as e:
        raise FleetoptError(field_name, f"cannot parse {p}: {e}") from None
    if not rows:
        raise FleetoptError(field_name, f"{p} has no requests")
    cols = {c.lower(): c for c in rows[0]}

    def pick(cands: tuple[str, ...], required: bool) -> str | None:
        for c in cands:
            if c in cols:
                return cols[c]
        if required:
            raise FleetoptError(
                field_name, f"{p} needs a column named one of {', '.join(cands)}; has {', '.join(cols)}"
            )
        return None

    ci, co, ct = pick(_INPUT_COLS, True), pick(_OUTPUT_COLS, True), pick(_TIME_COLS, False)
    try:
        lin = np.array([float(r[ci]) for r in rows])
        lout = np.array([float(r[co]) for r in rows])
    except (TypeError, ValueError) as e:
        raise FleetoptError(field_name, f"{p}: non-numeric length: {e}") from None
    if np.any(lin < 0) or np.any(lout < 0):
        raise FleetoptError(field_name, f"{p}: lengths must be >= 0")
    out = {"input": np.maximum(1, lin).astype(np.int64), "output": np.maximum(1, lout).astype(np.int64)}
    if ct is not None:
        try:
            t = np.array([float(r[ct]) for r in rows])
        except (TypeError, ValueError):
            t = np.array(np.array([r[ct] for r in rows], dtype="datetime64[us]"), dtype=float) / 1e6
        out["arrival_s"] = t - t.min()
    return out


def from_trace_file(path: str | Path, rate_rps: float | None = None,
                    field_name: str = "workload.trace") -> Workload:
    """A workload from a user trace; rate defaults to the trace's own mean rate when timestamps exist."""
    tr = read_trace(path, field_name)
    if rate_rps is None:
        if "arrival_s" not in tr or tr["arrival_s"].max() <= 0:
            raise FleetoptError("workload.rate", "the trace has no timestamps: set workload.rate (req/s)")
        rate_rps = len(tr["input"]) / tr["arrival_s"].max()
    keys, inv = np.unique(np.column_stack([tr["input"], tr["output"]]), axis=0, return_inverse=True)
    w = np.bincount(inv.ravel()).astype(float)
    return Workload(Path(path).name, float(rate_rps), keys[:, 0], keys[:, 1], w / w.sum(),
                    source=str(path))


def builtin_trace(name: str) -> dict[str, NDArray]:
    """Arrival times and lengths of a shipped trace (for replay in the simulator)."""
    d = resources.files("fleetopt.data").joinpath("traces")
    names = sorted(p.name.split(".")[0] for p in d.iterdir() if p.name.endswith(".csv.gz"))
    key = {n.lower(): n for n in names}.get(str(name).lower())
    if key is None:
        raise unknown_name("workload.name", str(name), names, "trace")
    with resources.as_file(d.joinpath(f"{key}.csv.gz")) as p:
        return read_trace(p)


# --- the published planner's sampling convention (opt-in, for ``paper`` accounting) ---------
#
# The published planner does not integrate the CDF: it estimates each pool's E[S] and cv2 from
# PAPER_SAMPLES draws of that pool's own length distribution, with a fresh Python ``random``
# generator (Mersenne Twister) seeded PAPER_SEED per pool. One draw is ``u = random()``; the
# first knot of the pool's conditional CDF with ``u <= G`` selects an interval
# ``(previous knot, knot]``, and the length is ``randint(previous + 1, min(knot, window))``, or
# exactly ``window`` when the interval lies wholly above the window (the compress band: a
# compressed request is modelled as a request of exactly ``window`` tokens, split 80/20 like
# any other). Input is ``floor(0.8 * L)`` (at least 1), output the rest (at least 1). The
# Monte-Carlo noise of 3,000 draws is part of the published figures (Azure homogeneous 64K:
# 141 instances from the draw, 145 from the exact distribution), so reproducing them needs
# the same draws. Here the first interval of a pool starts at the pool's lower routing bound;
# the published planner starts its long pool at 0 (its first long interval is drawn from 1
# token), a flaw not reproduced here (``scripts/reproduce_paper_flaw.py`` emulates it).

PAPER_SAMPLES = 3000
PAPER_SEED = 42


def _paper_interp(knots: list[tuple[float, float]], t: float) -> float:
    """CDF at ``t`` by linear interpolation between knots, from (0, 0), as the planner does."""
    if t <= 0:
        return 0.0
    for i, (x, f) in enumerate(knots):
        if x >= t:
            if i == 0:
                return f * (t / max(1.0, x))
            x0, f0 = knots[i - 1]
            return f if x == x0 else f0 + (f - f0) * (t - x0) / (x - x0)
    return float(knots[-1][1])


def paper_sub_cdf(knots: list[list[float]], lo: int, hi: int) -> list[tuple[int, float]]:
    """Knots of the conditional CDF of total length on ``(lo, hi]`` (last knot ``(hi, 1)``)."""
    k = [(int(x), float(f)) for x, f in knots]
    f_lo = _paper_interp(k, lo) if lo > 0 else 0.0
    f_hi = 1.0 if hi >= k[-1][0] else _paper_interp(k, hi)
    mass = f_hi - f_lo
    if mass <= 0:
        return []
    top = min(hi, k[-1][0])
    sub = [(x, max(0.0, (f - f_lo) / mass)) for x, f in k if lo < x < top]
    sub.append((top, 1.0))
    return sub


def paper_draw(
    sub_knots: list[tuple[int, float]], start: int, window: int,
    input_fraction: float = DEFAULT_INPUT_FRACTION, samples: int = PAPER_SAMPLES,
    seed: int = PAPER_SEED,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``samples`` (input, output) draws from a pool's conditional CDF whose first interval
    starts at ``start`` tokens, lengths capped to ``window`` (see the module notes)."""
    rng = random.Random(seed)
    lin = np.empty(samples, dtype=np.int64)
    lout = np.empty(samples, dtype=np.int64)
    for j in range(samples):
        u = rng.random()
        prev = start
        length = int(sub_knots[-1][0])
        for x, g in sub_knots:
            if u <= g:
                a, b = max(1, prev + 1), min(window, x)
                length = rng.randint(a, b) if a <= b else window
                break
            prev = x
        li = max(1, math.floor(length * input_fraction))
        lin[j], lout[j] = li, max(1, length - li)
    return lin, lout


def paper_pool_sample(
    knots: list[list[float]], lo: int, hi: int, window: int,
    input_fraction: float = DEFAULT_INPUT_FRACTION, samples: int = PAPER_SAMPLES,
    seed: int = PAPER_SEED,
) -> tuple[NDArray[np.int64], NDArray[np.int64], float]:
    """The published planner's draws for the pool that serves totals in ``(lo, hi]`` with a KV
    window ``window`` (``window < hi``: compress band). Returns inputs, outputs and the pool's
    share of requests ``F(hi) - F(lo)``."""
    k = [(int(x), float(f)) for x, f in knots]
    share = (1.0 if hi >= k[-1][0] else _paper_interp(k, hi)) - (_paper_interp(k, lo) if lo > 0 else 0.0)
    sub = paper_sub_cdf(knots, lo, hi)
    if not sub or share <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    lin, lout = paper_draw(sub, lo, window, input_fraction, samples, seed)
    return lin, lout, float(share)


def paper_sampled(
    name_or_knots: str | list[list[float]], rate_rps: float,
    pools: list[tuple[int, int, int]], input_fraction: float | None = None,
    samples: int = PAPER_SAMPLES, seed: int = PAPER_SEED,
) -> Workload:
    """A workload drawn the published planner's way for ONE fleet layout (opt-in).

    ``pools`` lists ``(ctx_lo, ctx_hi, window)`` of the fleet, contiguous from 0. Each pool gets
    its own ``samples`` draws (own generator, ``seed``), weighted by its share of requests, so
    routing the result by total length gives every pool exactly the draws the planner used.
    Draws in a compress band are already capped at the window. Meant for ``paper`` accounting
    (reproducing published tables); planning uses :func:`builtin` / :func:`cdf_points`.
    """
    if isinstance(name_or_knots, str):
        names = builtin_names()
        key = {n.lower(): n for n in names}.get(name_or_knots.lower())
        if key is None:
            raise unknown_name("workload.name", name_or_knots, names, "workload")
        d = _package_json(key)
        if d["kind"] != "cdf":
            raise FleetoptError("workload.name", f"{key} is not a CDF workload")
        knots, name = d["knots"], key
        frac = d.get("input_fraction", DEFAULT_INPUT_FRACTION) if input_fraction is None else input_fraction
    else:
        cdf_points(name_or_knots)  # validation
        knots, name = name_or_knots, "cdf"
        frac = DEFAULT_INPUT_FRACTION if input_fraction is None else input_fraction
    prev = 0
    lins, louts, ws = [], [], []
    for lo, hi, window in pools:
        if lo != prev or not lo < window <= hi:
            raise FleetoptError("fleet.pools", "pools must be contiguous from 0 with lo < window <= hi")
        prev = hi
        lin, lout, share = paper_pool_sample(knots, lo, hi, window, frac, samples, seed)
        if share <= 0:
            continue
        lins.append(lin)
        louts.append(lout)
        ws.append(np.full(len(lin), share / len(lin)))
    w = np.concatenate(ws)
    return Workload(f"{name}-paper-sampled", float(rate_rps), np.concatenate(lins),
                    np.concatenate(louts), w / w.sum(),
                    description=f"{name}: {samples} draws per pool, seed {seed} (published convention)",
                    meta={"sampling": "paper", "pools": [list(p) for p in pools]})
