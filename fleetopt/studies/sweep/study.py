"""A sweep: a base problem and its scenarios (:class:`Study`), from Python or a SWEEP.toml.

``Study.run()`` solves every scenario on an executor (:mod:`.executors`), keeps finished ones in
a checkpoint (:mod:`.checkpoint`) and returns the tidy results (:mod:`.results`). SWEEP.toml::

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

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fleetopt.core.errors import FleetoptError
from fleetopt.core.files import read_toml
from fleetopt.problem.config import load_config, resolve_config_path
from fleetopt.problem.problem import Problem
from fleetopt.studies.sweep.checkpoint import (
    Checkpoint,
    problem_fingerprint,
    read_checkpoint,
    scenario_hash,
)
from fleetopt.studies.sweep.executors import EXECUTORS, progress_bar, run_dask, run_process
from fleetopt.studies.sweep.results import save_results, tidy
from fleetopt.studies.sweep.run import run_scenario
from fleetopt.studies.sweep.spec import (
    SCENARIO_KEYS,
    as_label,
    check_keys,
    check_names,
    label,
    normalise,
)

__all__ = ["Study", "load_sweep", "sweep_from_dict"]

_TOP_KEYS = {"base", "name", "description", "grid", "scenario", "solve", "simulate"}
_SOLVE_KEYS = {"time_limit", "mip_gap", "compress"}
_SIM_KEYS = {"enabled", "requests", "seed"}


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
        check_keys(self.grid, [k for k in SCENARIO_KEYS if k != "name"], "grid")
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
        base_fp = problem_fingerprint(self.base)
        opts = self.options(threads=None)
        items: list[tuple[dict[str, Any], str, str]] = []
        seen: dict[str, int] = {}
        for si, s in enumerate(listed):
            s_norm = normalise(s, f"scenario[{si}]") if s else {}
            clash = set(s_norm) & set(keys)
            if clash:
                raise FleetoptError(f"scenario[{si}]", f"sets {sorted(clash)}, which [grid] also "
                                    "sweeps; set each key in one place")
            for gi, g in enumerate(points):
                g_norm = normalise(g, "grid") if g else {}
                params = {**s_norm, **g_norm}
                check_names(params, self.base, f"scenario[{si}]" if s else "grid")
                key = scenario_hash(base_fp, params, opts)
                if key in seen:
                    continue  # identical scenario listed twice: solve it once
                seen[key] = len(items)
                lab = label(s_norm.get("name"), g_norm, si if len(listed) > 1 else None,
                            gi if len(points) > 1 else None)
                items.append((params, key, lab))
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
            p: as_label(v) for p, v in params.items() if p != "name"}}
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
        bar = progress_bar(len(self._items), len(finished), progress)
        try:
            ck_file = Checkpoint(ck)
        except FleetoptError:
            if bar is not None:
                bar.close()
            raise

        def record(row: dict[str, Any]) -> None:
            results[row["scenario_id"]] = {**row, "resumed": False}
            ck_file.append(row)
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
                    run_process(self.base, todo, self.options(threads=1), workers, record)
                else:
                    run_dask(self.base, todo, self.options(threads=1), workers, scheduler, record)
        finally:
            ck_file.close()
            if bar is not None:
                bar.close()
        rows = [results[k] for _p, k, _l in self._items]
        return tidy(rows, self.swept_keys, self.simulate)

    def save(self, frame: pd.DataFrame, out: str | Path) -> None:
        save_results(frame, out)




# ------------------------------------------------------------------------------------------
# SWEEP.toml


def load_sweep(path: str | Path, *, simulate: bool | None = None) -> Study:
    """A :class:`Study` from a SWEEP.toml (a path, or a shipped example name such as
    ``sweep-example``). The base config path is relative to the sweep file."""
    try:
        p = resolve_config_path(path)
    except FleetoptError as e:
        raise FleetoptError("SWEEP", str(e).split(": ", 1)[1]) from None
    data = read_toml(p, "SWEEP")
    return sweep_from_dict(data, p.parent, name=p.stem, simulate=simulate)


def sweep_from_dict(data: Mapping[str, Any], base_dir: Path | None = None, name: str = "",
                    simulate: bool | None = None) -> Study:
    """A :class:`Study` from a parsed SWEEP.toml."""
    check_keys(data, sorted(_TOP_KEYS), "sweep")
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
        check_keys(d, sorted(known), f"sweep.{sec}")
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
