"""Finance's credit-note export file (CSV, see docs/khaos.md) confirms returns."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import structlog

from returnbridge.domain.money import MoneyError, to_decimal
from returnbridge.flows.confirm.sightings import (
    Channel,
    ImportResult,
    Outcome,
    Sighting,
    UnknownReturn,
    record_sighting,
)
from returnbridge.flows.engine.runtime import Runtime

log = structlog.get_logger(__name__)


# --- (b) finance's credit-note export file --------------------------------------------------

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "ref": ("associatedref", "associated_ref", "assref", "associated ref", "ass ref"),
    "code": ("creditnotecode", "credit_note_code", "credit note code", "creditnote",
             "credit note", "invoicecode", "invoice code"),
    "value": ("value", "total", "gross", "credit value", "amount"),
    "date": ("date", "creditdate", "credit date", "issue date"),
}


def _columns(header: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        key = " ".join(name.strip().lstrip("\ufeff").lower().split())
        for column, aliases in CSV_COLUMNS.items():
            if key in aliases and column not in found:
                found[column] = i
    return found


def import_credit_notes_csv(rt: Runtime, path: Path, actor: str) -> ImportResult:
    """Import finance's credit-note export: columns AssociatedRef, CreditNoteCode, Value
    (optional) and Date (optional), comma-separated with a header row. Each row is applied
    on its own; bad rows are reported with their line number and never stop the others."""
    result = ImportResult()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty")
        cols = _columns(header)
        missing = [c for c in ("ref", "code") if c not in cols]
        if missing:
            raise ValueError(f"{path}: the header needs AssociatedRef and CreditNoteCode "
                             f"columns; found {', '.join(header)}")
        for number, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            result.rows += 1

            def cell(column: str, rec: list[str] = record) -> str:
                index = cols.get(column)
                return rec[index].strip() if index is not None and index < len(rec) else ""

            ref, code, raw_value = cell("ref"), cell("code"), cell("value")
            if not ref or not code:
                result.errors.append((number, "AssociatedRef and CreditNoteCode are required"))
                continue
            try:
                value = to_decimal(raw_value) if raw_value else None
            except MoneyError:
                result.errors.append((number, f"{ref}: value {raw_value!r} is not an amount"))
                continue
            details = {"file": path.name, "line": str(number)}
            if cell("date"):
                details["date"] = cell("date")
            ev = Sighting(Channel.FILE, actor, f"credit-note file {path.name} line {number}",
                          code, value, "", details)
            try:
                confirmed = record_sighting(rt, ref, ev)
            except UnknownReturn:
                result.unknown_refs.append(ref)
                continue
            if confirmed.outcome is Outcome.CONFIRMED:
                result.confirmed += 1
                result.mismatches += confirmed.amount_mismatch
            elif confirmed.outcome is Outcome.ALREADY:
                result.already += 1
            elif confirmed.outcome is Outcome.CONFLICT:
                result.errors.append((number, f"{ref} is already confirmed with credit note "
                                      f"{confirmed.credit_note_code}, not {code}"))
            else:
                result.errors.append((number, f"{ref} has not been handed to Khaos "
                                      f"(status {confirmed.khaos_status})"))
    return result
