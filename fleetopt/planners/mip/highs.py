"""HiGHS through highspy: every ``highspy.Highs`` object fleetopt uses is made and run here,
and :class:`HighsModel`, the MIP arrays loaded into HiGHS (the direct backend).

HiGHS is native code that writes to the process's file descriptors 1 and 2 directly, and some
releases do so before any option can be set (highspy 1.16.0 prints a two-line banner on stdout
while the first ``highspy.Highs()`` of a process is constructed). Output options alone cannot
keep ``fleetopt solve --format json`` valid JSON, so everything that may reach HiGHS (making a
``Highs`` object, ``run()``, a Pyomo solve) runs inside :func:`solver_output`:

* quiet (the default): descriptors 1 and 2 point at ``/dev/null`` for the call;
* verbose (:func:`set_verbose`, the CLI's ``--verbose``): HiGHS logs, and descriptor 1 points
  at descriptor 2, so the log goes to stderr and stdout keeps only fleetopt's own output.

Python's and C's buffers are flushed on the way in and out, so nothing written before the call
is lost and nothing written inside it leaks out later. The redirection is per process and
re-entrant (nested and concurrent calls share one redirection). Worker processes do not inherit
the setting: :func:`verbose` is passed to them explicitly (see :mod:`fleetopt.studies.sweep`).
Worker processes are never forked from a process that ran HiGHS
(:func:`fleetopt.core.processes.process_context`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from fleetopt.core.status import Status
from fleetopt.planners.mip.data import MipData, SolverRun, gap_of, run_status

__all__ = ["UNTRUSTED_MIP_START_FROM", "HighsModel", "highspy_version", "new_highs",
           "objective_matches", "run", "run_limited", "set_verbose", "solve_highspy", "solver_output", "verbose",
           "warm_start_trusted"]

_verbose = False
_lock = threading.Lock()
_depth = 0
_saved: list[tuple[int, int]] = []  # (fd, duplicate of what it pointed at) while redirected


def set_verbose(flag: bool) -> None:
    """Let HiGHS (and Pyomo's solvers) log to stderr from now on in this process."""
    global _verbose
    _verbose = bool(flag)


def verbose() -> bool:
    """Whether solver logs are shown (see :func:`set_verbose`)."""
    return _verbose


def _flush() -> None:
    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if f is not None:
                f.flush()
    libc = _libc()
    if libc is not None:
        libc.fflush(None)  # C stdio buffers (HiGHS writes with printf/std::cout)


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL(None)
            _LIBC.fflush  # noqa: B018  (probe: not every platform exposes it this way)
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def _redirect(show: bool) -> None:
    _flush()
    targets: list[tuple[int, int]] = []
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        if show:
            targets = [(1, 2)]  # stdout -> stderr; stderr stays
        else:
            targets = [(1, null), (2, null)]
        for fd, to in targets:
            try:
                keep = os.dup(fd)
            except OSError:  # the descriptor is closed: nothing can leak through it
                continue
            try:
                os.dup2(to, fd)
            except OSError:
                os.close(keep)
                continue
            _saved.append((fd, keep))
    finally:
        os.close(null)


def _restore() -> None:
    _flush()
    while _saved:
        fd, keep = _saved.pop()
        try:
            os.dup2(keep, fd)
        finally:
            os.close(keep)


@contextlib.contextmanager
def solver_output(show: bool | None = None) -> Iterator[None]:
    """Run the body with HiGHS's (native) output silenced, or sent to stderr when ``show``
    (default: :func:`verbose`)."""
    global _depth
    show = _verbose if show is None else show
    with _lock:
        if _depth == 0:
            _redirect(show)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()


def new_highs(show: bool | None = None) -> Any:
    """A fresh ``highspy.Highs`` with fleetopt's fixed options: quiet unless ``show`` (default
    :func:`verbose`), ``random_seed`` 0 (runs are reproducible)."""
    import highspy

    show = _verbose if show is None else show
    with solver_output(show):
        h = highspy.Highs()
        h.setOptionValue("output_flag", bool(show))
        h.setOptionValue("random_seed", 0)
    return h


def run(h: Any) -> None:
    """``h.run()`` with its output routed as :func:`solver_output` says, on a HiGHS thread pool
    of the count ``h`` asks for (:func:`match_threads`)."""
    match_threads(_threads_of(h))
    with solver_output():
        h.run()


def _threads_of(h: Any) -> int:
    """The ``threads`` option of ``h`` (0: HiGHS's default)."""
    got = h.getOptionValue("threads")  # (status, value) in the releases known here
    return int(got[1] if isinstance(got, tuple) else got)


#: the thread count of this process's HiGHS thread pool (0: HiGHS's default; None: no run yet)
_pool_threads: int | None = None


def match_threads(threads: int) -> None:
    """Make HiGHS's thread pool the size the next run asks for (``threads``; 0: its default).

    HiGHS keeps one pool per process, made by its first run with that run's ``threads``; a
    later run that asks for another count returns no solution (model status "Not Set"). Where
    highspy has ``Highs.resetGlobalScheduler`` the pool is remade at the new count; where it
    has not, the pool stays and :func:`threads_conflict` explains such a run."""
    import highspy

    global _pool_threads
    if _pool_threads is not None and threads != _pool_threads:
        reset = getattr(highspy.Highs, "resetGlobalScheduler", None)
        if reset is None:
            return
        reset(True)
    _pool_threads = threads


def threads_conflict(threads: int) -> str | None:
    """Why a run asking for ``threads`` (0: HiGHS's default) can find no solution in this
    process (None: it can): this highspy cannot remake the thread pool of the first run."""
    if _pool_threads is None or threads == _pool_threads:
        return None
    first = "HiGHS's default" if _pool_threads == 0 else str(_pool_threads)
    return (f"threads: this highspy ({'.'.join(map(str, highspy_version()))}) keeps the thread "
            f"count of the process's first HiGHS run ({first}); pass that count (or none, if "
            "it was the default), or install a highspy with Highs.resetGlobalScheduler")


#: HiGHS's presolve on the fleet MIP. Off: the model is already small (one binary per
#: single-point candidate, flow rows over the boundaries, a few limit rows) and presolve's
#: probing of the binaries cost most of the solve. Measured on every ``benchmarks/bench_mip``
#: case, with and without compress bands (highspy 1.16): identical optima, solves 2-35x
#: faster (the issue-11 target instance 0.44 s -> 0.05 s; its compress variant 1.43 -> 0.10 s).
MIP_PRESOLVE = "off"

#: HiGHS's primal heuristics on the fleet MIP: off (effort 0, and RINS, RENS, feasibility jump
#: and the root reduced-cost heuristic, which run whatever the effort). The solve starts from
#: the best baseline plan (a good incumbent, often the optimum), and the flow rows make the LP
#: nearly integral: the heuristics' sub-MIPs were most of what was left of the solve. Measured
#: on every ``benchmarks/bench_mip.py`` case, with and without compress bands, by power and by
#: cost (highspy 1.16): identical optima, 1.6x less solve time summed over them (the issue-11
#: target instance 0.50 -> 0.22 s). ``tests/test_mip_folding.py`` checks the optima against HiGHS's
#: defaults. A release without one of these options (1.7 has only the effort) keeps its
#: default for it.
MIP_HEURISTICS: dict[str, bool | float] = {
    "mip_heuristic_effort": 0.0, "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False, "mip_heuristic_run_feasibility_jump": False,
    "mip_heuristic_run_root_reduced_cost": False}


def highspy_version() -> tuple[int, ...]:
    """The installed highspy release, e.g. ``(1, 16, 0)`` (read from its metadata: no HiGHS
    object is made)."""
    return _version()


@functools.lru_cache(maxsize=1)
def _version() -> tuple[int, ...]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("highspy")
    except PackageNotFoundError:  # no metadata (a vendored build): ask HiGHS itself
        h = new_highs(False)
        return (int(h.versionMajor()), int(h.versionMinor()), int(h.versionPatch()))
    parts = []
    for p in text.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, p))
        parts.append(int(digits or 0))
    return tuple(parts)


#: the first highspy release whose MIP starts cannot be trusted. From 1.16.0 (the newest release
#: known here) a MIP start, whether passed with ``setSolution`` or left in the ``Highs`` object by
#: the previous ``run()``, can be declared optimal at node 0 when presolve removes a redundant
#: row: HiGHS logs the start's objective "in the reduced space" without presolve's objective
#: offset, stops with primal = dual bound = that number and hands the start back. A budget
#: study re-solved with the budget lifted got its previous plan, 21,007 W, reported as optimal
#: with objective 4,022 W, where a fresh solve gives 14,767 W. 1.7.1 to 1.15.1 re-solve correctly
#: (tests/test_studies.py checks every budget against a fresh solve).
UNTRUSTED_MIP_START_FROM = (1, 16, 0)


def warm_start_trusted() -> bool:
    """Whether a loaded HiGHS model may be re-solved warm: keep the previous run's state and
    take the previous answer as a MIP start. Where it may not (:data:`UNTRUSTED_MIP_START_FROM`)
    :class:`HighsModel` clears the solver state before every re-run and
    the procurement study passes no starts, so each point answers as a fresh solve does. (A
    fresh ``solve()`` keeps its one baseline start there: under 1.16.0, 72 problems solved with
    and without it agreed; of 549 runs of budget models started from other budgets' optima, the
    4 wrong answers all had the budget row made redundant and all reported an objective their
    solution does not have, which every run is checked for.)"""
    return highspy_version() < UNTRUSTED_MIP_START_FROM


def objective_matches(reported: float, recomputed: float) -> bool:
    """Whether HiGHS's reported objective is the objective of the solution it returned."""
    return abs(reported - recomputed) <= 1e-6 * max(1.0, abs(reported), abs(recomputed))


# ------------------------------------------------------------------------------------------
# the direct backend


class HighsModel:
    """The MIP arrays loaded into HiGHS once; row bounds and costs can change between solves.

    This is the direct path (no Pyomo): studies that re-solve one model for many budgets change
    the ``budget`` row's bound and call :meth:`run` again (HiGHS keeps the model).
    """

    def __init__(self, data: MipData, c: np.ndarray,
                 extra: list[tuple[np.ndarray, float, float]] | None = None,
                 mip_gap: float = 1e-4, threads: int | None = None) -> None:
        import highspy
        from scipy import sparse

        t0 = time.perf_counter()
        self.data = data
        self.c = np.asarray(c, dtype=float)
        A = data.A
        rlo, rhi = data.row_lo, data.row_hi
        if extra:
            A = sparse.vstack([A] + [sparse.csr_matrix(e[0][None, :]) for e in extra]).tocsr()
            rlo = np.concatenate([rlo, [e[1] for e in extra]])
            rhi = np.concatenate([rhi, [e[2] for e in extra]])
        Acsc = A.tocsc()
        h = new_highs()
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        h.setOptionValue("presolve", MIP_PRESOLVE)
        with solver_output():  # an option this release lacks is refused (kError), not fatal
            for name, value in MIP_HEURISTICS.items():
                h.setOptionValue(name, value)
        if threads is not None:
            h.setOptionValue("threads", int(threads))
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_ = data.ncol
        lp.num_row_ = A.shape[0]
        lp.col_cost_ = self.c
        lp.col_lower_ = data.col_lo.astype(float)
        lp.col_upper_ = data.col_hi.astype(float)
        lp.row_lower_ = np.where(np.isinf(rlo), -inf, rlo).astype(float)
        lp.row_upper_ = np.where(np.isinf(rhi), inf, rhi).astype(float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = Acsc.indptr.astype(np.int32)
        lp.a_matrix_.index_ = Acsc.indices.astype(np.int32)
        lp.a_matrix_.value_ = Acsc.data.astype(float)
        lp.integrality_ = [highspy.HighsVarType.kInteger] * data.ncol
        with solver_output():
            h.passModel(lp)
        self.h = h
        self.runs = 0  # run() calls so far: from the second on, HiGHS holds a previous run's state
        self.translate_s = time.perf_counter() - t0

    def set_row_upper(self, row: int, upper: float) -> None:
        """Change one row's upper bound (e.g. the budget) for the next :meth:`run`."""
        import highspy

        lo = self.h.getLp().row_lower_[row]
        self.h.changeRowBounds(row, lo, highspy.kHighsInf if not np.isfinite(upper) else upper)

    def run(self, time_limit: float | None = None, warm: np.ndarray | None = None) -> SolverRun:
        """Solve the loaded model as it now stands, from the MIP start ``warm`` if given.

        Where this highspy cannot be trusted with a previous run's state
        (:func:`warm_start_trusted`), every re-run first clears it, as a
        fresh solve starts. Every run is checked: when HiGHS reports an objective its own
        solution does not have, the run is repeated from a clean state without the start, and
        if that happens again the result is an error, never a plan.
        """
        import highspy

        h = self.h
        t1 = time.perf_counter()
        trusted = warm_start_trusted()
        for attempt in range(2):
            if (self.runs and not trusted) or attempt:
                h.clearSolver()  # drop the previous run's solution and state
            self.runs += 1
            limit = highspy.kHighsInf if time_limit is None else float(time_limit)
            if attempt and time_limit is not None:  # the retry gets what is left of the limit
                limit = max(1e-3, time_limit - (time.perf_counter() - t1))
            h.setOptionValue("time_limit", limit)
            if warm is not None and not attempt:
                sol = highspy.HighsSolution()
                sol.col_value = list(np.asarray(warm, dtype=float))
                sol.value_valid = True
                h.setSolution(sol)
            run(h)
            ms = h.getModelStatus()
            info = h.getInfo()
            has_x = info.primal_solution_status == 2
            x = np.asarray(h.getSolution().col_value) if has_x else None
            if x is None or objective_matches(float(info.objective_function_value),
                                              float(self.c @ x)):
                break
        else:
            t2 = time.perf_counter()
            return SolverRun(Status.ERROR, None, None, None, None, self.translate_s, t2 - t1,
                             "internal error: HiGHS reported objective "
                             f"{info.objective_function_value:.6g} for a solution worth "
                             f"{float(self.c @ x):.6g}; please report it")
        t2 = time.perf_counter()
        status = run_status(_outcome(ms), has_x)
        obj = float(info.objective_function_value) if has_x else None
        bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
        msg = h.modelStatusToString(ms)
        if ms == highspy.HighsModelStatus.kNotset:
            msg = threads_conflict(_threads_of(h)) or msg
        return SolverRun(status, x, obj, bound, gap_of(obj, bound), self.translate_s, t2 - t1,
                         msg)


def _outcome(ms: Any) -> str:
    """A HiGHS model status as ``optimal``, ``infeasible``, ``time_limit`` or ``other``
    (:func:`fleetopt.planners.mip.data.run_status` decides the rest)."""
    import highspy

    S = highspy.HighsModelStatus
    if ms == S.kOptimal:
        return "optimal"
    if ms in (S.kInfeasible, S.kUnboundedOrInfeasible):
        return "infeasible"
    return "time_limit" if ms == S.kTimeLimit else "other"


def solve_highspy(
    data: MipData, c: np.ndarray, extra: list[tuple[np.ndarray, float, float]],
    time_limit: float | None, mip_gap: float, threads: int | None, warm: np.ndarray | None,
) -> SolverRun:
    """Load the MIP with objective ``c`` (and ``extra`` rows) and solve it within the limit."""
    return run_limited(HighsModel(data, c, extra, mip_gap, threads), time_limit, warm)


def run_limited(hm: HighsModel, time_limit: float | None,
                warm: np.ndarray | None = None) -> SolverRun:
    """``hm.run`` that stops within ``time_limit`` seconds (:func:`_interrupt_after`)."""
    stop = _interrupt_after(hm, time_limit)
    r = hm.run(time_limit, warm)
    if stop is not None and stop() and r.status in (Status.FEASIBLE, Status.ERROR):
        r.status = Status.TIME_LIMIT  # interrupted by us at the time limit
    return r


def _interrupt_after(hm: HighsModel, seconds: float | None) -> Any:
    """Make HiGHS stop at ``seconds`` from now through its interrupt callbacks.

    HiGHS checks its own ``time_limit`` only now and then (a 0.3 s limit ran 0.6 s, 1.7 s ran
    2.45 s on the 64-boundary benchmark); the simplex, IPM and MIP interrupt callbacks come more
    often. Returns a function telling whether the interrupt fired (None without a limit or
    without callbacks in this highspy).
    """
    h = hm.h
    if seconds is None or not hasattr(h, "cbMipInterrupt"):
        return None
    end = time.monotonic() + seconds
    fired = [False]

    def check(e: Any) -> None:
        if time.monotonic() >= end:
            fired[0] = True
            e.interrupt()

    h.cbMipInterrupt += check
    h.cbSimplexInterrupt += check
    h.cbIpmInterrupt += check
    return lambda: fired[0]
