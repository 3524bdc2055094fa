"""Refunds: the payments returnbridge made, the ones it was told about, and the finance
tasks a platform refund that cannot be recorded in Khaos becomes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from returnbridge.store.models import ReconciliationItem, RefundRow, ReturnRow, utcnow


class RefundAlreadyStored(Exception):
    """A refund with this idempotency key is stored already (an earlier attempt stored it);
    the unit of work it was raised in is rolled back."""


class RefundsRepository:
    """The ``refunds`` table (and the platform refunds' finance tasks) in one unit of
    work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def by_key(self, idempotency_key: str) -> RefundRow | None:
        return self._session.scalars(select(RefundRow).where(
            RefundRow.idempotency_key == idempotency_key)).first()

    def is_stored(self, idempotency_key: str) -> bool:
        return self._session.scalars(select(RefundRow.id).where(
            RefundRow.idempotency_key == idempotency_key)).first() is not None

    def provider_id(self, idempotency_key: str) -> str | None:
        """The provider's id of the refund stored under this key, if there is one."""
        return self._session.scalars(select(RefundRow.provider_refund_id).where(
            RefundRow.idempotency_key == idempotency_key)).first()

    def has_external(self, return_id: int) -> bool:
        """Whether a refund made outside returnbridge is stored for this return."""
        return self._session.scalars(select(RefundRow.id).where(
            RefundRow.return_id == return_id, RefundRow.origin == "external")).first() is not None

    def external(self, return_id: int) -> Sequence[RefundRow]:
        """The refunds made outside returnbridge stored for this return."""
        return self._session.scalars(select(RefundRow).where(
            RefundRow.return_id == return_id, RefundRow.origin == "external")).all()

    def provider_ids_for_order(self, order_ref: str) -> set[str]:
        """The provider ids of every refund stored for this order (any return of it)."""
        return {i for i in self._session.scalars(select(RefundRow.provider_refund_id).where(
            RefundRow.order_ref == order_ref)) if i}

    def refs_with_status(self, idempotency_keys: Sequence[str],
                         statuses: Sequence[str]) -> set[str]:
        """AssociatedRefs of the refunds stored under these keys in these statuses."""
        return set(self._session.scalars(select(RefundRow.associated_ref).where(
            RefundRow.idempotency_key.in_(list(idempotency_keys)),
            RefundRow.status.in_(list(statuses)))))

    def add_payment(self, *, row: ReturnRow | None, associated_ref: str, provider: str,
                    idempotency_key: str, provider_refund_id: str, order_ref: str,
                    amount: Decimal, currency: str, status: str, note: str,
                    details: dict[str, Any]) -> RefundRow:
        """Store a payment returnbridge made. Raises :class:`RefundAlreadyStored` when one
        is stored under the key already (leave the unit of work with it: it rolls back)."""
        refund = RefundRow(
            return_id=row.id if row is not None else None, associated_ref=associated_ref,
            provider=provider, origin="returnbridge", idempotency_key=idempotency_key,
            provider_refund_id=provider_refund_id, order_ref=order_ref, amount=amount,
            currency=currency, status=status, note=note, created_at=utcnow(),
            details=details)
        self._session.add(refund)
        try:
            self._session.flush()
        except IntegrityError as exc:
            raise RefundAlreadyStored(idempotency_key) from exc
        return refund

    def add_external(self, *, row: ReturnRow | None, associated_ref: str, provider: str,
                     idempotency_key: str, provider_refund_id: str, order_ref: str,
                     amount: Decimal, currency: str, status: str, note: str,
                     details: dict[str, Any] | None = None, flush: bool = False) -> RefundRow:
        """Store a refund made outside returnbridge (the platform made it)."""
        refund = RefundRow(
            return_id=row.id if row is not None else None, associated_ref=associated_ref,
            provider=provider, origin="external", idempotency_key=idempotency_key,
            provider_refund_id=provider_refund_id, order_ref=order_ref, amount=amount,
            currency=currency, status=status, note=note, created_at=utcnow(),
            details=details or {})
        self._session.add(refund)
        if flush:
            self._session.flush()
        return refund

    def mark_recorded(self, refund: RefundRow) -> None:
        """The refund is recorded in Khaos."""
        refund.status = "recorded"

    def mark_finance_task(self, refund: RefundRow) -> None:
        """The refund is handed to finance to record by hand."""
        refund.status = "finance_task"

    def open_record_task(self, row: ReturnRow, *, category: str, amount: Decimal,
                         currency: str, reference: str, note: str) -> None:
        """Open the reconciliation item that asks finance to record a platform refund in
        Khaos by hand, unless this return has one in ``category`` already."""
        existing = self._session.scalars(select(ReconciliationItem).where(
            ReconciliationItem.associated_ref == row.associated_ref,
            ReconciliationItem.category == category)).first()
        if existing is not None:
            return
        now = utcnow()
        self._session.add(ReconciliationItem(
            return_id=row.id, associated_ref=row.associated_ref, category=category,
            amount=amount, currency=currency, status="open", reference=reference, note=note,
            created_at=now, updated_at=now))
