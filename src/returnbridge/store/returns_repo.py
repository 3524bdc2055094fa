"""Returns, their lines and their timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from returnbridge.domain.khaos_status import KhaosStatus, move
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import Decision
from returnbridge.store.codec import case_from_json, case_to_json
from returnbridge.store.models import (
    ExchangeLineRow,
    ReturnLineRow,
    ReturnRow,
    TimelineEntry,
    utcnow,
)


def find_for_update(session: Session, source: str, source_return_id: str) -> ReturnRow | None:
    stmt = (
        select(ReturnRow)
        .where(ReturnRow.source == source, ReturnRow.source_return_id == source_return_id)
        .with_for_update()
    )
    return session.scalars(stmt).first()


def by_ref(session: Session, associated_ref: str) -> ReturnRow | None:
    return session.scalars(
        select(ReturnRow)
        .where(ReturnRow.associated_ref == associated_ref)
        .options(selectinload(ReturnRow.lines), selectinload(ReturnRow.exchanges))
    ).first()


def case_of(row: ReturnRow) -> ReturnCase:
    return case_from_json(row.case_json)


def save_case(session: Session, row: ReturnRow | None, case: ReturnCase) -> ReturnRow:
    """Create or update the row and its line tables from ``case``."""
    if row is None:
        row = ReturnRow(
            associated_ref=case.associated_ref, source=case.source.value,
            source_return_id=case.source_return_id, state=case.state.value,
            khaos_status=KhaosStatus.PENDING.value, first_seen_at=utcnow(),
        )
        session.add(row)
    row.order_ref = case.order_ref[:80]
    row.customer_email = case.customer.email[:255]
    row.currency = case.currency[:3]
    row.state = case.state.value
    row.source_state = case.source_state[:40]
    row.source_created_at = case.created_at
    row.source_updated_at = case.updated_at
    row.last_event_at = utcnow()
    row.case_json = case_to_json(case)
    row.lines = [
        ReturnLineRow(
            position=i, sku=line.sku[:100], quantity=line.quantity, unit_net=line.unit_net,
            unit_tax=line.unit_tax, unit_gross=line.unit_gross, discount=line.discount,
            reason=line.reason[:255], parent_reason=line.parent_reason[:255],
            condition=line.condition[:80], disposition=line.disposition.value,
            physical_return_expected=line.physical_return_expected,
            received_at=line.received_at, source_unit_ids=list(line.source_unit_ids),
        )
        for i, line in enumerate(case.lines)
    ]
    row.exchanges = [
        ExchangeLineRow(
            position=i, sku=ex.sku[:100], quantity=ex.quantity, unit_net=ex.unit_net,
            unit_tax=ex.unit_tax, unit_gross=ex.unit_gross, out_of_stock=ex.out_of_stock,
        )
        for i, ex in enumerate(case.exchanges)
    ]
    session.flush()
    return row


def apply_decision(row: ReturnRow, decision: Decision) -> None:
    """Copy the policy's per-line answers onto the stored lines."""
    row.khaos_urn = decision.urn[:50]
    row.process_return = decision.process_return
    row.wait_reason = decision.wait_reason[:255]
    for line_row, line_decision in zip(row.lines, decision.lines, strict=True):
        line_row.khaos_reason_id = line_decision.khaos_reason_id if line_decision else ""
        line_row.processing = line_decision.processing.value if line_decision else ""


def add_timeline(session: Session, row: ReturnRow, kind: str, message: str,
                 evidence: dict[str, Any] | None = None) -> None:
    session.add(TimelineEntry(return_id=row.id, at=utcnow(), kind=kind, message=message,
                              evidence=evidence or {}))


def timeline(session: Session, return_id: int) -> Sequence[TimelineEntry]:
    return session.scalars(
        select(TimelineEntry).where(TimelineEntry.return_id == return_id)
        .order_by(TimelineEntry.id)
    ).all()


def set_khaos_status(session: Session, row: ReturnRow, target: KhaosStatus, why: str,
                     evidence: dict[str, Any] | None = None) -> bool:
    """Move the Khaos status and write it to the timeline; False when already there."""
    current = KhaosStatus(row.khaos_status)
    if current is target:
        return False
    move(current, target)
    row.khaos_status = target.value
    now = utcnow()
    if target is KhaosStatus.READY:
        row.ready_at = now
    if target is KhaosStatus.SERVED:
        row.served_at = now
    add_timeline(session, row, "khaos_status", f"{current.value} -> {target.value}: {why}",
                 evidence)
    return True
