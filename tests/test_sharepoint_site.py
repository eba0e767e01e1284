"""SharePointSite: the real client library against the emulator over real HTTP."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agii_sync import __version__
from agii_sync.errors import (
    AccessRefused,
    AuthFailure,
    ConfigError,
    EtagConflict,
    TemporaryFailure,
    Throttled,
    WorkbookCheckedOut,
    WorkbookLocked,
)
from agii_sync.sites.access_file import parse_access
from agii_sync.sites.base import Site, Snapshot
from agii_sync.sites.graph import FRAGMENT_UNIT
from agii_sync.sites.sharepoint import (
    RetryPolicy,
    SharePointConnection,
    SharePointSite,
    dummy_graph_token,
    dummy_token,
)
from fixtures.emulator import RunningEmulator

WORKBOOK = "Gedeelde documenten/Participatietraject/inburgeraars.xlsx"
QUICK = RetryPolicy(max_attempts=8, budget_seconds=20, base_delay=0.01, max_delay=0.1)


def open_site(
    emulator: RunningEmulator,
    name: str = "gemeente",
    path: str = WORKBOOK,
    retry: RetryPolicy = QUICK,
    **kwargs: object,
) -> SharePointSite:
    return SharePointSite(emulator.site_url(name), path, dummy_token, retry=retry, **kwargs)


def on_disk(emulator: RunningEmulator, name: str = "gemeente", path: str = WORKBOOK) -> Path:
    return emulator.site_folder(name) / path


def test_is_a_site(emulator: RunningEmulator) -> None:
    assert isinstance(open_site(emulator), Site)


def test_a_missing_workbook_reads_as_empty(emulator: RunningEmulator) -> None:
    assert open_site(emulator).read() == Snapshot(None, None)


def test_create_read_and_write(emulator: RunningEmulator) -> None:
    site = open_site(emulator)
    created = site.write(b"eerste", None)
    first = site.read()
    assert first == Snapshot(b"eerste", created)
    assert on_disk(emulator).read_bytes() == b"eerste"

    replaced = site.write(b"tweede", first.etag)
    assert replaced != created
    assert site.read() == Snapshot(b"tweede", replaced)
    third = site.write(b"derde", replaced)
    assert len({created, replaced, third}) == 3


def test_create_refuses_an_existing_workbook(emulator: RunningEmulator) -> None:
    site = open_site(emulator)
    site.write(b"van iemand anders", None)
    with pytest.raises(EtagConflict):
        site.write(b"van ons", None)
    assert on_disk(emulator).read_bytes() == b"van iemand anders"


def test_a_stale_etag_is_a_conflict_and_changes_nothing(emulator: RunningEmulator) -> None:
    site = open_site(emulator)
    stale = site.write(b"v1", None)
    site.write(b"v2 van de gemeente", stale)
    with pytest.raises(EtagConflict) as error:
        site.write(b"v3 op basis van v1", stale)
    assert error.value.exit_code == 5
    assert on_disk(emulator).read_bytes() == b"v2 van de gemeente"


def test_a_write_landing_during_our_upload_stops_our_commit(emulator: RunningEmulator) -> None:
    """Their write lands after our upload session was created (if-match passed) but before
    we commit: the eTag read just before the commit catches it, and our session is cancelled."""
    connection = SharePointConnection(dummy_token, retry=QUICK)
    etag = connection.site(emulator.site_url("gemeente"), WORKBOOK).write(b"start", None)
    theirs = connection.site(emulator.site_url("gemeente"), WORKBOOK)

    class TheyWriteMeanwhile(SharePointSite):
        def _put_bytes(self, ctx, upload_url, content):  # type: ignore[no-untyped-def]
            response = super()._put_bytes(ctx, upload_url, content)
            theirs.write(b"van de gemeente", etag)
            return response

    ours = TheyWriteMeanwhile(emulator.site_url("gemeente"), WORKBOOK, dummy_token, retry=QUICK)
    with pytest.raises(EtagConflict):
        ours.write(b"van ons", etag)
    assert on_disk(emulator).read_bytes() == b"van de gemeente"
    assert ours.stats.uploads_cancelled == 1
    assert emulator.stats()["requests"]["upload_cancel"] == {"DELETE": 1}


def test_two_writers_one_after_the_other_on_the_same_etag(emulator: RunningEmulator) -> None:
    connection = SharePointConnection(dummy_token, retry=QUICK)
    etag = connection.site(emulator.site_url("gemeente"), WORKBOOK).write(b"start", None)
    first, second = (connection.site(emulator.site_url("gemeente"), WORKBOOK) for _ in "ab")
    first.write(b"eerste", etag)
    with pytest.raises(EtagConflict):
        second.write(b"tweede", etag)
    assert on_disk(emulator).read_bytes() == b"eerste"
    assert emulator.stats()["responses"]["412"] == 1


def test_a_locked_workbook_is_reported_and_left_alone(emulator: RunningEmulator) -> None:
    policy = RetryPolicy(lock_attempts=2, lock_wait_seconds=0.05)
    site = open_site(emulator, retry=policy)
    etag = site.write(b"open in Excel", None)
    emulator.lock(f"/sites/gemeente/{WORKBOOK}")
    with pytest.raises(WorkbookLocked) as error:
        site.write(b"overschreven", etag)
    assert error.value.exit_code == 3
    assert site.url in error.value.message
    assert "Excel" in (error.value.hint or "")
    assert on_disk(emulator).read_bytes() == b"open in Excel"
    assert site.stats.lock_waits == 2
    assert emulator.stats()["responses"]["423"] == 2

    emulator.unlock(f"/sites/gemeente/{WORKBOOK}")
    site.write(b"na sluiten", etag)
    assert on_disk(emulator).read_bytes() == b"na sluiten"


def test_paths_with_spaces_and_apostrophes(emulator: RunningEmulator) -> None:
    path = "Gedeelde documenten/O'Brien map/d'n lijst 2024.xlsx"
    site = open_site(emulator, name="sint-job-in-'t-goor", path=path)
    etag = site.write(b"inhoud", None)
    assert on_disk(emulator, "sint-job-in-'t-goor", path).read_bytes() == b"inhoud"
    assert site.read() == Snapshot(b"inhoud", etag)
    site.write(b"nieuw", etag)
    assert site.read().content == b"nieuw"
    assert site.delete_old_versions() == 1


def test_large_workbooks_go_up_in_chunks(emulator: RunningEmulator) -> None:
    site = open_site(emulator, chunk_size=FRAGMENT_UNIT)
    content = bytes(range(256)) * (FRAGMENT_UNIT * 5 // 2 // 256)  # 2.5 fragments: three PUTs
    etag = site.write(content, None)
    assert site.read() == Snapshot(content, etag)
    bigger = content + b"meer"
    new_etag = site.write(bigger, etag)
    assert site.read() == Snapshot(bigger, new_etag)
    with pytest.raises(EtagConflict):
        site.write(content, etag)
    assert on_disk(emulator).read_bytes() == bigger
    requests = emulator.stats()["requests"]
    assert requests["upload_put"] == {"PUT": 6}  # three to create, three to replace
    assert requests["upload_session"] == {"POST": 3}  # the last one refused (412)
    assert requests["upload_commit"] == {"POST": 1}


def test_a_fragment_that_is_not_a_multiple_of_320_kib_is_refused(
    emulator: RunningEmulator,
) -> None:
    site = open_site(emulator, chunk_size=1000)
    with pytest.raises(TemporaryFailure):
        site.write(b"x" * 2500, None)
    assert site.stats.uploads_cancelled == 1
    assert site.read() == Snapshot(None, None)


def test_old_versions_are_deleted_and_counted(emulator: RunningEmulator) -> None:
    site = open_site(emulator)
    assert site.delete_old_versions() == 0  # no workbook yet
    etag = site.write(b"1", None)
    for n in range(2, 5):
        etag = site.write(str(n).encode(), etag)
    assert site.delete_old_versions() == 3
    assert site.delete_old_versions() == 0
    assert site.read().content == b"4"
    versions = emulator.site_folder("gemeente") / ".emulator" / "versions"
    assert not any(versions.rglob("*.bin"))


ACCESS = {
    "role_assignments": [
        {
            "principal": {
                "type": "user",
                "title": "Jan Peeters",
                "login": "i:0#.f|membership|jan.peeters@example.org",
                "email": "jan.peeters@example.org",
            },
            "roles": ["Contribute"],
        },
        {
            "principal": {
                "type": "sharepoint_group",
                "title": "PNT Leden",
                "members": [
                    {
                        "type": "user",
                        "title": "An Claes",
                        "login": "i:0#.f|membership|an.claes@example.org",
                        "email": "an.claes@example.org",
                    },
                    {"type": "security_group", "title": "Team PNT", "login": "c:0t.c|tenant|42"},
                ],
            },
            "roles": ["Edit"],
        },
        {
            "principal": {
                "type": "security_group",
                "title": "Everyone except external users",
                "login": "c:0-.f|rolemanager|spo-grid-all-users/x",
            },
            "roles": ["Read"],
        },
    ],
    "sharing_links": [
        {"kind": "anonymous", "roles": ["Read"]},
        {"kind": "organization", "roles": ["Edit"]},
    ],
}


def test_access_expands_sharepoint_groups_only(emulator: RunningEmulator) -> None:
    folder = emulator.site_folder("gemeente")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_access.json").write_text(json.dumps(ACCESS), encoding="utf-8")
    site = open_site(emulator)
    site.write(b"werkboek", None)  # links without "on" sit on the library: inherited
    access = site.read_access()
    assert access == parse_access(ACCESS)
    group = access.role_assignments[1].principal
    assert [m.title for m in group.members] == ["An Claes", "Team PNT"]
    assert group.members[1].members == ()  # security groups are not expanded
    assert [link.kind for link in access.sharing_links] == ["anonymous", "organization"]


def test_a_site_without_access_file_has_no_one(emulator: RunningEmulator) -> None:
    access = open_site(emulator).read_access()
    assert access.role_assignments == () and access.sharing_links == ()


def test_faults_are_retried_without_ever_coming_back_early(emulator: RunningEmulator) -> None:
    connection = SharePointConnection(dummy_token, retry=QUICK)
    names = [f"gemeente-{n}" for n in range(3)]
    sites = [connection.site(emulator.site_url(name), WORKBOOK) for name in names]
    for site in sites:
        site.write(b"0", None)
    pool = ThreadPoolExecutor(3)
    # Each worker thread fetches its form digests while all is calm: the library retries the
    # digest request itself and reads only whole-second Retry-After values (see the chaos test).
    warm = threading.Barrier(3)

    def warm_up(_: int) -> None:
        warm.wait()
        for site in sites:
            site.read()

    list(pool.map(warm_up, range(3)))
    emulator.configure(fault_rate=0.3, retry_after=0.05)
    emulator.reset_stats()

    def work(site: SharePointSite) -> bytes:
        for n in range(1, 6):
            site.write(str(n).encode(), site.read().etag)
        site.read_access()
        site.delete_old_versions()
        return site.read().content or b""

    with pool:
        assert list(pool.map(work, sites)) == [b"5"] * 3
    stats = emulator.stats()
    assert stats["faults_total"] > 0
    assert stats["early_retries"] == 0
    assert connection.stats.throttled == stats["faults_total"]


@pytest.mark.chaos
@pytest.mark.slow  # waits out about ten whole-second Retry-Afters
def test_whole_second_retry_afters_are_waited_out_on_both_apis(emulator_factory) -> None:
    running = emulator_factory("--fault-rate", "0.5", "--retry-after", "1", "--seed", "49")
    connection = SharePointConnection(dummy_token, retry=RetryPolicy(budget_seconds=30))
    site = connection.site(running.site_url("gemeente"), WORKBOOK)
    etag = site.write(b"a", None)
    etag = site.write(b"b", etag)
    assert site.read() == Snapshot(b"b", etag)
    assert site.delete_old_versions() == 1  # SharePoint REST, after its form digest
    stats = running.stats()
    assert stats["faults_total"] > 0
    assert stats["early_retries"] == 0
    assert connection.stats.throttled == stats["faults_total"]


def test_throttling_past_the_budget_is_a_temporary_failure(emulator: RunningEmulator) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.01)
    site = open_site(emulator, retry=policy)
    site.read()  # the form digest, before the weather turns
    emulator.configure(fault_rate=1, retry_after=0.05)
    with pytest.raises(Throttled) as error:
        site.read()
    assert error.value.exit_code == 3
    assert site.stats.retries == 2
    assert emulator.stats()["early_retries"] == 0


def test_a_refused_token_is_an_auth_failure(emulator: RunningEmulator) -> None:
    def refused() -> dict[str, object]:
        return {**dummy_token(), "access_token": "denied-by-test"}

    site = SharePointSite(
        emulator.site_url("gemeente"), WORKBOOK, refused, graph_token_provider=refused, retry=QUICK
    )
    with pytest.raises(AuthFailure) as error:
        site.read()
    assert error.value.exit_code == 4


def test_a_token_for_the_wrong_audience_is_refused(emulator: RunningEmulator) -> None:
    """A SharePoint token sent to Graph (and the other way round) is a 401, as on a tenant."""
    swapped = SharePointSite(
        emulator.site_url("gemeente"),
        WORKBOOK,
        dummy_graph_token,
        graph_token_provider=dummy_token,
        retry=QUICK,
    )
    with pytest.raises(AuthFailure) as error:
        swapped.read()
    assert "401" in error.value.message
    with pytest.raises(AuthFailure):
        swapped.delete_old_versions()
    assert emulator.stats()["responses"]["401"] == 2


def test_every_request_says_who_we_are(emulator: RunningEmulator) -> None:
    site = open_site(emulator)
    site.write(b"x", None)
    site.read()
    agents = emulator.stats()["user_agents"]
    assert agents == {f"NONISV|AgII|agii-sync/{__version__}": sum(agents.values())}


def test_plain_http_is_refused_for_other_hosts() -> None:
    with pytest.raises(ConfigError):
        SharePointSite("http://sharepoint.example.org/sites/x", WORKBOOK, dummy_token)


def test_one_connection_serves_many_sites_from_a_thread_pool(emulator: RunningEmulator) -> None:
    connection = SharePointConnection(dummy_token, retry=QUICK)
    names = [f"gemeente-{n}" for n in range(6)]

    def create_and_update(name: str) -> bytes:
        site = connection.site(emulator.site_url(name), WORKBOOK)
        etag = site.write(name.encode(), None)
        site.write(name.upper().encode(), etag)
        return site.read().content or b""

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(create_and_update, names))
    assert results == [name.upper().encode() for name in names]


def test_a_missing_library_is_a_config_error_naming_the_libraries(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    running = emulator_factory("--quirk", "missing-library")
    site = SharePointSite(running.site_url("gemeente"), WORKBOOK, dummy_token, retry=QUICK)
    with pytest.raises(ConfigError) as error:
        site.write(b"x", None)
    assert error.value.exit_code == 2
    assert "'Gedeelde documenten'" in error.value.message
    assert "'Shared Documents'" in error.value.message
    tops = sorted(p.name for p in running.site_folder("gemeente").iterdir())
    assert tops == [".emulator", "Shared Documents"]  # nothing made at the site root
    assert "graph_children" not in running.stats()["requests"]


def test_a_workbook_path_outside_any_library_is_a_config_error(emulator: RunningEmulator) -> None:
    with pytest.raises(ConfigError):
        open_site(emulator, path="inburgeraars.xlsx").write(b"x", None)


def test_a_checked_out_workbook_is_not_waited_on(emulator_factory) -> None:  # type: ignore[no-untyped-def]
    running = emulator_factory("--quirk", "checked-out")
    policy = RetryPolicy(lock_attempts=3, lock_wait_seconds=5)
    site = SharePointSite(running.site_url("gemeente"), WORKBOOK, dummy_token, retry=policy)
    etag = site.write(b"eerste", None)  # a new file; from now on it is checked out
    with pytest.raises(WorkbookCheckedOut) as error:
        site.write(b"tweede", etag)
    assert error.value.exit_code == 3
    assert "checked out" in error.value.message and "check it in" in (error.value.hint or "")
    assert site.stats.lock_waits == 0 and site.stats.waited_seconds == 0
    assert running.stats()["responses"]["423"] == 1


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("read", ["read"], {"write": "write", "read_access": "fullcontrol"}),
        ("write", ["read", "write", "versions"], {"read_access": "fullcontrol"}),
        ("fullcontrol", ["read", "write", "versions", "read_access"], {}),
    ],
)
def test_each_sites_selected_role_allows_what_docs_say(
    emulator: RunningEmulator, role: str, allowed: list[str], refused: dict[str, str]
) -> None:
    site = open_site(emulator)
    etag = site.write(b"eerste", None)
    (emulator.site_folder("gemeente") / "_access.json").write_text(
        json.dumps({"app_grant": role}), encoding="utf-8"
    )
    actions = {
        "read": lambda: site.read(),
        "write": lambda: site.write(b"tweede", etag),
        "versions": lambda: site.delete_old_versions(),
        "read_access": lambda: site.read_access(),
    }
    for name in allowed:
        actions[name]()
    for name, grant in refused.items():
        with pytest.raises(AccessRefused) as error:
            actions[name]()
        assert error.value.exit_code == 4 and error.value.grant == grant
        assert f"'{grant}'" in (error.value.hint or "")
