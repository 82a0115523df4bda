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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.core.errors import FleetoptError, unknown_name
from fleetopt.physics.burst import peak_factor
from fleetopt.physics.compression import compress
from fleetopt.problem.schema import OVER_MAX_CTX, TIMESTAMP_UNITS, check

__all__ = ["CDF_SUBBINS", "DEFAULT_INPUT_FRACTION", "HASH_BLOCK_TOKENS", "MAX_TOKENS", "MS_EPOCH", "MS_MEDIAN_GAP",
           "MS_SPAN", "PAPER_SAMPLES", "PAPER_SEED", "SHIPPED_TRACES", "S_EPOCH", "TOO_FINE_EPOCH",
           "Workload", "auto_peak_factor", "builtin", "builtin_info", "builtin_names",
           "builtin_trace", "cdf_points", "check_input_fraction", "describe_share",
           "detect_timestamp_unit", "fit_context", "from_cdf_file", "from_trace_file", "paper_draw",
           "paper_pool_sample", "paper_sampled", "paper_sub_cdf", "read_hashes", "read_trace",
           "requests_over", "source_trace", "trace_hash_lists", "trace_of", "trace_rate_rps"]

CDF_SUBBINS = 16
#: tokens per prompt block of a trace's ``hash_ids`` (Mooncake's convention)
HASH_BLOCK_TOKENS = 512
#: longest input or output length accepted in a trace (tokens)
MAX_TOKENS = 1e9
DEFAULT_INPUT_FRACTION = 0.8
_INPUT_COLS = ("input_tokens", "input_length", "input", "contexttokens", "prompt_tokens", "l_in")
_OUTPUT_COLS = ("output_tokens", "output_length", "output", "generatedtokens",
                "completion_tokens", "l_out")
_TIME_COLS = ("arrival_s", "arrival_ms", "timestamp", "timestamp_s", "timestamp_ms", "time",
              "time_s", "time_ms", "arrival_time")

_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3}
#: "auto" reads a relative trace as milliseconds when its median positive gap between
#: consecutive arrivals is at least this many of its units (seconds would mean fewer than three
#: requests a minute at the median; milliseconds, at most 50 req/s)
MS_MEDIAN_GAP = 20.0
#: ... or when it spans at least this many of its units (more than a year, read as seconds)
MS_SPAN = 365.0 * 86400.0
#: first timestamp at or above which "auto" reads milliseconds since the Unix epoch (1e11 ms is
#: 1973; 1e11 s is the year 5138) ...
MS_EPOCH = 1e11
#: ... and at or above which it reads seconds since the epoch (1e8 s is 1973)
S_EPOCH = 1e8
#: first timestamp from which values look like micro- or nanoseconds since the epoch
TOO_FINE_EPOCH = 1e14


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
        check("workload.rate", self.rate_rps)
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
        at = min(int(np.searchsorted(cum, q - 1e-12)), len(cum) - 1)
        return int(self.total_tokens[order][at])

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


def builtin(name: str, rate_rps: float = 1000.0, field_name: str = "workload.name",
            input_fraction: float | None = None) -> Workload:
    """A built-in workload by name (case-insensitive) at ``rate_rps``.

    ``input_fraction`` replaces the published 80/20 input/output split of a CDF workload; a
    trace-derived workload has its own split, so giving one there is an error.
    """
    names = builtin_names()
    key = {n.lower(): n for n in names}.get(str(name).lower())
    if key is None:
        raise unknown_name(field_name, str(name), names, "workload")
    d = _package_json(key)
    meta: dict[str, Any] = {k: d[k] for k in ("source", "license", "derivation", "stats",
                                              "requests", "trace_rate_rps") if k in d}
    if d["kind"] == "cdf":
        src = "published"
        frac = d.get("input_fraction", DEFAULT_INPUT_FRACTION)
        if input_fraction is not None:
            frac, src = check_input_fraction(input_fraction), "config"
        pts = cdf_points(d["knots"], frac, field_name)
        meta.update(input_fraction=frac, input_fraction_source=src)
    else:
        if input_fraction is not None:
            raise FleetoptError("workload.input_fraction", f"{key} is a histogram of (input, "
                                "output) lengths from a trace, with its own split; remove "
                                "input_fraction (it applies to CDF workloads only)")
        pts = np.asarray(d["points"], dtype=float)
    return _from_points(key, rate_rps, pts, description=d.get("description", ""),
                        source=d.get("source", ""), meta=meta)


_CDF_FILE_KEYS = {"knots", "cdf", "input_fraction", "name", "kind", "description", "source",
                  "license", "derivation", "input_fraction_source"}


def check_input_fraction(v: Any, field_name: str = "workload.input_fraction") -> float:
    """An input share of a request's total length: a number in (0, 1)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
        raise FleetoptError(field_name, f"must be a number in (0, 1) (the prompt's share of a "
                            f"request's total length), got {v!r}")
    return float(v)


def from_cdf_file(path: str | Path, rate_rps: float, input_fraction: float | None = None,
                  field_name: str = "workload.cdf") -> Workload:
    """A workload from a JSON file of total-length CDF knots ``[[tokens, F], ...]``, or an object
    ``{"knots": [...], "input_fraction": 0.8}``. The prompt's share of each length is the file's
    ``input_fraction``, else ``input_fraction``, else :data:`DEFAULT_INPUT_FRACTION`; giving
    both is an error (``meta["input_fraction_source"]`` says which was used)."""
    from fleetopt.core.jsonio import read_json

    p = Path(path)
    data = read_json(p, field_name)
    source = "default"
    if input_fraction is not None:
        input_fraction = check_input_fraction(input_fraction)
        source = "config"
    if isinstance(data, dict):
        if data.get("kind", "cdf") != "cdf":
            raise FleetoptError(field_name, f"{p} is a {data['kind']!r} workload file, not a CDF; "
                                "use [workload] name for shipped workloads")
        bad = sorted(set(data) - _CDF_FILE_KEYS)
        if bad:
            raise FleetoptError(field_name, f"{p}: unknown keys {bad}; a CDF file is a list of "
                                "[tokens, F] knots or an object with knots and input_fraction")
        if "input_fraction" in data:
            f = check_input_fraction(data["input_fraction"], f"{field_name}.input_fraction")
            if input_fraction is not None:
                raise FleetoptError("workload.input_fraction", f"{p} sets its own input_fraction "
                                    f"({f:g}); remove one of the two")
            input_fraction, source = f, "file"
        if "knots" not in data and "cdf" not in data:
            raise FleetoptError(field_name, f"{p} has no knots: give \"knots\": "
                                "[[tokens, F], ...]")
        data = data.get("knots", data.get("cdf"))
    frac = DEFAULT_INPUT_FRACTION if input_fraction is None else input_fraction
    pts = cdf_points(data, frac, field_name)
    return _from_points(p.stem, rate_rps, pts, source=str(p),
                        meta={"input_fraction": frac, "input_fraction_source": source})


def _row_label(kind: str, i: int) -> str:
    return f"line {i + 1}" if kind == "jsonl" else f"line {i + 2}"  # CSV: line 1 is the header


def _open_text(p: Path) -> IO[str]:
    """``p`` as text (gzip when it ends ``.gz``); ``-sig``: a BOM is not a column name."""
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8-sig")
    return open(p, encoding="utf-8-sig")  # noqa: SIM115  (closed by the caller's with)


def _read_rows(p: Path, field_name: str) -> tuple[str, list[dict[str, Any]]]:
    kind = "jsonl" if (".jsonl" in p.name or ".ndjson" in p.name) else "csv"
    rows: list[dict[str, Any]] = []
    try:
        with _open_text(p) as f:
            if kind == "jsonl":
                for i, line in enumerate(f):
                    if not line.strip():
                        continue
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise FleetoptError(field_name, f"{p} line {i + 1} is not valid JSON: "
                                            f"{e.msg}") from None
                    if not isinstance(r, dict):
                        raise FleetoptError(
                            field_name, f"{p} line {i + 1}: each line must be a JSON object "
                            f"such as {{\"input_tokens\": 512, \"output_tokens\": 128}}, got "
                            f"{type(r).__name__} {line.strip()[:40]!r}")
                    r["__line__"] = i + 1
                    rows.append(r)
            else:
                rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error, EOFError, OSError) as e:
        if isinstance(e, FleetoptError):
            raise
        raise FleetoptError(field_name, f"cannot read {p}: {e}") from None
    return kind, rows


def _column(rows: list[dict[str, Any]], col: str, kind: str, p: Path, field_name: str,
            what: str) -> list[Any]:
    vals = []
    for i, r in enumerate(rows):
        v = r.get(col)
        if v is None or (isinstance(v, str) and not v.strip()):
            at = f"line {r['__line__']}" if "__line__" in r else _row_label(kind, i)
            raise FleetoptError(field_name, f"{p} {at} has no {col!r} ({what}); every request "
                                "needs one")
        vals.append(v)
    return vals


def _numbers(vals: list[Any]) -> NDArray[np.float64] | None:
    """Floats of a column, or None when some value is not a number."""
    out = np.empty(len(vals))
    for i, v in enumerate(vals):
        if isinstance(v, bool):
            return None
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            return None
    return out


def _first_bad(vals: list[Any], rows: list[dict[str, Any]], kind: str, ok: Any) -> tuple[str, Any]:
    for i, v in enumerate(vals):
        if not ok(v):
            r = rows[i]
            return (f"line {r['__line__']}" if "__line__" in r else _row_label(kind, i)), v
    return "", None


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def detect_timestamp_unit(t: NDArray[np.float64], column: str = "") -> tuple[str, str]:
    """``("s" | "ms", why)`` for numeric arrival times ``t`` (``[workload] timestamp_unit =
    "auto"``), by these rules in order:

    1. the column's name ends in ``_ms`` (ms) or ``_s`` (s);
    2. values of at least :data:`TOO_FINE_EPOCH` are an error (micro/nanoseconds);
    3. a first value of at least :data:`MS_EPOCH`: milliseconds since the Unix epoch;
       at least :data:`S_EPOCH`: seconds since the epoch;
    4. otherwise (times relative to the trace's start): milliseconds when the median positive
       gap between consecutive arrivals is at least :data:`MS_MEDIAN_GAP` units or the trace
       spans at least :data:`MS_SPAN` units; else seconds.
    """
    name = column.lower()
    if name.endswith(("_ms", "_msec", "_millis")):
        return "ms", f"column {column!r}"
    if name.endswith(("_s", "_sec", "_secs", "_seconds")):
        return "s", f"column {column!r}"
    t = np.sort(np.asarray(t, dtype=float))
    lo = float(t[0])
    if lo >= TOO_FINE_EPOCH:
        raise FleetoptError("workload.trace", f"timestamps from {lo:.4g} look like micro- or "
                            "nanoseconds since the epoch; convert them to seconds or milliseconds "
                            "(and set [workload] timestamp_unit)")
    if lo >= MS_EPOCH:
        return "ms", f"values from {lo:.4g}: milliseconds since the epoch"
    if lo >= S_EPOCH:
        return "s", f"values from {lo:.4g}: seconds since the epoch"
    gaps = np.diff(t)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        return "s", "no two distinct arrival times"
    med = float(np.median(gaps))
    span = float(t[-1] - t[0])
    if med >= MS_MEDIAN_GAP:
        return "ms", f"median gap {med:.4g} >= {MS_MEDIAN_GAP:g}"
    if span >= MS_SPAN:
        return "ms", f"span {span:.4g} >= {MS_SPAN:.4g}"
    return "s", f"median gap {med:.4g} < {MS_MEDIAN_GAP:g}"


def read_trace(path: str | Path, field_name: str = "workload.trace",
               timestamp_unit: str = "auto") -> dict[str, Any]:
    """Read a CSV(.gz) or JSONL trace: ``input``, ``output`` lengths and ``arrival_s`` (seconds
    from the first arrival) if it has a time column, with ``timestamp_unit`` ("s", "ms" or
    "datetime") and ``timestamp_rule`` (why). Numeric times are in ``timestamp_unit`` ("auto":
    :func:`detect_timestamp_unit`); date-time strings are read as such. A JSONL trace with a
    ``hash_ids`` column (Mooncake) also gives ``hash_ids`` (flat), ``hash_offsets`` and
    ``hash_block_tokens`` (:data:`HASH_BLOCK_TOKENS`)."""
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise FleetoptError("workload.timestamp_unit", f"must be one of "
                            f"{', '.join(map(repr, TIMESTAMP_UNITS))}, got {timestamp_unit!r}")
    p = Path(path)
    if not p.is_file():
        raise FleetoptError(field_name, f"file not found: {p}")
    kind, rows = _read_rows(p, field_name)
    if not rows:
        raise FleetoptError(field_name, f"{p} has no requests")
    cols = {str(c).lower(): c for c in rows[0] if c is not None and c != "__line__"}

    def pick(cands: tuple[str, ...], required: bool) -> str | None:
        for c in cands:
            if c in cols:
                return cols[c]
        if required:
            raise FleetoptError(
                field_name, f"{p} needs a column named one of {', '.join(cands)}; has "
                f"{', '.join(cols) or 'none'}"
            )
        return None

    ci, co, ct = pick(_INPUT_COLS, True), pick(_OUTPUT_COLS, True), pick(_TIME_COLS, False)
    assert ci is not None and co is not None  # required: pick() raised otherwise
    out: dict[str, Any] = {}
    for key, col in (("input", ci), ("output", co)):
        vals = _column(rows, col, kind, p, field_name, f"the {key} length")
        at, v = _first_bad(vals, rows, kind, lambda x: _is_number(x)
                           and 0 <= float(x) <= MAX_TOKENS and float(x) == int(float(x)))
        if at:
            raise FleetoptError(field_name, f"{p} {at}: {col!r} must be a whole number of "
                                f"tokens from 0 to {MAX_TOKENS:.0e}, got {v!r}")
        arr = np.array([float(x) for x in vals])
        out[key] = np.maximum(1, arr).astype(np.int64)
    if ct is not None:
        vals = _column(rows, ct, kind, p, field_name, "the arrival time")
        t = _numbers(vals)
        if t is not None or any(_is_number(x) for x in vals[:1000]):
            at, v = _first_bad(vals, rows, kind, _is_number)
            if at or t is None:
                raise FleetoptError(field_name, f"{p} {at}: arrival time {ct!r} must be a finite "
                                    f"number, got {v!r}")
            if timestamp_unit == "auto":
                unit, why = detect_timestamp_unit(t, str(ct))
            else:
                unit, why = timestamp_unit, "[workload] timestamp_unit"
            t = t * _UNIT_SECONDS[unit]
        else:
            try:
                t = np.array(np.array([str(x) for x in vals], dtype="datetime64[us]"),
                             dtype=float) / 1e6
            except (TypeError, ValueError):
                at, v = _first_bad(vals, rows, kind, _is_datetime)
                raise FleetoptError(field_name, f"{p} {at or 'a row'}: arrival time {ct!r} must be "
                                    "a number (seconds or milliseconds) or a date-time such as "
                                    f"2024-01-31T12:00:00.5, got {v!r}") from None
            if timestamp_unit != "auto":
                raise FleetoptError("workload.timestamp_unit", f"applies to numeric timestamps, "
                                    f"and {p}'s {ct} column holds date-times; remove it")
            unit, why = "datetime", f"date-times in column {ct!r}"
        out["arrival_s"] = t - t.min()
        out["timestamp_unit"], out["timestamp_rule"], out["timestamp_column"] = unit, why, ct
    elif timestamp_unit != "auto":
        raise FleetoptError("workload.timestamp_unit", f"{p} has no timestamp column (one of "
                            f"{', '.join(_TIME_COLS)}); remove timestamp_unit")
    if kind == "jsonl" and "hash_ids" in rows[0]:
        out.update(_hash_column(rows, p, field_name))
    return out


def _hash_column(rows: list[dict[str, Any]], p: Path, field_name: str) -> dict[str, Any]:
    """A JSONL trace's ``hash_ids`` (Mooncake: one id per :data:`HASH_BLOCK_TOKENS`-token block
    of the prompt): flat ids, per-request offsets (row ``i`` owns ``ids[off[i]:off[i+1]]``)."""
    lens = np.zeros(len(rows) + 1, dtype=np.int64)
    flat: list[int] = []
    for i, r in enumerate(rows):
        h = r.get("hash_ids")
        if not isinstance(h, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                              and x >= 0 for x in h):
            raise FleetoptError(field_name, f"{p} line {r.get('__line__', i + 1)}: 'hash_ids' "
                                "must be a list of whole numbers >= 0 (one per 512-token prompt "
                                f"block), got {str(h)[:40]!r}")
        flat.extend(h)
        lens[i + 1] = len(h)
    return {"hash_ids": np.asarray(flat, dtype=np.int64), "hash_offsets": np.cumsum(lens),
            "hash_block_tokens": HASH_BLOCK_TOKENS}


def read_hashes(path: str | Path) -> dict[str, Any]:
    """A shipped ``<trace>.hashes.txt.gz`` (``scripts/derive_data.py``): ``hash_ids`` (flat),
    ``hash_offsets`` (``n + 1``) and ``hash_block_tokens``. Its first line is ``# hash_ids
    block_tokens=B requests=N``; each further line holds one request's ids in the order of the
    trace's rows, runs of consecutive ids written ``a-b``."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        head = f.readline().split()
        meta = dict(kv.split("=", 1) for kv in head[2:])
        flat: list[int] = []
        offsets = [0]
        for line in f:
            for tok in line.split():
                a, _, b = tok.partition("-")
                flat.extend(range(int(a), int(b or a) + 1))
            offsets.append(len(flat))
    if len(offsets) - 1 != int(meta["requests"]):
        raise ValueError(f"{path}: {len(offsets) - 1} hash lines, header says "
                         f"{meta['requests']}")
    return {"hash_ids": np.asarray(flat, dtype=np.int64),
            "hash_offsets": np.asarray(offsets, dtype=np.int64),
            "hash_block_tokens": int(meta["block_tokens"])}


def _is_datetime(v: Any) -> bool:
    try:
        np.datetime64(str(v), "us")
        return True
    except (TypeError, ValueError):
        return False


def trace_rate_rps(trace: dict[str, Any]) -> float | None:
    """A trace's own mean rate ``requests / span`` (None without two distinct arrival times)."""
    t = trace.get("arrival_s")
    if t is None or len(t) < 2 or float(np.max(t)) <= 0:
        return None
    return len(t) / float(np.max(t))


def from_trace_file(path: str | Path, rate_rps: float | None = None,
                    field_name: str = "workload.trace", timestamp_unit: str = "auto") -> Workload:
    """A workload from a user trace; rate defaults to the trace's own mean rate when timestamps
    exist. ``meta`` records the trace's rate, its timestamp unit and why (``read_trace``)."""
    tr = read_trace(path, field_name, timestamp_unit)
    native = trace_rate_rps(tr)
    if rate_rps is None:
        if native is None:
            raise FleetoptError("workload.rate", "the trace has no timestamps (or all are equal): "
                                "set workload.rate (req/s)")
        rate_rps = native
    keys, inv = np.unique(np.column_stack([tr["input"], tr["output"]]), axis=0, return_inverse=True)
    w = np.bincount(inv.ravel()).astype(float)
    meta: dict[str, Any] = {"requests": len(tr["input"]), "trace_rate_rps": native}
    for k in ("timestamp_unit", "timestamp_rule", "timestamp_column"):
        if k in tr:
            meta[k] = tr[k]
    return Workload(Path(path).name, float(rate_rps), keys[:, 0], keys[:, 1], w / w.sum(),
                    source=str(path), meta=meta)


def source_trace(workload: Workload, field_name: str = "workload.trace") -> dict[str, Any] | None:
    """The user trace file ``workload`` was read from (:func:`from_trace_file`), read again with
    the same timestamp unit; None for other workloads."""
    src = Path(workload.source) if workload.source else None
    if src is None or not src.is_file() or src.name != workload.name:
        return None
    unit = workload.meta.get("timestamp_unit", "auto")
    return read_trace(src, field_name, unit if unit in _UNIT_SECONDS else "auto")


def requests_over(workload: Workload, limit: int) -> tuple[float, int | None]:
    """Share (and count, when the workload knows its number of requests) of requests longer
    than ``limit`` tokens in total."""
    over = workload.total_tokens > limit
    share = float(workload.weights[over].sum())
    n = workload.meta.get("requests")
    return share, (int(round(share * n)) if isinstance(n, int) and n > 0 else None)


def describe_share(share: float, count: int | None) -> str:
    """``"12 requests (0.06 %)"`` or ``"0.06 % of requests"``."""
    pct = f"{100 * share:.2g} %" if share < 0.01 else f"{100 * share:.1f} %"
    return f"{count:,} requests ({pct})" if count is not None else f"{pct} of requests"


def fit_context(workload: Workload, limit: int, mode: str,
                field_name: str = "workload.over_max_ctx") -> Workload:
    """``workload`` with its requests longer than ``limit`` tokens dropped (``mode="drop"``:
    the rest reweighted, the rate unchanged) or their prompts truncated to fit (``"truncate"``,
    output kept, as a compress band does). ``meta["over_max_ctx"]`` records what was done."""
    if mode not in OVER_MAX_CTX[1:]:
        raise FleetoptError(field_name, f"must be one of {', '.join(map(repr, OVER_MAX_CTX))}, "
                            f"got {mode!r}")
    share, count = requests_over(workload, limit)
    if share <= 0:
        return workload
    over = workload.total_tokens > limit
    if mode == "drop":
        if share >= 1.0 - 1e-12:
            raise FleetoptError(field_name, f"every request is longer than {limit} tokens; "
                                "nothing is left to plan for")
        lin, lout, w = (workload.input_tokens[~over], workload.output_tokens[~over],
                        workload.weights[~over])
    else:
        lin, lout, _ = compress(workload.input_tokens, workload.output_tokens, limit)
        w = workload.weights
    keys, inv = np.unique(np.column_stack([lin, lout]), axis=0, return_inverse=True)
    w2 = np.bincount(inv.ravel(), weights=w)
    meta = {**workload.meta, "over_max_ctx": {
        "mode": mode, "limit_tokens": int(limit), "share": share, "requests": count,
        "longest_tokens": workload.max_total_tokens}}
    return replace(workload, input_tokens=keys[:, 0].astype(np.int64),
                   output_tokens=keys[:, 1].astype(np.int64), weights=w2 / w2.sum(), meta=meta)


def builtin_trace(name: str) -> dict[str, Any]:
    """Arrival times and lengths of a shipped trace (for replay in the simulator), with its
    prompt block hashes (``hash_ids``, ``hash_offsets``, ``hash_block_tokens``: Mooncake) when
    the trace has them (:func:`read_hashes`)."""
    d = resources.files("fleetopt.data").joinpath("traces")
    names = sorted(p.name.split(".")[0] for p in d.iterdir() if p.name.endswith(".csv.gz"))
    key = {n.lower(): n for n in names}.get(str(name).lower())
    if key is None:
        raise unknown_name("workload.name", str(name), names, "trace")
    with resources.as_file(d.joinpath(f"{key}.csv.gz")) as p:
        tr = read_trace(p)
    hashes = d.joinpath(f"{key}.hashes.txt.gz")
    if hashes.is_file():
        with resources.as_file(hashes) as p:
            h = read_hashes(p)
        if len(h["hash_offsets"]) != len(tr["input"]) + 1:
            raise ValueError(f"{key}: hash lines do not match the trace's requests")
        tr.update(h)
    return tr


def trace_hash_lists(trace: dict[str, Any]) -> list[list[int]] | None:
    """One list of block hashes per request of ``trace`` (None when it has none)."""
    if "hash_ids" not in trace:
        return None
    flat = trace["hash_ids"].tolist()
    off = trace["hash_offsets"].tolist()
    return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


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


def _paper_interp(knots: Sequence[tuple[float, float]], t: float) -> float:
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


# ------------------------------------------------------------------------------------------
# burstiness: the workload-level form of fleetopt.physics.burst

#: shipped traces with arrival timestamps
SHIPPED_TRACES = ("azure-conv-2023", "azure-code-2023", "mooncake-conversation")


def trace_of(workload: Workload) -> dict[str, Any] | None:
    """The trace with timestamps ``workload`` came from, or None.

    A shipped trace of the same name (``azure-conv-2023``, ``azure-code-2023``,
    ``mooncake-conversation``), else the user trace file in ``workload.source`` when the
    workload was read from it (:func:`fleetopt.problem.workload.from_trace_file`) and it has an
    arrival-time column. CDF workloads have none.
    """
    key = {n.lower(): n for n in SHIPPED_TRACES}.get(workload.name.lower())
    if key is not None:
        tr = builtin_trace(key)
    else:
        found = source_trace(workload)
        if found is None:
            return None
        tr = found
    if "arrival_s" not in tr or len(tr["arrival_s"]) < 2 or np.ptp(tr["arrival_s"]) <= 0:
        return None
    return tr


def auto_peak_factor(workload: Workload, *, window_s: float | None = None,
                     quantile: float = 0.99) -> float:
    """One global peak factor for ``workload`` at its rate (``[slo] peak_factor =
    "auto-global"``; ``"auto"`` is per pool, :meth:`fleetopt.problem.problem.Problem.
    pool_peak_factor`).

    With a trace (:func:`trace_of`): :func:`fleetopt.physics.burst.peak_factor` of its arrival
    times and total lengths, rescaled to ``workload.rate_rps`` (the estimator, its windows and
    length classes are documented there). Without timestamps: 1.0 (Poisson). Validated by trace
    replay in :mod:`fleetopt.studies.validation` (``python scripts/make_docs.py simulation``).
    """
    tr = trace_of(workload)
    if tr is None:
        return 1.0
    tot = np.asarray(tr["input"]) + np.asarray(tr["output"])
    return peak_factor(tr["arrival_s"], tot, workload.rate_rps, window_s=window_s,
                       quantile=quantile)
