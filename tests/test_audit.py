from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from agii_sync.audit import (
    GENESIS,
    AuditTrail,
    audit_event,
    current_actor,
    read,
    verify,
)
from agii_sync.config import AuthSection, Config
from agii_sync.errors import InputError


def event(n: int, **extra: object) -> dict:
    return audit_event(
        actor="app:client",
        command="push",
        site=f"site-{n}",
        etag_before=f'"{n}"',
        etag_after=f'"{n + 1}"',
        counts={"added": n},
        rows=[(f"ROW{n:02d}-AAAAA", "added")],
        **extra,
    )


@pytest.fixture
def trail_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "audit.jsonl"


def write_events(path: Path, count: int) -> None:
    trail = AuditTrail(path)
    for n in range(count):
        trail.append(event(n))


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_append_creates_folders_and_chains_lines(trail_path: Path) -> None:
    write_events(trail_path, 3)

    lines = lines_of(trail_path)
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    assert records[0]["prev"] == GENESIS
    assert records[1]["prev"] == hashlib.sha256(lines[0]).hexdigest()
    assert records[2]["prev"] == hashlib.sha256(lines[1]).hexdigest()
    assert {"time", "host", "actor", "command", "site", "counts", "rows"} <= set(records[0])
    assert records[0]["time"].endswith("+00:00")
    assert verify(trail_path).ok


def test_hash_covers_the_canonical_record_without_hash(trail_path: Path) -> None:
    record = AuditTrail(trail_path).append(event(1))

    without_hash = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(without_hash, sort_keys=True, separators=(",", ":"))
    assert record["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert read(trail_path) == [record]


def test_verify_reports_line_count_when_intact(trail_path: Path) -> None:
    write_events(trail_path, 5)

    result = verify(trail_path)

    assert (result.ok, result.lines, result.first_bad_line) == (True, 5, None)


def test_flipping_any_byte_of_a_line_names_that_line(trail_path: Path) -> None:
    write_events(trail_path, 5)
    lines = lines_of(trail_path)
    original = lines[2]

    for at in range(len(original)):
        flipped = original[:at] + bytes([original[at] ^ 0x01]) + original[at + 1 :]
        trail_path.write_bytes(b"\n".join([*lines[:2], flipped, *lines[3:]]) + b"\n")

        result = verify(trail_path)

        assert (result.ok, result.first_bad_line) == (False, 3), f"byte {at}"


def test_flipped_prev_or_hash_value_is_a_hash_mismatch(trail_path: Path) -> None:
    write_events(trail_path, 3)
    lines = lines_of(trail_path)
    record = json.loads(lines[1])
    record["prev"] = "f" * 64
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, 2)
    assert "hash mismatch" in result.reason


def test_rewritten_line_with_fresh_hash_breaks_the_next_prev(trail_path: Path) -> None:
    write_events(trail_path, 4)
    lines = lines_of(trail_path)
    record = json.loads(lines[1])
    record["counts"] = {"added": 999}
    without_hash = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(without_hash, sort_keys=True, separators=(",", ":"))
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, 3)
    assert "prev mismatch" in result.reason


def test_deleting_a_line_names_the_line_after_it(trail_path: Path) -> None:
    write_events(trail_path, 5)
    lines = lines_of(trail_path)
    del lines[1]
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line, result.lines) == (False, 2, 4)
    assert "prev mismatch" in result.reason


def test_deleting_the_first_line_is_caught(trail_path: Path) -> None:
    write_events(trail_path, 3)
    lines = lines_of(trail_path)[1:]
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    assert verify(trail_path).first_bad_line == 1


@pytest.mark.parametrize(("first", "second"), [(1, 2), (1, 3), (0, 4)])
def test_swapping_two_lines_names_the_first_swapped(
    trail_path: Path, first: int, second: int
) -> None:
    write_events(trail_path, 5)
    lines = lines_of(trail_path)
    lines[first], lines[second] = lines[second], lines[first]
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, first + 1)


def test_truncated_last_line_is_reported(trail_path: Path) -> None:
    write_events(trail_path, 3)
    data = trail_path.read_bytes()
    trail_path.write_bytes(data[:-20])

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, 3)
    assert "JSON" in result.reason


def test_missing_final_newline_is_reported(trail_path: Path) -> None:
    write_events(trail_path, 2)
    trail_path.write_bytes(trail_path.read_bytes()[:-1])

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, 2)
    assert "truncated" in result.reason


def test_garbage_line_in_the_middle_is_reported(trail_path: Path) -> None:
    write_events(trail_path, 3)
    lines = lines_of(trail_path)
    lines.insert(1, b"not json at all")
    trail_path.write_bytes(b"\n".join(lines) + b"\n")

    result = verify(trail_path)

    assert (result.ok, result.first_bad_line) == (False, 2)
    with pytest.raises(InputError, match="line 2"):
        read(trail_path)


@pytest.mark.parametrize("keep", [4, 1, 0])
def test_cutting_lines_off_the_end_is_caught(trail_path: Path, keep: int) -> None:
    write_events(trail_path, 5)
    lines = lines_of(trail_path)[:keep]
    trail_path.write_bytes(b"".join(line + b"\n" for line in lines))

    result = verify(trail_path)

    assert (result.ok, result.lines, result.first_bad_line) == (False, keep, keep + 1)
    assert "removed from the end" in result.reason


def test_a_cut_stays_visible_after_the_next_append(trail_path: Path) -> None:
    write_events(trail_path, 3)
    trail_path.write_bytes(b"".join(line + b"\n" for line in lines_of(trail_path)[:2]))

    AuditTrail(trail_path).append(event(9))

    assert not verify(trail_path).ok


def test_a_line_appended_after_the_head_was_written_is_fine(trail_path: Path) -> None:
    """A run that died between its audit line and the head leaves the trail longer."""
    write_events(trail_path, 2)
    head = trail_path.with_name("audit.jsonl.head")
    recorded = head.read_bytes()
    AuditTrail(trail_path).append(event(7))
    head.write_bytes(recorded)

    assert verify(trail_path).ok
    AuditTrail(trail_path).append(event(8))
    assert verify(trail_path).ok and verify(trail_path).lines == 4


def test_append_after_a_torn_line_starts_a_new_line(trail_path: Path) -> None:
    write_events(trail_path, 2)
    trail_path.write_bytes(trail_path.read_bytes()[:-10])  # a writer died mid-line

    AuditTrail(trail_path).append(event(9))

    lines = lines_of(trail_path)
    assert len(lines) == 3
    assert json.loads(lines[2])["site"] == "site-9"
    assert verify(trail_path).first_bad_line == 2


def test_long_lines_chain_across_read_blocks(trail_path: Path) -> None:
    trail = AuditTrail(trail_path)
    many_rows = [(f"R{n:04d}-XXXXX", "retention") for n in range(8000)]  # ~250 KB per line
    for n in range(3):
        trail.append(audit_event(actor="a", command="purge", site=f"s{n}", rows=many_rows))

    assert verify(trail_path).ok


def test_concurrent_appends_keep_the_chain(trail_path: Path) -> None:
    def worker(thread: int) -> None:
        trail = AuditTrail(trail_path)
        for n in range(50):
            trail.append(event(thread * 100 + n))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    result = verify(trail_path)
    assert (result.ok, result.lines) == (True, 200)
    assert len({r["site"] for r in read(trail_path)}) == 200


def test_one_trail_object_shared_by_threads(trail_path: Path) -> None:
    trail = AuditTrail(trail_path)
    threads = [
        threading.Thread(target=lambda: [trail.append(event(n)) for n in range(25)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert verify(trail_path).lines == 100
    assert verify(trail_path).ok


def test_missing_file_verifies_as_empty(tmp_path: Path) -> None:
    result = verify(tmp_path / "none.jsonl")

    assert (result.ok, result.lines) == (True, 0)
    assert read(tmp_path / "none.jsonl") == []


def test_event_may_not_set_chain_fields(trail_path: Path) -> None:
    with pytest.raises(ValueError, match="prev"):
        AuditTrail(trail_path).append({"command": "push", "prev": GENESIS})


def test_audit_event_refuses_unknown_reasons_and_extra_row_keys() -> None:
    with pytest.raises(ValueError, match="unknown audit reason"):
        audit_event(actor="a", command="push", site="s", rows=[("R1", "deleted")])
    with pytest.raises(ValueError, match="row_id and reason"):
        audit_event(
            actor="a",
            command="push",
            site="s",
            rows=[{"row_id": "R1", "reason": "added", "naam": "x"}],
        )


def test_audit_event_shape() -> None:
    result = audit_event(
        actor="user:steward",
        command="status-update",
        site="sint-pieters-leeuw",
        etag_before='"a"',
        etag_after='"b"',
        counts={"status_set": 1},
        rows=[{"row_id": "ABCDE-FGHJK", "reason": "status_set"}],
    )

    assert result == {
        "actor": "user:steward",
        "command": "status-update",
        "site": "sint-pieters-leeuw",
        "etag_before": '"a"',
        "etag_after": '"b"',
        "counts": {"status_set": 1},
        "rows": [{"row_id": "ABCDE-FGHJK", "reason": "status_set"}],
    }


def make_config(auth: AuthSection | None) -> Config:
    return Config.model_validate(
        {
            "auth": auth,
            "municipality": [
                {
                    "id": "x",
                    "name": "X",
                    "nis": "23077",
                    "postal_codes": ["1600"],
                    "site": "file:sites/x",
                    "protocol_start": "2024-01-01",
                    "protocol_end": "2024-12-31",
                    "allowed": ["staff@x.be"],
                }
            ],
        }
    )


def test_current_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "steward")
    certificate = AuthSection(
        tenant="t", client_id="abc-123", method="certificate", certificate_thumbprint="AB"
    )
    person = AuthSection(tenant="t", client_id="abc-123", method="device-code")

    assert current_actor(make_config(certificate)) == "app:abc-123"
    assert current_actor(make_config(person)) == "user:steward"
    assert current_actor(make_config(None)) == "user:steward"
