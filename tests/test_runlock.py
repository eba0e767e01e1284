from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agii_sync.errors import ExitCode, RunLockHeld
from agii_sync.runlock import info_path, run_lock

HOLDER = """
import sys, time
from pathlib import Path
from agii_sync.runlock import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "agii-sync.toml.lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that takes the run lock and keeps it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_second_run_fails_at_once_while_another_process_holds_the_lock(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(RunLockHeld) as caught, run_lock(lock_path):
        pytest.fail("took a lock that another process holds")
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    assert caught.value.exit_code == ExitCode.TEMPORARY
    message = caught.value.message
    assert message.startswith("another agii-sync run holds the lock since 20")
    assert message.endswith(f"(pid {holder.pid})")


def test_lock_is_free_again_when_the_holder_dies(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.kill()
    holder.wait(timeout=10)
    assert info_path(lock_path).exists()  # a killed holder leaves its info behind

    with run_lock(lock_path):
        info = json.loads(info_path(lock_path).read_text())
        assert info["pid"] == os.getpid()


def test_holder_writes_info_beside_the_lock_and_removes_it(lock_path: Path) -> None:
    with run_lock(lock_path):
        info = json.loads(info_path(lock_path).read_text())
        assert info["pid"] == os.getpid()
        assert info["since"].endswith("+00:00")

    assert not info_path(lock_path).exists()
    with run_lock(lock_path):  # released: can be taken again
        pass


def test_lock_is_released_when_the_run_fails(lock_path: Path) -> None:
    with pytest.raises(RuntimeError, match="run failed"), run_lock(lock_path):
        raise RuntimeError("run failed")

    assert not info_path(lock_path).exists()
    with run_lock(lock_path):
        pass


def test_second_lock_in_the_same_process_is_refused(lock_path: Path) -> None:
    with run_lock(lock_path), pytest.raises(RunLockHeld, match=f"pid {os.getpid()}"):  # noqa: SIM117
        with run_lock(lock_path):
            pass


def test_message_without_info_is_still_clear(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    info_path(lock_path).unlink()

    with pytest.raises(RunLockHeld, match="start time unknown"), run_lock(lock_path):
        pass
