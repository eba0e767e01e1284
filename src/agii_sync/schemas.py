"""``schemas/``: JSON Schemas and code lists generated from the models, never written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

from .domain.codes import (
    ACTIVITY_STATUSES,
    CEFR_LEVELS,
    DUTCH_UNKNOWN,
    INTERESTS,
    NO_INTEREST,
    StatusMO,
)
from .domain.export import ExportRecord
from .domain.plan import Reason
from .domain.row import COLUMNS, SharedRow
from .domain.screen import sign_languages


def documents() -> dict[str, Any]:
    return {
        "export-record.schema.json": ExportRecord.model_json_schema(),
        "shared-row.schema.json": SharedRow.model_json_schema(by_alias=True),
        "code-lists.json": {
            "interests": {str(code): label for code, label in INTERESTS.items()},
            "no_interest": NO_INTEREST,
            "dutch_levels": [*CEFR_LEVELS, DUTCH_UNKNOWN],
            "status_mo": [s.value for s in StatusMO],
            "activity_status": list(ACTIVITY_STATUSES),
            "workbook_columns": list(COLUMNS),
            # refused as contact language unless [agii] allow_sign_languages (docs/protocol.md)
            "sign_languages": sorted(sign_languages()),
            "audit_row_reasons": list(get_args(Reason)),
        },
    }


def render(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path, *, check_only: bool = False) -> list[str]:
    """Write the documents (or only compare them); return the names that were out of date."""
    stale = []
    for name, doc in documents().items():
        path = folder / name
        text = render(doc)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not check_only:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return stale
