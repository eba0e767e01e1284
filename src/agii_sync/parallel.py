"""Worker processes for the workbook work of a run over several sites.

Parsing and writing XLSX (openpyxl) is pure-Python CPU work: it holds the GIL, so the site
threads can overlap their HTTP waits but not their workbook work. With several sites and more
than one core, ``WorkbookProcesses`` runs that work in forked worker processes instead, one per
core. With one site, one core or one worker, or where ``fork`` does not exist, it runs the
function in the calling thread: same results, no processes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_all_start_methods, get_context
from typing import TypeVar

log = logging.getLogger("agii_sync.parallel")

T = TypeVar("T")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class WorkbookProcesses:
    """``call(fn, ...)`` runs ``fn`` in a worker process when there are any, else here. ``fn``
    must be a module-level function without side effects: after a worker died it runs again.

    The workers are forked on entry, before the site threads start, so no lock held by another
    thread is copied into them. They ignore Ctrl-C (the run itself stops them) and inherit the
    private scratch folder. If a worker dies (killed, out of memory), the work is done here."""

    def __init__(self, processes: int) -> None:
        self.processes = processes if can_fork() else 1
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def __enter__(self) -> WorkbookProcesses:
        if self.processes > 1:
            self._pool = forked_pool(self.processes)
            self._pool.submit(os.getpid).result()  # forks every worker now
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if self._pool is None or self._broken:
            return fn(*args, **kwargs)
        try:
            return self._pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool:
            log.warning("parallel.worker_died", extra={"fields": {"fallback": "in-process"}})
            self._broken = True
            return fn(*args, **kwargs)


def can_fork() -> bool:
    return "fork" in get_all_start_methods()


def forked_pool(processes: int) -> ProcessPoolExecutor:
    """A pool of forked workers that ignore Ctrl-C (the run stops them) and end themselves when
    the run is gone: a killed run leaves no worker behind holding its files."""
    return ProcessPoolExecutor(
        processes,
        mp_context=get_context("fork"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


PARENT_CHECK_SECONDS = 0.2


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)
