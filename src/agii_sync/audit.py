"""The audit trail (docs/audit.md): hash-chained JSON lines, one per run and site.

Each line is the canonical JSON (sorted keys, compact, ASCII) of a record that carries
``prev``, the sha256 of the previous line's exact bytes (or ``GENESIS`` on the first line), and
``hash``, the sha256 of the canonical JSON of the record without ``hash``. An edited line breaks
its own ``hash``; a removed or reordered line breaks the next line's ``prev``.

Each line also carries ``seq``, its 1-based line number. Removing the last lines would leave a
valid, shorter chain, so every append also records where the trail ends in ``<trail>.head``
(size, and length and hash of the last line); ``verify`` reports a trail that no longer holds
that line there, and a head that is missing or damaged. Whoever can rewrite both files can
recompute them, so every site write also leaves an ``Anchor`` in the workbook on the site (the
trail's position when the write began and the write's id, which its audit line carries);
``check_anchors`` cross-checks the trail against them (docs/audit.md).

Write-ahead notes (``PendingWrite``) carry a keyed hash (HMAC-SHA256 with the key in
``<trail>.key``) over the event and the trail position they were written at: a note that is
damaged, forged or bound to another chain is reported, never appended.

Callers pass row keys (``Rij-ID``) and counts only: never a name, address, phone, e-mail or
dossier number.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, get_args

from filelock import FileLock, Timeout

from .atomic import write_atomically
from .config import Config
from .config_audit import ConfigState, config_hash
from .domain.plan import Reason
from .errors import ConfigError, InputError, SafetyStop, TemporaryFailure
from .portable import fsync_folder

log = logging.getLogger("agii_sync.audit")

GENESIS = "0" * 64
ROW_REASONS = frozenset(get_args(Reason))
CHAIN_FIELDS = frozenset({"time", "host", "seq", "prev", "hash"})
NOTE_FIELDS = frozenset({"v", "event", "anchor", "mac"})
NOTE_VERSION = 1
KEY_BYTES = 32
LOCK_TIMEOUT_SECONDS = 30
_TAIL_BLOCK = 64 * 1024

AuditRow = Mapping[str, str] | tuple[str, str]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    lines: int
    first_bad_line: int | None  # 1-based
    reason: str


class AuditUnwritable(SafetyStop):
    """The trail (or its note folder) cannot be written. Before any site write the engine
    turns this into a ``ConfigError`` (exit 2, nothing touched)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        where = exc.filename if isinstance(exc.filename, str) else path
        super().__init__(
            f"the audit trail cannot be written: {where} ({type(exc).__name__})",
            hint="make [agii] audit_log and its folder writable for this account (or free disk "
            "space), then run again",
        )

    def before_any_write(self) -> ConfigError:
        return ConfigError(self.message + "; nothing was touched", hint=self.hint)


class AuditKeyDamaged(SafetyStop):
    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"the audit note key {path} is damaged ({what})",
            hint="restore it from the backup; without it no write-ahead note can be checked",
        )


class NoteRejected(SafetyStop):
    """A write-ahead note that is damaged, forged or bound to another chain: never adopted."""

    def __init__(self, problem: NoteProblem) -> None:
        super().__init__(
            f"write-ahead note {problem.path}: {problem.reason}; it was not recorded",
            hint="a run that died while writing it never started its write; otherwise someone "
            "changed it. Look at it (`agii-sync audit verify` lists every note), check the "
            "site's workbook, then move the note out of that folder and run again",
        )


class HeadDamaged(ValueError):
    pass


@dataclass(frozen=True)
class Anchor:
    """What a site write leaves on the site (custom property ``agii-sync audit anchor`` of
    its workbook): the trail's last line when the write began (``seq`` 0 and ``GENESIS`` for
    an empty trail) and the write's id, which its audit line carries as ``write_id``."""

    seq: int
    hash: str
    write: str

    def text(self) -> str:
        return canonical_json({"v": 1, "seq": self.seq, "hash": self.hash, "write": self.write})

    @classmethod
    def parse(cls, text: str) -> Anchor:
        doc = json.loads(text)
        if not isinstance(doc, dict) or set(doc) != {"v", "seq", "hash", "write"}:
            raise ValueError("not an audit anchor")
        seq, line_hash, write = doc["seq"], doc["hash"], doc["write"]
        if type(seq) is not int or seq < 0 or not _is_hex(line_hash, 64) or not _is_hex(write, 32):
            raise ValueError("not an audit anchor")
        return cls(seq, line_hash, write)


def _is_hex(value: object, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value)
    )


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

    def __init__(
        self,
        path: Path,
        *,
        context: Mapping[str, Any] | None = None,
        config_state: ConfigState | None = None,
        actor: str = "",
    ) -> None:
        """``context`` is added to every line (the configuration's hash, an opt-out); with
        ``config_state``, a change of configuration is recorded before the first line."""
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.context = dict(context or {})
        self.config_state = config_state
        self.actor = actor

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        clashing = CHAIN_FIELDS & set(event)
        if clashing:
            raise ValueError(f"audit event may not set {sorted(clashing)}: the trail adds them")
        with self._locked():
            return self._append_locked(event)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(self.lock_path, timeout=LOCK_TIMEOUT_SECONDS):
                yield
        except Timeout:
            raise TemporaryFailure(
                f"the audit trail {self.path} stayed locked for {LOCK_TIMEOUT_SECONDS} s",
                hint="another agii-sync process is writing it; run again",
            ) from None
        except OSError as exc:
            raise AuditUnwritable(self.path, exc) from None

    def ensure_writable(self) -> None:
        """Before a command writes to any site: the trail, its note folder and its key must
        be writable, or nothing is touched."""
        with self._locked():
            with open(self.path, "ab"):
                pass
            try:
                self.pending_folder.mkdir(exist_ok=True)
                self.key(create=True)
            except OSError as exc:
                raise AuditUnwritable(self.pending_folder, exc) from None

    def key(self, *, create: bool = False) -> bytes | None:
        """The note key in ``<trail>.key`` (made on first use, readable by its owner only);
        None when there is none and ``create`` is false."""
        try:
            text = self.key_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            if not create:
                return None
            text = self._new_key()
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditKeyDamaged(self.key_path, type(exc).__name__) from None
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise AuditKeyDamaged(self.key_path, "not the 64 hex digits agii-sync wrote")
        return key

    def _new_key(self) -> str:
        """Written whole (temporary file, then rename), readable by its owner only. Callers
        hold the trail's lock, so two runs cannot each make one."""
        text = secrets.token_hex(KEY_BYTES)
        write_atomically(self.key_path, (text + "\n").encode("ascii"))
        return text

    def _note_key(self) -> bytes:
        key = self.key()
        if key is None:
            with self._locked():
                key = self.key(create=True)
        assert key is not None
        return key

    @property
    def key_path(self) -> Path:
        return self.path.with_name(self.path.name + ".key")

    def anchor(self) -> Anchor:
        """Where the trail ends now, and a new write id: what a site write leaves on the site."""
        with self._locked():
            seq, last_hash = 0, GENESIS
            if self.path.exists():
                with open(self.path, "rb") as file:
                    last_line, _ = _last_line(file)
                    if last_line is not None:
                        seq, last_hash = _next_seq(file, last_line) - 1, sha256_hex(last_line)
        return Anchor(seq, last_hash, uuid.uuid4().hex)

    @property
    def pending_folder(self) -> Path:
        return self.path.with_name(self.path.name + ".pending")

    def begin_write(self, event: Mapping[str, Any], anchor: Anchor) -> PendingWrite:
        """Write-ahead: note a site write before it happens, so a run killed between the write
        and its audit line still leaves a trace that the next run turns into a line."""
        event = {**event, "write_id": anchor.write}
        return PendingWrite(self.pending_folder, event, anchor, self._note_key())

    def recover_interrupted(self) -> Recovery:
        """Append the notes of writers that died (their lock is free) as audit lines marked
        ``interrupted``: the write may or may not have landed. Notes that are damaged, forged
        or bound to another chain are left where they are and returned as rejected."""
        recovery = Recovery()
        for note in self._free_notes():
            try:
                event, problem = self.inspect_note(note.path)
                if event is not None:
                    self.append({**event, "interrupted": True})
                    note.path.unlink()
                    recovery.recovered += 1
                elif problem is not None:
                    recovery.rejected.append(problem)
            finally:
                note.release()
        return recovery

    def pending_notes(self) -> list[tuple[Path, dict[str, Any] | None, NoteProblem | None]]:
        """Every note (of running writers too) with its event or what is wrong with it."""
        if not self.pending_folder.is_dir():
            return []
        return [(p, *self.inspect_note(p)) for p in sorted(self.pending_folder.glob("*.json"))]

    def _free_notes(self) -> Iterator[_HeldNote]:
        if not self.pending_folder.is_dir():
            return
        started = {path.name[: -len(".tmp")] for path in self.pending_folder.glob("*.json.tmp")}
        notes = {path.name for path in self.pending_folder.glob("*.json")}
        for name in sorted(notes | started):
            path = self.pending_folder / name
            lock = FileLock(str(path) + ".lock", is_singleton=False)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # its writer is still running
            except OSError as exc:
                raise AuditUnwritable(self.pending_folder, exc) from None
            # A note never completed: its writer died before the write it was for.
            _note_temp(path).unlink(missing_ok=True)
            if not path.exists():
                _HeldNote(path, lock).release()
                continue
            yield _HeldNote(path, lock)

    def inspect_note(self, path: Path) -> tuple[dict[str, Any] | None, NoteProblem | None]:
        """The event of a sound note, or what is wrong with it; (None, None) once it is gone."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, NoteProblem(path, f"cannot be read ({type(exc).__name__})")
        note, damage = _parse_note(data)
        if note is None:
            return None, NoteProblem(path, damage)
        try:
            key = self.key()
        except AuditKeyDamaged as error:
            return None, NoteProblem(path, f"cannot be checked: {error.message}")
        if key is None or not hmac.compare_digest(note["mac"], _note_mac(key, note)):
            return None, NoteProblem(path, "its keyed hash does not match: forged or changed")
        anchor = note["anchor"]
        if not self._holds(anchor["seq"], anchor["hash"]):
            return None, NoteProblem(
                path, f"it is bound to line {anchor['seq']}, which this trail does not hold"
            )
        return note["event"], None

    def _holds(self, seq: int, line_hash: str) -> bool:
        if seq == 0:
            return line_hash == GENESIS
        return line_hash_at(self.path, seq) == line_hash

    def _append_locked(self, event: Mapping[str, Any]) -> dict[str, Any]:
        created = not self.path.exists()
        # The run that notices a changed configuration records it, as the line it precedes
        # names that run's actor (a person signed in meanwhile, not the OS account).
        actor = str(event.get("actor") or self.actor)
        change = self.config_state.change_event(actor) if self.config_state else None
        with open(self.path, "a+b") as file:
            last_line, _ = _last_line(file)
            intact = _head_intact(self.path, file, last_line)
            if change is not None:
                self._write(file, change, intact=intact)
            record = self._write(file, event, intact=intact)
        if change is not None and self.config_state is not None:
            self.config_state.recorded()
        if created:
            fsync_folder(self.path.parent)
        return record

    def _write(self, file: BinaryIO, event: Mapping[str, Any], *, intact: bool) -> dict[str, Any]:
        last_line, ends_with_newline = _last_line(file)
        record: dict[str, Any] = {
            **self.context,
            **event,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "host": socket.gethostname(),
            "seq": 1 if last_line is None else _next_seq(file, last_line),
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
        """The head, or None when there is none. It is replaced whole (a rename), so one that
        cannot be read was damaged by someone: ``HeadDamaged``."""
        try:
            doc = json.loads(cls.path_for(trail).read_text(encoding="ascii"))
            return cls(int(doc["size"]), int(doc["last_length"]), str(doc["last_hash"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            name = cls.path_for(trail).name
            raise HeadDamaged(f"{name} is damaged ({type(exc).__name__})") from None

    def write(self, trail: Path) -> None:
        # Synced like the line it follows: a head older than the trail reads as lines cut off.
        write_atomically(self.path_for(trail), canonical_json(self.__dict__).encode("ascii"))

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

    def __init__(self, folder: Path, event: Mapping[str, Any], anchor: Anchor, key: bytes) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"{anchor.write}.json"
            self._lock = FileLock(str(self.path) + ".lock", is_singleton=False)
            self._lock.acquire()
            note = {
                "v": NOTE_VERSION,
                "event": dict(event),
                "anchor": {"seq": anchor.seq, "hash": anchor.hash},
            }
            note["mac"] = _note_mac(key, note)
            # Whole or not at all: a run killed mid-note leaves only a temporary file.
            content = canonical_json(note).encode("ascii")
            write_atomically(self.path, content, temp=_note_temp(self.path))
        except OSError as exc:
            raise AuditUnwritable(folder, exc) from None

    def done(self) -> None:
        """The audit line is out (or nothing was written): forget the note."""
        self.path.unlink(missing_ok=True)
        self.abandon()
        Path(str(self.path) + ".lock").unlink(missing_ok=True)

    def abandon(self) -> None:
        """Keep the note for the next run to record, as if this process had died."""
        self._lock.release()


def _note_temp(note: Path) -> Path:
    return note.with_name(note.name + ".tmp")


@dataclass
class _HeldNote:
    path: Path
    lock: FileLock

    def release(self) -> None:
        self.lock.release()
        Path(str(self.path) + ".lock").unlink(missing_ok=True)


@dataclass
class Recovery:
    recovered: int = 0
    rejected: list[NoteProblem] = field(default_factory=list)


@dataclass(frozen=True)
class NoteProblem:
    path: Path
    reason: str

    def error(self) -> NoteRejected:
        return NoteRejected(self)


def _parse_note(data: bytes) -> tuple[dict[str, Any] | None, str]:
    if not data.strip():
        return None, "it is empty"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None, "it is not ASCII text"
    try:
        note = json.loads(text)
    except ValueError:
        return None, "it is not complete JSON (truncated or garbled)"
    if not isinstance(note, dict):
        return None, "it is not a JSON object"
    if (
        set(note) != NOTE_FIELDS
        or note["v"] != NOTE_VERSION
        or not isinstance(note["event"], dict)
        or not isinstance(note["mac"], str)
        or not _is_position(note["anchor"])
    ):
        return None, "it is not a write-ahead note of this agii-sync version"
    return note, ""


def _is_position(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"seq", "hash"}
        and type(value["seq"]) is int
        and value["seq"] >= 0
        and isinstance(value["hash"], str)
    )


def _note_mac(key: bytes, note: Mapping[str, Any]) -> str:
    signed = {k: v for k, v in note.items() if k != "mac"}
    return hmac.new(key, canonical_json(signed).encode("ascii"), hashlib.sha256).hexdigest()


def _next_seq(file: BinaryIO, last_line: bytes) -> int:
    """The sequence number of the line after ``last_line``: from its ``seq``, or (a trail
    begun by an older version) by counting lines, once."""
    record = _parse(last_line)
    seq = record.get("seq") if record else None
    if type(seq) is int and seq > 0:
        return seq + 1
    file.seek(0)
    count = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    ends_with_newline = file.seek(0, os.SEEK_END) == 0 or _ends_with_newline(file)
    return count + (1 if ends_with_newline else 2)


def _ends_with_newline(file: BinaryIO) -> bool:
    file.seek(-1, os.SEEK_END)
    return file.read(1) == b"\n"


def _head_intact(path: Path, file: BinaryIO, last_line: bytes | None) -> bool:
    """Whether the trail still ends where its head says. A trail of this version with no head
    lost it (it is written with the first line): as suspicious as a head it does not hold."""
    try:
        head = Head.read(path)
    except HeadDamaged:
        return False
    if head is None:
        record = _parse(last_line) if last_line is not None else None
        return record is None or "seq" not in record
    return head.held_by(file)


def line_hash_at(path: Path, seq: int) -> str | None:
    """The sha256 of line ``seq`` (1-based) of the trail, or None when it has fewer lines."""
    if seq < 1 or not path.exists():
        return None
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            if number == seq:
                return sha256_hex(line.rstrip(b"\n")) if line.endswith(b"\n") else None
    return None


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
    problem = _head_problem(path) if result.ok else None
    if problem is not None:
        return VerifyResult(False, result.lines, result.lines + 1, problem)
    return result


def _head_problem(path: Path) -> str | None:
    name = Head.path_for(path).name
    try:
        head = Head.read(path)
    except HeadDamaged as damaged:
        return f"{damaged}: it no longer says where the trail ends (lines may have been cut)"
    if head is None:
        if _ends_with_sequenced_line(path):
            return (
                f"{name} is missing: it is written with the first line, so someone removed it "
                "(lines may have been cut off the end with it)"
            )
        return None
    if not path.exists():
        return f"the trail is gone but {name} says it had lines"
    with open(path, "rb") as file:
        if head.held_by(file):
            return None
    return f"lines were removed from the end: the trail no longer holds the line {name} recorded"


def _ends_with_sequenced_line(path: Path) -> bool:
    if not path.exists():
        return False
    with open(path, "rb") as file:
        last_line, _ = _last_line(file)
    record = _parse(last_line) if last_line is not None else None
    return record is not None and "seq" in record


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
        problem = _line_problem(line, prev, number)
        if problem is None and torn_tail and number == len(lines):
            problem = "truncated line (no newline at the end)"
        if problem is not None:
            return VerifyResult(False, len(lines), number, problem)
        prev = sha256_hex(line)
    return VerifyResult(True, len(lines), None, "hash chain intact")


def _line_problem(line: bytes, expected_prev: str, number: int) -> str | None:
    record = _parse(line)
    if record is None:
        return "not a JSON object (truncated or garbled line)"
    if line != canonical_json(record).encode("ascii"):
        return "not in canonical form: the line was changed"
    if record.get("hash") != record_hash(record):
        return "hash mismatch: the line was changed"
    if record.get("prev") != expected_prev:
        return "prev mismatch: a line before it was removed, added or reordered"
    if "seq" in record and record["seq"] != number:
        return f"sequence number {record['seq']} on line {number}: lines were removed or added"
    return None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True)
class SiteAnchor:
    """What ``audit verify --sites`` found on a site: whether it has a workbook, and the text
    of its anchor property (None when it has none)."""

    site: str
    has_workbook: bool
    text: str | None


@dataclass(frozen=True)
class AnchorCheck:
    site: str
    state: str  # ok, pending, no_workbook, no_anchor | cut, write_missing, damaged, removed
    message: str
    missing_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("ok", "pending", "no_workbook", "no_anchor")


def check_anchors(
    path: Path, found: Iterable[SiteAnchor], pending_writes: Iterable[str] = ()
) -> list[AnchorCheck]:
    """Cross-check the trail with the anchors on the sites: the trail must still hold the line
    each anchor names, and the audit line of the write that left it (or its sound write-ahead
    note, in ``pending_writes``)."""
    lines = _indexed_lines(Path(path))
    pending = set(pending_writes)
    return [_check_anchor(found_on_site, lines, pending) for found_on_site in found]


@dataclass(frozen=True)
class _Line:
    seq: int
    hash: str
    site: object
    write_id: object


def _indexed_lines(path: Path) -> list[_Line]:
    if not path.exists():
        return []
    with open(path, "rb") as file:
        lines = []
        for number, raw in enumerate(file, start=1):
            line = raw.rstrip(b"\n")
            record = _parse(line) or {}
            lines.append(
                _Line(number, sha256_hex(line), record.get("site"), record.get("write_id"))
            )
        return lines


def _check_anchor(found: SiteAnchor, lines: list[_Line], pending: set[str]) -> AnchorCheck:
    site = found.site
    writes = [line for line in lines if line.site == site and line.write_id is not None]
    if not found.has_workbook:
        return AnchorCheck(site, "no_workbook", f"{site}: no workbook on the site")
    if found.text is None:
        if writes:
            return AnchorCheck(
                site,
                "removed",
                f"{site}: the trail records an anchored write to it (line {writes[-1].seq}) but "
                "its workbook carries no anchor: the workbook was replaced or the anchor removed",
            )
        return AnchorCheck(site, "no_anchor", f"{site}: no anchor yet (no write since anchors)")
    try:
        anchor = Anchor.parse(found.text)
    except ValueError:
        return AnchorCheck(site, "damaged", f"{site}: its audit anchor is not readable")
    if anchor.seq > 0:
        held = lines[anchor.seq - 1] if anchor.seq <= len(lines) else None
        if held is None or held.hash != anchor.hash:
            what = "does not hold" if held is None else "holds another"
            return AnchorCheck(
                site,
                "cut",
                f"{site}: the trail {what} line {anchor.seq}, which the site's anchor records "
                f"as the trail's last line before its last write: the trail was cut or changed",
                anchor.seq,
            )
    if any(w.write_id == anchor.write and w.seq > anchor.seq for w in writes):
        return AnchorCheck(site, "ok", f"{site}: anchor at line {anchor.seq} holds")
    if anchor.write in pending:
        return AnchorCheck(site, "pending", f"{site}: its last write is in a write-ahead note")
    return AnchorCheck(
        site,
        "write_missing",
        f"{site}: the trail lacks the audit line of the site's last write (write "
        f"{anchor.write}, line {anchor.seq + 1} or later): lines were cut off the trail",
        anchor.seq + 1,
    )


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


def trail_for(config: Config, actor: str) -> AuditTrail:
    """The configured trail, with every line tied to this configuration (docs/protocol.md,
    art. 6): its hash, and an opt-out of the access check before pushes spelled out."""
    context: dict[str, Any] = {"config": config_hash(config)}
    if not config.agii.require_access_check:
        context["access_check_opt_out"] = True
    return AuditTrail(
        config.audit_log,
        context=context,
        config_state=ConfigState(config.audit_log, config),
        actor=actor,
    )
