"""HiGHS plumbing: every ``highspy.Highs`` object fleetopt uses is made and run here.

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
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["UNTRUSTED_MIP_START_FROM", "WORKER_PRELOAD", "highspy_version", "new_highs",
           "objective_matches", "process_context", "run", "set_verbose", "solver_output", "verbose",
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
    """``h.run()`` with its output routed as :func:`solver_output` says."""
    with solver_output():
        h.run()


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
    :class:`fleetopt.solvers.mip.HighsModel` clears the solver state before every re-run and
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
# worker processes

#: what a worker of fleetopt's process pools imports up front (with the forkserver start
#: method the server imports these once and every worker starts with them already imported)
WORKER_PRELOAD = ("numpy", "scipy.sparse", "pandas", "highspy", "fleetopt.solvers.mip",
                  "fleetopt.studies.sweep")


def process_context() -> Any:
    """The multiprocessing context for every process pool fleetopt starts.

    Never ``fork``: a child forked from a process that has run HiGHS inherits the state of
    HiGHS's thread pool but not its threads, and every solve there returns "Not Set".
    ``forkserver`` (where the platform has it) forks workers from a clean server process that
    has imported :data:`WORKER_PRELOAD` and never run a solver: a pool of workers starts in
    about 0.1 s once the server is up (starting it costs about 1 s, once per process; spawn
    costs about 1.6 s per pool). Elsewhere ``spawn``.
    Scripts that start pools (a process sweep, ``build_candidates(workers=N)``) must guard their
    top level with ``if __name__ == "__main__":``, as always with these start methods: each
    worker imports the main module.
    """
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))
        return ctx
    return mp.get_context("spawn")
