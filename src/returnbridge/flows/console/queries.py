"""Read models for the API and the CLI."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from returnbridge.domain.money import quantize
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import returns_repo
from returnbridge.store.codec import to_jsonable
from returnbridge.store.models import ExceptionRow


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
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        if row is None:
            return None
        case = returns_repo.case_of(row)
        deliveries = uow.console.delivery_items(row.id)
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
                for t in uow.returns.timeline(row.id)
            ],
            "open_exceptions": [_exception(e)
                                for e in uow.exceptions.open_for_return(row.id)],
            "refunds": [
                {"origin": r.origin, "provider": r.provider, "amount": _money(r.amount),
                 "currency": r.currency, "provider_refund_id": r.provider_refund_id,
                 "status": r.status, "note": r.note, "created_at": r.created_at.isoformat()}
                for r in uow.console.refunds(row.id)
            ],
            "reconciliation_items": [
                {"category": i.category, "amount": _money(i.amount), "currency": i.currency,
                 "status": i.status, "reference": i.reference, "note": i.note,
                 "created_at": i.created_at.isoformat()}
                for i in uow.reconciliation_items.for_ref(row.associated_ref)
            ],
            "follow_up_of": uow.console.ref_of(row.parent_id) if row.parent_id else None,
            "follow_ups": uow.console.follow_up_refs(row.id),
        }


def exception_list(rt: Runtime, status: str = "open") -> list[dict[str, Any]]:
    with rt.unit_of_work() as uow:
        return [_exception(r) for r in uow.console.exceptions_by_status(status)]
