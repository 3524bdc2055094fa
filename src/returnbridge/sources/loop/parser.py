"""Loop ``return`` payloads (webhook, list and details views) into a canonical ReturnCase."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import (
    amount,
    flag,
    ident,
    is_placeholder,
    items,
    obj,
    text,
    timestamp,
)
from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import (
    Address,
    Customer,
    Disposition,
    ExchangeLine,
    GatewayRefund,
    Parcel,
    ReturnCase,
    ReturnLine,
    Settlement,
    SourceTotals,
)
from returnbridge.domain.money import ZERO, quantize

# Loop return states (reference §3.6); the "needs review" spellings are one state.
_STATES: dict[str, ReturnState] = {
    "open": ReturnState.REQUESTED,
    "closed": ReturnState.CLOSED,
    "cancelled": ReturnState.CANCELLED,
    "canceled": ReturnState.CANCELLED,
    "expired": ReturnState.EXPIRED,
    "review": ReturnState.REVIEW,
    "needs review": ReturnState.REVIEW,
    "needs_review": ReturnState.REVIEW,
}

# EasyPost label statuses that tell us where an open return's parcel is.
_LABEL_PROGRESS: dict[str, ReturnState] = {
    "in_transit": ReturnState.IN_TRANSIT,
    "out_for_delivery": ReturnState.IN_TRANSIT,
    "delivered": ReturnState.RECEIVED,
}

_IN_PROGRESS = frozenset({ReturnState.REQUESTED, ReturnState.IN_TRANSIT, ReturnState.RECEIVED})

_DISPOSITIONS: dict[str, Disposition] = {
    "back_to_stock": Disposition.RESTOCK,
    "resale_hold": Disposition.RESALE_HOLD,
    "recycle": Disposition.RECYCLE,
    "donate": Disposition.DONATE,
    "missing": Disposition.MISSING,
}


def canonical_state(raw_state: str, label_status: str = "") -> ReturnState:
    key = raw_state.strip().casefold()
    if key not in _STATES:
        raise PayloadInvalid(f"unknown Loop return state {raw_state!r}", path="state")
    state = _STATES[key]
    if state is ReturnState.REQUESTED:
        return _LABEL_PROGRESS.get(label_status.strip().casefold(), state)
    return state


def disposition_of(raw: Any, path: str = "disposition") -> Disposition:
    outcome = text(obj(raw, path).get("disposition_outcome"),
                   f"{path}.disposition_outcome").casefold()
    if not outcome:
        return Disposition.UNKNOWN
    return _DISPOSITIONS.get(outcome, Disposition.UNKNOWN)


def condition_of(raw: Any, path: str = "condition") -> str:
    if isinstance(raw, str):
        return text(raw, path)
    cond = obj(raw, path)
    return text(cond.get("condition_category"), f"{path}.condition_category") or text(
        cond.get("description"), f"{path}.description")


@dataclass
class _Unit:
    unit_id: str
    sku: str
    variant_id: str
    barcode: str
    title: str
    order_line_id: str
    net: Decimal
    tax: Decimal
    discount: Decimal
    reason: str
    parent_reason: str
    condition: str
    disposition: Disposition
    returned_at: Any
    inspected_at: Any = None
    line_outcome: str = ""


def _unit(raw: Any, index: int) -> _Unit:
    path = f"line_items[{index}]"
    element = obj(raw, path)
    # Shopify variants without a SKU send "sku": "". The unit is kept (with its variant id,
    # barcode and title); the policy resolves it to a StockCode or holds the return.
    sku = text(element.get("sku"), f"{path}.sku")
    price = amount(element.get("price"), f"{path}.price")
    discount = amount(element.get("discount"), f"{path}.discount")
    return _Unit(
        unit_id=ident(element.get("line_item_id"), f"{path}.line_item_id"),
        sku=sku,
        variant_id=ident(element.get("variant_id"), f"{path}.variant_id"),
        barcode=text(element.get("barcode"), f"{path}.barcode"),
        title=text(element.get("title"), f"{path}.title"),
        order_line_id=ident(element.get("provider_line_item_id"), f"{path}.provider_line_item_id"),
        net=price - discount,
        tax=amount(element.get("tax"), f"{path}.tax"),
        discount=discount,
        reason=text(element.get("return_reason"), f"{path}.return_reason"),
        parent_reason=text(element.get("parent_return_reason"), f"{path}.parent_return_reason"),
        condition=condition_of(element.get("condition"), f"{path}.condition"),
        disposition=disposition_of(element.get("disposition"), f"{path}.disposition"),
        returned_at=timestamp(element.get("returned_at"), f"{path}.returned_at"),
        inspected_at=_inspected_at(element, path),
        line_outcome=text(element.get("outcome"), f"{path}.outcome").casefold(),
    )


def _inspected_at(element: dict[str, Any], path: str) -> Any:
    """When the unit was graded or dispositioned: proof that it physically arrived."""
    found = []
    for key in ("disposition", "condition"):
        raw = element.get(key)
        if isinstance(raw, dict):
            at = timestamp(raw.get("inspected_at"), f"{path}.{key}.inspected_at")
            if at is not None:
                found.append(at)
    return max(found) if found else None


def group_units(units: list[_Unit],
                keep_item_outcomes: Collection[str] = ()) -> tuple[ReturnLine, ...]:
    """One line per SKU, order line and outcome (reason, condition, disposition), keeping
    every unit id. Units of one SKU from different order lines stay apart, so that each
    line's ``source_order_line_id`` is true for all of its units."""
    groups: OrderedDict[tuple[str, ...], list[_Unit]] = OrderedDict()
    for unit in units:
        key = (unit.sku, unit.variant_id, unit.order_line_id, unit.reason, unit.parent_reason,
               unit.condition, unit.disposition.value, unit.line_outcome)
        groups.setdefault(key, []).append(unit)
    lines: list[ReturnLine] = []
    for members in groups.values():
        first = members[0]
        qty = len(members)
        net_total = sum((u.net for u in members), ZERO)
        tax_total = sum((u.tax for u in members), ZERO)
        unit_net = quantize(net_total / qty)
        unit_tax = quantize(tax_total / qty)
        inspected = [u.inspected_at for u in members if u.inspected_at is not None]
        lines.append(
            ReturnLine(
                sku=first.sku,
                quantity=qty,
                unit_net=unit_net,
                unit_tax=unit_tax,
                unit_gross=unit_net + unit_tax,
                discount=quantize(sum((u.discount for u in members), ZERO) / qty),
                reason=first.reason,
                parent_reason=first.parent_reason,
                condition=first.condition,
                disposition=first.disposition,
                physical_return_expected=first.line_outcome not in keep_item_outcomes,
                received_at=max(inspected) if inspected else None,
                source_unit_ids=tuple(u.unit_id for u in members),
                variant_id=first.variant_id,
                barcode=first.barcode,
                title=first.title,
                source_order_line_id=first.order_line_id,
                unit_nets=tuple(u.net for u in members),
                unit_taxes=tuple(u.tax for u in members),
            )
        )
    return tuple(lines)


def _exchange(raw: Any, index: int) -> ExchangeLine:
    path = f"exchanges[{index}]"
    element = obj(raw, path)
    sku = text(element.get("sku"), f"{path}.sku")  # may be "" (see _unit)
    net = amount(element.get("price"), f"{path}.price") - amount(
        element.get("discount"), f"{path}.discount"
    )
    tax = amount(element.get("tax"), f"{path}.tax")
    return ExchangeLine(
        sku=sku,
        quantity=1,
        unit_net=net,
        unit_tax=tax,
        unit_gross=net + tax,
        out_of_stock=flag(element.get("out_of_stock"), f"{path}.out_of_stock"),
        title=text(element.get("title"), f"{path}.title"),
        variant_id=ident(element.get("variant_id"), f"{path}.variant_id"),
    )


def _group_exchanges(lines: list[ExchangeLine]) -> tuple[ExchangeLine, ...]:
    grouped: OrderedDict[tuple[str, str, Decimal, Decimal, bool], ExchangeLine] = OrderedDict()
    for line in lines:
        key = (line.sku, line.variant_id, line.unit_net, line.unit_tax, line.out_of_stock)
        if key in grouped:
            prev = grouped[key]
            grouped[key] = ExchangeLine(
                sku=prev.sku, quantity=prev.quantity + 1, unit_net=prev.unit_net,
                unit_tax=prev.unit_tax, unit_gross=prev.unit_gross,
                out_of_stock=prev.out_of_stock, title=prev.title, variant_id=prev.variant_id,
            )
        else:
            grouped[key] = line
    return tuple(grouped.values())


def _address(raw: Any) -> Address | None:
    addr = obj(raw, "address")
    if not addr:
        return None

    def field(key: str) -> str:
        return text(addr.get(key), f"address.{key}")

    return Address(
        name=field("name"),
        company=field("company"),
        line1=field("address1"),
        line2=field("address2"),
        town=field("city"),
        county=field("state"),
        postcode=field("zip"),
        country_code=field("country_code").upper(),
        country_name=field("country"),
        phone=field("phone"),
    )


def _customer(payload: dict[str, Any]) -> Customer:
    detail = obj(payload.get("customer_detail"), "customer_detail")
    address = _address(payload.get("address"))
    first = text(detail.get("first_name"), "customer_detail.first_name")
    last = text(detail.get("last_name"), "customer_detail.last_name")
    if not (first or last) and address and address.name:
        first, _, last = address.name.rpartition(" ")
        if not first:
            first, last = last, ""
    customer_field = payload.get("customer")
    if isinstance(customer_field, dict):
        # The details view documents ``customer`` without a type; accept an object.
        customer_email = text(customer_field.get("email"), "customer.email")
        if not (first or last):
            first = text(customer_field.get("first_name"), "customer.first_name")
            last = text(customer_field.get("last_name"), "customer.last_name")
    else:
        customer_email = text(customer_field, "customer")
    # ``customer`` is in every view (webhook, list, details); ``customer_detail`` only in the
    # webhook. Reading ``customer`` first keeps two views of one return identical.
    email = (customer_email or text(detail.get("email"), "customer_detail.email")
             or text(payload.get("email"), "email"))
    return Customer(email=email, first_name=first, last_name=last, address=address)


def _gateway_refund(raw: Any, path: str) -> GatewayRefund:
    refund = obj(raw, path)
    return GatewayRefund(
        gateway=text(refund.get("gateway"), f"{path}.gateway"),
        amount=amount(refund.get("amount"), f"{path}.amount"),
        provider_refund_id=ident(refund.get("provider_refund_id"), f"{path}.provider_refund_id"),
    )


def _settlement(payload: dict[str, Any]) -> Settlement:
    gateways = tuple(
        _gateway_refund(raw, f"refunds[{i}]")
        for i, raw in enumerate(items(payload.get("refunds"), "refunds"))
    )
    shipping = amount(payload.get("refund_shipping_total"), "refund_shipping_total") + amount(
        payload.get("refund_shipping_tax_total"), "refund_shipping_tax_total"
    )
    # One older example spells the bonus "gift_card_bonus" (reference §2.5): read both.
    bonus_key = "gift_card_bonus_credit"
    if is_placeholder(payload.get(bonus_key)) and "gift_card_bonus" in payload:
        bonus_key = "gift_card_bonus"
    return Settlement(
        refund_to_original=amount(payload.get("refund"), "refund"),
        gateway_refunds=gateways,
        store_credit=amount(payload.get("gift_card"), "gift_card"),
        exchange_credit=amount(payload.get("exchange_credit_total"), "exchange_credit_total"),
        upsell=amount(payload.get("upsell"), "upsell"),
        handling_fee=amount(payload.get("handling_fee"), "handling_fee"),
        shipping_refund=shipping,
        bonus_credit=amount(payload.get(bonus_key), bonus_key),
    )


def parse_return(payload: Any, *, prefix: str,
                 keep_item_outcomes: Collection[str] = ()) -> ReturnCase:
    """Read a Loop return object. Unknown fields are ignored; bad ones raise PayloadInvalid.

    Units whose line ``outcome`` is in ``keep_item_outcomes`` (casefolded) are lines with
    ``physical_return_expected=False``."""
    if not isinstance(payload, dict):
        raise PayloadInvalid("a Loop return must be a JSON object")
    return_id = ident(payload.get("id"), "id")
    if not return_id:
        raise PayloadInvalid("the return has no id", path="id")
    raw_state = text(payload.get("state"), "state")
    if not raw_state:
        raise PayloadInvalid("the return has no state", path="state")
    label_status = text(payload.get("label_status"), "label_status")
    try:
        ref = associated_ref(prefix, return_id)
    except IdentityError as exc:
        raise PayloadInvalid(str(exc), path="id") from None
    units = [_unit(raw, i) for i, raw in enumerate(items(payload.get("line_items"), "line_items"))]
    exchanges = [_exchange(raw, i) for i, raw in enumerate(
        items(payload.get("exchanges"), "exchanges"))]
    state = canonical_state(raw_state, label_status)
    if (state in _IN_PROGRESS and units
            and all(u.disposition is not Disposition.UNKNOWN for u in units)):
        state = ReturnState.INSPECTED  # every unit graded: the goods are in and checked
    return ReturnCase(
        source="loop",
        source_return_id=return_id,
        associated_ref=ref,
        order_ref=text(payload.get("order_name"), "order_name")
        or text(payload.get("order_number"), "order_number"),
        customer=_customer(payload),
        currency=text(payload.get("currency"), "currency").upper(),
        state=state,
        source_state=raw_state,
        created_at=timestamp(payload.get("created_at"), "created_at"),
        updated_at=timestamp(payload.get("updated_at"), "updated_at")
        or timestamp(payload.get("edited_at"), "edited_at"),
        lines=group_units(units, {o.casefold() for o in keep_item_outcomes}),
        exchanges=_group_exchanges(exchanges),
        settlement=_settlement(payload),
        totals=SourceTotals(
            product=amount(payload.get("return_product_total"), "return_product_total"),
            discount=amount(payload.get("return_discount_total"), "return_discount_total"),
            tax=amount(payload.get("return_tax_total"), "return_tax_total"),
            total=amount(payload.get("return_total"), "return_total"),
        ),
        source_order_id=ident(payload.get("provider_order_id"), "provider_order_id"),
        parcel=_parcel(payload, label_status),
    )


def _parcel(payload: dict[str, Any], label_status: str) -> Parcel:
    status = label_status.casefold()
    delivered_at = (timestamp(payload.get("label_updated_at"), "label_updated_at")
                    if status == "delivered" else None)
    return Parcel(
        label_status=status,
        carrier=text(payload.get("carrier"), "carrier"),
        tracking_number=ident(payload.get("tracking_number"), "tracking_number"),
        delivered_at=delivered_at,
    )


def envelope(payload: Any) -> tuple[str, str, str]:
    """(topic, trigger, source return id) of any Loop delivery, as far as they can be read."""
    if not isinstance(payload, dict):
        return "", "", ""
    topic = text(payload.get("topic")) if not isinstance(payload.get("topic"), dict | list) else ""
    trigger = (
        text(payload.get("trigger")) if not isinstance(payload.get("trigger"), dict | list) else ""
    )
    key = "return_id" if topic in ("giftcard", "return.processing", "label.request") else "id"
    raw_id = payload.get(key)
    rid = "" if isinstance(raw_id, dict | list | bool) else text(raw_id)
    return topic, trigger, rid
