"""The one module that talks to the terminal.

- stdout carries results: rich tables for people, or exactly one JSON document with ``--json``.
- stderr carries messages, warnings, errors, and progress (only on a terminal).
- Data values are never parsed as markup: both consoles run with markup and highlighting off,
  and styles are applied with ``Text`` objects.
- ``NO_COLOR`` and non-terminals get no colour (rich honours both).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from rich.console import Console
from rich.text import Text

from .errors import AgiiError, without_userinfo

PIPE_WIDTH = 160


def error_doc(kind: str, message: str, hint: str | None) -> dict[str, Any]:
    """The one shape of an error in a ``--json`` document."""
    return {"type": kind, "message": message, "hint": hint}


def agii_error_doc(error: AgiiError) -> dict[str, Any]:
    return error_doc(type(error).__name__, error.message, error.hint)


class Output:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = Console(markup=False, highlight=False, emoji=False, soft_wrap=False)
        if not self.out.is_terminal:
            self.out.width = PIPE_WIDTH  # a log file or pipe: no wrapping at 80 columns
        # Messages are never wrapped: scripts read stderr line by line.
        self.err = Console(stderr=True, markup=False, highlight=False, emoji=False, soft_wrap=True)

    # -- results on stdout ---------------------------------------------------------------

    def document(self, doc: dict[str, Any]) -> None:
        """The one JSON document of a ``--json`` run."""
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def table(
        self,
        title: str | None,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        no_wrap: Sequence[str] = ("Rij-ID",),
    ) -> None:
        """A table on stdout; ``no_wrap`` columns (the Rij-ID) are never split, so they can be
        copied whole."""
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column in no_wrap)
        for row in rows:
            table.add_row(*(Text("" if v is None else str(v)) for v in row))
        self.out.print(table)

    def line(
        self, text: str, style: str | None = None, *, whole: bool = False, problem: bool = False
    ) -> None:
        """A plain result line on stdout (not in --json mode, not when quiet unless it reports
        a ``problem``); a ``whole`` line is never wrapped (one line per item, for scripts)."""
        if not self.json_mode and (problem or not self.quiet):
            self.out.print(Text(text, style=style or ""), soft_wrap=whole)

    def raw(self, text: str) -> None:
        """Bytes for a pipe (CSV, JSON lists): no wrapping, no styling."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def binary(self, data: bytes) -> None:
        """A file's bytes for a redirected stdout (``list --format xlsx > f.xlsx``)."""
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    # -- messages on stderr --------------------------------------------------------------

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(Text(without_userinfo(text)))

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.err.print(Text("warning: ", style="yellow bold") + Text(without_userinfo(text)))

    def error(self, error: AgiiError, *, site: str | None = None) -> None:
        """``error: message``; with ``site``, the message names it (several sites may fail)."""
        message = error.message
        if site and not message.startswith(f"{site}:"):
            message = f"{site}: {message}"
        self.err.print(Text("error: ", style="red bold") + Text(without_userinfo(message)))
        if error.hint:
            self.err.print(Text("hint: ", style="bold") + Text(without_userinfo(error.hint)))

    def sign_in(self, text: str) -> None:
        """What a person must do to sign in (device code): always shown, on stderr, also under
        --json and -q; without it the run would wait for a sign-in nobody knows about."""
        for line in text.splitlines():
            self.err.print(Text("sign-in: ", style="bold") + Text(line))

    def alert(self, text: str) -> None:
        """Something a person must act on now: on stderr whatever -q or --json say."""
        self.err.print(Text("ALERT: ", style="red bold") + Text(text))

    def failure(self, text: str) -> None:
        self.err.print(Text("error: ", style="red bold") + Text(without_userinfo(text)))

    def progress(self, description: str) -> AbstractContextManager[Any]:
        """A spinner on stderr, only on an interactive terminal and without NO_COLOR."""
        if self.quiet or not self.err.is_terminal or os.environ.get("NO_COLOR"):
            return nullcontext()
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(
            SpinnerColumn(), TextColumn(description), console=self.err, transient=True
        )
        progress.add_task(description, total=None)
        return progress
