"""Worker processes: every process pool fleetopt starts gets its context here (never ``fork``)."""

from __future__ import annotations

from typing import Any

__all__ = ["WORKER_PRELOAD", "process_context"]

#: what a worker of fleetopt's process pools imports up front (with the forkserver start
#: method the server imports these once and every worker starts with them already imported)
WORKER_PRELOAD = ("numpy", "scipy.sparse", "pandas", "highspy", "fleetopt.planners.mip.solve",
                  "fleetopt.studies.sweep.run")


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
