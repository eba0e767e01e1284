from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agii_sync.logs import LOGGER_NAME, configure_logging

log = logging.getLogger("agii_sync.push")


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    configure_logging(None, "text")


def test_json_lines_carry_time_level_logger_event_and_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "run.jsonl"
    configure_logging(log_file, "json")

    log.info("push.site_done", extra={"fields": {"site": "sint-pieters-leeuw", "added": 3}})
    log.warning("push.throttled", extra={"fields": {"retry_after": 2.5, "level": "x"}})

    first, second = (json.loads(line) for line in log_file.read_text().splitlines())
    assert first["event"] == "push.site_done"
    assert first["level"] == "INFO"
    assert first["logger"] == "agii_sync.push"
    assert first["time"].endswith("+00:00")
    assert (first["site"], first["added"]) == ("sint-pieters-leeuw", 3)
    assert second["level"] == "WARNING"
    assert second["field.level"] == "x"  # a field never overwrites a core key


def test_text_format_is_one_line_with_key_values(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    configure_logging(log_file, "text")

    log.info("push.site_done", extra={"fields": {"site": "leuven", "note": "two words"}})

    (line,) = log_file.read_text().splitlines()
    assert line.split(" ")[1:4] == ["INFO", "agii_sync.push", "push.site_done"]
    assert line.endswith('site=leuven note="two words"')


def test_the_file_gets_info_and_above(tmp_path: Path) -> None:
    """-q and -v are for the terminal; the log file's content does not depend on them."""
    log_file = tmp_path / "run.jsonl"
    configure_logging(log_file, "json")
    log.debug("hidden.debug")
    log.info("shown.info")
    log.warning("shown.warning")

    events = [json.loads(line)["event"] for line in log_file.read_text().splitlines()]
    assert events == ["shown.info", "shown.warning"]


def test_reconfiguring_replaces_our_handler_only(tmp_path: Path) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    foreign = logging.NullHandler()
    logger.addHandler(foreign)
    try:
        configure_logging(tmp_path / "a.log", "text")
        configure_logging(tmp_path / "b.log", "text")
        log.info("only.in.b")

        assert foreign in logger.handlers
        assert len([h for h in logger.handlers if h is not foreign]) == 1
        assert (tmp_path / "a.log").read_text() == ""
        assert "only.in.b" in (tmp_path / "b.log").read_text()
    finally:
        logger.removeHandler(foreign)


def test_nothing_reaches_stdout_or_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(tmp_path / "run.log", "json")
    log.error("push.failed")
    configure_logging(None, "text")
    log.error("push.failed")
    log.warning("push.warned")

    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_exceptions_are_logged_without_their_text(tmp_path: Path) -> None:
    log_file = tmp_path / "run.jsonl"
    configure_logging(log_file, "json")

    try:
        raise ValueError("Jan Peeters, Kerkstraat 1")
    except ValueError:
        log.exception("push.crashed")

    record = json.loads(log_file.read_text())
    assert record["exc_type"] == "ValueError"
    assert any("test_logs.py" in frame for frame in record["exc_frames"])
    assert "Peeters" not in log_file.read_text()


def test_without_log_file_warnings_go_nowhere_in_a_plain_process() -> None:
    # In-process, pytest's own root handler would hide logging's stderr fallback.
    script = (
        "import logging; from agii_sync.logs import configure_logging; "
        "configure_logging(None, 'text'); "
        "logging.getLogger('agii_sync.push').error('push.failed')"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
