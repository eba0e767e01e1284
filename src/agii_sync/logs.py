"""Logging for ``--log-file`` / ``--log-format``: standard ``logging`` under ``agii_sync``.

Convention: the message is a stable, dotted event name; details go in ``extra["fields"]``::

    log = logging.getLogger(__name__)          # agii_sync.<module>
    log.info("push.site_done", extra={"fields": {"site": m.id, "added": 3}})

JSON format writes one object per line: ``time`` (UTC ISO-8601), ``level``, ``logger``,
``event`` (the message), then the fields (a field named like one of those is written as
``field.<name>`` instead of replacing it). Text format writes
``<time> <LEVEL> <logger> <event> key=value …``.

Logging is for the file only: never stdout (reserved for ``--json``), and without
``--log-file`` nothing is written anywhere, warnings included; ``output.py`` shows the user what
matters. The file gets INFO and above whatever ``-q``/``-v`` say (they are for the terminal):
a cron job run with ``-q`` logs the same events as a person at a terminal, ``run.start``, one
``site.done`` per site (outcome, reason code, counts, duration) and ``run.end``.

Fields and event names carry row numbers, codes and site ids, never personal data. For the same
reason an exception is logged as its class and frames (file, line, function) without its text,
which could quote a cell value.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

LOGGER_NAME = "agii_sync"
LogFormat = Literal["json", "text"]
_CORE_KEYS = ("time", "level", "logger", "event")


class _OurHandler:
    """Marks handlers this module installed, so reconfiguring replaces only those."""


class _FileHandler(logging.FileHandler, _OurHandler):
    pass


class _NullHandler(logging.NullHandler, _OurHandler):
    pass


def configure_logging(log_file: Path | None, fmt: LogFormat = "text") -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    _remove_our_handlers(logger)
    logger.setLevel(logging.INFO)
    if log_file is None:
        # Without a handler, logging's last resort would print warnings to stderr.
        logger.addHandler(_NullHandler())
        return logger
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = _FileHandler(log_file, mode="a", encoding="utf-8")
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    return logger


def _remove_our_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if isinstance(handler, _OurHandler):
            logger.removeHandler(handler)
            handler.close()


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _exception_summary(record: logging.LogRecord) -> dict[str, Any]:
    if not record.exc_info or record.exc_info[1] is None:
        return {}
    exc_type, _, tb = record.exc_info
    frames = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)]
    return {"exc_type": getattr(exc_type, "__name__", "Exception"), "exc_frames": frames}


def _utc_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in {**record_fields(record), **_exception_summary(record)}.items():
            document[f"field.{key}" if key in _CORE_KEYS else key] = value
        return json.dumps(document, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_utc_time(record), record.levelname, record.name, record.getMessage()]
        fields = {**record_fields(record), **_exception_summary(record)}
        parts += [f"{key}={_text_value(value)}" for key, value in fields.items()]
        return " ".join(parts)


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Quote anything that would break the key=value layout, and keep one record on one line.
    return json.dumps(text) if not text or any(c in text for c in ' "=\n\r\t') else text
