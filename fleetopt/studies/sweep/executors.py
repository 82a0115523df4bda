"""Where a sweep's scenarios run: in this process, a local process pool, or a Dask cluster.

Worker processes start with forkserver or spawn, never fork
(:func:`fleetopt.core.processes.process_context`), and get the base problem once.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from fleetopt.core.errors import FleetoptError
from fleetopt.core.processes import process_context
from fleetopt.planners.mip.highs import verbose
from fleetopt.problem.problem import Problem
from fleetopt.studies.sweep.run import init_worker, run_chunk

__all__ = ["EXECUTORS", "chunks", "progress_bar", "run_dask", "run_process"]

EXECUTORS = ("sequential", "process", "dask")


def progress_bar(total: int, initial: int, enabled: bool | None) -> Any:
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


def chunks(items: list[Any], workers: int) -> Iterator[list[Any]]:
    # several chunks per worker keep the pool balanced and the progress bar moving
    size = max(1, min(16, math.ceil(len(items) / (workers * 6))))
    for i in range(0, len(items), size):
        yield items[i:i + size]


def run_process(base: Problem, todo: list[Any], opts: dict[str, Any], workers: int | None,
                 record: Callable[[dict[str, Any]], None]) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n = workers or os.cpu_count() or 1
    n = max(1, min(n, len(todo)))
    pool = ProcessPoolExecutor(max_workers=n, initializer=init_worker,
                               initargs=(base, verbose()), mp_context=process_context())
    futures = set()
    try:
        for chunk in chunks(todo, n):
            futures.add(pool.submit(run_chunk, chunk, opts))
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


def run_dask(base: Problem, todo: list[Any], opts: dict[str, Any], workers: int | None,
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
        futures = [client.submit(run_chunk, chunk, opts, base_f, verbose(), pure=False)
                   for chunk in chunks(todo, n)]
        try:
            for fut in as_completed(futures):
                for row in fut.result():
                    record(row)
        except BaseException:
            client.cancel(futures)
            raise
