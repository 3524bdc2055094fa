"""Serve to Khaos (ARCHITECTURE 5.3): answer a CReturnDownload poll.

Everything ready is handed over oldest first, at most ``page_size`` per poll, in the
configured format (JSON or XML); what was handed over is marked ``served`` and recorded in
``khaos_deliveries`` in the same transaction, so a return is never served twice unless Khaos
asks for it by name (``SpecificIDs``) or repeats a request we already answered.

Paging: while more is waiting the answer carries ``Sirion-Continuation: d<delivery id>``.
Khaos echoes the last value it received on its next request, so a request carrying ``d<N>``
again after we answered it means our answer never arrived: the returns of that answer are
handed over again (as redeliveries) instead of being lost."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime

from returnbridge.config import KhaosSettings, PolicySettings
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.model import Address, Customer, ReturnCase
from returnbridge.domain.money import ZERO, quantize
from returnbridge.erp.khaos.channel import (
    ChannelOptions,
    ServedReturn,
    customer_return_import,
)
from returnbridge.erp.khaos.xml import customer_return_import_xml
from returnbridge.flows.engine import collector
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.codec import case_from_json
from returnbridge.store.khaos_repo import PageRow
from returnbridge.store.models import KhaosDelivery
from returnbridge.store.unit_of_work import UnitOfWork


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


def fallback_address(policy: PolicySettings, customer: Customer) -> Address | None:
    """The configured InvoiceAddress for customers the source sent no address for."""
    if not (policy.fallback_address_line1 and policy.fallback_address_postcode):
        return None
    name = " ".join(p for p in (customer.first_name, customer.last_name) if p)
    return Address(name=name, line1=policy.fallback_address_line1,
                   town=policy.fallback_address_town,
                   postcode=policy.fallback_address_postcode,
                   country_code=policy.fallback_address_country_code)


def to_served(row: PageRow, k: KhaosSettings | None = None,
              policy: PolicySettings | None = None) -> ServedReturn:
    case = case_from_json(row.case_json)
    created: datetime = case.created_at or row.first_seen_at
    customer = case.customer
    if customer.address is None and policy is not None:
        customer = replace(customer, address=fallback_address(policy, customer))
    if not (customer.first_name.strip() or customer.last_name.strip()) and policy is not None:
        # Never reached without a configured name: the policy holds nameless returns.
        customer = replace(customer, first_name=policy.fallback_contact_forename.strip(),
                           last_name=policy.fallback_contact_surname.strip())
    # Exchange items sent without a SKU go out under the StockCode the policy resolved.
    stored = row.exchanges  # in position order
    exchanges = tuple(
        replace(ex, sku=stored[i].sku) if not ex.sku and i < len(stored) else ex
        for i, ex in enumerate(case.exchanges))
    return ServedReturn(
        associated_ref=row.associated_ref, created_at=created, urn=row.khaos_urn,
        customer=customer, lines=row.lines, exchanges=exchanges,
        process_return=row.process_return, order_ref=case.order_ref,
        notes=served_notes(case),
        source_order=source_order(row.khaos_order_code, case.order_ref,
                                  k.source_order_ref_format if k else ""),
        brand_id=k.brand_id if k else "", sales_source_id=k.sales_source_id if k else "",
    )


def served_notes(case: ReturnCase) -> str:
    """The CustomerReturn ``Notes``: where the return came from and, when the platform gave
    store credit, that it is store credit (the credit stays on the customer's account and is
    not to be refunded). Khaos documents no store-credit field on CustomerReturnImport;
    ``Notes`` is its documented free-text field (the use is inferred)."""
    notes = f"{case.source} return {case.source_return_id}, order {case.order_ref}"
    credit = case.settlement.store_credit
    if credit > ZERO:
        notes += (f". STORE CREDIT {quantize(credit)} {case.currency}".rstrip()
                  + f" issued by {case.source} as a gift card: leave this credit on the "
                  "customer's account; do not refund it")
    return notes


def source_order(khaos_order_code: str, order_ref: str, ref_format: str
                 ) -> tuple[str, str] | None:
    """The one SourceOrder key for the original order: the Khaos order code when known,
    else the order's AssociatedRef built with ``[khaos].source_order_ref_format``."""
    if khaos_order_code:
        return ("SOrderCode", khaos_order_code)
    if ref_format and order_ref:
        return ("AssociatedRef", ref_format.format(order_ref=order_ref)[:50])
    return None


def _select_ready(uow: UnitOfWork, limit: int) -> list[PageRow]:
    return uow.khaos.ready_for_update(KhaosStatus.READY.value, limit)


def _select_specific(uow: UnitOfWork, refs: list[str]) -> list[PageRow]:
    servable = {KhaosStatus.READY, *DELIVERED}
    return [r for r in uow.khaos.by_refs_for_update(refs)
            if KhaosStatus(r.khaos_status) in servable]


def parse_specific_ids(header: str | None) -> list[str]:
    if not header:
        return []
    return [part.strip().strip('"') for part in header.split(",") if part.strip().strip('"')]


_TOKEN = re.compile(r"^d(\d{1,18})$")


def _unanswered(uow: UnitOfWork, continuation: str) -> KhaosDelivery | None:
    """Our earlier answer to this very request, when Khaos repeats a token of ours."""
    if not _TOKEN.match(continuation.strip()):
        return None
    return uow.khaos.answer_to(continuation.strip())


def _select_delivered(uow: UnitOfWork, delivery_id: int) -> list[PageRow]:
    # Only what Khaos cannot have imported yet (no import evidence since).
    return [r for r in uow.khaos.delivered_for_update(delivery_id)
            if r.khaos_status == KhaosStatus.SERVED.value]


def render(document: dict[str, object], fmt: str) -> tuple[bytes, str]:
    """The CustomerReturnImport bytes and media type for ``fmt`` ("JSON" or "XML")."""
    if fmt == "XML":
        return customer_return_import_xml(document), "application/xml"
    return json.dumps(document, separators=(",", ":")).encode(), "application/json"


def serve_page(rt: Runtime, *, continuation: str = "", specific_ids: str | None = None,
               fmt: str | None = None) -> Page:
    """Answer one CReturnDownload request; ``fmt`` defaults to ``[khaos].format``."""
    refs_asked = parse_specific_ids(specific_ids)
    k = rt.settings.khaos
    fmt = fmt or k.format
    with collector.paused(), rt.unit_of_work() as uow:
        repeated = None if refs_asked else _unanswered(uow, continuation)
        if refs_asked:
            rows = _select_specific(uow, refs_asked)
            more = False
        elif repeated is not None:
            rows = _select_delivered(uow, repeated.id)
            more = bool(repeated.response_continuation)
        else:
            rows = _select_ready(uow, k.page_size + 1)
            more = len(rows) > k.page_size
            rows = rows[:k.page_size]
        document = customer_return_import([to_served(r, k, rt.settings.policy) for r in rows],
                                          channel_options(rt))
        body, media_type = render(document, fmt)
        delivery = uow.khaos.add_delivery(
            fmt=fmt, request_continuation=continuation, specific_ids=",".join(refs_asked),
            return_count=len(rows), document=body)
        next_token = f"d{delivery.id}" if more else ""
        uow.khaos.set_response_continuation(delivery, next_token)
        handed = [(row, KhaosStatus(row.khaos_status) in DELIVERED) for row in rows]
        uow.khaos.add_delivery_items(delivery, handed)
        evidence = {"delivery_id": delivery.id}
        why = ("served again because Khaos asked for it by name (SpecificIDs)"
               if refs_asked else
               f"served again because Khaos repeated its request {continuation!r}: "
               f"our answer (delivery {repeated.id if repeated else '?'}) never reached it")
        uow.returns.add_timeline_entries([(row.id, "khaos_redelivery", why, evidence)
                                          for row, redelivery in handed if redelivery])
        uow.returns.mark_served([(row.id, row.khaos_status) for row, redelivery in handed
                                 if not redelivery],
                                f"fetched by Khaos in delivery {delivery.id}", evidence)
        return Page(body, media_type, next_token, tuple(r.associated_ref for r in rows))
