"""How often Python's cycle collector runs during a command.

A push holds tens of thousands of long-lived objects (a workbook's rows, the export's) that
contain no reference cycles; with CPython's default thresholds (700, 10, 10) every full
collection walks them all again, and a 10,000-person push made three such walks: a quarter of
a second of a two-second run (docs/performance.md). During a command the youngest generation is
collected every 50,000 new objects instead of every 700 and the older ones accordingly less
often; collections stay on, so cyclic garbage is still freed. Worker processes forked during the
command inherit the setting. The thresholds are put back when the command ends (the tests run
many commands in one process).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

COMMAND_THRESHOLDS = (50_000, 20, 20)


@contextmanager
def fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*COMMAND_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
