"""What passed between returnbridge and Khaos: the pages served to its CReturnDownload polls
(``khaos_deliveries`` and their items), and the order statuses it pushed about our returns."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from returnbridge.erp.khaos.channel import ServedLine
from returnbridge.store.models import (
    ExchangeLineRow,
    KhaosDelivery,
    KhaosDeliveryItem,
    KhaosOrderStatus,
    ReturnLineRow,
    ReturnRow,
    table_of,
    utcnow,
)

# (order code, invoice code, order type, total, order id, stage, AssociatedRef)
PushedStatus = tuple[str, str, str, Decimal | None, str, str, str]

R = table_of(ReturnRow)
L = table_of(ReturnLineRow)
X = table_of(ExchangeLineRow)


@dataclass(frozen=True)
class PageExchange:
    """An exchange item's resolved StockCode (the rest comes from the case)."""

    position: int
    sku: str


@dataclass(frozen=True)
class PageRow:
    """One return of a page for Khaos: the columns its document and its hand-over need,
    read as plain values (a page is a thousand returns; ORM objects cost more than the
    document)."""

    id: int
    associated_ref: str
    khaos_status: str
    khaos_urn: str
    process_return: bool
    khaos_order_code: str
    first_seen_at: datetime
    case_json: dict[str, Any]
    lines: tuple[ServedLine, ...]
    exchanges: tuple[PageExchange, ...]


def page_row_of(row: ReturnRow) -> PageRow:
    """A loaded return as a page row (what Khaos would receive for it, one at a time)."""
    return PageRow(row.id, row.associated_ref, row.khaos_status, row.khaos_urn,
                   row.process_return, row.khaos_order_code, row.first_seen_at, row.case_json,
                   tuple(ServedLine(x.sku, x.quantity, x.khaos_reason_id, x.unit_net,
                                  x.unit_gross) for x in row.lines),
                   tuple(PageExchange(x.position, x.sku) for x in row.exchanges))


_PAGE_COLUMNS = (R.c.id, R.c.associated_ref, R.c.khaos_status, R.c.khaos_urn,
                 R.c.process_return, R.c.khaos_order_code, R.c.first_seen_at, R.c.case_json)


class UnstorableValue(Exception):
    """A pushed value the database cannot hold (Khaos resending it never helps); the
    mirror update it was in is rolled back, the unit of work goes on."""


class KhaosRepository:
    """Deliveries to Khaos and its pushed order statuses in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def ready_for_update(self, status: str, limit: int) -> list[PageRow]:
        """Returns in ``status`` (ready), oldest first, locked; rows another transaction
        holds are skipped (PostgreSQL ``SKIP LOCKED``)."""
        return self._page(select(*_PAGE_COLUMNS).where(R.c.khaos_status == status)
                          .order_by(R.c.ready_at, R.c.id).limit(limit)
                          .with_for_update(skip_locked=True))

    def by_refs_for_update(self, refs: Sequence[str]) -> list[PageRow]:
        """The returns with these AssociatedRefs, oldest first, locked."""
        return self._page(select(*_PAGE_COLUMNS).where(R.c.associated_ref.in_(list(refs)))
                          .order_by(R.c.ready_at, R.c.id).with_for_update())

    def delivered_for_update(self, delivery_id: int) -> list[PageRow]:
        """The returns handed over in this delivery, oldest first, locked."""
        items = table_of(KhaosDeliveryItem)
        return self._page(select(*_PAGE_COLUMNS)
                          .join(items, items.c.return_id == R.c.id)
                          .where(items.c.delivery_id == delivery_id)
                          .order_by(R.c.ready_at, R.c.id).with_for_update(of=R))

    def _page(self, stmt: Select[Any]) -> list[PageRow]:
        """The returns ``stmt`` selects, with their lines and exchange items (one query
        each for the whole page)."""
        heads = self._session.execute(stmt).all()
        ids = [h.id for h in heads]
        lines: dict[int, list[ServedLine]] = defaultdict(list)
        exchanges: dict[int, list[PageExchange]] = defaultdict(list)
        if ids:
            for r in self._session.execute(
                    select(L.c.return_id, L.c.sku, L.c.quantity, L.c.khaos_reason_id,
                           L.c.unit_net, L.c.unit_gross)
                    .where(L.c.return_id.in_(ids)).order_by(L.c.return_id, L.c.position)):
                lines[r[0]].append(ServedLine(r[1], r[2], r[3], r[4], r[5]))
            for x in self._session.execute(
                    select(X.c.return_id, X.c.position, X.c.sku)
                    .where(X.c.return_id.in_(ids)).order_by(X.c.return_id, X.c.position)):
                exchanges[x[0]].append(PageExchange(x[1], x[2]))
        return [PageRow(h.id, h.associated_ref, h.khaos_status, h.khaos_urn,
                        bool(h.process_return), h.khaos_order_code, h.first_seen_at,
                        h.case_json, tuple(lines.get(h.id, ())),
                        tuple(exchanges.get(h.id, ()))) for h in heads]

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
                           rows: Sequence[tuple[PageRow, bool]]) -> None:
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
