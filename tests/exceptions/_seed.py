"""Rows for the exception and audit tests, written straight to the store."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import Problem
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import (
    ExceptionRow,
    ExchangeLineRow,
    ReturnLineRow,
    ReturnRow,
    StockBarcode,
    StockItem,
    StockLevel,
    utcnow,
)

Line = tuple[str, str, str, str]  # sku, reason, condition, disposition


def add_return(session: Session, ref: str, lines: list[Line], *, source: str = "loop",
               khaos_status: str = "held", exchanges: tuple[str, ...] = (),
               seen: datetime | None = None, quantity: int = 1) -> ReturnRow:
    seen = seen or utcnow()
    row = ReturnRow(
        associated_ref=ref, source=source, source_return_id=ref.split("-", 1)[-1],
        order_ref="#1001", customer_email=f"{ref.lower()}@example.co.uk", currency="GBP",
        state="open", source_state="open", khaos_status=khaos_status, case_json={},
        first_seen_at=seen, last_event_at=seen,
    )
    row.lines = [
        ReturnLineRow(position=i, sku=sku, quantity=quantity, unit_net=Decimal("20.83"),
                      unit_tax=Decimal("4.17"), unit_gross=Decimal("25.00"),
                      discount=Decimal(0), reason=reason, condition=condition,
                      disposition=disposition)
        for i, (sku, reason, condition, disposition) in enumerate(lines)
    ]
    row.exchanges = [
        ExchangeLineRow(position=i, sku=sku, quantity=1, unit_net=Decimal("20.83"),
                        unit_tax=Decimal("4.17"), unit_gross=Decimal("25.00"))
        for i, sku in enumerate(exchanges)
    ]
    session.add(row)
    session.flush()
    return row


def add_problem(session: Session, type_: str, key: str, *, ret: ReturnRow | None = None,
                message: str = "", **details: str) -> ExceptionRow:
    return ExceptionsRepository(session).raise_problem(
        Problem(type=type_, message=message or f"{type_} for {key}",
                         dedupe_key=key, details=details),
        return_id=ret.id if ret else None, associated_ref=ret.associated_ref if ret else "")


def add_item(session: Session, stock_id: str, code: str, *, other_ref: str = "",
             barcodes: tuple[str, ...] = (), web: bool = True, discontinued: bool = False,
             deleted: bool = False) -> None:
    session.add(StockItem(stock_id=stock_id, stock_code=code, other_ref=other_ref,
                          description=code, barcodes=list(barcodes), publish_on_web=web,
                          discontinued=discontinued, deleted=deleted, updated_at=utcnow()))
    for barcode in barcodes:
        session.add(StockBarcode(barcode=barcode, stock_id=stock_id))
    session.flush()


def add_level(session: Session, stock_id: str, code: str, site: str, available: str,
              age: timedelta) -> None:
    session.add(StockLevel(stock_id=stock_id, site_id=site, stock_code=code,
                           available=Decimal(available), on_order=Decimal(0),
                           updated_at=utcnow() - age))
    session.flush()
