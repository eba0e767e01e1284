"""Worker processes for the workbook work of a run over several sites.

Parsing and writing XLSX (openpyxl) is pure-Python CPU work: it holds the GIL, so the site
threads can overlap their HTTP waits but not their workbook work. With several sites and more
than one core, ``WorkbookProcesses`` runs that work in worker processes instead, one per core.
With one site, one core or one worker, for a small piece of work (under about 1,000 rows: a
worker's start and the copy would cost more), or where no worker can be started, it runs the
function in the calling thread: same results, no processes.

Workers are started the way that is safe on each platform (``start_method``). On Linux a run
that has no other thread yet forks them (fast: nothing is imported again, and with one thread
no lock can be copied mid-use); once threads run, a fork server forks them instead, a clean
single-threaded process (Python 3.12+ warns about forking a process with threads; 3.14 makes
the fork server the default). On macOS and Windows they are spawned: fresh interpreters
(macOS system libraries are not safe to use after a fork; Windows has nothing else).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

import psutil

from .portable import usable_cores

__all__ = [
    "BackgroundCall",
    "WorkbookProcesses",
    "can_start_workers",
    "in_workers",
    "start_method",
    "usable_cores",
    "workbook_processes",
    "worker_pool",
]

from . import interrupt

log = logging.getLogger("agii_sync.parallel")

T = TypeVar("T")

# What every worker needs, imported once by the fork server instead of by each worker.
FORK_SERVER_PRELOAD = ["agii_sync.formats.workbook", "agii_sync.formats.export_reader"]


SMALL_WORK_BYTES = 128 * 1024  # about 1,000 rows: less work than a worker's start and the copy
ROW_BYTES = 128  # what one row in a list argument weighs, for that comparison


class WorkbookProcesses:
    """``call(fn, ...)`` runs ``fn`` in a worker process when there are any and the work is
    big enough to pay for the copy (``small_work_bytes``), else here. ``fn`` must be a
    module-level function without side effects: after a worker died it runs again.

    Forked workers start on entry (cheap, and only safe before the site threads start);
    spawned or fork-server workers only when the first big piece of work comes, so a run over
    small workbooks never pays for starting interpreters. They ignore Ctrl-C (the run itself
    stops them) and use the run's private scratch folder. If a worker dies (killed, out of
    memory), the work is done here."""

    def __init__(self, processes: int, *, small_work_bytes: int | None = None) -> None:
        self.processes = processes if can_start_workers() else 1
        self.small_work_bytes = SMALL_WORK_BYTES if small_work_bytes is None else small_work_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False
        self._lock = threading.Lock()

    def __enter__(self) -> WorkbookProcesses:
        if self.processes > 1 and start_method() == "fork":
            self._pool = worker_pool(self.processes, "fork")
            self._pool.submit(os.getpid).result()  # forks every worker now, before any thread
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            shut_down(self._pool)
            self._pool = None

    def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        pool = self._pool_for(args, kwargs)
        if pool is None:
            return fn(*args, **kwargs)
        try:
            return interrupt.wait(pool.submit(fn, *args, **kwargs))
        except BrokenProcessPool:
            log.warning("parallel.worker_died", extra={"fields": {"fallback": "in-process"}})
            self._broken = True
            return fn(*args, **kwargs)

    def _pool_for(self, args: tuple, kwargs: dict) -> ProcessPoolExecutor | None:
        if self.processes <= 1 or self._broken:
            return None
        if _weight(args, kwargs) < self.small_work_bytes:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = worker_pool(self.processes)
            return self._pool


def _weight(args: tuple, kwargs: dict) -> int:
    """Bytes to copy to a worker, roughly: byte strings, a workbook's content, rows in lists."""
    total = 0
    for value in (*args, *kwargs.values()):
        content = getattr(value, "content", value)
        if isinstance(content, bytes | bytearray | memoryview):
            total += len(content)
        elif isinstance(value, list | tuple):
            total += len(value) * ROW_BYTES
    return total


_CURRENT: ContextVar[WorkbookProcesses | None] = ContextVar("workbook_processes", default=None)


@contextmanager
def workbook_processes(processes: WorkbookProcesses) -> Iterator[None]:
    """``in_workers`` calls in this context (and in copies of it: the site threads) go to
    ``processes``."""
    token = _CURRENT.set(processes)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def in_workers(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``fn(...)`` in the worker processes of the sites' pool this thread works for; here
    when there is none (a command's work outside its sites, a single site)."""
    processes = _CURRENT.get()
    if processes is None:
        return fn(*args, **kwargs)
    return processes.call(fn, *args, **kwargs)


def start_method() -> str | None:
    """On Linux ``fork`` while this process has one thread, else ``forkserver``; ``spawn``
    elsewhere; None where none of them exists."""
    methods = get_all_start_methods()
    if sys.platform.startswith("linux"):
        if "fork" in methods and _only_thread():
            return "fork"
        if "forkserver" in methods:
            return "forkserver"
    return "spawn" if "spawn" in methods else None


def shut_down(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down; after Ctrl-C/SIGTERM without waiting for work nobody needs now."""
    if not interrupt.stopped():
        pool.shutdown(cancel_futures=True)
        return
    # The executor has no public way to end busy workers; its process table has been the
    # same attribute since Python 3.2. A worker ended mid-task leaves at most a temporary
    # file in the run's private scratch folder, which goes with the run (scratch.py).
    workers = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()


def _only_thread() -> bool:
    """No other thread, counted as the OS counts them (C libraries start threads too)."""
    try:
        return bool(psutil.Process().num_threads() == 1)
    except psutil.Error:
        return False


def can_start_workers() -> bool:
    return start_method() is not None


def worker_pool(processes: int, method: str | None = None) -> ProcessPoolExecutor:
    """A pool of workers that ignore Ctrl-C (the run stops them), write their temporary files
    into the run's private scratch folder, and end themselves when the run is gone: a killed
    run leaves no worker behind holding its files."""
    method = method or start_method()
    if method is None:
        raise RuntimeError("no way to start worker processes here")  # can_start_workers()
    return ProcessPoolExecutor(
        processes,
        mp_context=_context(method),
        initializer=_start_worker,
        initargs=(os.getpid(), tempfile.gettempdir()),
    )


class BackgroundCall(Generic[T]):
    """``fn(*args)`` in one worker process, started now; ``result()`` waits for it and raises
    what it raised. It leaves no thread in this process (a pool would), so workers forked
    later are still forked from a single-threaded run. If the worker dies, ``fn`` runs here."""

    def __init__(self, fn: Callable[..., T], *args: object) -> None:
        self._fn, self._args = fn, args
        self._receive: Connection | None = None
        method = start_method()
        if method is None:
            return
        context = _context(method)
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_call_and_send,
            args=(send, os.getpid(), tempfile.gettempdir(), fn, args),
            daemon=True,
        )
        self._process.start()
        send.close()

    def result(self) -> T:
        if self._receive is None:
            return self._fn(*self._args)
        try:
            kind, value = self._receive.recv()
        except (EOFError, OSError):
            log.warning("parallel.worker_died", extra={"fields": {"fallback": "in-process"}})
            return self._fn(*self._args)
        finally:
            self.close()
        if kind == "error":
            raise value
        result: T = value
        return result

    def close(self) -> None:
        if self._receive is None:
            return
        self._receive.close()
        self._receive = None
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _call_and_send(send: Connection, parent: int, scratch: str, fn: Callable, args: tuple) -> None:
    _start_worker(parent, scratch)
    try:
        outcome = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - raised again in the run
        outcome = ("error", exc)
    send.send(outcome)


def _context(method: str) -> Any:  # a context of the method's own type
    context = get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(FORK_SERVER_PRELOAD)
    return context


PARENT_CHECK_SECONDS = 0.2


def _start_worker(parent: int, scratch: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tempfile.tempdir = scratch
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() must end it
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int) -> None:
    try:
        run = psutil.Process(parent)
        while run.is_running() and run.status() != psutil.STATUS_ZOMBIE:
            time.sleep(PARENT_CHECK_SECONDS)
    except psutil.Error:
        pass  # gone
    os._exit(1)
