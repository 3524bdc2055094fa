"""What passed between returnbridge and Khaos: the pages served to its CReturnDownload polls
(``khaos_deliveries`` and their items), and the order statuses it pushed about our returns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, selectinload

from returnbridge.store.models import (
    KhaosDelivery,
    KhaosDeliveryItem,
    KhaosOrderStatus,
    ReturnRow,
    utcnow,
)

# (order code, invoice code, order type, total, order id, stage, AssociatedRef)
PushedStatus = tuple[str, str, str, Decimal | None, str, str, str]


# A served return needs its document lines and exchange items: loaded with the page, not
# one lazy query per return.
_WITH_LINES = (selectinload(ReturnRow.lines), selectinload(ReturnRow.exchanges))


class UnstorableValue(Exception):
    """A pushed value the database cannot hold (Khaos resending it never helps); the
    mirror update it was in is rolled back, the unit of work goes on."""


class KhaosRepository:
    """Deliveries to Khaos and its pushed order statuses in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def ready_for_update(self, status: str, limit: int) -> list[ReturnRow]:
        """Returns in ``status`` (ready), oldest first, locked; rows another transaction
        holds are skipped (PostgreSQL ``SKIP LOCKED``)."""
        stmt = (
            select(ReturnRow)
            .where(ReturnRow.khaos_status == status)
            .order_by(ReturnRow.ready_at, ReturnRow.id)
            .limit(limit)
            .options(*_WITH_LINES)
            .with_for_update(skip_locked=True)
        )
        return list(self._session.scalars(stmt))

    def by_refs_for_update(self, refs: Sequence[str]) -> list[ReturnRow]:
        """The returns with these AssociatedRefs, oldest first, locked."""
        stmt = (
            select(ReturnRow)
            .where(ReturnRow.associated_ref.in_(list(refs)))
            .order_by(ReturnRow.ready_at, ReturnRow.id)
            .options(*_WITH_LINES)
            .with_for_update()
        )
        return list(self._session.scalars(stmt))

    def delivered_for_update(self, delivery_id: int) -> list[ReturnRow]:
        """The returns handed over in this delivery, oldest first, locked."""
        stmt = (
            select(ReturnRow)
            .join(KhaosDeliveryItem, KhaosDeliveryItem.return_id == ReturnRow.id)
            .where(KhaosDeliveryItem.delivery_id == delivery_id)
            .order_by(ReturnRow.ready_at, ReturnRow.id)
            .options(*_WITH_LINES)
            .with_for_update()
        )
        return list(self._session.scalars(stmt))

    def answer_to(self, continuation: str) -> KhaosDelivery | None:
        """Our latest paged answer (no SpecificIDs) to a request carrying ``continuation``."""
        return self._session.scalars(
            select(KhaosDelivery)
            .where(KhaosDelivery.endpoint == "returns",
                   KhaosDelivery.request_continuation == continuation,
                   KhaosDelivery.specific_ids == "")
            .order_by(KhaosDelivery.id.desc()).limit(1)
        ).first()

    def add_delivery(self, *, fmt: str, request_continuation: str, specific_ids: str,
                     return_count: int, document: bytes) -> KhaosDelivery:
        """Record one answer to Khaos (its id assigned)."""
        delivery = KhaosDelivery(
            delivered_at=utcnow(), endpoint="returns", format=fmt,
            request_continuation=request_continuation[:255], response_continuation="",
            specific_ids=specific_ids, return_count=return_count, document=document,
        )
        self._session.add(delivery)
        self._session.flush()
        return delivery

    def set_response_continuation(self, delivery: KhaosDelivery, token: str) -> None:
        delivery.response_continuation = token

    def add_delivery_items(self, delivery: KhaosDelivery,
                           rows: Sequence[tuple[ReturnRow, bool]]) -> None:
        """Each ``(row, redelivery)`` was handed over in ``delivery`` (again, when
        ``redelivery``); one multi-row INSERT."""
        if rows:
            self._session.execute(insert(KhaosDeliveryItem), [
                {"delivery_id": delivery.id, "return_id": row.id,
                 "associated_ref": row.associated_ref, "redelivery": redelivery}
                for row, redelivery in rows])

    def pushed_statuses_of(self, khaos_statuses: Sequence[str]) -> list[PushedStatus]:
        """The order statuses Khaos pushed about our returns in these Khaos statuses,
        oldest update first."""
        rows = self._session.execute(
            select(KhaosOrderStatus, ReturnRow.associated_ref)
            .join(ReturnRow, ReturnRow.associated_ref == KhaosOrderStatus.associated_ref)
            .where(ReturnRow.khaos_status.in_(list(khaos_statuses)))
            .order_by(KhaosOrderStatus.updated_at)
        ).all()
        return [(st.order_code, st.invoice_code, st.order_type, st.total, st.order_id,
                 st.stage, ref) for st, ref in rows]

    # the mirror Khaos pushes (stock, stock levels, order statuses) and its push events

    @contextmanager
    def mirror_update(self) -> Iterator[None]:
        """A savepoint around one push's mirror update: an exception escaping it rolls back
        the update alone; a value the database cannot hold comes out as
        :class:`UnstorableValue` (its first line, at most 200 characters)."""
        try:
            with self._session.begin_nested():
                yield
        except DataError as exc:
            raise UnstorableValue(str(exc.orig or exc).splitlines()[0][:200]) from exc
