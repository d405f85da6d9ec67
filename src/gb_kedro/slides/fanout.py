"""Fan-out of per-slide work on an existing engine: a local process pool or a Dask ``distributed`` cluster.

``map_slides(fn, jobs, ...)`` yields ``fn(job)`` for every job as they complete. ``fn`` and the jobs must be
picklable (module-level functions; slide paths and parameters, never open handles or pixel arrays): the
workers open the slides themselves and write their results to per-slide stores, so only summary rows travel
back. Kedro's runner is untouched: the fan-out lives inside the node.

* ``local``: ``concurrent.futures.ProcessPoolExecutor`` with ``n_workers`` spawned processes (in-process when 1);
* ``dask``: a ``distributed.Client`` at ``address`` (a scheduler started by ``dask scheduler``, dask-jobqueue,
  Kubernetes ...; else Dask's own ``scheduler-address`` setting, e.g. ``DASK_SCHEDULER_ADDRESS``), or, without
  one, a ``LocalCluster`` of ``n_workers`` processes with ``threads_per_worker`` threads each, closed at the end.

The workers' log records come back to this process and go through its handlers (one line each, in the run's
log; the workers print nothing themselves). A job that fails stops the map with its own exception (e.g. the
one-line :class:`~gb_kedro.errors.InputDataError` naming the slide); jobs not yet started are cancelled.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")


def map_slides(
    fn: Callable[[Any], Any],
    jobs: list,
    executor: str,
    n_workers: int,
    address: str | None = None,
    threads_per_worker: int = 1,
    desc: str = "slides",
) -> Iterator[Any]:
    """``fn(job)`` for every job, in completion order, with a progress bar on a terminal."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: use one of {EXECUTORS}")
    bar = tqdm(total=len(jobs), desc=desc, unit="slide", leave=False, disable=None)
    try:
        if executor == "dask":
            results = _dask(fn, jobs, n_workers, address, threads_per_worker)
        elif n_workers > 1 and len(jobs) > 1:
            results = _pool(fn, jobs, n_workers)
        else:
            results = (fn(job) for job in jobs)
        for result in results:
            bar.update()
            yield result
    finally:
        bar.close()


class _ToOwnLogger(logging.Handler):
    """Hands a record that came back from a worker to this process's logger of the same name (its level, filters
    and handlers: the run's log)."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _worker_logging(queue, level: int) -> None:
    """In a worker process: every record goes back to the parent through ``queue``; nothing is printed here
    (the handlers that importing Kedro configured in the worker are removed)."""
    root = logging.getLogger()
    for logger in [root, *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]:
        for handler in list(getattr(logger, "handlers", [])):
            logger.removeHandler(handler)
        if logger is not root:
            logger.propagate = True
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(level)


def _pool(fn, jobs: list, n_workers: int) -> Iterator[Any]:
    # spawn, not fork: a forked child of a process that has run torch / OpenMP can deadlock in its first op
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    listener = logging.handlers.QueueListener(queue, _ToOwnLogger())
    listener.start()
    pool = ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=context,
        initializer=_worker_logging,
        initargs=(queue, logging.getLogger("gb_kedro").getEffectiveLevel()),
    )
    try:
        futures = [pool.submit(fn, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after a failure: the jobs not started are dropped
        listener.stop()


def _dask(fn, jobs: list, n_workers: int, address: str | None, threads_per_worker: int) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    address = address or dask.config.get("scheduler-address", None)  # e.g. DASK_SCHEDULER_ADDRESS
    if address:
        client = Client(address)
    else:
        # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 by default: glibc then hands every freed region read
        # (4 MB) back to the OS and faults it in again, measured 1.7x slower tiling; the thread caps are kept
        environ = {
            k: v
            for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
            if k != "MALLOC_TRIM_THRESHOLD_"
        }
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    try:
        logger.debug("Dask: %s", client)
        client.forward_logging("gb_kedro", level=logging.getLogger("gb_kedro").getEffectiveLevel())
        futures = client.map(fn, jobs, pure=False)
        for future in dask_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
