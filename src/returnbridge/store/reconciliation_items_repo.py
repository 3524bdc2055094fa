"""Reconciliation items: money a return carries that is not on the Khaos credit note."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.store.models import ReconciliationItem, ReturnRow, utcnow
from returnbridge.store.reads import reading


class ReconciliationItemsRepository:
    """The ``reconciliation_items`` rows in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def for_ref(self, associated_ref: str) -> list[ReconciliationItem]:
        return list(self._session.scalars(select(ReconciliationItem).where(
            ReconciliationItem.associated_ref == associated_ref)
            .order_by(ReconciliationItem.id)))

    def by_category(self, associated_ref: str, categories: Sequence[str]
                    ) -> dict[str, ReconciliationItem]:
        """This return's items in ``categories``, by category."""
        with reading(self._session, ReconciliationItem):
            return {i.category: i for i in self._session.scalars(
                select(ReconciliationItem).where(
                    ReconciliationItem.associated_ref == associated_ref,
                    ReconciliationItem.category.in_(list(categories))))}

    def open_item(self, row: ReturnRow, category: str, amount: Decimal, currency: str,
                  note: str) -> ReconciliationItem:
        now = utcnow()
        if row.id is None:  # a new return not written yet
            self._session.flush()
        item = ReconciliationItem(
            return_id=row.id, associated_ref=row.associated_ref, category=category,
            amount=amount, currency=currency, status="open", note=note,
            created_at=now, updated_at=now)
        self._session.add(item)
        return item

    def reopen(self, item: ReconciliationItem, amount: Decimal, note: str) -> None:
        """The figure changed (or the item was closed): open again with this amount."""
        item.amount = amount
        item.status = "open"
        item.note = note
        item.updated_at = utcnow()

    def withdraw(self, item: ReconciliationItem, why: str) -> None:
        item.status = "withdrawn"
        item.updated_at = utcnow()
        item.note += f"; withdrawn: {why}"

    def flush(self) -> None:
        self._session.flush()
