"""Serve to Khaos (ARCHITECTURE 5.3): answer a CReturnDownload poll.

Everything ready is handed over oldest first, at most ``page_size`` per poll; what was
handed over is marked ``served`` and recorded in ``khaos_deliveries`` in the same
transaction, so a return is never served twice unless Khaos asks for it by name
(``SpecificIDs``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.erp.khaos.channel import (
    ChannelOptions,
    ServedLine,
    ServedReturn,
    customer_return_import,
)
from returnbridge.flows.runtime import Runtime
from returnbridge.store import returns_repo
from returnbridge.store.models import KhaosDelivery, KhaosDeliveryItem, ReturnRow, utcnow


@dataclass(frozen=True)
class Page:
    document: bytes
    media_type: str
    continuation: str  # "" when nothing more is waiting
    refs: tuple[str, ...]


def channel_options(rt: Runtime) -> ChannelOptions:
    k = rt.settings.khaos
    return ChannelOptions(unit_price=k.unit_price, sku_mapping=k.sku_mapping,
                          match_address_on=tuple(k.match_address_on),
                          match_contact_on=tuple(k.match_contact_on), timezone=k.timezone)


def to_served(row: ReturnRow) -> ServedReturn:
    case = returns_repo.case_of(row)
    lines = tuple(
        ServedLine(sku=lr.sku, quantity=lr.quantity, khaos_reason_id=lr.khaos_reason_id,
                   unit_net=lr.unit_net, unit_gross=lr.unit_gross)
        for lr in row.lines
    )
    created: datetime = case.created_at or row.first_seen_at
    return ServedReturn(
        associated_ref=row.associated_ref, created_at=created, urn=row.khaos_urn,
        customer=case.customer, lines=lines, exchanges=case.exchanges,
        process_return=row.process_return, order_ref=case.order_ref,
        notes=f"{case.source.value} return {case.source_return_id}, order {case.order_ref}",
    )


def _select_ready(session: Session, limit: int) -> list[ReturnRow]:
    stmt = (
        select(ReturnRow)
        .where(ReturnRow.khaos_status == KhaosStatus.READY.value)
        .order_by(ReturnRow.ready_at, ReturnRow.id)
        .limit(limit)
        .options(selectinload(ReturnRow.lines))
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def _select_specific(session: Session, refs: list[str]) -> list[ReturnRow]:
    stmt = (
        select(ReturnRow)
        .where(ReturnRow.associated_ref.in_(refs))
        .order_by(ReturnRow.ready_at, ReturnRow.id)
        .options(selectinload(ReturnRow.lines))
        .with_for_update()
    )
    servable = {KhaosStatus.READY, *DELIVERED}
    return [r for r in session.scalars(stmt) if KhaosStatus(r.khaos_status) in servable]


def parse_specific_ids(header: str | None) -> list[str]:
    if not header:
        return []
    return [part.strip().strip('"') for part in header.split(",") if part.strip().strip('"')]


def serve_page(rt: Runtime, *, continuation: str = "", specific_ids: str | None = None) -> Page:
    refs_asked = parse_specific_ids(specific_ids)
    page_size = rt.settings.khaos.page_size
    with rt.sessions() as session, session.begin():
        if refs_asked:
            rows = _select_specific(session, refs_asked)
            more = False
        else:
            rows = _select_ready(session, page_size + 1)
            more = len(rows) > page_size
            rows = rows[:page_size]
        document = customer_return_import([to_served(r) for r in rows], channel_options(rt))
        body = json.dumps(document, separators=(",", ":")).encode()
        next_token = f"after-{rows[-1].id}" if more and rows else ""
        delivery = KhaosDelivery(
            delivered_at=utcnow(), endpoint="returns", format="JSON",
            request_continuation=continuation[:255], response_continuation=next_token,
            specific_ids=",".join(refs_asked), return_count=len(rows), document=body,
        )
        session.add(delivery)
        session.flush()
        for row in rows:
            redelivery = KhaosStatus(row.khaos_status) in DELIVERED
            session.add(KhaosDeliveryItem(delivery_id=delivery.id, return_id=row.id,
                                          associated_ref=row.associated_ref,
                                          redelivery=redelivery))
            evidence = {"delivery_id": delivery.id}
            if redelivery:
                returns_repo.add_timeline(session, row, "khaos_redelivery",
                                          "served again because Khaos asked for it by name "
                                          "(SpecificIDs)", evidence)
            else:
                returns_repo.set_khaos_status(session, row, KhaosStatus.SERVED,
                                              f"fetched by Khaos in delivery {delivery.id}",
                                              evidence)
        return Page(body, "application/json", next_token, tuple(r.associated_ref for r in rows))
