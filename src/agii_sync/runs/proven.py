"""A push's use of row proofs (domain/proof.py): which export rows need no validation because
the workbook already holds what they make, and the proofs to keep after the write.

A carried record (an export row whose raw digest a push made before, so it validated without a
problem under the same rules) becomes:
- its workbook row, when the row's AgII cells still digest to what that push wrote;
- a row that only says "past retention", when its ``Bewaren tot`` has passed and the workbook
  does not hold it (the plan never writes such a row, whatever its cells);
- else the record validated after all (an edited or deleted row), as on a first push.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

from ..config import Municipality
from ..domain.export import CarriedRecord, ExportRecord, RawRow, Record, validate_row
from ..domain.plan import Plan, Withheld, past_retention
from ..domain.proof import Proofs, Stored
from ..domain.row import FIELD_NAMES, SharedRow
from ..errors import SafetyStop

if TYPE_CHECKING:
    from ..formats import workbook

Known = dict[str, tuple[bytes, bytes | None]]  # Rij-ID → raw digest, cells digest once proven


class ProvenRows:
    """One site's carried records made rows, and what is known of each row's proof."""

    def __init__(
        self,
        proofs: Proofs,
        stored: Stored,
        loaded: workbook.LoadedWorkbook | None,
        raw: dict[int, bytes],
        today: date,
    ) -> None:
        self.proofs, self.stored, self.raw, self.today = proofs, stored, raw, today
        self.current = {r.rij_id: r for r in loaded.shared_rows} if loaded else {}
        self.known: Known = {}
        self.past: dict[str, bytes] = {}  # Rij-ID → raw digest of export rows past retention

    def row(self, record: CarriedRecord, row_id: str, keep: date | None) -> SharedRow | None:
        """The row of a carried record; None when the record must be validated after all."""
        proof = self.stored.get(row_id)
        raw = self.raw[record.line]
        found = self.current.get(row_id)
        if found is not None and proof is not None and proof[0] == raw:
            cells = self.proofs.of_row(found)
            if cells == proof[1]:
                self.known[row_id] = (raw, cells)
                return _as_exported(found, keep)
        elif found is None and keep is not None and self.today > keep:
            return _past_retention_row(row_id, keep)
        return None

    def made(self, records: Iterable[Record], rows: Iterable[SharedRow], drop: Withheld) -> None:
        """Note the raw digest of every row made from a record without a problem."""
        for record, row in zip(records, rows, strict=True):
            raw = self.raw.get(record.line)
            if raw is None or row.rij_id in drop:
                continue
            if past_retention(row, self.today):
                self.past[row.rij_id] = raw
            elif row.rij_id not in self.known:
                self.known[row.rij_id] = (raw, None)

    def after(self, plan: Plan) -> Stored:
        """The proofs to keep once the workbook holds ``plan.rows``: of the rows written from
        the export, and of the export's rows past retention (never written: no cells)."""
        rows = {r.rij_id: r for r in plan.rows}
        kept: dict[str, tuple[bytes, bytes | None]] = {
            row_id: (raw, None) for row_id, raw in self.past.items() if row_id not in rows
        }
        for row_id, (raw, cells) in self.known.items():
            if (row := rows.get(row_id)) is not None:
                kept[row_id] = (raw, cells or self.proofs.of_row(row))
        return kept


def _as_exported(row: SharedRow, keep: date | None) -> SharedRow:
    """A workbook row as the export makes it: no status (the plan keeps the workbook's) and
    ``Bewaren tot`` worked out today."""
    if row.status_activiteit == "" and row.bewaren_tot == keep:
        return row
    return row.model_copy(update={"status_activiteit": "", "bewaren_tot": keep})


def _past_retention_row(row_id: str, keep: date) -> SharedRow:
    values: dict[str, object] = dict.fromkeys(FIELD_NAMES, "")
    values.update(rij_id=row_id, bewaren_tot=keep)
    return SharedRow.read_from_sheet(values)


def validated_again(m: Municipality, record: CarriedRecord, raw: RawRow) -> ExportRecord:
    """A carried row whose workbook row is not proven (edited, deleted): validated after all
    (``raw``: its line read again). It validated without a problem under the same rules when
    its proof was made."""
    validated, problems = validate_row(record.line, raw)
    if validated is None or problems:
        raise SafetyStop(f"{m.id}: internal check failed: a proven export row changed meaning")
    return validated
