"""`agii-sync doctor` against the emulator: every check passes on an honest one, and each quirk
the emulator is started with is found and named."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fixtures.emulator import RunningEmulator
from fixtures.workspace import MUNICIPALITIES, ROWKEY_SECRET, Workspace

SPL = MUNICIPALITIES[0]["id"]
EVERY_CHECK = [
    "sign-in",
    "library",
    "folder",
    "read",
    "create",
    "read",
    "write-current",
    "check-out",
    "etag-after-write",
    "write-stale",
    "write-during-upload",
    "versions",
    "cleanup",
    "permissions",
]


@pytest.fixture
def on_emulator(
    tmp_path, monkeypatch: pytest.MonkeyPatch, emulator_factory: Callable[..., RunningEmulator]
) -> Callable[..., tuple[Workspace, RunningEmulator]]:
    monkeypatch.setenv("AGII_SYNC_ROWKEY_SECRET", ROWKEY_SECRET)
    monkeypatch.delenv("AGII_SYNC_CONFIG", raising=False)

    def start(*quirks: str, init: bool = True) -> tuple[Workspace, RunningEmulator]:
        running = emulator_factory(*(arg for q in quirks for arg in ("--quirk", q)))
        workspace = Workspace(
            tmp_path / f"ws-{len(quirks)}-{'-'.join(quirks)}", "emulator", running.url
        )
        workspace.root.mkdir()
        workspace.write_config()
        if init:
            assert workspace.cli("init", "--site", SPL).exit_code == 0
        return workspace, running

    return start


def doctor(workspace: Workspace) -> tuple[int, dict[str, Any], str]:
    result = workspace.cli("--json", "doctor", "--site", SPL)
    (site,) = json.loads(result.stdout)["sites"]
    human = workspace.cli("doctor", "--site", SPL).output
    return result.exit_code, site, human


def outcomes(site: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["check"]: (c["outcome"], c["quirk"]) for c in site["checks"]}


def test_every_check_passes_on_an_honest_emulator(on_emulator) -> None:  # type: ignore[no-untyped-def]
    workspace, running = on_emulator()
    code, site, human = doctor(workspace)
    assert code == 0, human
    assert [c["check"] for c in site["checks"]] == EVERY_CHECK
    assert all(c["outcome"] == "pass" for c in site["checks"])
    assert len(human.strip().splitlines()) == len(EVERY_CHECK) * 1
    folder = running.site_folder(SPL) / "Gedeelde documenten" / "Participatie traject"
    assert [p.name for p in folder.iterdir()] == ["inburgeraars.xlsx"]  # scratch file removed
    requests = running.stats()["requests"]
    assert requests["graph_delete"] == {"DELETE": 2}  # the scratch file, once per run
    assert running.stats()["responses"]["412"] == 4  # stale session and late commit, per run


@pytest.mark.parametrize(
    ("quirk", "check", "exit_code"),
    [
        ("ignore-if-match", "write-stale", 5),
        ("if-match-at-creation-only", "write-during-upload", 5),
        ("no-etag-after-write", "etag-after-write", 5),
        ("permissions-403", "permissions", 4),
        ("checked-out", "check-out", 5),
    ],
)
def test_each_quirk_is_found_and_named(on_emulator, quirk: str, check: str, exit_code: int) -> None:  # type: ignore[no-untyped-def]
    workspace, _ = on_emulator(quirk)
    code, site, human = doctor(workspace)
    assert code == exit_code
    failed = {name: q for name, (outcome, q) in outcomes(site).items() if outcome != "pass"}
    assert failed.get(check) == quirk, failed
    assert f"quirk: {quirk}" in human


def test_a_missing_library_is_named_with_the_libraries_there_are(on_emulator) -> None:  # type: ignore[no-untyped-def]
    workspace, running = on_emulator("missing-library", init=False)
    code, site, human = doctor(workspace)
    assert code == 2
    assert outcomes(site)["library"] == ("fail", "missing-library")
    assert "'Shared Documents'" in human and "quirk: missing-library" in human
    init = workspace.cli("init", "--site", SPL)
    assert init.exit_code == 2
    assert "'Shared Documents'" in init.output
    assert sorted(p.name for p in running.site_folder(SPL).iterdir() if p.is_dir()) == [
        ".emulator",
        "Shared Documents",
    ]  # nothing created at the site root


def test_several_quirks_are_each_named(on_emulator) -> None:  # type: ignore[no-untyped-def]
    workspace, _ = on_emulator("ignore-if-match", "no-etag-after-write", "permissions-403")
    code, site, human = doctor(workspace)
    assert code == 5
    named = {q for _, (outcome, q) in outcomes(site).items() if q}
    assert {"ignore-if-match", "no-etag-after-write", "permissions-403"} <= named
    assert "ask for: fullcontrol" in human


def test_a_folder_site_has_nothing_to_prove(workspace: Workspace) -> None:
    workspace.write_config()
    result = workspace.cli("--json", "doctor")
    assert result.exit_code == 0
    assert all(s["checks"][0]["outcome"] == "pass" for s in json.loads(result.stdout)["sites"])


DOCUMENTED = {  # emulator request kind -> how docs/sharepoint.md names that request
    "contextinfo": "POST /_api/contextinfo",
    "graph_site": "GET /sites/{hostname}:/{server-relative-path}",
    "graph_drives": "GET /sites/{site-id}/drives",
    "graph_item": "GET /drives/{drive-id}/root:/{item-path}",
    "graph_content": "GET /drives/{drive-id}/items/{item-id}/content",
    "download": "GET {@microsoft.graph.downloadUrl}",
    "upload_session": "/createUploadSession",
    "upload_put": "PUT {uploadUrl}",
    "upload_commit": "POST {uploadUrl}",
    "upload_cancel": "DELETE {uploadUrl}",
    "graph_children": "POST /drives/{drive-id}/items/{parent-id}/children",
    "graph_permissions": "GET /drives/{drive-id}/items/{item-id}/permissions",
    "graph_group_members": "GET /groups/{id}/members",
    "graph_delete": "DELETE /drives/{drive-id}/items/{item-id}",
    "versions": "/Versions",
    "versions_delete": "/Versions/DeleteAll()",
    "role_assignments": "RoleAssignments?$expand=",
    "site_users": "GET /_api/web/siteusers?$filter=IsSiteAdmin eq true",
    "list": "GET /_api/web/GetList(",
    "list_item": "/ListItemAllFields?$select=HasUniqueRoleAssignments",
    "group_users": "GET /_api/web/sitegroups/GetById(N)/users",
}


def test_every_request_the_backend_sends_is_in_docs_sharepoint_md(on_emulator) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    workspace, running = on_emulator()
    access = {
        "role_assignments": [
            {
                "principal": {"type": "sharepoint_group", "title": "Leden", "members": []},
                "roles": ["Edit"],
            },
            {
                "principal": {"type": "m365_group", "title": "Team", "id": "1234", "members": []},
                "roles": ["Edit"],
            },
        ],
        "unique_permissions": [
            {
                "scope": "folder",
                "path": "Gedeelde documenten/Participatie traject",
                "role_assignments": [],
            }
        ],
        "sharing_links": [{"kind": "organization", "roles": ["Read"]}],
    }
    (running.site_folder(SPL) / "_access.json").write_text(json.dumps(access), "utf-8")
    doctor(workspace)
    workspace.cli("access-check", "--site", SPL)
    workspace.cli("purge", "--site", SPL)
    docs = (Path(__file__).parent.parent / "docs" / "sharepoint.md").read_text()
    sent = set(running.stats()["requests"])
    assert "unsupported" not in sent
    assert sent <= DOCUMENTED.keys(), sent - DOCUMENTED.keys()
    assert [kind for kind in sorted(sent) if DOCUMENTED[kind] not in docs] == []
