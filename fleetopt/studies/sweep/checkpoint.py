"""Sweep checkpoints: finished scenarios as JSON lines, keyed by a hash of what defines them.

Every finished scenario is appended as one line ``{"schema", "id", "row"}`` to
``<out>.checkpoint.jsonl`` (:func:`checkpoint_path`); the id hashes the base problem, the
scenario's parameters and the solve/simulate options (:func:`scenario_hash`), so a rerun skips
what is already there (:func:`read_checkpoint`) and a changed scenario is solved again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.jsonio import schema, to_json
from fleetopt.problem.problem import Problem

__all__ = ["CHECKPOINT_SUFFIX", "Checkpoint", "checkpoint_path", "problem_fingerprint",
           "read_checkpoint", "scenario_hash"]

CHECKPOINT_SUFFIX = ".checkpoint.jsonl"


def problem_fingerprint(problem: Problem) -> str:
    """A stable digest of what defines a problem (for scenario hashes)."""
    import numpy as np

    wl = problem.workload
    h = hashlib.sha256()
    h.update(json.dumps(problem.summary(), sort_keys=True, default=str).encode())
    h.update(json.dumps({"settings": repr(problem.settings), "physics": repr(problem.physics),
                         "boundaries": problem.boundaries, "kv": problem.kv_dtype},
                        sort_keys=True,
                        default=str).encode())
    for arr in (wl.total_tokens, wl.weights):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def scenario_hash(base_fp: str, params: Mapping[str, Any], opts: Mapping[str, Any]) -> str:
    ident = {k: v for k, v in params.items() if k != "name"}
    blob = json.dumps({"base": base_fp, "params": ident, "opts": opts}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]




def read_checkpoint(path: str | Path) -> dict[str, dict[str, Any]]:
    """Finished rows by scenario id (a torn last line from a crash is ignored)."""
    p = Path(path)
    out: dict[str, dict[str, Any]] = {}
    if not p.is_file():
        return out
    with open(p, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                out[str(rec["id"])] = dict(rec["row"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return out


def checkpoint_path(out: str | Path) -> Path:
    """The checkpoint file kept next to an output file."""
    p = Path(out)
    return p.with_name(p.name + CHECKPOINT_SUFFIX)




class Checkpoint:
    """An open checkpoint file that finished rows are appended to (``None`` path: none)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        if path is not None:
            try:
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise FleetoptError("--out", f"cannot write the checkpoint {path} next to the "
                                    f"results: {e.strerror or e}; choose a writable folder") from None

    def append(self, row: Mapping[str, Any]) -> None:
        if self._file is not None:
            self._file.write(to_json({"schema": schema("sweep-checkpoint"),
                                      "id": row["scenario_id"], "row": row}, indent=None) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
