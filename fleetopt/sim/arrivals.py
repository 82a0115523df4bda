"""Request streams for the simulator: Poisson sampling from a workload, or a trace replay.

A replayed trace that carries prompt block hashes (Mooncake ``hash_ids``: a trace dict with
``hash_ids`` (flat), ``hash_offsets`` (``n + 1``) and ``hash_block_tokens``) keeps them, so
that the simulator's per-instance prefix caches see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fleetopt.core.errors import FleetoptError
from fleetopt.problem.workload import Workload, builtin_trace, read_trace, source_trace

__all__ = ["Arrivals", "load_trace", "poisson", "replay_stream", "shipped_trace_names"]


@dataclass(frozen=True)
class Arrivals:
    """Requests sorted by arrival time."""

    arrival_s: NDArray[np.float64]
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    source: str  # "poisson" or "replay:<name>"
    rate_rps: float  # the stream's mean rate
    hash_ids: NDArray[np.int64] | None = None  # flat prompt block hashes (replay of a trace)
    hash_offsets: NDArray[np.int64] | None = None  # request i owns ids[off[i]:off[i + 1]]
    hash_block_tokens: int = 512

    def __len__(self) -> int:
        return len(self.arrival_s)


def poisson(workload: Workload, requests: int, rate_rps: float, rng: np.random.Generator) -> Arrivals:
    """``requests`` Poisson arrivals at ``rate_rps``, lengths drawn from the workload's points."""
    if requests < 1:
        raise FleetoptError("requests", f"must be >= 1, got {requests}")
    gaps = rng.exponential(1.0 / rate_rps, requests)
    t = np.cumsum(gaps)
    idx = rng.choice(len(workload.weights), size=requests, p=workload.weights)
    return Arrivals(t, workload.input_tokens[idx].astype(np.int64),
                    workload.output_tokens[idx].astype(np.int64), "poisson", float(rate_rps))


def shipped_trace_names() -> list[str]:
    d = resources.files("fleetopt.data").joinpath("traces")
    return sorted(p.name.split(".")[0] for p in d.iterdir() if p.name.endswith(".csv.gz"))


def load_trace(replay: Any, workload: Workload) -> tuple[dict[str, NDArray], str]:
    """The trace to replay: ``True`` (the trace named like the workload), a shipped trace's
    name, a path to a CSV/JSONL trace, or a dict with ``input``, ``output``, ``arrival_s``."""
    if isinstance(replay, dict):
        tr, name = replay, "custom"
    elif replay is True:
        names = {n.lower(): n for n in shipped_trace_names()}
        key = names.get(workload.name.lower())
        own = None if key is not None else source_trace(workload, "--replay")
        if key is not None:
            tr, name = builtin_trace(key), key
        elif own is not None:
            tr, name = own, workload.name
        else:
            raise FleetoptError(
                "--replay", f"workload {workload.name!r} has no arrival times to replay; use a "
                f"shipped trace workload ([workload] name = one of "
                f"{', '.join(sorted(names.values()))}) or a [workload] trace file with timestamps"
            )
    elif isinstance(replay, str | Path):
        p = Path(replay)
        if p.is_file():
            tr, name = read_trace(p, "--replay"), p.name
        else:
            names = {n.lower(): n for n in shipped_trace_names()}
            key = names.get(str(replay).lower())
            if key is None:
                raise FleetoptError(
                    "--replay", f"{str(replay)!r} is neither a file nor a shipped trace; shipped "
                    f"traces: {', '.join(sorted(names.values()))}"
                )
            tr, name = builtin_trace(key), key
    else:
        raise FleetoptError("--replay", f"expected True, a trace name or a path, got {replay!r}")
    if "arrival_s" not in tr:
        raise FleetoptError("--replay", f"trace {name!r} has no arrival times to replay")
    return tr, name


def _hash_lists(trace: dict[str, Any], order: NDArray[np.int64]) -> list[NDArray] | None:
    """Each request's block hashes (in ``order``), or None when the trace has none."""
    if trace.get("hash_ids") is None or trace.get("hash_offsets") is None:
        return None
    flat = np.asarray(trace["hash_ids"], dtype=np.int64)
    off = np.asarray(trace["hash_offsets"], dtype=np.int64)
    if off.shape != (len(order) + 1,):
        raise FleetoptError("--replay", "the trace's hash_offsets need one entry per request "
                            "plus one")
    return [flat[off[i]:off[i + 1]] for i in order.tolist()]


def replay_stream(
    trace: dict[str, Any], name: str, requests: int | None, rate_rps: float | None,
    start: int = 0,
) -> Arrivals:
    """The trace's own arrival times and lengths, time-rescaled to ``rate_rps`` (None: as is).

    ``start`` rotates the trace: the replay begins at its ``start``-th arrival (by time) and
    wraps around to its beginning (the gap across the seam is one mean gap); independent
    replications of one trace start at different points. ``requests`` beyond the trace's
    length repeat it back to back (each copy shifted by the trace's span plus one mean gap);
    fewer take its first ``requests`` arrivals. Prompt block hashes, when the trace has them,
    follow their requests.
    """
    t = np.asarray(trace["arrival_s"], dtype=float)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    lin = np.asarray(trace["input"], dtype=np.int64)[order]
    lout = np.asarray(trace["output"], dtype=np.int64)[order]
    hashes = _hash_lists(trace, order)
    n0 = len(t)
    if n0 < 2 or t[-1] <= 0:
        raise FleetoptError("--replay", f"trace {name!r} needs at least two distinct arrival times")
    native = (n0 - 1) / t[-1]
    span = t[-1] + 1.0 / native
    k0 = int(start) % n0
    if k0:
        t = np.concatenate([t[k0:] - t[k0], t[:k0] + (span - t[k0])])
        lin, lout = np.roll(lin, -k0), np.roll(lout, -k0)
        if hashes is not None:
            hashes = hashes[k0:] + hashes[:k0]
    n = n0 if requests is None else int(requests)
    if n < 1:
        raise FleetoptError("requests", f"must be >= 1, got {n}")
    if n > n0:
        reps = -(-n // n0)
        t = np.concatenate([t + k * span for k in range(reps)])
        lin, lout = np.tile(lin, reps), np.tile(lout, reps)
        if hashes is not None:
            hashes = hashes * reps
    t, lin, lout = t[:n], lin[:n], lout[:n]
    flat = offsets = None
    if hashes is not None:
        hashes = hashes[:n]
        lens = np.fromiter((len(h) for h in hashes), dtype=np.int64, count=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        flat = (np.concatenate(hashes).astype(np.int64) if offsets[-1]
                else np.zeros(0, dtype=np.int64))
    scale = 1.0 if rate_rps is None else native / float(rate_rps)
    return Arrivals(t * scale + 0.0, lin, lout, f"replay:{name}",
                    native if rate_rps is None else float(rate_rps), flat, offsets,
                    int(trace.get("hash_block_tokens", 512)))
