"""Scenario sweeps: solve (and optionally simulate) many variants of one base problem.

A sweep is a base config plus scenarios, each a few changed parameters (:data:`SCENARIO_KEYS`),
given as a cartesian ``[grid]`` and/or a list of ``[[scenario]]`` tables (each listed scenario
is combined with every grid point). Results are one tidy DataFrame, one row per scenario
(:data:`RESULT_COLUMNS` plus the swept keys), saved to parquet or CSV.

Runs are resumable: every finished scenario is appended as one JSON line to a checkpoint file
next to the output (``<out>.checkpoint.jsonl``), keyed by a hash of the base problem, the
scenario's parameters and the solve/simulate options; a rerun skips the scenarios already
there. Executors: ``sequential``, ``process`` (a local process pool, default) and ``dask``
(a ``distributed`` scheduler address, or a local cluster).

SWEEP.toml::

    base = "paper-azure"          # a config path relative to this file, or a shipped example
    [solve]                       # optional: time_limit (s per scenario), mip_gap, compress
    time_limit = 30
    [simulate]                    # optional: simulate each plan (or pass --simulate)
    enabled = false
    requests = 5000
    seed = 0
    [grid]                        # cartesian product of these lists
    rate_rps = [500, 1000, 2000]
    ttft_p99_ms = [300, 500]
    [[scenario]]                  # listed scenarios (each crossed with the grid)
    name = "h100-only"
    gpus = ["H100-SXM"]
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fleetopt.errors import FleetoptError
from fleetopt.io import jsonable, schema, to_json, versioned, write_output
from fleetopt.problem import Problem, load_config, resolve_config_path

__all__ = ["EXECUTORS", "RESULT_COLUMNS", "SCENARIO_KEYS", "Study", "load_sweep",
           "scenario_problem"]

EXECUTORS = ("sequential", "process", "dask")

#: scenario keys and what they change in the base problem
SCENARIO_KEYS: dict[str, str] = {
    "name": "a label for the scenario (not part of its identity)",
    "workload": "built-in workload name (fleetopt catalog lists them)",
    "rate_rps": "arrival rate, requests/s",
    "ttft_p99_ms": "P99 TTFT target, ms",
    "utilization_cap": "utilisation cap per pool, (0, 1]",
    "model": "model name",
    "dtype": "allowed weight precision(s)",
    "gpus": "allowed GPU types or calibrated profiles",
    "tp": "allowed tensor-parallel degrees",
    "max_pools": "most pools",
    "max_ctx": "longest context served, tokens",
    "budget_per_hr": "budget in $/hr (0 or \"none\" for no budget)",
    "inventory": "GPU caps, e.g. {B200 = 64}",
    "max_gpus": "most GPUs in the fleet",
    "objective": "power | cost | power_then_cost",
}
_TOP_KEYS = {"base", "name", "description", "grid", "scenario", "solve", "simulate"}
_SOLVE_KEYS = {"time_limit", "mip_gap", "compress"}
_SIM_KEYS = {"enabled", "requests", "seed"}

#: columns every result row has (swept keys beyond these are added after ``scenario``)
RESULT_COLUMNS: tuple[str, ...] = (
    "scenario_id", "scenario", "workload", "rate_rps", "model", "ttft_p99_ms", "gpus_allowed",
    "budget_per_hr", "status", "power_w", "cost_per_hr", "gpus", "instances", "n_pools", "mix",
    "tok_per_w", "output_tok_per_s", "worst_p99_ttft_ms", "objective", "bound", "gap",
    "gpus_by_type", "plan", "solve_s", "message", "settings",
)
SIM_COLUMNS: tuple[str, ...] = (
    "sim_p99_ttft_ms", "sim_worst_pool_p99_ttft_ms", "sim_power_w", "sim_output_tok_per_s",
    "sim_tok_per_w", "sim_slo_met", "sim_s",
)
CHECKPOINT_SUFFIX = ".checkpoint.jsonl"


# ------------------------------------------------------------------------------------------
# scenarios


def _close(key: str, known: Iterable[str]) -> str:
    m = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    return f" (did you mean {m[0]!r}?)" if m else ""


def _check_keys(d: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    known = list(known)
    bad = [k for k in d if k not in known]
    if bad:
        k = bad[0]
        raise FleetoptError(where, f"unknown key {k!r}{_close(k, known)}; known: {', '.join(known)}")


def _listify(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [v]


def _normalise(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one scenario's keys and value types; return it in canonical form."""
    _check_keys(params, SCENARIO_KEYS, where)
    out: dict[str, Any] = {}
    for k, v in params.items():
        f = f"{where}.{k}"
        if k in ("name", "workload", "model", "objective"):
            if not isinstance(v, str) or not v:
                raise FleetoptError(f, f"must be a non-empty string, got {v!r}")
            out[k] = v
        elif k in ("rate_rps", "ttft_p99_ms", "utilization_cap"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or not math.isfinite(v):
                raise FleetoptError(f, f"must be a number > 0, got {v!r}")
            out[k] = float(v)
        elif k == "budget_per_hr":
            if isinstance(v, str) and v.lower() == "none" or v == 0:
                out[k] = None
            elif isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise FleetoptError(f, f"must be $/hr > 0 (or \"none\"), got {v!r}")
            else:
                out[k] = float(v)
        elif k in ("max_pools", "max_ctx", "max_gpus"):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise FleetoptError(f, f"must be a whole number >= 1, got {v!r}")
            out[k] = int(v)
        elif k in ("gpus", "dtype"):
            vals = _listify(v)
            if not vals or not all(isinstance(x, str) and x for x in vals):
                raise FleetoptError(f, f"must be a name or a list of names, got {v!r}")
            out[k] = [x.lower() for x in vals] if k == "dtype" else list(vals)
        elif k == "tp":
            vals = _listify(v)
            if not vals or not all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
                raise FleetoptError(f, f"must be a whole number or a list of them, got {v!r}")
            out[k] = list(vals)
        elif k == "inventory":
            if not isinstance(v, dict) or not all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in v.values()):
                raise FleetoptError(f, f"must be a table of GPU = count, got {v!r}")
            out[k] = dict(sorted(v.items()))
    return out


def _check_names(params: Mapping[str, Any], base: Problem, where: str) -> None:
    """Unknown workload, model or GPU names are input errors (not infeasible scenarios)."""
    from fleetopt.workload import builtin_names

    cat = base.catalog
    if "workload" in params:
        names = builtin_names()
        if params["workload"].lower() not in {n.lower() for n in names}:
            raise FleetoptError(f"{where}.workload", f"unknown workload {params['workload']!r}"
                                f"{_close(params['workload'], names)}; known: {', '.join(names)}")
    if "model" in params:
        cat.models.canonical(params["model"], f"{where}.model")
    for g in params.get("gpus", []) + list(params.get("inventory", {})):
        if not cat.is_profile(g):
            cat.gpus.canonical(g, f"{where}.gpus")
    if "objective" in params and params["objective"] not in ("power", "cost", "power_then_cost"):
        raise FleetoptError(f"{where}.objective",
                            f"must be power, cost or power_then_cost, got {params['objective']!r}")


def scenario_problem(base: Problem, params: Mapping[str, Any]) -> Problem:
    """``base`` with one scenario's changes applied (re-validated; may raise FleetoptError)."""
    from fleetopt.workload import builtin

    kw: dict[str, Any] = {}
    rate = params.get("rate_rps", base.workload.rate_rps)
    if "workload" in params:
        kw["workload"] = builtin(params["workload"], rate, "workload")
    elif "rate_rps" in params:
        kw["workload"] = base.workload.with_rate(rate)
    st = base.settings
    if "ttft_p99_ms" in params:
        st = replace(st, ttft_p99_ms=params["ttft_p99_ms"])
    if "utilization_cap" in params:
        st = replace(st, utilization_cap=params["utilization_cap"])
    if st is not base.settings:
        kw["settings"] = st
    simple = {"model": "model", "max_pools": "max_pools", "max_ctx": "max_ctx",
              "budget_per_hr": "budget_per_hr", "max_gpus": "max_gpus", "objective": "objective"}
    for k, attr in simple.items():
        if k in params:
            kw[attr] = params[k]
    if "gpus" in params:
        kw["gpus"] = tuple(params["gpus"])
    if "dtype" in params:
        kw["dtypes"] = tuple(params["dtype"])
    if "tp" in params:
        kw["tp"] = tuple(params["tp"])
    if "inventory" in params:
        kw["inventory"] = tuple(params["inventory"].items())
    return base.with_(**kw) if kw else base


def _problem_fingerprint(problem: Problem) -> str:
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


def _scenario_hash(base_fp: str, params: Mapping[str, Any], opts: Mapping[str, Any]) -> str:
    ident = {k: v for k, v in params.items() if k != "name"}
    blob = json.dumps({"base": base_fp, "params": ident, "opts": opts}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------
# running one scenario (in any process)


def _json(v: Any) -> str:
    return to_json(v, indent=None)


def _as_label(v: Any) -> Any:
    if isinstance(v, list):
        return "+".join(str(x) for x in v)
    if isinstance(v, dict):
        return _json(v)
    return v


def run_scenario(base: Problem, params: Mapping[str, Any], key: str, opts: Mapping[str, Any],
                 label: str = "") -> dict[str, Any]:
    """Solve (and simulate) one scenario; always returns a row (errors become status rows)."""
    from fleetopt.solvers.mip import solve
    from fleetopt.studies.procurement import plan_summary

    t0 = time.perf_counter()
    row: dict[str, Any] = {"scenario_id": key, "scenario": label}
    for k, v in params.items():
        if k != "name":
            row[k] = _as_label(v)
    try:
        prob = scenario_problem(base, params)
    except FleetoptError as e:
        row.update(status="invalid", message=str(e), solve_s=time.perf_counter() - t0)
        return _finish(row, base, None)
    row.update(workload=prob.workload.name, rate_rps=float(prob.workload.rate_rps),
               model=prob.model, ttft_p99_ms=float(prob.settings.ttft_p99_ms),
               gpus_allowed="+".join(prob.gpus), budget_per_hr=prob.budget_per_hr,
               settings=_json(prob.settings_used()))
    try:
        sol = solve(prob, time_limit=opts.get("time_limit"), mip_gap=opts.get("mip_gap", 1e-4),
                    compress=bool(opts.get("compress", False)), threads=opts.get("threads"))
    except FleetoptError as e:
        row.update(status="invalid", message=str(e), solve_s=time.perf_counter() - t0)
        return _finish(row, prob, None)
    summ = plan_summary(sol)
    summ.pop("pools")
    row.update(summ)
    row.update(status=sol.status, objective=sol.objective, bound=sol.bound, gap=sol.gap,
               output_tok_per_s=sol.totals.get("output_tok_per_s", math.nan),
               gpus_by_type=_json(summ["gpus_by_type"]),
               plan=_json([] if sol.result is None else [p.spec().to_dict()
                                                          for p in sol.result.pools]),
               solve_s=time.perf_counter() - t0, message=sol.message,
               settings=_json(prob.settings_used(sol.details.get("candidates"))))
    sim = opts.get("simulate")
    if sim and sol.result is not None:
        from fleetopt.sim import simulate_problem

        t1 = time.perf_counter()
        try:
            res = simulate_problem(prob, sol.fleet, requests=int(sim.get("requests", 5000)),
                                   seed=int(sim.get("seed", 0)))
            tot = res.totals
            p99 = tot.get("p99_ttft_ms")
            worst = tot.get("worst_pool_p99_ttft_ms")
            row.update(sim_p99_ttft_ms=p99, sim_worst_pool_p99_ttft_ms=worst,
                       sim_power_w=tot.get("power_w"),
                       sim_output_tok_per_s=tot.get("output_tok_per_s"),
                       sim_tok_per_w=tot.get("tok_per_w"),
                       sim_slo_met=None if worst is None else bool(
                           worst <= prob.settings.ttft_p99_ms))
        except FleetoptError as e:
            row["message"] = (row.get("message") or "") + f"; simulation: {e}"
        row["sim_s"] = time.perf_counter() - t1
    return _finish(row, prob, sol)


def _finish(row: dict[str, Any], prob: Problem, sol: Any) -> dict[str, Any]:
    if "workload" not in row:
        row.update(workload=prob.workload.name, rate_rps=float(prob.workload.rate_rps),
                   model=prob.model, ttft_p99_ms=float(prob.settings.ttft_p99_ms),
                   gpus_allowed="+".join(prob.gpus), budget_per_hr=prob.budget_per_hr)
    return jsonable(row)


# worker-side state for the process pool (set once per worker by the initializer)
_WORKER_BASE: Problem | None = None


def _init_worker(base: Problem, verbose: bool = False) -> None:
    global _WORKER_BASE
    from fleetopt.solvers import highs

    _WORKER_BASE = base
    highs.set_verbose(verbose)  # workers do not inherit the parent's setting


def _run_chunk(chunk: list[tuple[dict[str, Any], str, str]], opts: dict[str, Any],
               base: Problem | None = None, verbose: bool | None = None) -> list[dict[str, Any]]:
    if verbose is not None:  # a Dask worker: set per task
        from fleetopt.solvers import highs

        highs.set_verbose(verbose)
    b = base if base is not None else _WORKER_BASE
    assert b is not None, "worker not initialised"
    return [run_scenario(b, params, key, opts, label) for params, key, label in chunk]


# ------------------------------------------------------------------------------------------
# the Study


@dataclass
class Study:
    """A base problem and its scenarios. ``run()`` returns one tidy row per scenario.

    Build one from a SWEEP.toml with :func:`load_sweep`, or directly::

        Study(load_config("paper-azure"), grid={"rate_rps": [500, 1000], "ttft_p99_ms": [300, 500]})
    """

    base: Problem
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    scenarios: Sequence[Mapping[str, Any]] = ()
    time_limit: float | None = None
    mip_gap: float = 1e-4
    compress: bool = False
    simulate: bool = False
    sim_requests: int = 5000
    sim_seed: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.base, Problem):
            raise FleetoptError("base", "must be a Problem (use load_config or load_sweep)")
        if not isinstance(self.grid, Mapping):
            raise FleetoptError("grid", "must be a table of key = [values]")
        _check_keys(self.grid, [k for k in SCENARIO_KEYS if k != "name"], "grid")
        for k, vals in self.grid.items():
            if not isinstance(vals, list | tuple) or not vals:
                raise FleetoptError(f"grid.{k}", f"must be a non-empty list of values, got {vals!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise FleetoptError("solve.time_limit", f"must be > 0 s, got {self.time_limit}")
        if not self.mip_gap >= 0:
            raise FleetoptError("solve.mip_gap", f"must be >= 0, got {self.mip_gap}")
        if isinstance(self.sim_requests, bool) or not isinstance(self.sim_requests, int) or \
                self.sim_requests < 100:
            raise FleetoptError("simulate.requests", f"must be a whole number >= 100, got {self.sim_requests!r}")
        self._items = self._expand()

    # --- scenarios ---------------------------------------------------------------------
    def _expand(self) -> list[tuple[dict[str, Any], str, str]]:
        listed = [dict(s) for s in self.scenarios] or [{}]
        keys = list(self.grid)
        points = [dict(zip(keys, combo, strict=True))
                  for combo in itertools.product(*(self.grid[k] for k in keys))] if keys else [{}]
        base_fp = _problem_fingerprint(self.base)
        opts = self.options(threads=None)
        items: list[tuple[dict[str, Any], str, str]] = []
        seen: dict[str, int] = {}
        for si, s in enumerate(listed):
            s_norm = _normalise(s, f"scenario[{si}]") if s else {}
            clash = set(s_norm) & set(keys)
            if clash:
                raise FleetoptError(f"scenario[{si}]", f"sets {sorted(clash)}, which [grid] also "
                                    "sweeps; set each key in one place")
            for gi, g in enumerate(points):
                g_norm = _normalise(g, "grid") if g else {}
                params = {**s_norm, **g_norm}
                _check_names(params, self.base, f"scenario[{si}]" if s else "grid")
                key = _scenario_hash(base_fp, params, opts)
                if key in seen:
                    continue  # identical scenario listed twice: solve it once
                seen[key] = len(items)
                label = _label(s_norm.get("name"), g_norm, si if len(listed) > 1 else None,
                               gi if len(points) > 1 else None)
                items.append((params, key, label))
        return items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def swept_keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for params, _k, _l in self._items:
            for k in params:
                if k != "name":
                    keys[k] = None
        return list(keys)

    def options(self, threads: int | None = None) -> dict[str, Any]:
        """The solve/simulate options (part of every scenario's identity, except threads)."""
        opts: dict[str, Any] = {"time_limit": self.time_limit, "mip_gap": self.mip_gap,
                                "compress": self.compress}
        if self.simulate:
            opts["simulate"] = {"requests": self.sim_requests, "seed": self.sim_seed}
        if threads is not None:
            opts["threads"] = threads
        return opts

    def scenario_frame(self) -> pd.DataFrame:
        """The scenarios (no solving): id, label and parameters."""
        return pd.DataFrame([{"scenario_id": k, "scenario": lab, **{
            p: _as_label(v) for p, v in params.items() if p != "name"}}
            for params, k, lab in self._items])

    # --- running -----------------------------------------------------------------------
    def run(
        self,
        executor: str = "process",
        workers: int | None = None,
        scheduler: str | None = None,
        checkpoint: str | Path | None = None,
        progress: bool | None = None,
        on_row: Callable[[dict[str, Any]], None] | None = None,
    ) -> pd.DataFrame:
        """Solve every scenario and return the tidy results (one row per scenario).

        ``checkpoint``: a JSON-lines file; finished scenarios are appended to it as they finish
        and scenarios already in it are not solved again. ``progress``: a tqdm bar on stderr
        (default: only when stdout and stderr are terminals). ``workers``: processes (default
        all cores) or Dask workers for a local cluster. ``scheduler``: a Dask scheduler address.
        """
        if executor not in EXECUTORS:
            raise FleetoptError("--executor", f"must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise FleetoptError("--workers", f"must be a whole number >= 1, got {workers!r}")
        if scheduler and executor != "dask":
            raise FleetoptError("--scheduler", "only applies with --executor dask")
        done: dict[str, dict[str, Any]] = {}
        ck = Path(checkpoint) if checkpoint is not None else None
        if ck is not None:
            if not ck.parent.is_dir():
                raise FleetoptError("--out", f"folder {ck.parent} does not exist; create it first")
            try:
                done = read_checkpoint(ck)
            except OSError as e:
                raise FleetoptError("--out", f"cannot read the checkpoint {ck}: "
                                    f"{e.strerror or e}") from None
        wanted = {k for _p, k, _l in self._items}
        finished = {k: r for k, r in done.items() if k in wanted}
        todo = [it for it in self._items if it[1] not in finished]
        results: dict[str, dict[str, Any]] = {}
        for _params, k, lab in self._items:
            if k in finished:
                results[k] = {**finished[k], "scenario": lab, "resumed": True}
        bar = _progress(len(self._items), len(finished), progress)
        try:
            ck_file = open(ck, "a", encoding="utf-8") if ck is not None else None  # noqa: SIM115
        except OSError as e:
            if bar is not None:
                bar.close()
            raise FleetoptError("--out", f"cannot write the checkpoint {ck} next to the results: "
                                f"{e.strerror or e}; choose a writable folder") from None

        def record(row: dict[str, Any]) -> None:
            results[row["scenario_id"]] = {**row, "resumed": False}
            if ck_file is not None:
                ck_file.write(to_json({"schema": schema("sweep-checkpoint"),
                                       "id": row["scenario_id"], "row": row}, indent=None) + "\n")
                ck_file.flush()
            if on_row is not None:
                on_row(row)
            if bar is not None:
                bar.update(1)

        try:
            if todo:
                if executor == "sequential":
                    opts = self.options(threads=None)
                    for params, k, lab in todo:
                        record(run_scenario(self.base, params, k, opts, lab))
                elif executor == "process":
                    _run_process(self.base, todo, self.options(threads=1), workers, record)
                else:
                    _run_dask(self.base, todo, self.options(threads=1), workers, scheduler, record)
        finally:
            if ck_file is not None:
                ck_file.close()
            if bar is not None:
                bar.close()
        rows = [results[k] for _p, k, _l in self._items]
        return _tidy(rows, self.swept_keys, self.simulate)

    def save(self, frame: pd.DataFrame, out: str | Path) -> None:
        save_results(frame, out)


def _label(name: str | None, grid: Mapping[str, Any], si: int | None, gi: int | None) -> str:
    parts = []
    if name:
        parts.append(name)
    elif si is not None:
        parts.append(f"s{si}")
    if grid:
        parts.append(",".join(f"{k}={_fmt(v)}" for k, v in grid.items()))
    return " | ".join(parts) if parts else "base"


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    return f"{v:g}" if isinstance(v, float) else str(_as_label(v))


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


def _tidy(rows: list[dict[str, Any]], swept: list[str], simulate: bool) -> pd.DataFrame:
    extra = [k for k in swept if k not in RESULT_COLUMNS]
    cols = list(RESULT_COLUMNS[:2]) + extra + list(RESULT_COLUMNS[2:])
    if simulate:
        cols += list(SIM_COLUMNS)
    cols.append("resumed")
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    df = df[cols]
    for c in ("rate_rps", "ttft_p99_ms", "budget_per_hr", "power_w", "cost_per_hr", "tok_per_w",
              "output_tok_per_s", "worst_p99_ttft_ms", "objective", "bound", "gap", "solve_s",
              *(c for c in SIM_COLUMNS if c in df.columns and c not in ("sim_slo_met",))):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in ("gpus", "instances", "n_pools"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    for c in ("scenario_id", "scenario", "workload", "model", "gpus_allowed", "status", "mix",
              "gpus_by_type", "plan", "message", "settings"):
        df[c] = df[c].astype("string")
    for c in extra:
        vals = [v for v in df[c] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif vals and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        else:
            df[c] = df[c].map(lambda v: None if v is None else str(v)).astype("string")
    if "sim_slo_met" in df.columns:
        df["sim_slo_met"] = df["sim_slo_met"].astype("boolean")
    df["resumed"] = df["resumed"].fillna(False).astype(bool)
    return df


def save_results(frame: pd.DataFrame, out: str | Path) -> None:
    """Write results by suffix: ``.parquet`` (pyarrow), ``.csv`` or ``.json`` (all or nothing;
    JSON is the ``fleetopt.sweep/1`` document, ``docs/config.md``)."""
    p = Path(out)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise FleetoptError("--out", "writing parquet needs pyarrow (pip install pyarrow); "
                                "or write .csv") from None
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        write_output(p, buf.getvalue(), "--out", allow_stdout=False)
    elif suffix == ".csv":
        write_output(p, frame.to_csv(index=False), "--out", allow_stdout=False)
    elif suffix == ".json":
        doc = versioned("sweep", {"columns": list(frame.columns),
                                  "rows": frame.to_dict("records")})
        write_output(p, to_json(doc, indent=1) + "\n", "--out", allow_stdout=False)
    else:
        raise FleetoptError("--out", f"unknown output type {suffix or '(none)'!r}: use .parquet, "
                            ".csv or .json")


def read_results(path: str | Path) -> pd.DataFrame:
    """Read results written by :func:`save_results`."""
    p = Path(path)
    if p.suffix.lower() == ".parquet":
        return pd.read_parquet(p)
    if p.suffix.lower() == ".json":
        from fleetopt.io import read_json

        doc = read_json(p, "results")
        if isinstance(doc, dict) and doc.get("schema") == schema("sweep"):
            return pd.DataFrame(doc["rows"], columns=doc.get("columns"))
        if isinstance(doc, list):  # written before the schema was versioned
            return pd.DataFrame(doc)
        raise FleetoptError("results", f"{p} is not a {schema('sweep')} document")
    return pd.read_csv(p)


# ------------------------------------------------------------------------------------------
# executors


def _progress(total: int, initial: int, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = _isatty(sys.stdout) and _isatty(sys.stderr)
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="scenario", desc="sweep", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


def _isatty(f: Any) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError):
        return False


def _chunks(items: list[Any], workers: int) -> Iterator[list[Any]]:
    # several chunks per worker keep the pool balanced and the progress bar moving
    size = max(1, min(16, math.ceil(len(items) / (workers * 6))))
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _run_process(base: Problem, todo: list[Any], opts: dict[str, Any], workers: int | None,
                 record: Callable[[dict[str, Any]], None]) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from fleetopt.solvers.highs import process_context, verbose

    n = workers or os.cpu_count() or 1
    n = max(1, min(n, len(todo)))
    pool = ProcessPoolExecutor(max_workers=n, initializer=_init_worker,
                               initargs=(base, verbose()), mp_context=process_context())
    futures = set()
    try:
        for chunk in _chunks(todo, n):
            futures.add(pool.submit(_run_chunk, chunk, opts))
        while futures:
            finished, futures = wait(futures, return_when=FIRST_COMPLETED)
            for f in finished:
                for row in f.result():
                    record(row)
    except BaseException:
        for f in futures:
            f.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _local_cluster(n_workers: int) -> Iterator[Any]:
    """A local Dask cluster of ``n_workers`` single-threaded worker processes, none of them
    forked from this process (it may have run HiGHS): a ``fork`` setting of
    ``distributed.worker.multiprocessing-method`` becomes ``spawn`` for the cluster's life,
    worker restarts included."""
    import dask
    from distributed import LocalCluster

    key = "distributed.worker.multiprocessing-method"
    method = dask.config.get(key, "spawn")
    with dask.config.set({key: "spawn" if method == "fork" else method}), LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True,
            dashboard_address=None) as cluster:
        yield cluster


def _run_dask(base: Problem, todo: list[Any], opts: dict[str, Any], workers: int | None,
              scheduler: str | None, record: Callable[[dict[str, Any]], None]) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise FleetoptError("--executor", "the dask executor needs dask.distributed: "
                            "pip install 'fleetopt[dask]' (or pip install 'dask[distributed]')") from None
    cluster = None
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="10s"))
            except (OSError, TimeoutError, ValueError) as e:
                raise FleetoptError("--scheduler", f"cannot connect to the Dask scheduler at "
                                    f"{scheduler!r}: {e}") from None
        else:
            cluster = stack.enter_context(_local_cluster(workers or os.cpu_count() or 1))
            client = stack.enter_context(Client(cluster))
        n = max(1, len(client.scheduler_info().get("workers", {})) or (workers or 1))
        base_f = client.scatter(base, broadcast=True)
        from fleetopt.solvers.highs import verbose

        futures = [client.submit(_run_chunk, chunk, opts, base_f, verbose(), pure=False)
                   for chunk in _chunks(todo, n)]
        try:
            for fut in as_completed(futures):
                for row in fut.result():
                    record(row)
        except BaseException:
            client.cancel(futures)
            raise


# ------------------------------------------------------------------------------------------
# SWEEP.toml


def load_sweep(path: str | Path, *, simulate: bool | None = None) -> Study:
    """A :class:`Study` from a SWEEP.toml (a path, or a shipped example name such as
    ``sweep-example``). The base config path is relative to the sweep file."""
    try:
        p = resolve_config_path(path)
    except FleetoptError as e:
        raise FleetoptError("SWEEP", str(e).split(": ", 1)[1]) from None
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise FleetoptError("SWEEP", f"{p} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise FleetoptError("SWEEP", f"{p} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FleetoptError("SWEEP", f"cannot read {p}: {e.strerror}") from None
    return sweep_from_dict(data, p.parent, name=p.stem, simulate=simulate)


def sweep_from_dict(data: Mapping[str, Any], base_dir: Path | None = None, name: str = "",
                    simulate: bool | None = None) -> Study:
    """A :class:`Study` from a parsed SWEEP.toml."""
    _check_keys(data, sorted(_TOP_KEYS), "sweep")
    if "base" not in data or not isinstance(data["base"], str):
        raise FleetoptError("sweep.base", "name the base config: base = \"CONFIG.toml\" (relative "
                            "to the sweep file) or a shipped example such as \"paper-azure\"")
    base_dir = base_dir or Path.cwd()
    cand = base_dir / data["base"]
    try:
        base = load_config(cand if cand.is_file() else data["base"])
    except FleetoptError as e:
        if e.field == "CONFIG":
            raise FleetoptError("sweep.base", str(e).split(": ", 1)[1]) from None
        raise
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise FleetoptError("sweep.grid", "[grid] must be a table of key = [values]")
    scen = data.get("scenario", [])
    if not isinstance(scen, list) or not all(isinstance(s, dict) for s in scen):
        raise FleetoptError("sweep.scenario", "use [[scenario]] tables")
    solve_opts = data.get("solve", {})
    sim_opts = data.get("simulate", {})
    for sec, known, d in (("solve", _SOLVE_KEYS, solve_opts), ("simulate", _SIM_KEYS, sim_opts)):
        if not isinstance(d, dict):
            raise FleetoptError(f"sweep.{sec}", f"[{sec}] must be a table")
        _check_keys(d, sorted(known), f"sweep.{sec}")
    tl = solve_opts.get("time_limit")
    if tl is not None and (isinstance(tl, bool) or not isinstance(tl, int | float)):
        raise FleetoptError("solve.time_limit", f"must be seconds > 0, got {tl!r}")
    gap = solve_opts.get("mip_gap", 1e-4)
    if isinstance(gap, bool) or not isinstance(gap, int | float):
        raise FleetoptError("solve.mip_gap", f"must be a number >= 0, got {gap!r}")
    for sec, key, d in (("solve", "compress", solve_opts), ("simulate", "enabled", sim_opts)):
        if key in d and not isinstance(d[key], bool):
            raise FleetoptError(f"{sec}.{key}", f"must be true or false, got {d[key]!r}")
    seed = sim_opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise FleetoptError("simulate.seed", f"must be a whole number >= 0, got {seed!r}")
    if "name" in data and not isinstance(data["name"], str):
        raise FleetoptError("sweep.name", f"must be a string, got {data['name']!r}")
    enabled = sim_opts.get("enabled", False)
    if simulate is not None:
        enabled = enabled or simulate
    return Study(
        base, grid=grid, scenarios=scen, time_limit=None if tl is None else float(tl),
        mip_gap=float(gap), compress=solve_opts.get("compress", False), simulate=enabled,
        sim_requests=sim_opts.get("requests", 5000), sim_seed=seed,
        name=str(data.get("name", name)),
    )
