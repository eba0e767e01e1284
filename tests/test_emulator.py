"""The emulator, spoken to by the real office365 client library over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.files.file import File

from agii_sync.sites.sharepoint import dummy_graph_token, dummy_token
from fixtures.emulator import RunningEmulator

SITE = "testsite"
FOLDER = "Gedeelde documenten/O'Brien map"
NAME = "lijst 1.xlsx"


SP_TOKEN = dummy_token()["access_token"]
GRAPH_TOKEN = dummy_graph_token()["access_token"]


def client(emulator: RunningEmulator, token: str = SP_TOKEN) -> ClientContext:
    token_response = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    return ClientContext(emulator.site_url(SITE)).with_access_token(lambda: token_response)


def graph(emulator: RunningEmulator, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {GRAPH_TOKEN}", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return requests.request(
        method, f"{emulator.url}/v1.0/{path}", headers=headers, timeout=10, **kwargs
    )  # type: ignore[arg-type]


def server_url(path: str) -> str:
    return f"/sites/{SITE}/{path}"


def put_file(emulator: RunningEmulator, content: bytes, name: str = NAME) -> File:
    ctx = client(emulator)
    ctx.web.ensure_folder_path(FOLDER).execute_query()
    folder = ctx.web.get_folder_by_server_relative_path(server_url(FOLDER))
    return folder.files.add(name, content, overwrite=True).execute_query()


def etag_of(emulator: RunningEmulator, path: str = f"{FOLDER}/{NAME}") -> str:
    file = client(emulator).web.get_file_by_server_relative_path(server_url(path))
    return file.get().execute_query().properties["ETag"]


def status_of(error: pytest.ExceptionInfo[ClientRequestException]) -> int:
    return error.value.response.status_code


def test_prints_its_loopback_url_first(emulator: RunningEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    web = client(emulator).web.get().execute_query()
    assert web.url == emulator.site_url(SITE)  # the full URL, or the library misroutes


def test_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agii_sync.emulator", "--root", str(tmp_path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""


def test_files_live_at_their_path_inside_the_site_folder(emulator: RunningEmulator) -> None:
    put_file(emulator, b"hallo")
    on_disk = emulator.site_folder(SITE) / FOLDER / NAME
    assert on_disk.read_bytes() == b"hallo"
    assert File.open_binary(client(emulator), server_url(f"{FOLDER}/{NAME}")).content == b"hallo"


def test_a_file_placed_on_disk_is_served(emulator: RunningEmulator) -> None:
    target = emulator.site_folder(SITE) / "Gedeelde documenten" / "los.xlsx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"van schijf")
    path = server_url("Gedeelde documenten/los.xlsx")
    assert File.open_binary(client(emulator), path).content == b"van schijf"
    before = etag_of(emulator, "Gedeelde documenten/los.xlsx")
    target.write_bytes(b"buiten de emulator om gewijzigd")
    assert etag_of(emulator, "Gedeelde documenten/los.xlsx") != before


def test_etag_changes_on_every_write_and_versions_are_kept(emulator: RunningEmulator) -> None:
    file = put_file(emulator, b"v1")
    etags = [file.properties["ETag"]]
    ctx = client(emulator)
    path = server_url(f"{FOLDER}/{NAME}")
    response = File.save_binary(ctx, path, b"v2")
    etags.append(response.headers["ETag"])
    ctx.web.get_file_by_server_relative_path(path).save_binary_stream(b"v3").execute_query()
    etags.append(etag_of(emulator))
    etags.append(put_file(emulator, b"v4").properties["ETag"])
    assert len(set(etags)) == 4
    assert all(tag.startswith('"{') and tag.endswith(f'}},{n}"') for n, tag in enumerate(etags, 1))

    versions = ctx.web.get_file_by_server_relative_path(path).versions.get().execute_query()
    assert [v.properties["VersionLabel"] for v in versions] == ["1.0", "2.0", "3.0"]
    ctx.web.get_file_by_server_relative_path(path).versions.delete_all().execute_query()
    after = ctx.web.get_file_by_server_relative_path(path).versions.get().execute_query()
    assert len(after) == 0
    assert File.open_binary(ctx, path).content == b"v4"


def test_if_match_is_enforced_on_every_write_path(emulator: RunningEmulator) -> None:
    put_file(emulator, b"origineel")
    stale = '"{00000000-0000-0000-0000-000000000000},1"'
    path = server_url(f"{FOLDER}/{NAME}")

    def with_stale_etag() -> ClientContext:
        ctx = client(emulator)
        ctx.pending_request().before_execute(lambda r: r.set_header("If-Match", stale))
        return ctx

    with pytest.raises(ClientRequestException) as put:
        File.save_binary(with_stale_etag(), path, b"x")
    ctx = with_stale_etag()
    with pytest.raises(ClientRequestException) as stream:
        ctx.web.get_file_by_server_relative_path(path).save_binary_stream(b"x").execute_query()
    ctx = client(emulator)
    folder = ctx.web.get_folder_by_server_relative_path(server_url(FOLDER))
    folder.files.add(NAME, b"x", overwrite=True)
    ctx.before_execute(lambda r: r.set_header("If-Match", stale))
    with pytest.raises(ClientRequestException) as add:
        ctx.execute_query()

    assert [status_of(e) for e in (put, stream, add)] == [412, 412, 412]
    current = etag_of(emulator)
    ctx = client(emulator)
    ctx.pending_request().before_execute(lambda r: r.set_header("If-Match", current))
    File.save_binary(ctx, path, b"nieuw")
    assert File.open_binary(client(emulator), path).content == b"nieuw"


def test_add_without_overwrite_refuses_an_existing_file(emulator: RunningEmulator) -> None:
    put_file(emulator, b"eerst")
    folder = client(emulator).web.get_folder_by_server_relative_path(server_url(FOLDER))
    with pytest.raises(ClientRequestException) as error:
        folder.files.add(NAME, b"tweede", overwrite=False).execute_query()
    assert status_of(error) == 400


def test_a_locked_file_answers_423_until_unlocked(emulator: RunningEmulator) -> None:
    put_file(emulator, b"open in Excel")
    path = server_url(f"{FOLDER}/{NAME}")
    emulator.lock(path)
    with pytest.raises(ClientRequestException) as error:
        File.save_binary(client(emulator), path, b"overschreven")
    assert status_of(error) == 423
    assert "SPFileLockException" in error.value.code
    assert File.open_binary(client(emulator), path).content == b"open in Excel"
    emulator.unlock(path)
    File.save_binary(client(emulator), path, b"na sluiten")
    assert File.open_binary(client(emulator), path).content == b"na sluiten"


@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "percent-encoded"])
def test_lock_can_be_given_on_the_command_line(emulator_factory, encoded: bool) -> None:  # type: ignore[no-untyped-def]
    path = server_url(f"{FOLDER}/{NAME}")
    running = emulator_factory("--lock", quote(path) if encoded else path)
    put_file(running, b"x")  # creating is allowed; the lock is on writes to an existing file
    with pytest.raises(ClientRequestException) as error:
        File.save_binary(client(running), path, b"y")
    assert status_of(error) == 423


def test_range_requests(emulator: RunningEmulator) -> None:
    put_file(emulator, b"0123456789")
    file = client(emulator).web.get_file_by_server_relative_path(server_url(f"{FOLDER}/{NAME}"))
    result = file.get_content(start=4)
    file.context.execute_query()
    assert result.value == b"456789"


def test_chunked_upload(emulator: RunningEmulator) -> None:
    import io

    ctx = client(emulator)
    ctx.web.ensure_folder_path(FOLDER).execute_query()
    folder = ctx.web.get_folder_by_server_relative_path(server_url(FOLDER))
    content = bytes(range(256)) * 10
    folder.files.create_upload_session(
        io.BytesIO(content), chunk_size=1000, file_name="groot.bin"
    ).execute_query()
    assert File.open_binary(ctx, server_url(f"{FOLDER}/groot.bin")).content == content
    assert emulator.stats()["requests"]["upload_chunk"] == {"POST": 3}


def test_missing_files_and_tokens(emulator: RunningEmulator) -> None:
    missing = client(emulator).web.get_file_by_server_relative_path(server_url("nope.xlsx"))
    with pytest.raises(ClientRequestException) as not_found:
        missing.get().execute_query()
    assert status_of(not_found) == 404
    denied = client(emulator, token="denied-for-test").web.get()
    with pytest.raises(ClientRequestException) as forbidden:
        denied.execute_query()
    assert status_of(forbidden) == 403
    anonymous = requests.get(f"{emulator.site_url(SITE)}/_api/Web", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"]["lang"] == "en-US"


ACCESS = {
    "role_assignments": [
        {
            "principal": {
                "type": "user",
                "title": "Jan Peeters",
                "login": "i:0#.f|membership|jan@example.org",
                "email": "jan@example.org",
            },
            "roles": ["Contribute"],
        },
        {
            "principal": {
                "type": "sharepoint_group",
                "title": "PNT Leden",
                "members": [
                    {"type": "user", "title": "An Claes", "login": "i:0#.f|membership|an@x.org"},
                    {"type": "security_group", "title": "Team", "login": "c:0t.c|tenant|1"},
                ],
            },
            "roles": ["Edit"],
        },
        {
            "principal": {"type": "security_group", "title": "Everyone", "login": "c:0-.f|x"},
            "roles": ["Read"],
        },
    ],
    "sharing_links": [{"kind": "anonymous", "roles": ["Read"]}],
}


def test_permissions_come_from_access_json(emulator: RunningEmulator) -> None:
    folder = emulator.site_folder(SITE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_access.json").write_text(json.dumps(ACCESS), encoding="utf-8")
    ctx = client(emulator)
    assignments = ctx.web.role_assignments.expand(["Member", "RoleDefinitionBindings"]).get()
    ctx.execute_query()
    members = [a.member.properties for a in assignments]
    assert [m["PrincipalType"].value for m in members] == [1, 8, 4]
    roles = [[r.properties["Name"] for r in a.role_definition_bindings] for a in assignments]
    assert roles == [["Contribute"], ["Edit"], ["Read"]]

    group_id = members[1]["Id"]
    users = ctx.web.site_groups.get_by_id(group_id).users.get().execute_query()
    assert [u.properties["Title"] for u in users] == ["An Claes", "Team"]
    groups = ctx.web.site_groups.get().execute_query()
    assert [g.properties["Title"] for g in groups] == ["PNT Leden"]
    site_users = ctx.web.site_users.get().execute_query()
    assert len(site_users) == 4

    admins = ctx.pending_request().execute_request("web/siteusers?$filter=IsSiteAdmin eq true")
    assert admins.json()["d"]["results"] == []


def test_site_admins_unique_permissions_and_item_links(emulator: RunningEmulator) -> None:
    access = {
        **ACCESS,
        "site_admins": [{"type": "user", "title": "Beheer", "login": "i:0#.f|membership|b@x.org"}],
        "unique_permissions": [
            {
                "scope": "folder",
                "path": FOLDER,
                "role_assignments": [
                    {
                        "principal": {"type": "user", "title": "Gast", "login": "g#ext#@x.org"},
                        "roles": ["Read"],
                    },
                ],
            }
        ],
        "sharing_links": [{"kind": "organization", "roles": ["Read"], "on": FOLDER}],
    }
    put_file(emulator, b"x")
    (emulator.site_folder(SITE) / "_access.json").write_text(json.dumps(access), "utf-8")
    ctx = client(emulator)
    request = ctx.pending_request()
    admins = request.execute_request("web/siteusers?$filter=IsSiteAdmin eq true").json()
    assert [u["Title"] for u in admins["d"]["results"]] == ["Beheer"]
    assert admins["d"]["results"][0]["IsSiteAdmin"] is True
    literal = quote(server_url(FOLDER).replace("'", "''"))
    folder = f"web/GetFolderByServerRelativePath(DecodedUrl='{literal}')/ListItemAllFields"
    assert request.execute_request(folder).json()["d"]["HasUniqueRoleAssignments"] is True
    scoped = request.execute_request(f"{folder}/RoleAssignments").json()["d"]["results"]
    assert [a["Member"]["Title"] for a in scoped] == ["Gast"]
    library = request.execute_request("web/GetList('/sites/testsite/Gedeelde documenten')").json()
    assert library["d"]["HasUniqueRoleAssignments"] is False

    site = graph(emulator, "GET", f"sites/127.0.0.1:/sites/{SITE}").json()
    (drive,) = graph(emulator, "GET", f"sites/{site['id']}/drives").json()["value"]
    assert drive["webUrl"].endswith("/Gedeelde%20documenten")
    item = graph(
        emulator, "GET", f"drives/{drive['id']}/root:/{quote('O' + chr(39) + 'Brien map')}"
    )
    permissions = graph(
        emulator, "GET", f"drives/{drive['id']}/items/{item.json()['id']}/permissions"
    )
    assert [p["link"]["scope"] for p in permissions.json()["value"]] == ["organization"]


def test_stats_count_requests_per_kind_and_reset(emulator: RunningEmulator) -> None:
    put_file(emulator, b"x")
    etag_of(emulator)
    stats = emulator.stats()
    assert stats["requests"]["files_add"] == {"POST": 1}
    assert stats["requests"]["file_props"] == {"GET": 1}
    assert stats["requests"]["contextinfo"]["POST"] >= 2
    assert stats["early_retries"] == 0
    emulator.reset_stats()
    assert emulator.stats()["total_requests"] == 0


def test_faults_carry_retry_after_and_early_retries_are_counted(emulator_factory) -> None:
    running = emulator_factory("--fault-rate", "1", "--retry-after", "0.2", "--seed", "1")
    url = f"{running.site_url(SITE)}/_api/Web"
    headers = {"Authorization": f"Bearer {SP_TOKEN}", "Accept": "application/json;odata=verbose"}
    first = requests.get(url, headers=headers, timeout=10)
    assert first.status_code in (429, 503)
    assert float(first.headers["Retry-After"]) == pytest.approx(0.2)
    too_soon = requests.get(url, headers=headers, timeout=10)
    assert too_soon.status_code == 429
    assert running.stats()["early_retries"] == 1

    running.configure(fault_rate=0)
    time.sleep(0.25)
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert running.stats()["faults_total"] == 2


def test_latency_is_added_to_api_requests(emulator_factory) -> None:
    running = emulator_factory("--latency-ms", "150")
    started = time.monotonic()
    client(running).web.get().execute_query()  # contextinfo + web
    assert time.monotonic() - started >= 0.3


def test_site_names_and_paths_never_leave_the_root(emulator: RunningEmulator) -> None:
    """Issue: ``/sites/%2e%2e/…`` read files outside --root and Files/add wrote there."""
    secret = emulator.root.parent / "geheim.txt"
    secret.write_text("buiten de root")
    headers = {"Authorization": f"Bearer {SP_TOKEN}", "Accept": "application/json;odata=verbose"}
    base = emulator.url
    read = requests.get(
        f"{base}/sites/%2e%2e/_api/web/GetFileByServerRelativeUrl('/sites/%2e%2e/geheim.txt')/$value",
        headers=headers,
        timeout=10,
    )
    assert read.status_code == 404 and b"buiten" not in read.content
    add = requests.post(
        f"{base}/sites/%2e%2e/_api/web/GetFolderByServerRelativeUrl('/sites/%2e%2e')/Files/add(url='x.txt',overwrite=true)",
        headers=headers,
        data=b"geschreven",
        timeout=10,
    )
    assert add.status_code == 404
    inside = requests.get(
        f"{base}/sites/{SITE}/_api/web/GetFileByServerRelativeUrl('/sites/{SITE}/../../geheim.txt')/$value",
        headers=headers,
        timeout=10,
    )
    assert inside.status_code in (400, 404) and b"buiten" not in inside.content
    (emulator.site_folder(SITE) / "Gedeelde documenten").mkdir(parents=True, exist_ok=True)
    (emulator.site_folder(SITE) / "Gedeelde documenten" / "link.txt").symlink_to(secret)
    linked = requests.get(
        f"{base}/sites/{SITE}/_api/web/"
        f"GetFileByServerRelativeUrl('/sites/{SITE}/Gedeelde documenten/link.txt')/$value",
        headers=headers,
        timeout=10,
    )
    assert linked.status_code == 400 and b"buiten" not in linked.content
    assert not (emulator.root.parent / "x.txt").exists()
    assert secret.read_text() == "buiten de root"


def test_etags_are_compared_strictly(emulator: RunningEmulator) -> None:
    put_file(emulator, b"origineel")
    path = server_url(f"{FOLDER}/{NAME}")
    etag = etag_of(emulator)  # "{GUID},N"
    guid, _, version = etag.strip('"').strip("{").partition("},")
    list_item_etag = f'"{guid.lower()},{version}"'  # the list item's spelling
    for spelling in (list_item_etag, etag.lower(), f"W/{etag}", etag.strip('"')):
        ctx = client(emulator)
        ctx.pending_request().before_execute(lambda r, s=spelling: r.set_header("If-Match", s))
        with pytest.raises(ClientRequestException) as error:
            File.save_binary(ctx, path, b"x")
        assert status_of(error) == 412, spelling
    assert File.open_binary(client(emulator), path).content == b"origineel"


def test_graph_if_match_takes_the_etag_or_the_ctag_and_nothing_else(
    emulator: RunningEmulator,
) -> None:
    put_file(emulator, b"origineel")
    site = graph(emulator, "GET", f"sites/127.0.0.1:/sites/{SITE}").json()
    (drive,) = graph(emulator, "GET", f"sites/{site['id']}/drives").json()["value"]
    where = f"drives/{drive['id']}/root:/{quote(FOLDER.split('/', 1)[1])}/{quote(NAME)}"
    item = graph(emulator, "GET", where).json()
    assert item["eTag"].startswith('"{') and item["cTag"].startswith('"c:{')
    session = f"drives/{drive['id']}/items/{item['id']}/createUploadSession"
    stale = graph(emulator, "POST", session, json={}, headers={"if-match": item["eTag"].lower()})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "resourceModified"
    fresh = graph(emulator, "POST", session, json={}, headers={"if-match": item["cTag"]})
    assert fresh.status_code == 200
    upload = fresh.json()["uploadUrl"]
    with_token = requests.put(
        upload,
        data=b"nieuw",
        headers={"Content-Range": "bytes 0-4/5", "Authorization": f"Bearer {GRAPH_TOKEN}"},
        timeout=10,
    )
    assert with_token.status_code == 401  # Microsoft: no token to the upload URL
    done = requests.put(upload, data=b"nieuw", headers={"Content-Range": "bytes 0-4/5"}, timeout=10)
    assert done.status_code == 200 and done.json()["eTag"] != item["eTag"]
    assert (emulator.site_folder(SITE) / FOLDER / NAME).read_bytes() == b"nieuw"


def test_the_app_role_on_a_site_decides_what_it_may_do(emulator: RunningEmulator) -> None:
    put_file(emulator, b"x")
    (emulator.site_folder(SITE) / "_access.json").write_text('{"app_grant": "read"}', "utf-8")
    path = server_url(f"{FOLDER}/{NAME}")
    assert File.open_binary(client(emulator), path).content == b"x"
    with pytest.raises(ClientRequestException) as write:
        File.save_binary(client(emulator), path, b"y")
    with pytest.raises(ClientRequestException) as permissions:
        client(emulator).web.role_assignments.get().execute_query()
    assert (status_of(write), status_of(permissions)) == (403, 403)


def test_checked_out_files_answer_423_with_their_own_error(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    running = emulator_factory("--quirk", "checked-out")
    put_file(running, b"x")
    path = server_url(f"{FOLDER}/{NAME}")
    with pytest.raises(ClientRequestException) as error:
        File.save_binary(client(running), path, b"y")
    assert status_of(error) == 423 and "SPFileCheckOutException" in error.value.code
    props = client(running).web.get_file_by_server_relative_path(path).get().execute_query()
    assert props.properties["CheckOutType"] == 0


def test_unknown_quirks_are_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agii_sync.emulator", "--root", str(tmp_path), "--quirk", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
