"""The audit trail (README, Audit trail): hash-chained JSON lines, one per run and site.

Each line is the canonical JSON (sorted keys, compact, ASCII) of a record that carries
``prev``, the sha256 of the previous line's exact bytes (or ``GENESIS`` on the first line), and
``hash``, the sha256 of the canonical JSON of the record without ``hash``. An edited line breaks
its own ``hash``; a removed or reordered line breaks the next line's ``prev``.

Removing the last lines would leave a valid, shorter chain, so every append also records where
the trail ends in ``<trail>.head`` (size, and length and hash of the last line); ``verify``
reports a trail that no longer holds that line there. A hash chain is tamper-evident, not
tamper-proof: whoever can write both files can recompute them (keep a copy of the head
elsewhere for that).

Callers pass row keys (``Rij-ID``) and counts only: never a name, address, phone, e-mail or
dossier number.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock, Timeout

from .config import Config
from .errors import InputError, TemporaryFailure
from .portable import fsync_folder, replace_file

log = logging.getLogger("agii_sync.audit")

GENESIS = "0" * 64
ROW_REASONS = frozenset(
    {"added", "restored", "updated", "moved_away", "retention", "protocol_ended", "status_set"}
)
CHAIN_FIELDS = frozenset({"time", "host", "prev", "hash"})
LOCK_TIMEOUT_SECONDS = 30
_TAIL_BLOCK = 64 * 1024

AuditRow = Mapping[str, str] | tuple[str, str]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    first_bad_line: int | None  # 1-based
    reason: str


def canonical_json(record: Mapping[str, Any]) -> str:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    without_hash = {key: value for key, value in record.items() if key != "hash"}
    return sha256_hex(canonical_json(without_hash).encode("ascii"))


class AuditTrail:
    """Appends records to one audit file; safe for several threads and processes at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        clashing = CHAIN_FIELDS & set(event)
        if clashing:
            raise ValueError(f"audit event may not set {sorted(clashing)}: the trail adds them")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(self.lock_path, timeout=LOCK_TIMEOUT_SECONDS):
                return self._append_locked(event)
        except Timeout:
            raise TemporaryFailure(
                f"the audit trail {self.path} stayed locked for {LOCK_TIMEOUT_SECONDS} s",
                hint="another agii-sync process is writing it; run again",
            ) from None

    @property
    def pending_folder(self) -> Path:
        return self.path.with_name(self.path.name + ".pending")

    def begin_write(self, event: Mapping[str, Any]) -> PendingWrite:
        """Write-ahead: note a site write before it happens, so a run killed between the write
        and its audit line still leaves a trace that the next run turns into a line."""
        return PendingWrite(self.pending_folder, event)

    def recover_interrupted(self) -> int:
        """Append the notes of writers that died (their lock is free) as audit lines marked
        ``interrupted``: the write may or may not have landed. Returns how many."""
        if not self.pending_folder.is_dir():
            return 0
        recovered = 0
        for note in sorted(self.pending_folder.glob("*.json")):
            lock = FileLock(str(note) + ".lock", is_singleton=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # its writer is still running
            try:
                if note.exists():
                    event = json.loads(note.read_text(encoding="ascii"))
                    self.append({**event, "interrupted": True})
                    note.unlink()
                    recovered += 1
            finally:
                lock.release()
                Path(str(note) + ".lock").unlink(missing_ok=True)
        return recovered

    def _append_locked(self, event: Mapping[str, Any]) -> dict[str, Any]:
        created = not self.path.exists()
        with open(self.path, "a+b") as file:
            head = Head.read(self.path)
            intact = head is None or head.held_by(file)
            last_line, ends_with_newline = _last_line(file)
            record: dict[str, Any] = {
                **event,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "host": socket.gethostname(),
                "prev": GENESIS if last_line is None else sha256_hex(last_line),
            }
            record["hash"] = record_hash(record)
            line = canonical_json(record).encode("ascii") + b"\n"
            # After a writer died mid-line, start on a fresh line; verify() reports the torn one.
            if last_line is not None and not ends_with_newline:
                line = b"\n" + line
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
            if intact:
                Head(file.tell(), len(line.strip(b"\n")), sha256_hex(line.strip(b"\n"))).write(
                    self.path
                )
            else:  # keep the evidence: the head still says where the trail ended
                log.warning("audit.cut", extra={"fields": {"trail": str(self.path)}})
        if created:
            fsync_folder(self.path.parent)
        return record


@dataclass(frozen=True)
class Head:
    """Where the trail ended after the last append. Lines appended after it are fine (a run
    may die between its line and the head); a trail that no longer holds that last line at
    that place was cut or changed."""

    size: int
    last_length: int
    last_hash: str

    @staticmethod
    def path_for(trail: Path) -> Path:
        return trail.with_name(trail.name + ".head")

    @classmethod
    def read(cls, trail: Path) -> Head | None:
        try:
            doc = json.loads(cls.path_for(trail).read_text(encoding="ascii"))
            return cls(int(doc["size"]), int(doc["last_length"]), str(doc["last_hash"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable (a crash while replacing it): the next append rewrites it

    def write(self, trail: Path) -> None:
        path = self.path_for(trail)
        temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
        temporary.write_text(canonical_json(self.__dict__), encoding="ascii")
        replace_file(temporary, path)

    def held_by(self, file: BinaryIO) -> bool:
        start = self.size - self.last_length - 1  # where the last line began
        if start < 0 or file.seek(0, os.SEEK_END) < self.size:
            return False
        file.seek(max(start - 1, 0))
        data = file.read(self.size - max(start - 1, 0))
        line_start_ok = start == 0 or data[:1] == b"\n"
        line = data[-self.last_length - 1 : -1]
        return line_start_ok and data.endswith(b"\n") and sha256_hex(line) == self.last_hash


class PendingWrite:
    """A write in progress: a note (the audit event, row IDs and counts only) held under an OS
    lock that the operating system releases if the process dies."""

    def __init__(self, folder: Path, event: Mapping[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{uuid.uuid4().hex}.json"
        self._lock = FileLock(str(self.path) + ".lock", is_singleton=False)
        self._lock.acquire()
        with open(self.path, "w", encoding="ascii") as file:
            file.write(canonical_json(dict(event)))
            file.flush()
            os.fsync(file.fileno())

    def done(self) -> None:
        """The audit line is out (or nothing was written): forget the note."""
        self.path.unlink(missing_ok=True)
        self.abandon()
        Path(str(self.path) + ".lock").unlink(missing_ok=True)

    def abandon(self) -> None:
        """Keep the note for the next run to record, as if this process had died."""
        self._lock.release()


def _last_line(file: BinaryIO) -> tuple[bytes | None, bool]:
    """The last line's bytes (without newline) and whether the file ends with a newline."""
    end = file.seek(0, os.SEEK_END)
    if end == 0:
        return None, True
    file.seek(end - 1)
    ends_with_newline = file.read(1) == b"\n"
    position = end - 1 if ends_with_newline else end
    chunk = b""
    while position > 0 and b"\n" not in chunk:
        step = min(_TAIL_BLOCK, position)
        position -= step
        file.seek(position)
        chunk = file.read(step) + chunk
    return chunk.rsplit(b"\n", 1)[-1], ends_with_newline


def verify(path: Path) -> VerifyResult:
    path = Path(path)
    result = _verify_chain(path)
    if result.ok and not _holds_its_head(path):
        return VerifyResult(
            False,
            result.lines,
            result.lines + 1,
            f"lines were removed from the end: the trail no longer holds the line "
            f"{Head.path_for(path).name} recorded as its last",
        )
    return result


def _holds_its_head(path: Path) -> bool:
    head = Head.read(path)
    if head is None:
        return True
    if not path.exists():
        return False
    with open(path, "rb") as file:
        return head.held_by(file)


def _verify_chain(path: Path) -> VerifyResult:
    if not path.exists():
        return VerifyResult(True, 0, None, "no audit trail yet (file does not exist)")
    data = path.read_bytes()
    if not data:
        return VerifyResult(True, 0, None, "empty audit trail")
    lines = data.split(b"\n")
    torn_tail = lines[-1] != b""
    if not torn_tail:
        lines.pop()
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        problem = _line_problem(line, prev)
        if problem is None and torn_tail and number == len(lines):
            problem = "truncated line (no newline at the end)"
        if problem is not None:
            return VerifyResult(False, len(lines), number, problem)
        prev = sha256_hex(line)
    return VerifyResult(True, len(lines), None, "hash chain intact")


def _line_problem(line: bytes, expected_prev: str) -> str | None:
    record = _parse(line)
    if record is None:
        return "not a JSON object (truncated or garbled line)"
    if line != canonical_json(record).encode("ascii"):
        return "not in canonical form: the line was changed"
    if record.get("hash") != record_hash(record):
        return "hash mismatch: the line was changed"
    if record.get("prev") != expected_prev:
        return "prev mismatch: a line before it was removed, added or reordered"
    return None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        record = _parse(line)
        if record is None:
            raise InputError(
                f"{path}: line {number} is not a JSON object",
                hint="run `agii-sync audit verify`",
            )
        records.append(record)
    return records


def audit_event(
    *,
    actor: str,
    command: str,
    site: str | None,
    etag_before: str | None = None,
    etag_after: str | None = None,
    counts: Mapping[str, int] | None = None,
    rows: Iterable[AuditRow] = (),
) -> dict[str, Any]:
    """An event for ``AuditTrail.append``. ``rows`` are ``{"row_id", "reason"}`` mappings or
    ``(row_id, reason)`` pairs; reasons outside ``ROW_REASONS`` are refused."""
    return {
        "actor": actor,
        "command": command,
        "site": site,
        "etag_before": etag_before,
        "etag_after": etag_after,
        "counts": dict(counts or {}),
        "rows": [_audit_row(row) for row in rows],
    }


def _audit_row(row: AuditRow) -> dict[str, str]:
    if isinstance(row, tuple):
        row_id, reason = row
    else:
        # Only these two keys: anything else could carry personal data into the trail.
        if set(row) != {"row_id", "reason"}:
            raise ValueError("an audit row has exactly the keys row_id and reason")
        row_id, reason = row["row_id"], row["reason"]
    if reason not in ROW_REASONS:
        raise ValueError(f"unknown audit reason {reason!r}; one of {sorted(ROW_REASONS)}")
    return {"row_id": str(row_id), "reason": reason}


def current_actor(config: Config) -> str:
    """The app id for certificate (app-only) runs, else the OS account running the tool (a
    person who signs in with a device code is named by their UPN instead: Run.current_actor)."""
    if config.auth is not None and config.auth.method == "certificate":
        return f"app:{config.auth.client_id}"
    return f"user:{_os_user()}"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no user name in the environment nor passwd
        return "unknown"
