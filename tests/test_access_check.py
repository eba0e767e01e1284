"""access-check, and push guarded by ``require_access_check``, through the CLI on every site kind.

The workspace config allows ``staff@<site id>.be`` on each site; ``_access.json`` is written
into the site's folder (file sites) or the emulator's folder for the site.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL, MECHELEN, GENK = (m["id"] for m in MUNICIPALITIES)

pytestmark = pytest.mark.parametrize("site_kind", ["file", "emulator"], indirect=True)

AccessWriter = Callable[..., None]


def user(name: str, domain: str) -> dict[str, str]:
    return {
        "type": "user",
        "title": name.replace(".", " ").title(),
        "login": f"i:0#.f|membership|{name}@{domain}",
        "email": f"{name}@{domain}",
    }


def staff(site: str) -> dict[str, str]:
    return user("staff", f"{site}.be")


def assigned(principal: dict[str, Any], *roles: str) -> dict[str, Any]:
    return {"principal": principal, "roles": list(roles or ["Contribute"])}


def group(title: str, *members: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sharepoint_group", "title": title, "members": list(members)}


EVERYONE_EXCEPT_EXTERNAL = {
    "type": "security_group",
    "title": "Everyone except external users",
    "login": "c:0-.f|rolemanager|spo-grid-all-users/0f2e1c1d-aaaa-bbbb-cccc-123456789abc",
}
GUEST = {
    "type": "user",
    "title": "Gast Buiten",
    "login": "i:0#.f|membership|gast_buiten.be#ext#@agii.onmicrosoft.com",
    "email": "gast@buiten.be",
}


@pytest.fixture
def write_access(workspace: Workspace, request: pytest.FixtureRequest) -> AccessWriter:
    def folder(site: str) -> Path:
        if workspace.kind == "emulator":
            return request.getfixturevalue("emulator").site_folder(site)
        return workspace.root / "sites" / site

    def write(site: str, *assignments: dict[str, Any], links: tuple[str, ...] = ()) -> None:
        path = folder(site) / "_access.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "role_assignments": list(assignments),
            "sharing_links": [{"kind": kind, "roles": ["Read"]} for kind in links],
        }
        path.write_text(json.dumps(data), encoding="utf-8")

    for m in MUNICIPALITIES:  # every site starts as it should be
        write(m["id"], assigned(staff(m["id"])))
    return write


def check(ws: Workspace, *sites: str) -> tuple[int, dict[str, Any]]:
    result = ws.cli("--json", "access-check", *(arg for s in sites for arg in ("--site", s)))
    return result.exit_code, json.loads(result.stdout)


def allow(ws: Workspace, monkeypatch: pytest.MonkeyPatch, site: str, *entries: str) -> None:
    """Add entries to a site's ``allowed`` (the workspace config allows only its staff)."""
    write_config = ws.write_config

    def write() -> Path:
        path = write_config()
        before = f'allowed = ["staff@{site}.be"]'
        after = f"allowed = {json.dumps([f'staff@{site}.be', *entries])}"
        path.write_text(path.read_text().replace(before, after), encoding="utf-8")
        return path

    monkeypatch.setattr(ws, "write_config", write)


def site_doc(doc: dict[str, Any], site: str) -> dict[str, Any]:
    return next(s for s in doc["sites"] if s["site"] == site)


def codes(doc: dict[str, Any], site: str) -> list[tuple[str, str, str | None]]:
    return [(f["code"], f["title"], f["via"]) for f in site_doc(doc, site)["findings"]]


def test_sites_matching_their_allow_list_pass(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    code, doc = check(workspace)
    assert code == 0
    assert doc["command"] == "access-check" and doc["exit_code"] == 0
    for m in MUNICIPALITIES:
        site = site_doc(doc, m["id"])
        assert site["findings"] == [] and site["exit_code"] == 0
        assert site["counts"] == {"critical": 0, "unexpected": 0, "missing": 0}


def test_allowed_entry_matches_login_case_insensitively(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    only_login = {"type": "user", "title": "Staff", "login": "i:0#.f|membership|STAFF@genk.be"}
    write_access(GENK, assigned(only_login))
    assert check(workspace, GENK)[0] == 0


def test_extra_user_is_unexpected(workspace: Workspace, write_access: AccessWriter) -> None:
    write_access(SPL, assigned(staff(SPL)), assigned(user("piet.extra", "spl.be"), "Edit"))
    code, doc = check(workspace, SPL)
    assert code == 1
    (finding,) = site_doc(doc, SPL)["findings"]
    assert finding.pop("message")
    assert finding == {
        "kind": "unexpected",
        "code": "unexpected_user",
        "severity": "warning",
        "title": "Piet Extra",
        "login": "i:0#.f|membership|piet.extra@spl.be",
        "email": "piet.extra@spl.be",
        "type": "user",
        "roles": ["Edit"],
        "via": None,
        "scope": "site",
    }
    assert site_doc(doc, SPL)["counts"] == {"critical": 0, "unexpected": 1, "missing": 0}


def test_member_of_a_group_not_allowed_is_reported_with_the_group(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    leden = group("PNT Leden", staff(SPL), user("an.claes", "spl.be"))
    write_access(SPL, assigned(leden, "Edit"))
    code, doc = check(workspace, SPL)
    assert code == 1
    assert codes(doc, SPL) == [("unexpected_group_member", "An Claes", "PNT Leden")]
    assert site_doc(doc, SPL)["findings"][0]["roles"] == ["Edit"]
    principals = {(p["title"], p["via"]): p["allowed_by"] for p in site_doc(doc, SPL)["principals"]}
    assert principals[("Staff", "PNT Leden")] == f"staff@{SPL}.be"  # staff counts as present


def test_allowed_group_covers_its_members(
    workspace: Workspace, write_access: AccessWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow(workspace, monkeypatch, SPL, "pnt leden")
    leden = group("PNT Leden", user("an.claes", "spl.be"), GUEST)
    write_access(SPL, assigned(staff(SPL)), assigned(leden, "Edit"))
    code, doc = check(workspace, SPL)
    assert code == 0, doc
    vias = {p["title"]: p["allowed_by"] for p in site_doc(doc, SPL)["principals"] if p["via"]}
    assert vias == {"An Claes": "pnt leden", "Gast Buiten": "pnt leden"}


def test_guest_named_in_allowed_passes(
    workspace: Workspace, write_access: AccessWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow(workspace, monkeypatch, GENK, "GAST@buiten.be")
    write_access(GENK, assigned(staff(GENK)), assigned(GUEST))
    assert check(workspace, GENK)[0] == 0


def test_security_group_not_allowed_is_unexpected_as_a_whole(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    team = {"type": "security_group", "title": "Team Welzijn", "login": "c:0t.c|tenant|1234"}
    write_access(GENK, assigned(staff(GENK)), assigned(team, "Read"))
    code, doc = check(workspace, GENK)
    assert code == 1
    assert codes(doc, GENK) == [("unexpected_group", "Team Welzijn", None)]


def test_everyone_except_external_users_is_critical(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(MECHELEN, assigned(staff(MECHELEN)), assigned(EVERYONE_EXCEPT_EXTERNAL, "Read"))
    code, doc = check(workspace, MECHELEN)
    assert code == 5  # critical: an incident (protocol art. 6)
    (finding,) = site_doc(doc, MECHELEN)["findings"]
    assert (finding["code"], finding["severity"], finding["type"]) == (
        "everyone",
        "critical",
        "security_group",
    )
    assert site_doc(doc, MECHELEN)["counts"]["critical"] == 1


def test_everyone_inside_a_group_is_critical(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(MECHELEN, assigned(group("Bezoekers", staff(MECHELEN), EVERYONE_EXCEPT_EXTERNAL)))
    code, doc = check(workspace, MECHELEN)
    assert code == 5  # critical: an incident (protocol art. 6)
    assert codes(doc, MECHELEN) == [("everyone", "Everyone except external users", "Bezoekers")]


def test_guest_account_is_critical(workspace: Workspace, write_access: AccessWriter) -> None:
    write_access(GENK, assigned(staff(GENK)), assigned(GUEST, "Read"))
    code, doc = check(workspace, GENK)
    assert code == 5  # critical: an incident (protocol art. 6)
    (finding,) = site_doc(doc, GENK)["findings"]
    assert (finding["code"], finding["severity"]) == ("guest", "critical")


def test_anonymous_and_organisation_links_are_critical(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(SPL, assigned(staff(SPL)), links=("anonymous", "organization", "specific"))
    code, doc = check(workspace, SPL)
    assert code == 5  # critical: an incident (protocol art. 6)
    found = [(f["code"], f["type"], f["roles"]) for f in site_doc(doc, SPL)["findings"]]
    assert found == [("anonymous_link", "link", ["Read"]), ("organization_link", "link", ["Read"])]
    assert [link["kind"] for link in site_doc(doc, SPL)["sharing_links"]] == [
        "anonymous",
        "organization",
        "specific",
    ]


def test_link_kinds_match_loosely_and_an_unknown_kind_is_critical(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    kinds = (" Anonymous", "anyone", "Organisation", "Specific", "everybody")
    write_access(SPL, assigned(staff(SPL)), links=kinds)
    code, doc = check(workspace, SPL)
    assert code == 5  # critical: an incident (protocol art. 6)
    assert [f["code"] for f in site_doc(doc, SPL)["findings"]] == [
        "anonymous_link",
        "anonymous_link",
        "organization_link",
        "unknown_link",
    ]


def test_allowed_user_without_access_is_missing(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(GENK, assigned(user("someone.else", "genk.be")))
    code, doc = check(workspace, GENK)
    assert code == 1
    findings = site_doc(doc, GENK)["findings"]
    assert [(f["kind"], f["code"], f["title"]) for f in findings] == [
        ("unexpected", "unexpected_user", "Someone Else"),
        ("missing", "missing", f"staff@{GENK}.be"),
    ]
    assert site_doc(doc, GENK)["counts"] == {"critical": 0, "unexpected": 1, "missing": 1}


def test_table_output_names_site_code_principal_and_via(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(SPL, assigned(group("PNT Leden", user("an.claes", "spl.be")), "Edit"))
    result = workspace.cli("access-check", "--site", SPL)
    assert result.exit_code == 1
    for text in (
        "unexpected_group_member",
        "An Claes <an.claes@spl.be>",
        "PNT Leden",
        "Edit",
        "missing",
        f"staff@{SPL}.be",
    ):
        assert text in result.stdout


def test_audit_line_has_the_counts(workspace: Workspace, write_access: AccessWriter) -> None:
    write_access(SPL, assigned(GUEST), assigned(user("piet.extra", "spl.be")), links=("anonymous",))
    check(workspace)
    lines = {line["site"]: line for line in workspace.audit_lines() if "event" not in line}
    assert lines[SPL]["command"] == "access-check"
    assert lines[SPL]["exit_code"] == 5  # critical access: an incident
    assert lines[SPL]["counts"] == {"critical": 2, "unexpected": 1, "missing": 1, "principals": 2}
    assert lines[GENK]["counts"] == {"critical": 0, "unexpected": 0, "missing": 0, "principals": 1}
    assert "piet.extra" not in json.dumps(lines[SPL])


def test_push_checks_access_by_default_and_keeps_away_from_a_failing_site(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(MECHELEN, assigned(staff(MECHELEN)), assigned(EVERYONE_EXCEPT_EXTERNAL, "Read"))
    write_access(GENK, assigned(user("someone.else", "genk.be")))
    export = workspace.export([person(1, 0), person(2, 1), person(3, 2)])
    result = workspace.cli("--json", "push", str(export))
    assert result.exit_code == 5, result.output
    doc = json.loads(result.stdout)
    assert workspace.workbook_bytes(MECHELEN) is None
    assert workspace.workbook_bytes(GENK) is None
    assert [r["Naam"] for r in workspace.rows(SPL)] == ["Naamx0001q"]
    error = site_doc(doc, MECHELEN)["error"]
    assert error["type"] == "SafetyStop"
    assert "1 critical, 0 unexpected, 0 missing" in error["message"]
    assert "access-check" in error["hint"]


def test_missing_alone_does_not_block_push(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    write_access(SPL)  # nobody has access: nothing can leak
    result = workspace.cli("push", str(workspace.export([person(1, 0)])), "--site", SPL)
    assert result.exit_code == 0, result.output
    assert len(workspace.rows(SPL)) == 1


def test_without_require_access_check_push_ignores_access_and_every_line_says_so(
    workspace: Workspace, write_access: AccessWriter
) -> None:
    workspace.agii["require_access_check"] = False
    write_access(SPL, assigned(EVERYONE_EXCEPT_EXTERNAL))
    result = workspace.cli("push", str(workspace.export([person(1, 0)])), "--site", SPL)
    assert result.exit_code == 0, result.output
    lines = workspace.audit_lines()
    assert lines and all(line.get("access_check_opt_out") is True for line in lines)


# --- everything art. 4 and 6 care about: item level, admins, groups, inherited links ---------

FOLDER = "Gedeelde documenten/Participatie traject"
STRANGER = user("vreemde", "elders.be")


@pytest.fixture
def write_raw(workspace: Workspace, request: pytest.FixtureRequest) -> Callable[..., None]:
    """Writes a whole ``_access.json``, after ``init`` made the workbook and its folders."""

    def write(site: str, data: dict[str, Any]) -> None:
        workspace.write_config()
        assert workspace.cli("init", "--site", site).exit_code == 0
        if workspace.kind == "emulator":
            folder = request.getfixturevalue("emulator").site_folder(site)
        else:
            folder = workspace.root / "sites" / site
        data = {"role_assignments": [assigned(staff(site))], **data}
        (folder / "_access.json").write_text(json.dumps(data), encoding="utf-8")

    return write


def test_unique_permissions_on_a_folder_are_checked(
    workspace: Workspace, write_raw: Callable[..., None]
) -> None:
    unique = {"scope": "folder", "path": FOLDER, "role_assignments": [assigned(STRANGER, "Read")]}
    write_raw(SPL, {"unique_permissions": [unique]})
    code, doc = check(workspace, SPL)
    assert code == 1
    (finding,) = site_doc(doc, SPL)["findings"]
    assert (finding["code"], finding["email"], finding["scope"]) == (
        "unexpected_user",
        "vreemde@elders.be",
        "folder",
    )


def test_unique_permissions_on_the_workbook_and_library_are_checked(
    workspace: Workspace, write_raw: Callable[..., None]
) -> None:
    workbook = f"{FOLDER}/inburgeraars.xlsx"
    write_raw(
        SPL,
        {
            "unique_permissions": [
                {
                    "scope": "library",
                    "path": "Gedeelde documenten",
                    "role_assignments": [assigned(user("bib", "elders.be"), "Edit")],
                },
                {
                    "scope": "workbook",
                    "path": workbook,
                    "role_assignments": [assigned(STRANGER, "Read")],
                },
            ]
        },
    )
    code, doc = check(workspace, SPL)
    assert code == 1
    found = sorted((f["scope"], f["email"]) for f in site_doc(doc, SPL)["findings"])
    assert found == [("library", "bib@elders.be"), ("workbook", "vreemde@elders.be")]


def test_site_collection_admins_are_checked(
    workspace: Workspace, write_raw: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = user("beheerder", "agii.be")
    write_raw(SPL, {"site_admins": [admin, STRANGER]})
    allow(workspace, monkeypatch, SPL, "beheerder@agii.be")
    code, doc = check(workspace, SPL)
    assert code == 1
    (finding,) = site_doc(doc, SPL)["findings"]
    assert (finding["code"], finding["email"]) == ("unexpected_admin", "vreemde@elders.be")
    assert finding["roles"] == ["Site collection administrator"]


def test_links_inherited_from_a_folder_are_critical(
    workspace: Workspace, write_raw: Callable[..., None]
) -> None:
    write_raw(SPL, {"sharing_links": [{"kind": "anonymous", "roles": ["Read"], "on": FOLDER}]})
    code, doc = check(workspace, SPL)
    assert code == 5  # critical: an incident (protocol art. 6)
    (finding,) = site_doc(doc, SPL)["findings"]
    assert (finding["code"], finding["via"], finding["scope"]) == (
        "anonymous_link",
        "a folder above the workbook",
        "folder",
    )


def test_microsoft_365_group_members_are_checked_one_by_one(
    workspace: Workspace, write_raw: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = {
        "type": "m365_group",
        "title": "PNT team",
        "id": "6a1f0c2e-1111-2222-3333-444455556666",
        "members": [staff(SPL), STRANGER],
    }
    write_raw(SPL, {"role_assignments": [assigned(staff(SPL)), assigned(team, "Edit")]})
    code, doc = check(workspace, SPL)
    assert code == 1
    assert codes(doc, SPL) == [("unexpected_group_member", "Vreemde", "PNT team")]

    allow(workspace, monkeypatch, SPL, "PNT team")  # the group as a whole: AgII vouches for it
    assert check(workspace, SPL)[0] == 0


def test_limited_access_and_system_groups_are_not_strangers(
    workspace: Workspace, write_raw: Callable[..., None]
) -> None:
    system = {
        "type": "sharepoint_group",
        "title": "Limited Access System Group For Web x",
        "members": [STRANGER],
    }
    write_raw(
        SPL,
        {
            "role_assignments": [
                assigned(staff(SPL)),
                assigned(user("buur", "elders.be"), "Limited Access"),
                assigned(system, "Limited Access"),
            ]
        },
    )
    code, doc = check(workspace, SPL)
    assert code == 0, doc
    grants = [(g["title"], g["roles"]) for g in site_doc(doc, SPL)["principals"]]
    assert ("Buur", ["Limited Access"]) in grants


def test_a_refused_permissions_read_is_exit_4_with_the_grant_to_ask_for(
    workspace: Workspace, write_raw: Callable[..., None]
) -> None:
    if workspace.kind != "emulator":
        pytest.skip("a folder site has no grants")
    write_raw(SPL, {"app_grant": "write"})
    code, doc = check(workspace, SPL)
    assert code == 4
    site = site_doc(doc, SPL)
    assert site["findings"] == [] and site["error"]["type"] == "AccessRefused"
    assert "fullcontrol" in site["error"]["hint"]
    human = workspace.cli("access-check", "--site", SPL)
    assert human.exit_code == 4
    assert "fullcontrol" in human.output and " ok " not in f" {human.output} "
