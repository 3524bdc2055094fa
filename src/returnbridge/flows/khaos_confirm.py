"""Confirm (ARCHITECTURE 5.4): move each delivered return ``served -> imported ->
credit_confirmed`` from evidence, and watch the confirmation SLA.

Evidence, strongest first, all landing in :func:`apply_evidence`:

- ``soap``: desktop ``ExportOrderStatusEx`` by AssociatedRef (ORDER_TYPE 2 = credit note; its
  invoice code is the credit note code; SORDER_CODE is the Khaos return code);
- ``push``: ``khaos_order_statuses`` rows Khaos pushed (ORDER_TYPE 2, our AssociatedRef);
- ``file``: a credit-note export file imported by finance (CSV, see docs/khaos.md);
- ``operator``: someone confirms by hand (``POST /api/v1/returns/{ref}/confirm-credit``).

Every transition is written to the return's timeline with its evidence and to the audit log
with who and why. Confirming twice is a no-op; a *different* credit note for a confirmed
return is refused. A credit note whose value differs from what we served opens
``amount_mismatch``; a served return unconfirmed past ``credit_confirm_sla_hours`` opens
``khaos_import_unconfirmed``, which any later evidence of the import resolves.

SOAP calls made by the scheduled sweep go through the DBOS queue ``SOAP_QUEUE_NAME``, rate
limited by ``[khaos].soap_calls_per_minute``."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog
from dbos import DBOS, SetWorkflowID
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from returnbridge.config import Settings
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.money import MoneyError, quantize, to_decimal
from returnbridge.erp.khaos.soap import OrderStatusRecord
from returnbridge.erp.khaos.soap_faults import SoapError, SoapTransportError
from returnbridge.flows.current import runtime
from returnbridge.flows.health import record_failure, record_success
from returnbridge.flows.runtime import Runtime
from returnbridge.store import audit, returns_repo
from returnbridge.store.exceptions_repo import raise_problem
from returnbridge.store.models import ExceptionRow, KhaosOrderStatus, ReturnRow, utcnow

log = structlog.get_logger(__name__)

SOAP_QUEUE_NAME = "khaos_soap"
SYSTEM_ACTOR = "returnbridge"
UNCONFIRMED = "khaos_import_unconfirmed"
AWAITING = (KhaosStatus.SERVED.value, KhaosStatus.IMPORTED.value)
CONFIRMED = (KhaosStatus.CREDIT_CONFIRMED.value, KhaosStatus.REFUND_RECORDED.value,
             KhaosStatus.DONE.value)
CREDIT_NOTE_TYPES = {"2", "credit note", "creditnote", "credit_note"}
# Stages only a processed return's credit note reaches (issue and issued; reference §2.3).
PROCESSED_STAGES = frozenset({"16", "70", "71", "72", "73", "issue", "issue invoices", "issued",
                              "issued - current", "issued - archived", "archived", "complete"})


class Source(StrEnum):
    SOAP = "soap"
    FILE = "file"
    OPERATOR = "operator"
    PUSH = "push"


class Outcome(StrEnum):
    CONFIRMED = "confirmed"  # credit_confirmed now
    IMPORTED = "imported"  # seen in Khaos, no credit note yet
    ALREADY = "already"  # nothing new (a second confirmation: no-op)
    CONFLICT = "conflict"  # confirmed earlier with a different credit note code
    NOT_DELIVERED = "not_delivered"  # never handed to Khaos: nothing to confirm


class UnknownReturn(LookupError):
    """No return has this AssociatedRef."""


class ConfirmRefused(ValueError):
    """The confirmation contradicts what is known (see ``outcome``)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Evidence:
    """What one source says about a return in Khaos."""

    source: Source
    actor: str
    reason: str
    credit_note_code: str = ""  # "" = imported, no credit note yet
    value: Decimal | None = None
    return_code: str = ""  # Khaos return code (for ProcessReturn)
    details: dict[str, str] = field(default_factory=dict)
    stage_id: str = ""  # the credit note's stage ("" = not reported: counts as cleared)
    stage_desc: str = ""

    @property
    def stage(self) -> str:
        return " ".join(p for p in (self.stage_id, self.stage_desc) if p)


@dataclass(frozen=True)
class ConfirmResult:
    associated_ref: str
    outcome: Outcome
    khaos_status: str
    credit_note_code: str
    credit_note_value: Decimal | None
    amount_mismatch: bool = False


@dataclass
class SweepResult:
    checked: int = 0
    calls: int = 0
    imported: int = 0
    confirmed: int = 0
    not_found: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    rows: int = 0
    confirmed: int = 0
    already: int = 0
    mismatches: int = 0
    unknown_refs: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, problem)


class OrderStatusSource(Protocol):
    """What the sweep needs from the SOAP client (``KhaosSoapClient`` satisfies it)."""

    def export_order_status_by_ref(self, associated_refs: str | Iterable[str], *,
                                   include_cancelled: bool = True) -> list[OrderStatusRecord]:
        ...


# --- the one place where evidence changes a return ------------------------------------------


def served_value(settings: Settings, row: ReturnRow) -> Decimal:
    """What we handed to Khaos: sum of quantity x UnitPrice (Gross or Net, as served)."""
    gross = settings.khaos.unit_price == "Gross"
    return quantize(sum((Decimal(ln.quantity) * (ln.unit_gross if gross else ln.unit_net)
                         for ln in row.lines), Decimal(0)))


def _resolve_unconfirmed(session: Session, row: ReturnRow, by: str, how: str) -> int:
    open_rows = session.scalars(select(ExceptionRow).where(
        ExceptionRow.return_id == row.id, ExceptionRow.type == UNCONFIRMED,
        ExceptionRow.status == "open")).all()
    for exc in open_rows:
        exc.status = "resolved"
        exc.resolved_at = utcnow()
        exc.resolved_by = by[:120]
        exc.resolution = how
    return len(open_rows)


def is_cleared(settings: Settings, stage_id: str, stage_desc: str) -> bool:
    """Whether a credit note at this stage counts as cleared
    (``[khaos].cleared_credit_note_stages``, matched on the ID or the description). A
    stage nobody reported (operator, credit-note file) counts as cleared."""
    if not stage_id.strip() and not stage_desc.strip():
        return True
    cleared = {s.strip().casefold() for s in settings.khaos.cleared_credit_note_stages}
    return stage_id.strip().casefold() in cleared or stage_desc.strip().casefold() in cleared


def _evidence_json(ev: Evidence) -> dict[str, Any]:
    out: dict[str, Any] = {"source": ev.source.value, "actor": ev.actor, "reason": ev.reason}
    if ev.credit_note_code:
        out["credit_note_code"] = ev.credit_note_code
    if ev.value is not None:
        out["value"] = str(ev.value)
    if ev.return_code:
        out["khaos_return_code"] = ev.return_code
    if ev.stage:
        out["credit_note_stage"] = ev.stage
    out.update(ev.details)
    return out


def apply_evidence(session: Session, rt: Runtime, row: ReturnRow, ev: Evidence) -> Outcome:
    """Apply ``ev`` to ``row`` (locked by the caller) inside the caller's transaction."""
    status = row.khaos_status
    code = ev.credit_note_code.strip()
    if status in CONFIRMED:
        if code and row.credit_note_code and code != row.credit_note_code:
            return Outcome.CONFLICT
        if code and ev.stage and ev.stage[:40] != row.credit_note_stage:
            row.credit_note_stage = ev.stage[:40]  # e.g. issued since: keep it current
        return Outcome.ALREADY
    if status not in AWAITING:
        return Outcome.NOT_DELIVERED
    evidence = _evidence_json(ev)
    now = utcnow()
    outcome = Outcome.ALREADY
    if ev.return_code and not row.khaos_order_code:
        row.khaos_order_code = ev.return_code[:50]
    if status == KhaosStatus.SERVED.value:
        returns_repo.set_khaos_status(session, row, KhaosStatus.IMPORTED,
                                      f"seen in Khaos ({ev.source.value}: {ev.reason})",
                                      evidence)
        row.imported_at = now
        outcome = Outcome.IMPORTED
        audit.record(session, actor=ev.actor, action="khaos.return_imported",
                     subject=row.associated_ref, details=evidence)
    if code and not is_cleared(rt.settings, ev.stage_id, ev.stage_desc):
        if (code[:50], ev.stage[:40]) != (row.credit_note_code, row.credit_note_stage):
            row.credit_note_code = code[:50]
            row.credit_note_value = ev.value
            row.credit_note_stage = ev.stage[:40]
            returns_repo.add_timeline(
                session, row, "credit_note",
                f"credit note {code} seen at stage {ev.stage}, which does not count as "
                f"cleared ([khaos].cleared_credit_note_stages); waiting for it to clear "
                f"({ev.source.value}: {ev.reason})", evidence)
            outcome = Outcome.IMPORTED if outcome is Outcome.ALREADY else outcome
        code = ""
    if code:
        row.credit_note_code = code[:50]
        row.credit_note_value = ev.value
        row.credit_note_stage = ev.stage[:40]
        row.credit_confirmed_at = now
        row.credit_source = ev.source.value
        what = (f"credit note {code}" + (f" for {ev.value}" if ev.value is not None else "")
                + (f", stage {ev.stage}" if ev.stage else ""))
        returns_repo.set_khaos_status(session, row, KhaosStatus.CREDIT_CONFIRMED,
                                      f"{what} ({ev.source.value}: {ev.reason})", evidence)
        audit.record(session, actor=ev.actor, action="khaos.credit_confirmed",
                     subject=row.associated_ref, details=evidence)
        outcome = Outcome.CONFIRMED
        _check_amount(session, rt, row, ev)
        for gone in session.scalars(select(ExceptionRow).where(
                ExceptionRow.type == "credit_note_missing",
                ExceptionRow.dedupe_key == f"{row.associated_ref}:credit-note",
                ExceptionRow.status == "open")).all():
            gone.status = "resolved"
            gone.resolved_at = now
            gone.resolved_by = ev.actor[:120]
            gone.resolution = f"credit note {code} cleared ({ev.source.value})"
    if outcome is not Outcome.ALREADY:
        _resolve_unconfirmed(session, row, ev.actor,
                             f"Khaos import confirmed ({ev.source.value}: {ev.reason})")
    return outcome


def _check_amount(session: Session, rt: Runtime, row: ReturnRow, ev: Evidence) -> None:
    if ev.value is None:
        return
    expected = served_value(rt.settings, row)
    gap = quantize(ev.value) - expected
    if abs(gap) <= rt.settings.policy.tolerance:
        return
    cur = row.currency or ""
    raise_problem(session, Problem(
        type="amount_mismatch",
        message=f"Khaos credit note {row.credit_note_code} for {row.associated_ref} is "
        f"{quantize(ev.value)} {cur} but returnbridge served {expected} {cur} "
        f"(difference {gap}).",
        dedupe_key=f"{row.associated_ref}:credit_note",
        details={"origin": "credit_note", "credit_note_code": row.credit_note_code,
                 "credit_note_value": str(ev.value), "served_value": str(expected),
                 "difference": str(gap), "source": ev.source.value},
    ), return_id=row.id, associated_ref=row.associated_ref)


def _locked(session: Session, associated_ref: str) -> ReturnRow | None:
    return session.scalars(
        select(ReturnRow).where(ReturnRow.associated_ref == associated_ref)
        .options(selectinload(ReturnRow.lines)).with_for_update()
    ).first()


def record_evidence(rt: Runtime, associated_ref: str, ev: Evidence) -> ConfirmResult:
    """Apply one piece of evidence in its own transaction."""
    with rt.sessions() as session, session.begin():
        row = _locked(session, associated_ref)
        if row is None:
            raise UnknownReturn(f"no return with AssociatedRef {associated_ref!r}")
        outcome = apply_evidence(session, rt, row, ev)
        mismatch = session.scalars(select(ExceptionRow.id).where(
            ExceptionRow.return_id == row.id, ExceptionRow.type == "amount_mismatch",
            ExceptionRow.status == "open")).first() is not None
        return ConfirmResult(row.associated_ref, outcome, row.khaos_status,
                             row.credit_note_code, row.credit_note_value, mismatch)


# --- (c) operator ---------------------------------------------------------------------------


def confirm_credit(rt: Runtime, associated_ref: str, code: str, value: Decimal | None,
                   actor: str, reason: str) -> ConfirmResult:
    """An operator says Khaos holds credit note ``code`` (worth ``value``) for this return.
    Raises :class:`UnknownReturn`, or :class:`ConfirmRefused` when the return was never
    handed to Khaos or already has a different credit note. A repeat is a no-op."""
    if not code.strip():
        raise ValueError("a credit note code is required")
    if not actor.strip() or not reason.strip():
        raise ValueError("say who confirms and why")
    result = record_evidence(rt, associated_ref, Evidence(
        Source.OPERATOR, actor.strip(), reason.strip(), code.strip(), value))
    if result.outcome is Outcome.CONFLICT:
        raise ConfirmRefused(result.outcome, f"{associated_ref} is already confirmed with "
                             f"credit note {result.credit_note_code}, not {code.strip()}")
    if result.outcome is Outcome.NOT_DELIVERED:
        raise ConfirmRefused(result.outcome, f"{associated_ref} has not been handed to Khaos "
                             f"(Khaos status {result.khaos_status}); nothing to confirm")
    return result


# --- (a) SOAP sweep -------------------------------------------------------------------------


def awaiting_refs(rt: Runtime, limit: int | None = None) -> list[str]:
    """AssociatedRefs served or imported but not yet credit-confirmed, oldest first."""
    with rt.sessions() as session:
        stmt = (select(ReturnRow.associated_ref).where(ReturnRow.khaos_status.in_(AWAITING))
                .order_by(ReturnRow.served_at, ReturnRow.id))
        if limit:
            stmt = stmt.limit(limit)
        return list(session.scalars(stmt))


def _soap_evidence(rt: Runtime, rec: OrderStatusRecord) -> Evidence:
    gross = rt.settings.khaos.unit_price == "Gross"
    value = rec.items_total if gross else (rec.items_total_net or rec.items_total)
    invoice = next((i for i in rec.invoices if i.code == rec.credit_note_code), None)
    return Evidence(Source.SOAP, SYSTEM_ACTOR, "ExportOrderStatusEx", rec.credit_note_code,
                    value if rec.credit_note_code else None, rec.order_code,
                    stage_id=invoice.stage_id if invoice else "",
                    stage_desc=invoice.stage_desc if invoice else "")


def apply_order_statuses(rt: Runtime, refs: Sequence[str],
                         records: Sequence[OrderStatusRecord], result: SweepResult) -> None:
    """Apply what ExportOrderStatusEx said about ``refs``."""
    by_ref: dict[str, OrderStatusRecord] = {}
    for rec in records:
        if not rec.is_credit_note or rec.cancelled or rec.associated_ref not in refs:
            continue
        best = by_ref.get(rec.associated_ref)
        if best is None or (rec.credit_note_code and not best.credit_note_code):
            by_ref[rec.associated_ref] = rec
    for ref in refs:
        found = by_ref.get(ref)
        if found is None:
            result.not_found.append(ref)
            continue
        try:
            outcome = record_evidence(rt, ref, _soap_evidence(rt, found)).outcome
        except UnknownReturn:
            continue
        if outcome is Outcome.CONFIRMED:
            result.confirmed += 1
        elif outcome is Outcome.IMPORTED:
            result.imported += 1


def sweep_unconfirmed(rt: Runtime, soap_client: OrderStatusSource, *,
                      limit: int | None = None) -> SweepResult:
    """Ask Khaos (ExportOrderStatusEx, MappingType 4) about every served or imported return,
    ``[khaos].soap_refs_per_call`` refs per call. A failed call is reported, not raised."""
    result = SweepResult()
    refs = awaiting_refs(rt, limit)
    result.checked = len(refs)
    size = rt.settings.khaos.soap_refs_per_call
    for start in range(0, len(refs), size):
        batch = refs[start:start + size]
        result.calls += 1
        try:
            records = soap_client.export_order_status_by_ref(batch)
        except SoapError as exc:
            result.errors.append(str(exc))
            log.warning("credit note sweep call failed", error=str(exc), refs=len(batch))
            if isinstance(exc, SoapTransportError):
                record_failure(rt, "khaos_soap", str(exc))
            continue
        record_success(rt, "khaos_soap")
        apply_order_statuses(rt, batch, records, result)
    return result


# --- (d) order-status pushes ----------------------------------------------------------------


def confirm_from_order_statuses(rt: Runtime) -> int:
    """Confirm awaiting returns from pushed ``khaos_order_statuses`` rows with ORDER_TYPE 2
    and our AssociatedRef. Returns how many returns moved."""
    with rt.sessions() as session:
        rows = session.execute(
            select(KhaosOrderStatus, ReturnRow.associated_ref)
            .join(ReturnRow, ReturnRow.associated_ref == KhaosOrderStatus.associated_ref)
            .where(ReturnRow.khaos_status.in_(AWAITING))
            .order_by(KhaosOrderStatus.updated_at)
        ).all()
        found = [(st.order_code, st.invoice_code, st.order_type, st.total, st.order_id,
                  st.stage, ref) for st, ref in rows]
    moved = 0
    for order_code, invoice_code, order_type, total, order_id, stage, ref in found:
        if (order_type or "").strip().lower() not in CREDIT_NOTE_TYPES:
            continue
        # The credit note is the document's invoice (shipment) code; without one Khaos has
        # raised none yet (the return is only imported), whatever the order code is.
        code = invoice_code
        ev = Evidence(Source.PUSH, SYSTEM_ACTOR, f"OrderStatusUpload order {order_id}", code,
                      total if code else None, order_code, {"order_id": order_id},
                      stage_desc=stage if code else "")
        try:
            outcome = record_evidence(rt, ref, ev).outcome
        except UnknownReturn:
            continue
        moved += outcome in (Outcome.CONFIRMED, Outcome.IMPORTED)
    return moved


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
            ev = Evidence(Source.FILE, actor, f"credit-note file {path.name} line {number}",
                          code, value, "", details)
            try:
                confirmed = record_evidence(rt, ref, ev)
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


# --- SLA ------------------------------------------------------------------------------------


def check_sla(rt: Runtime, now: datetime | None = None) -> int:
    """Open (or count again) ``khaos_import_unconfirmed`` for every return served longer
    than ``credit_confirm_sla_hours`` ago without evidence of the import. Returns how many
    returns are past the SLA."""
    now = now or utcnow()
    hours = rt.settings.khaos.credit_confirm_sla_hours
    cutoff = now - timedelta(hours=hours)
    with rt.sessions() as session, session.begin():
        late = session.scalars(select(ReturnRow).where(
            ReturnRow.khaos_status == KhaosStatus.SERVED.value,
            ReturnRow.served_at.is_not(None), ReturnRow.served_at < cutoff)).all()
        for row in late:
            served_at = row.served_at.isoformat() if row.served_at else ""
            existing = session.scalars(select(ExceptionRow).where(
                ExceptionRow.type == UNCONFIRMED, ExceptionRow.dedupe_key == row.associated_ref,
                ExceptionRow.status == "open")).first()
            if existing is not None:
                continue  # already open: one row per return, not one per sweep
            raise_problem(session, Problem(
                type=UNCONFIRMED,
                message=f"Khaos fetched {row.associated_ref} at {served_at[:19]} UTC but no "
                f"import has been confirmed within {hours:g} hours.",
                dedupe_key=row.associated_ref,
                details={"served_at": served_at, "sla_hours": f"{hours:g}"},
            ), return_id=row.id, associated_ref=row.associated_ref)
            returns_repo.add_timeline(session, row, "exception",
                                      f"{UNCONFIRMED}: not confirmed within {hours:g} hours",
                                      {"served_at": served_at})
        return len(late) + _check_credit_note_sla(session, rt, now)


def _check_credit_note_sla(session: Session, rt: Runtime, now: datetime) -> int:
    """``credit_note_missing`` for every return imported longer than
    ``credit_note_sla_hours`` ago without a cleared credit note: in Khaos the credit note
    exists only once the return is processed, so an unprocessed return would otherwise
    wait for ever (and its refund with it)."""
    hours = rt.settings.khaos.credit_note_sla_hours
    cutoff = now - timedelta(hours=hours)
    late = session.scalars(select(ReturnRow).where(
        ReturnRow.khaos_status == KhaosStatus.IMPORTED.value,
        ReturnRow.imported_at.is_not(None), ReturnRow.imported_at < cutoff)).all()
    for row in late:
        key = f"{row.associated_ref}:credit-note"
        if session.scalars(select(ExceptionRow.id).where(
                ExceptionRow.type == "credit_note_missing", ExceptionRow.dedupe_key == key,
                ExceptionRow.status == "open")).first() is not None:
            continue
        imported = row.imported_at.isoformat()[:19] if row.imported_at else "?"
        code = f" (Khaos return {row.khaos_order_code})" if row.khaos_order_code else ""
        if row.credit_note_code:
            why = (f"its credit note {row.credit_note_code} is still at stage "
                   f"{row.credit_note_stage or '?'}, which does not count as cleared")
            action = (f"Move credit note {row.credit_note_code} on in Khaos (process and "
                      f"issue return {row.associated_ref}{code}), or add the stage to "
                      "[khaos].cleared_credit_note_stages if it should count as cleared.")
        else:
            why = "Khaos has raised no credit note: the return has not been processed"
            action = (f"Process return {row.associated_ref}{code} in Khaos once its goods "
                      "are booked in (that raises the credit note); if the goods never "
                      "arrived, cancel the return in Khaos and at the returns platform.")
        exc = raise_problem(session, Problem(
            type="credit_note_missing",
            message=f"{row.associated_ref} was imported into Khaos at {imported} UTC but "
            f"after {hours:g} hours {why}. Nothing that waits for the credit note (refund, "
            f"reconciliation) can happen until then. {action}",
            dedupe_key=key,
            details={"imported_at": imported, "sla_hours": f"{hours:g}",
                     "credit_note_code": row.credit_note_code,
                     "credit_note_stage": row.credit_note_stage},
        ), return_id=row.id, associated_ref=row.associated_ref)
        returns_repo.add_timeline(session, row, "exception",
                                  f"{exc.type}: no cleared credit note within {hours:g} hours "
                                  f"of the import ({why})", {})
    return len(late)


# --- durable execution: the SOAP queue and the schedule -------------------------------------


def register_soap_queue(settings: Settings) -> None:
    """Register the rate-limited SOAP queue; call after ``DBOS.launch()`` in every process
    (as flows/durable.py does for the events queue)."""
    k = settings.khaos
    DBOS.register_queue(SOAP_QUEUE_NAME, limiter={"limit": k.soap_calls_per_minute,
                                                  "period": 60.0},
                        global_concurrency=k.soap_concurrency,
                        polling_interval_sec=settings.server.queue_poll_seconds,
                        on_conflict="always_update")




@DBOS.step(retries_allowed=True, max_attempts=4, interval_seconds=5.0, backoff_rate=2.0)
def soap_confirm_batch_step(refs: list[str]) -> dict[str, int]:
    """One ExportOrderStatusEx call for ``refs`` and what it proved."""
    from returnbridge.erp.khaos.soap import KhaosSoapClient

    rt = runtime()
    result = SweepResult(checked=len(refs), calls=1)
    try:
        with KhaosSoapClient(rt.settings.khaos.soap_url,
                             timeout=rt.settings.khaos.soap_timeout_seconds) as client:
            records = client.export_order_status_by_ref(refs)
    except SoapTransportError as exc:
        record_failure(rt, "khaos_soap", str(exc))
        raise
    record_success(rt, "khaos_soap")
    apply_order_statuses(rt, refs, records, result)
    return {"confirmed": result.confirmed, "imported": result.imported,
            "not_found": len(result.not_found)}


@DBOS.workflow()
def confirm_batch_workflow(refs: list[str]) -> dict[str, int]:
    """Runs on the SOAP queue: ask Khaos about one batch of refs."""
    return soap_confirm_batch_step(refs)


PROCESS_RETURN_OUTCOMES = ("processed", "already_processed", "not_found",
                           "partially_processed", "code_or_auth_missing")


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=5.0, backoff_rate=2.0)
def process_return_step(return_code: str, manual_auth_code: str) -> str:
    """ProcessReturn over SOAP. Documented faults are answers (returned as an outcome from
    ``PROCESS_RETURN_OUTCOMES``, never retried); transport failures raise and are retried.
    ``already_processed`` after a retry means our earlier call got through."""
    from returnbridge.erp.khaos.soap import KhaosSoapClient
    from returnbridge.erp.khaos.soap_faults import (
        ReturnAlreadyProcessed,
        ReturnCodeOrAuthMissing,
        ReturnNotFound,
        ReturnPartiallyProcessed,
    )

    rt = runtime()
    k = rt.settings.khaos
    try:
        with KhaosSoapClient(k.soap_url, timeout=k.soap_timeout_seconds) as client:
            client.process_return(return_code, manual_auth_code)
    except SoapTransportError as exc:
        record_failure(rt, "khaos_soap", str(exc))
        raise  # the step is retried
    except ReturnAlreadyProcessed:
        return "already_processed"
    except ReturnNotFound:
        return "not_found"
    except ReturnPartiallyProcessed:
        return "partially_processed"
    except ReturnCodeOrAuthMissing:
        return "code_or_auth_missing"
    record_success(rt, "khaos_soap")
    return "processed"


@DBOS.workflow()
def process_return_workflow(return_code: str, manual_auth_code: str) -> str:
    """Runs on the SOAP queue: record a refund in desktop Khaos with ProcessReturn."""
    return process_return_step(return_code, manual_auth_code)


def enqueue_process_return(associated_ref: str, return_code: str,
                           manual_auth_code: str) -> Any:
    """Queue ProcessReturn for one return on the rate-limited SOAP queue, at most once per
    AssociatedRef (workflow id ``process-return:{associated_ref}``). Returns the DBOS
    workflow handle; ``handle.get_result()`` is one of ``PROCESS_RETURN_OUTCOMES``. The
    return code is ``returns.khaos_order_code``, stored when the import was confirmed."""
    with SetWorkflowID(f"process-return:{associated_ref}"):
        return DBOS.enqueue_workflow(SOAP_QUEUE_NAME, process_return_workflow, return_code,
                                     manual_auth_code)


def enqueue_confirm_sweep(rt: Runtime, now: datetime | None = None) -> int:
    """Enqueue one SOAP batch workflow per ``soap_refs_per_call`` awaiting refs on the
    rate-limited queue; the workflow id is keyed by the refs and the sweep window, so a
    second process enqueueing the same sweep adds nothing. Returns batches enqueued."""
    if not rt.settings.khaos.soap_url:
        return 0
    now = now or utcnow()
    window = int(now.timestamp() // (rt.settings.khaos.confirm_sweep_minutes * 60))
    refs = awaiting_refs(rt)
    size = rt.settings.khaos.soap_refs_per_call
    batches = 0
    for start in range(0, len(refs), size):
        batch = refs[start:start + size]
        with SetWorkflowID(f"confirm:{window}:{batch[0]}:{len(batch)}"):
            DBOS.enqueue_workflow(SOAP_QUEUE_NAME, confirm_batch_workflow, batch)
        batches += 1
    return batches


@dataclass
class CycleResult:
    pushed: int = 0
    soap_batches: int = 0
    late: int = 0


def run_confirm_cycle(rt: Runtime, *, durable: bool) -> CycleResult:
    """One scheduled pass: order-status pushes, SOAP sweep (queued when ``durable``), SLA."""
    result = CycleResult(pushed=confirm_from_order_statuses(rt))
    if rt.settings.khaos.soap_url and durable:
        result.soap_batches = enqueue_confirm_sweep(rt)
    result.late = check_sla(rt)
    return result
