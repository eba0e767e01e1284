"""The anchored audit trail (issue 15): the trail's position is kept on every site written, so
a trail cut together with its head is caught by ``audit verify --sites``; write-ahead notes are
bound to the chain by a keyed hash; damaged notes and an unwritable trail are clear errors that
never block a read-only command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agii_sync.audit import GENESIS, Anchor, AuditTrail, sha256_hex
from agii_sync.formats import docprops, workbook
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SITES = [m["id"] for m in MUNICIPALITIES]
SPL, MECHELEN, GENK = SITES

both_kinds = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)


def trail_path(ws: Workspace) -> Path:
    return ws.root / "var" / "audit.jsonl"


def head_path(ws: Workspace) -> Path:
    return ws.root / "var" / "audit.jsonl.head"


def notes_folder(ws: Workspace) -> Path:
    return ws.root / "var" / "audit.jsonl.pending"


def anchor_on(ws: Workspace, site: str) -> Anchor:
    content = ws.workbook_bytes(site)
    assert content is not None
    text = docprops.read_property(content, docprops.ANCHOR_PROPERTY)
    assert text is not None, f"{site} carries no anchor"
    return Anchor.parse(text)


def pushed(ws: Workspace, people: int = 6) -> Workspace:
    export = ws.export([person(n, n % 3) for n in range(1, people + 1)])
    assert ws.cli("push", str(export)).exit_code == 0
    return ws


def cut_last_lines(ws: Workspace, count: int) -> list[bytes]:
    lines = trail_path(ws).read_bytes().split(b"\n")[:-1]
    trail_path(ws).write_bytes(b"".join(line + b"\n" for line in lines[:-count]))
    return lines


def verify_sites(ws: Workspace, *options: str) -> dict:
    result = ws.cli("--json", "audit", "verify", "--sites", *options)
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code
    return doc


# -- the anchor on the site ---------------------------------------------------------------


@both_kinds
def test_every_write_leaves_the_trail_position_and_its_write_id_on_the_site(
    workspace: Workspace,
) -> None:
    assert workspace.cli("init", "--site", SPL).exit_code == 0
    init_anchor = anchor_on(workspace, SPL)
    assert (init_anchor.seq, init_anchor.hash) == (0, GENESIS)  # the trail was empty
    pushed(workspace)
    lines = trail_path(workspace).read_bytes().split(b"\n")[:-1]
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for site in SITES:
        anchor = anchor_on(workspace, site)
        write_line = next(r for r in records if r.get("write_id") == anchor.write)
        assert write_line["site"] == site and write_line["command"] == "push"
        assert write_line["seq"] > anchor.seq >= 1
        assert sha256_hex(lines[anchor.seq - 1]) == anchor.hash
    doc = verify_sites(workspace)
    assert doc["exit_code"] == 0, doc
    assert {s["site"]: s["state"] for s in doc["sites"]} == dict.fromkeys(SITES, "ok")


def test_the_anchor_survives_the_municipality_editing_the_workbook(workspace: Workspace) -> None:
    pushed(workspace)
    before = anchor_on(workspace, SPL)
    row_id = workspace.rows(SPL)[0]["Rij-ID"]
    workspace.set_status_by_hand(SPL, row_id, "Gecontacteerd")  # Excel-like save (openpyxl)
    assert anchor_on(workspace, SPL) == before
    assert workspace.cli("audit", "verify", "--sites").exit_code == 0


# -- cuts ------------------------------------------------------------------------------------


@both_kinds
def test_a_trail_cut_together_with_its_head_fails_verify_sites(workspace: Workspace) -> None:
    """Issue 15: deleting the last lines together with ``<audit_log>.head`` passed verify."""
    pushed(workspace)
    last = json.loads(trail_path(workspace).read_bytes().split(b"\n")[-2])
    cut_last_lines(workspace, 1)
    head_path(workspace).unlink()
    doc = verify_sites(workspace)
    assert doc["exit_code"] == 1
    entry = next(s for s in doc["sites"] if s["site"] == last["site"])
    assert entry["state"] == "write_missing" and not entry["ok"]
    assert entry["missing_seq"] == anchor_on(workspace, last["site"]).seq + 1
    text = workspace.cli("audit", "verify", "--sites")
    assert text.exit_code == 1
    assert f"{last['site']}: the trail lacks the audit line" in text.output
    assert f"line {entry['missing_seq']} or later" in text.output


def test_a_cut_below_a_site_anchor_names_that_site_and_line(workspace: Workspace) -> None:
    assert workspace.cli("init").exit_code == 0  # three lines before the push's writes
    pushed(workspace)
    anchors = {site: anchor_on(workspace, site) for site in SITES}
    site, deepest = max(anchors.items(), key=lambda item: item[1].seq)
    assert deepest.seq >= 3
    lines = trail_path(workspace).read_bytes().split(b"\n")[:-1]
    kept = lines[: deepest.seq - 1]  # the line the anchor records is gone, and all after it
    trail_path(workspace).write_bytes(b"".join(line + b"\n" for line in kept))
    head_path(workspace).unlink()
    doc = verify_sites(workspace)
    assert doc["exit_code"] == 1
    entry = next(s for s in doc["sites"] if s["site"] == site)
    assert entry["state"] == "cut" and entry["missing_seq"] == deepest.seq
    assert f"does not hold line {deepest.seq}" in entry["message"]


def test_a_cut_trail_with_a_recomputed_head_passes_verify_but_not_verify_sites(
    workspace: Workspace,
) -> None:
    """The attacker on the AgII machine rewrites the head to match the cut trail: only the
    anchors on the sites tell."""
    from agii_sync.audit import Head

    pushed(workspace)
    cut_last_lines(workspace, 2)
    lines = trail_path(workspace).read_bytes().split(b"\n")[:-1]
    last = lines[-1]
    size = trail_path(workspace).stat().st_size
    Head(size, len(last), sha256_hex(last)).write(trail_path(workspace))
    assert workspace.cli("audit", "verify").exit_code == 0
    assert verify_sites(workspace)["exit_code"] == 1


@pytest.mark.parametrize("damage", ["delete", "empty", "garble"])
def test_a_head_deleted_emptied_or_garbled_fails_verify(workspace: Workspace, damage: str) -> None:
    pushed(workspace)
    if damage == "delete":
        head_path(workspace).unlink()
    else:
        head_path(workspace).write_bytes(b"" if damage == "empty" else b"{\x00garbled")
    result = workspace.cli("audit", "verify")
    assert result.exit_code == 1
    assert "audit.jsonl.head" in result.output
    assert "Traceback" not in result.output


def test_a_site_whose_anchor_was_removed_fails(workspace: Workspace) -> None:
    pushed(workspace)
    site = workspace.site(MECHELEN)
    snapshot = site.read()
    stripped = workbook.create_workbook("Inburgeraars", retention_months=6)  # no anchor
    site.write(stripped, snapshot.etag)
    doc = verify_sites(workspace, "--site", MECHELEN)
    assert doc["exit_code"] == 1
    assert [(s["site"], s["state"]) for s in doc["sites"]] == [(MECHELEN, "removed")]


# -- write-ahead notes -----------------------------------------------------------------------


def forged_note(ws: Workspace) -> Path:
    """A note as an attacker would plant it: any keys, no valid keyed hash."""
    folder = notes_folder(ws)
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / "0123456789abcdef0123456789abcdef.json"
    event = {"actor": "user:mallory", "command": "push", "site": SPL, "anything": "goes"}
    anchor = {"seq": 0, "hash": GENESIS}
    note.write_text(
        json.dumps({"v": 1, "event": event, "anchor": anchor, "mac": "0" * 64}), encoding="ascii"
    )
    return note


def test_a_forged_note_is_reported_never_adopted(workspace: Workspace) -> None:
    pushed(workspace)
    note = forged_note(workspace)
    export = workspace.export([person(1, 0)], "again.csv")
    result = workspace.cli("push", str(export))
    assert result.exit_code == 5, result.output
    assert str(note) in result.output and "forged" in result.output
    assert "internal error" not in result.output
    assert workspace.cli("check").exit_code == 0  # a read-only command still runs
    lines = workspace.audit_lines()
    assert not any(line.get("actor") == "user:mallory" or "anything" in line for line in lines)
    verified = workspace.cli("--json", "audit", "verify")
    assert verified.exit_code == 1
    assert json.loads(verified.stdout)["notes"][0]["file"] == str(note)
    assert note.exists()  # the evidence stays


def test_a_note_bound_to_another_chain_is_reported(workspace: Workspace) -> None:
    pushed(workspace)
    trail = AuditTrail(trail_path(workspace))
    fake_position = Anchor(2, sha256_hex(b"a line this trail never had"), "ab" * 16)
    trail.begin_write({"actor": "user:x", "command": "push", "site": SPL}, fake_position).abandon()
    result = workspace.cli("push", str(workspace.export([person(1, 0)], "again.csv")))
    assert result.exit_code == 5
    assert "bound to line 2" in result.output


DAMAGED_NOTES = {
    "empty": b"",
    "truncated": b'{"v":1,"event":{"actor":"user:x","comm',
    "non-ascii": '{"v":1,"event":{"actor":"Jos\u00e9"}}'.encode(),
    "not-an-object": b"[1, 2, 3]",
    "binary": b"\x00\xff\xfe garbage",
}


@pytest.mark.parametrize("damage", list(DAMAGED_NOTES))
def test_a_damaged_note_is_a_clear_error_naming_the_file_and_never_blocks_reading(
    workspace: Workspace, damage: str
) -> None:
    pushed(workspace)
    folder = notes_folder(workspace)
    note = folder / "fedcba9876543210fedcba9876543210.json"
    note.write_bytes(DAMAGED_NOTES[damage])
    for args in (("push", str(workspace.export([person(1, 0)], "b.csv"))), ("purge",)):
        result = workspace.cli(*args)
        assert result.exit_code == 5, (args, result.output)
        assert str(note) in result.output and "move the note out" in result.output
        assert "internal error" not in result.output
    assert workspace.cli("check").exit_code == 0
    assert workspace.cli("list", "--site", SPL).exit_code == 0
    assert workspace.cli("audit", "show").exit_code == 0
    verified = workspace.cli("audit", "verify")
    assert verified.exit_code == 1 and str(note) in verified.output
    note.unlink()  # what the hint says to do (moved away)
    assert workspace.cli("purge").exit_code == 0


# -- an unwritable trail ---------------------------------------------------------------------


def make_trail_unwritable(ws: Workspace) -> Path:
    """The trail's lock file is a folder: no account, root included, can write the trail."""
    blocker = ws.root / "var" / "audit.jsonl.lock"
    blocker.unlink(missing_ok=True)
    blocker.mkdir(parents=True)
    return blocker


def test_an_unwritable_trail_stops_a_write_before_anything_is_touched(
    workspace: Workspace,
) -> None:
    blocker = make_trail_unwritable(workspace)
    export = workspace.export([person(n, n % 3) for n in range(1, 4)])
    result = workspace.cli("push", str(export))
    assert result.exit_code == 2, result.output
    assert str(blocker) in result.output and "nothing was touched" in result.output
    assert "internal error" not in result.output
    assert all(workspace.workbook_bytes(site) is None for site in SITES)


def test_an_unwritable_trail_does_not_block_a_read_only_command(workspace: Workspace) -> None:
    pushed(workspace)
    make_trail_unwritable(workspace)
    result = workspace.cli("check")
    assert result.exit_code == 0, result.output
    assert "left no audit line" in result.output
    assert workspace.cli("list", "--site", SPL).exit_code == 0


# -- the document property itself ------------------------------------------------------------


def test_a_property_is_added_to_a_workbook_without_custom_properties_and_read_back() -> None:
    import io

    import openpyxl

    plain = workbook.create_workbook("Inburgeraars", retention_months=6)
    assert docprops.read_property(plain, docprops.ANCHOR_PROPERTY) is None
    anchored = docprops.set_property(plain, docprops.ANCHOR_PROPERTY, '{"a":"<&>"}')
    again = docprops.set_property(anchored, docprops.ANCHOR_PROPERTY, "second")
    assert docprops.read_property(again, docprops.ANCHOR_PROPERTY) == "second"
    book = openpyxl.load_workbook(io.BytesIO(again))
    assert [(p.name, p.value) for p in book.custom_doc_props] == [
        (docprops.ANCHOR_PROPERTY, "second")
    ]
    marked = workbook.create_workbook("Inburgeraars", retention_months=6, key_check="k")
    both = docprops.set_property(marked, docprops.ANCHOR_PROPERTY, "x")
    assert workbook.load(both, "Inburgeraars").key_check == "k"


def test_a_note_cut_short_by_a_kill_is_only_a_temporary_file_removed_by_the_next_run(
    workspace: Workspace,
) -> None:
    """Notes are written whole (temporary file, then rename): a run killed while writing one
    leaves no damaged note to stop the next run, only its temporary file."""
    pushed(workspace)
    half = notes_folder(workspace) / "00112233445566778899aabbccddeeff.json.tmp"
    half.write_bytes(b'{"v":1,"ev')
    assert workspace.cli("purge").exit_code == 0
    assert not half.exists()
    assert list(notes_folder(workspace).iterdir()) == []


def test_a_trail_deleted_with_its_head_fails_verify_sites(workspace: Workspace) -> None:
    pushed(workspace)
    trail_path(workspace).unlink()
    head_path(workspace).unlink()
    doc = verify_sites(workspace)
    assert doc["exit_code"] == 1
    assert {s["state"] for s in doc["sites"]} <= {"write_missing", "cut"}  # by anchor depth
    assert len(doc["sites"]) == 3 and not any(s["ok"] for s in doc["sites"])
