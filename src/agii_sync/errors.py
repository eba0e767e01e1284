"""Errors that end a run, each carrying its exit code (README, "Exit codes").

Messages never contain personal data: callers pass row numbers, column names and codes only.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .domain.plan import Plan
    from .domain.problems import Problem

# scheme://user:password@host → scheme://host, wherever a URL appears in a text.
URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def without_userinfo(text: str) -> str:
    """The text with the user name and password of every URL in it removed: an error or log
    line never shows a credential, whatever a config or server said."""
    return URL_USERINFO.sub(r"\1", text)


class ExitCode(IntEnum):
    OK = 0
    DATA = 1  # rows rejected, check/access-check found something
    USAGE = 2  # usage or configuration error; nothing touched
    TEMPORARY = 3  # locked, throttled, network, run lock held: safe to run again
    AUTH = 4  # authentication or authorisation failure
    SAFETY = 5  # a person must look: max_delete, protocol window, conflict, layout


class AgiiError(Exception):
    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = without_userinfo(message)
        super().__init__(message)
        self.message = message
        self.hint = without_userinfo(hint) if hint is not None else None

    @property
    def code(self) -> str:
        """A stable reason code for logs: the class name in snake case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in a worker process and re-raised here: rebuilt as it was, hint included.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[AgiiError], args: tuple[object, ...], state: dict) -> AgiiError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(AgiiError):
    exit_code = ExitCode.USAGE


class UsageError(AgiiError):
    exit_code = ExitCode.USAGE


class InputError(AgiiError):
    """An input file that cannot be read at all (not CSV/XLSX, empty, broken zip)."""

    exit_code = ExitCode.DATA


class SecretMissing(AgiiError):
    exit_code = ExitCode.USAGE


class TemporaryFailure(AgiiError):
    exit_code = ExitCode.TEMPORARY


class Interrupted(TemporaryFailure):
    """Ctrl-C or SIGTERM: this site's work stopped at a step boundary; nothing half-written.
    ``stage`` says what the site got: ``not_started`` or ``abandoned`` (begun, not written)."""

    def __init__(self, signal_name: str, stage: str = "abandoned") -> None:
        what = {
            "not_started": "before this site was started",
            "abandoned": "before this site's workbook was written",
        }[stage]
        super().__init__(
            f"stopped by {signal_name} {what}; nothing was written to it",
            hint="run the same command again",
        )
        self.stage = stage


class WorkbookLocked(TemporaryFailure):
    """The workbook is open for editing elsewhere (SharePoint 423)."""


class WorkbookCheckedOut(TemporaryFailure):
    """The workbook is checked out (SharePoint 423 ``SPFileCheckOutException``, or Graph's
    ``publication.level`` ``checkout``): not waited on, someone has to check it in."""


class Throttled(TemporaryFailure):
    """429/503 beyond the retry budget."""


class RunLockHeld(TemporaryFailure):
    """Another agii-sync run holds the lock for this config."""


class AuthFailure(AgiiError):
    exit_code = ExitCode.AUTH


class AccessRefused(AuthFailure):
    """SharePoint or Graph answered 403: the app lacks the Sites.Selected role ``grant`` on
    the site (``read``, ``write`` or ``fullcontrol``)."""

    def __init__(self, message: str, *, grant: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.grant = grant


class SafetyStop(AgiiError):
    exit_code = ExitCode.SAFETY


class DeleteLimitExceeded(SafetyStop):
    """A push or purge would remove more than ``max_delete``. Carries the plan, so the report
    can show who would have been removed (row IDs only)."""

    def __init__(self, message: str, plan: Plan, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.plan = plan


class EtagConflict(SafetyStop):
    """The workbook changed since it was read (or, when creating one, one exists now). A
    conditional update reads again and plans again; when every attempt met a change it gives
    up with a ``TemporaryFailure`` (exit 3), so this error reaches the user (exit 5) only
    where nothing reads again: ``init`` finding that a workbook appeared meanwhile."""


class LayoutError(SafetyStop):
    """The workbook on the site is not in the expected layout (renamed header, missing sheet)."""


class DataRejected(AgiiError):
    """Input lines that are not valid (status-update --from, pull-status): nothing is written.
    ``problems`` are domain Problems (line, column, code; never values)."""

    exit_code = ExitCode.DATA

    def __init__(self, message: str, problems: list[Problem], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems
