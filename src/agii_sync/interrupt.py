"""Ctrl-C and SIGTERM: stop a run promptly, and say truthfully what each site got.

``install()`` (first thing in the entry point) makes SIGINT and SIGTERM set ``STOP``. While the
main thread waits for the sites (``deferred()``), that is all a signal does: each site's
thread sees ``STOP`` at its next step (``check()``, ``wait()``, ``sleep()``) and stops there,
before its write or after it, never in between; sites not started are not started. Anywhere
else (start-up, reading the export) the signal also raises ``KeyboardInterrupt`` in the main
thread, which the entry point turns into exit 3 without a traceback.

Only stdlib imports: this module is loaded before anything else of agii-sync.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05
STOP = threading.Event()


class _State:
    signal = ""  # the name of the first signal received
    deferred = 0  # how many deferred() blocks the main thread is in
    starting = False  # between install(starting=True) and started()


_state = _State()


def install(*, starting: bool = False) -> None:
    """Handle SIGINT (Ctrl-C; also on Windows) and SIGTERM where the platform has it. With
    ``starting``, a signal only sets ``STOP`` until ``started()``: no ``KeyboardInterrupt``
    can then surface in the middle of an import, where nothing could catch it."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (an embedding program keeps its own)
    _state.starting = _state.starting or starting
    for name in ("SIGINT", "SIGTERM"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _on_signal)


def _on_signal(number: int, frame: Any) -> None:
    if STOP.is_set():
        return  # already stopping: a second Ctrl-C must not cut the clean-up short
    _state.signal = signal.Signals(number).name
    STOP.set()
    if not _state.deferred and not _state.starting:
        raise KeyboardInterrupt


def started() -> None:
    """Start-up is over (the caller catches ``KeyboardInterrupt`` from here on): a signal
    that came meanwhile is raised now."""
    _state.starting = False
    if STOP.is_set():
        raise KeyboardInterrupt


def stopped() -> bool:
    return STOP.is_set()


def signal_name() -> str:
    return _state.signal or "a stop request"


def reset() -> None:
    """For a new run in the same process (tests)."""
    STOP.clear()
    _state.signal = ""


@contextmanager
def deferred() -> Iterator[None]:
    """The main thread waits for site threads: a signal only sets ``STOP`` (they stop at
    their next step), so no site is left half-done and every site is reported."""
    _state.deferred += 1
    try:
        yield
    finally:
        _state.deferred -= 1


def check() -> None:
    if STOP.is_set():
        from .errors import Interrupted

        raise Interrupted(signal_name())


def wait(future: Future[T]) -> T:
    """``future.result()``, given up (``Interrupted``) as soon as the run is stopped."""
    while True:
        try:
            return future.result(timeout=POLL_SECONDS)
        except FutureTimeout:
            check()


def sleep(seconds: float) -> None:
    """``time.sleep``, cut short (``Interrupted``) when the run is stopped."""
    if STOP.wait(seconds):
        check()
