"""Read models for the API and the CLI."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from returnbridge.domain.money import quantize
from returnbridge.flows.decide.money import items_for
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import returns_repo
from returnbridge.store.codec import to_jsonable
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import ExceptionRow, KhaosDeliveryItem, RefundRow, ReturnRow
from returnbridge.store.reconciliation_items_repo import ReconciliationItemsRepository
from returnbridge.store.returns_repo import ReturnsRepository


def _exception(row: ExceptionRow) -> dict[str, Any]:
    return {
        "id": row.id, "type": row.type, "owner": row.owner, "severity": row.severity,
        "status": row.status, "associated_ref": row.associated_ref, "message": row.message,
        "next_action": row.next_action, "details": row.details, "count": row.count,
        "first_seen_at": row.first_seen_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "resolved_by": row.resolved_by, "resolution": row.resolution,
    }


def _money(value: Decimal) -> str:
    """Pennies, the same on SQLite (exact text) and PostgreSQL (NUMERIC(18,4))."""
    return str(quantize(value))


def return_view(rt: Runtime, associated_ref: str) -> dict[str, Any] | None:
    with rt.sessions() as session:
        row = ReturnsRepository(session).by_ref(associated_ref)
        if row is None:
            return None
        case = returns_repo.case_of(row)
        deliveries = session.scalars(
            select(KhaosDeliveryItem).where(KhaosDeliveryItem.return_id == row.id)
            .order_by(KhaosDeliveryItem.id)
        ).all()
        return {
            "associated_ref": row.associated_ref,
            "source": row.source,
            "source_return_id": row.source_return_id,
            "order_ref": row.order_ref,
            "state": row.state,
            "source_state": row.source_state,
            "khaos_status": row.khaos_status,
            "waiting_for": row.wait_reason,
            "khaos_urn": row.khaos_urn,
            "process_return": row.process_return,
            "currency": row.currency,
            "customer": to_jsonable(case.customer),
            "lines": [
                {"sku": lr.sku, "quantity": lr.quantity, "unit_net": _money(lr.unit_net),
                 "unit_tax": _money(lr.unit_tax), "unit_gross": _money(lr.unit_gross),
                 "reason": lr.reason, "condition": lr.condition, "disposition": lr.disposition,
                 "khaos_reason_id": lr.khaos_reason_id, "processing": lr.processing,
                 "source_unit_ids": lr.source_unit_ids}
                for lr in row.lines
            ],
            "exchanges": to_jsonable(case.exchanges),
            "settlement": to_jsonable(case.settlement),
            "credit_note": {"code": row.credit_note_code,
                            "value": _money(row.credit_note_value)
                            if row.credit_note_value is not None else None,
                            "stage": row.credit_note_stage},
            "refund_request": row.refund_request,
            "khaos_deliveries": [{"delivery_id": d.delivery_id, "redelivery": d.redelivery}
                                 for d in deliveries],
            "timeline": [
                {"at": t.at.isoformat(), "kind": t.kind, "message": t.message,
                 "evidence": t.evidence}
                for t in ReturnsRepository(session).timeline(row.id)
            ],
            "open_exceptions": [_exception(e)
                                for e in ExceptionsRepository(session).open_for_return(row.id)],
            "refunds": [
                {"origin": r.origin, "provider": r.provider, "amount": _money(r.amount),
                 "currency": r.currency, "provider_refund_id": r.provider_refund_id,
                 "status": r.status, "note": r.note, "created_at": r.created_at.isoformat()}
                for r in session.scalars(select(RefundRow).where(RefundRow.return_id == row.id)
                                         .order_by(RefundRow.id))
            ],
            "reconciliation_items": [
                {"category": i.category, "amount": _money(i.amount), "currency": i.currency,
                 "status": i.status, "reference": i.reference, "note": i.note,
                 "created_at": i.created_at.isoformat()}
                for i in items_for(ReconciliationItemsRepository(session), row.associated_ref)
            ],
            "follow_up_of": session.scalar(select(ReturnRow.associated_ref).where(
                ReturnRow.id == row.parent_id)) if row.parent_id else None,
            "follow_ups": list(session.scalars(select(ReturnRow.associated_ref).where(
                ReturnRow.parent_id == row.id).order_by(ReturnRow.id))),
        }


def exception_list(rt: Runtime, status: str = "open") -> list[dict[str, Any]]:
    with rt.sessions() as session:
        stmt = select(ExceptionRow).order_by(ExceptionRow.last_seen_at.desc(), ExceptionRow.id)
        if status != "all":
            stmt = stmt.where(ExceptionRow.status == status)
        return [_exception(r) for r in session.scalars(stmt)]
