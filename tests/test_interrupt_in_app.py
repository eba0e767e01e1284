"""Ctrl-C that lands inside the command line but outside a command's work (while the options
are handled, or as the work ends) is exit 3 with one line, never Typer's silent exit 130.

In process and deterministic: the signal handler is called at a chosen place, as the real
SIGINT would call it (tests/test_interrupt.py sends real signals at random moments).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agii_sync import cli, interrupt, scratch
from fixtures.workspace import Workspace, person


@pytest.fixture
def own_handlers() -> Iterator[None]:
    """``cli.main`` installs its SIGINT/SIGTERM handlers: give pytest its own back."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)
    interrupt.reset()


def ctrl_c_after(function: Callable[..., Any]) -> Callable[..., Any]:
    def then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        interrupt._on_signal(signal.SIGINT, None)  # what SIGINT runs: sets STOP, raises
        return result

    return then_ctrl_c


def run_main(ws: Workspace, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    ws.write_config()
    monkeypatch.setattr(sys, "argv", ["agii-sync", "--config", str(ws.config_path), *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return int(exited.value.code or 0)


@pytest.mark.usefixtures("own_handlers")
def test_ctrl_c_while_the_options_are_handled_is_exit_3_and_one_line(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scratch, "use_private_scratch", ctrl_c_after(scratch.use_private_scratch))
    code = run_main(workspace, monkeypatch, "push", str(workspace.export([person(1, 0)])))
    err = capfd.readouterr().err
    assert code == 3, err  # Typer alone: 130 and nothing said
    assert err == "error: stopped by SIGINT; nothing was done\n"
    assert workspace.workbook_bytes("sint-pieters-leeuw") is None


@pytest.mark.usefixtures("own_handlers")
def test_ctrl_c_as_the_work_ends_is_exit_3_and_the_log_has_the_end(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_run_work", ctrl_c_after(cli._run_work))
    log = workspace.root / "run.jsonl"
    export = workspace.export([person(1, 0)])
    code = run_main(workspace, monkeypatch, "--log-file", str(log), "push", str(export))
    err = capfd.readouterr().err
    assert code == 3, err
    assert "stopped by SIGINT; run it again" in err and "nothing was done" not in err
    assert workspace.workbook_bytes("sint-pieters-leeuw") is not None  # the work was done
    assert '"run.end"' in log.read_text(encoding="utf-8")
