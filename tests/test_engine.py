"""The engine's pieces: a conditional update that always returns its outcome, the sites' pool
that audits every outcome, and ``validate`` preparing the export exactly as ``push`` does."""

from __future__ import annotations

import json
import os
from datetime import date

from agii_sync.audit import read
from agii_sync.conditional_update import PURGE, PUSH
from agii_sync.config import load_config
from agii_sync.domain.plan import Plan
from agii_sync.engine import Run
from agii_sync.errors import AgiiError, SafetyStop
from agii_sync.outcome import NotCarried, SiteOutcome, VersionsDeleted
from fixtures.workspace import MUNICIPALITIES, Workspace, person

SPL = MUNICIPALITIES[0]["id"]


def _refuse(loaded: object) -> Plan:
    raise SafetyStop("refused by the plan")


def test_a_failed_update_returns_its_outcome_with_the_etag_it_read(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    etag = workspace.site(SPL).read().etag
    run = Run(load_config(workspace.config_path), "purge", date.today())
    m = run.config.by_id(SPL)

    outcome = run.update_workbook(m, _refuse, PURGE)  # returns; nothing rides on an exception

    assert isinstance(outcome.error, SafetyStop) and outcome.exit_code == 5
    assert outcome.etag_before == etag and not outcome.written
    assert not hasattr(AgiiError("x"), "outcome")


def test_the_pool_audits_a_failed_update_with_the_etag_it_read(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    etag = workspace.site(SPL).read().etag
    run = Run(load_config(workspace.config_path), "purge", date.today())
    m = run.config.by_id(SPL)

    (outcome,) = run.for_each_site([m], lambda site: run.update_workbook(site, _refuse, PUSH))

    line = read(run.config.audit_log)[-1]
    assert line["site"] == SPL and line["error"] == "SafetyStop" and line["exit_code"] == 5
    assert line["etag_before"] == etag and outcome.stopped is None


def test_facts_are_typed_and_counted_in_the_audit_line() -> None:
    outcome = SiteOutcome("x", facts=[NotCarried(["N2 (AB12C-DE34F)"]), VersionsDeleted(3)])
    assert outcome.counts() == {"not_carried": 1, "versions_deleted": 3}
    assert outcome.fact_lists() == {
        "not_carried": 1,
        "not_carried_cells": ["N2 (AB12C-DE34F)"],
        "versions_deleted": 3,
    }
    assert outcome.versions_deleted == 3 and outcome.not_carried == ["N2 (AB12C-DE34F)"]


def test_validate_reports_the_problems_of_push_in_the_same_order(workspace: Workspace) -> None:
    rows = [person(1, 0, telefoon="12", email="geen-adres"), person(2, 0, postcode="9999")]
    export = str(workspace.export(rows))
    validated = json.loads(workspace.cli("--json", "validate", export).stdout)
    pushed = json.loads(workspace.cli("--json", "push", "--dry-run", export).stdout)
    assert len(validated["problems"]) >= 3
    assert validated["problems"] == pushed["export"]["problems"]
    for key in ("rows_read", "valid", "rejected", "skipped_other_nis", "unknown_columns"):
        assert validated[key] == pushed["export"][key]


def test_yes_is_gone_nothing_ever_asked(workspace: Workspace) -> None:
    result = workspace.cli("--yes", "check")
    assert result.exit_code == 2 and "--yes" in result.output


def test_list_out_is_written_whole_and_for_its_owner_only(workspace: Workspace) -> None:
    workspace.cli("push", str(workspace.export([person(1, 0)])))
    out = workspace.root / "lijst.csv"
    result = workspace.cli("list", "--site", SPL, "--format", "csv", "--out", str(out))
    assert result.exit_code == 0 and "Rij-ID" in out.read_text(encoding="utf-8")
    if os.name == "posix":
        assert out.stat().st_mode & 0o077 == 0  # personal data: not readable by others
    assert [p.name for p in out.parent.glob("*.tmp")] == []
