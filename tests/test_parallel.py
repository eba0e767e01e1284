"""The workbook work of a run over several sites goes to worker processes (one per
core); errors come back whole, a dead worker costs nothing, and a killed run leaves no worker
behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import date

import pytest

from agii_sync import parallel
from agii_sync.config import load_config
from agii_sync.domain.problems import Problem, ProblemCode
from agii_sync.engine import Run
from agii_sync.errors import DataRejected, ExitCode, LayoutError
from agii_sync.outcome import SiteOutcome
from agii_sync.parallel import (
    SMALL_WORK_BYTES,
    BackgroundCall,
    WorkbookProcesses,
    in_workers,
    start_method,
    usable_cores,
)
from fixtures.workspace import Workspace, person

needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="one core: no worker processes")


BIG_WORK = b"x" * SMALL_WORK_BYTES


def pid_with(payload: object) -> int:
    return os.getpid()


def raise_layout_error() -> None:
    raise LayoutError("header cell B1 is changed", hint="restore it")


PROBLEM = Problem.of(ProblemCode.INVALID_PHONE, line=3, column="telefoon")


def raise_data_rejected() -> None:
    raise DataRejected("1 line rejected", [PROBLEM])


@needs_two_cores
def test_calls_run_in_worker_processes_and_inline_with_one() -> None:
    with WorkbookProcesses(2, small_work_bytes=0) as processes:
        pids = {processes.call(os.getpid) for _ in range(8)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    with WorkbookProcesses(1) as processes:
        assert processes.call(os.getpid) == os.getpid()


@needs_two_cores
def test_errors_raised_in_a_worker_come_back_with_their_hint_and_exit_code() -> None:
    with WorkbookProcesses(2, small_work_bytes=0) as processes:
        with pytest.raises(LayoutError) as layout:
            processes.call(raise_layout_error)
        with pytest.raises(DataRejected) as rejected:
            processes.call(raise_data_rejected)
        assert processes.call(os.getpid) != os.getpid()  # came back whole: no worker broke
    assert (layout.value.message, layout.value.hint) == ("header cell B1 is changed", "restore it")
    assert layout.value.exit_code == ExitCode.SAFETY
    assert rejected.value.problems == [PROBLEM]


@needs_two_cores
def test_a_dead_worker_means_the_work_is_done_in_the_run_itself() -> None:
    with WorkbookProcesses(2, small_work_bytes=0) as processes:
        for pid in {processes.call(os.getpid) for _ in range(8)}:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert processes.call(os.getpid) == os.getpid()
        assert processes.call(sum, [1, 2, 3]) == 6


KILLED_RUN = """
import os, sys, time
from agii_sync.parallel import WorkbookProcesses
with WorkbookProcesses(2, small_work_bytes=0) as processes:
    print(*{processes.call(os.getpid) for _ in range(8)}, flush=True)
    time.sleep(60)
"""


@needs_two_cores
def test_a_killed_run_leaves_no_worker_behind() -> None:
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    workers = [int(pid) for pid in run.stdout.readline().split()]
    assert workers
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@needs_two_cores
def test_a_run_over_several_sites_does_its_workbook_work_in_workers(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0), person(2, 1)])))
    run = Run(load_config(workspace.config_path), command="test", today=date.today())
    seen: list[int] = []

    def work(m):  # type: ignore[no-untyped-def]
        seen.append(in_workers(pid_with, BIG_WORK))
        return SiteOutcome(m.id)

    run.for_each_site(run.config.municipalities, work)
    assert len(seen) == len(run.config.municipalities) >= 2
    assert os.getpid() not in seen
    assert in_workers(pid_with, BIG_WORK) == os.getpid()  # after the run: inline again


@needs_two_cores
def test_small_work_runs_here_and_starts_no_worker() -> None:
    """A worker's start and the copy cost more than a small workbook's work (hundreds of ms
    against a few: measured in docs/performance.md)."""
    with WorkbookProcesses(2) as processes:
        assert processes.call(pid_with, b"x" * 1000) == os.getpid()
        assert processes.call(pid_with, [None] * 100) == os.getpid()
        assert processes.call(pid_with, BIG_WORK) != os.getpid()


@needs_two_cores
def test_workers_start_without_forking_a_process_that_runs_threads() -> None:
    """Python 3.12+ warns (DeprecationWarning) when a process with threads forks, and such a
    child can inherit a lock some thread held: workers come from a fork server (Linux) or are
    spawned, whatever threads run. They write temporary files into the private scratch."""
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait)
    busy.start()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")  # os.fork reports its warning, never raises it
            with WorkbookProcesses(2, small_work_bytes=0) as processes:
                assert processes.call(os.getpid) != os.getpid()
                assert processes.call(tempfile.gettempdir) == tempfile.gettempdir()
    finally:
        stop.set()
        busy.join()
    assert [str(w.message) for w in seen if "fork" in str(w.message)] == []


def test_the_start_method_is_safe_on_each_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "get_all_start_methods", lambda: ["fork", "spawn", "forkserver"])
    monkeypatch.setattr(parallel.sys, "platform", "linux")
    monkeypatch.setattr(parallel, "_only_thread", lambda: True)
    assert start_method() == "fork"  # nothing can hold a lock in another thread
    monkeypatch.setattr(parallel, "_only_thread", lambda: False)
    assert start_method() == "forkserver"
    monkeypatch.setattr(parallel.sys, "platform", "darwin")  # fork is unsafe on macOS
    assert start_method() == "spawn"
    monkeypatch.setattr(parallel, "get_all_start_methods", lambda: ["spawn"])  # Windows
    monkeypatch.setattr(parallel.sys, "platform", "win32")
    assert start_method() == "spawn"


def pid_in_a_worker(run: int) -> int:
    """The worker's pid, after a long wait (so a test can kill it); at once in the run."""
    if os.getpid() != run:
        time.sleep(30)
    return os.getpid()


def test_a_background_call_runs_elsewhere_without_a_thread_here() -> None:
    threads = threading.active_count()
    call = BackgroundCall(os.getpid)
    assert threading.active_count() == threads  # so later workers can still be forked
    assert call.result() != os.getpid()
    with pytest.raises(LayoutError) as raised:
        BackgroundCall(raise_layout_error).result()
    assert raised.value.hint == "restore it"


def test_a_background_call_whose_worker_died_runs_in_the_run() -> None:
    call = BackgroundCall(pid_in_a_worker, os.getpid())
    call._process.kill()
    assert call.result() == os.getpid()
