"""ZigZag webhook events into source-neutral interpretations.

ZigZag does not publish its webhook contract (reference §3.4-3.7). returnbridge reads its
default contract (design ZIGZAG_EVENTS.md) out of the box; ``[zigzag.webhook.*]`` renames
fields and translates event names and dispositions, so a different contract is
configuration, not code. Every value is read tolerantly (numbers or strings, ``"N/A"``);
whatever cannot be understood raises :class:`PayloadInvalid` naming the field.

What each canonical trigger becomes:

- ``requested`` / ``updated``: a full snapshot (:class:`ReturnCase`) of the return.
- ``in_transit``: evidence with the carrier and tracking number.
- ``received``: evidence of units arrived (not graded yet); ``inspected``: units arrived
  with their final disposition. Fewer units than requested is a partial receipt.
- ``refund_requested``: a :class:`RefundRequest` (the refund gate applies).
- ``refund_issued``: an :class:`ExternalRefund` made outside returnbridge (reconcile,
  never repeat).
- ``cancelled``: evidence moving the return to cancelled.
- anything else: stored, not used (``handled=False``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import amount, ident, is_placeholder, text, timestamp
from returnbridge.domain.evidence import (
    Evidence,
    ExternalRefund,
    Interpretation,
    RefundRequest,
    UnitReceipt,
)
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import (
    Customer,
    Disposition,
    ReturnCase,
    ReturnLine,
    Settlement,
)
from returnbridge.domain.money import ZERO
from returnbridge.sources.zigzag.paths import get, peek
from returnbridge.sources.zigzag.settings import (
    DEFAULT_ZIGZAG_DISPOSITIONS,
    DEFAULT_ZIGZAG_EVENT_TYPES,
    ZigZagSettings,
)

SNAPSHOT_TRIGGERS = frozenset({"requested", "updated"})
MAX_QUANTITY = 100_000

_STATE_OF: dict[str, ReturnState] = {
    "requested": ReturnState.REQUESTED,
    "updated": ReturnState.REQUESTED,  # monotonic merge keeps any later state
    "in_transit": ReturnState.IN_TRANSIT,
    "received": ReturnState.RECEIVED,
    "inspected": ReturnState.INSPECTED,
    "cancelled": ReturnState.CANCELLED,
}


@dataclass(frozen=True)
class ZigZagInterpretation(Interpretation):
    """An :class:`Interpretation` plus what only ZigZag events carry."""

    event_id: str = ""


@dataclass(frozen=True)
class Envelope:
    """Routing facts read without failing (for storage and dedupe before parsing)."""

    event_id: str
    event_type: str
    return_ref: str


def event_types(settings: ZigZagSettings) -> dict[str, str]:
    """Raw event name (case-folded) -> canonical trigger: the defaults plus the configured
    entries. Look names up with :func:`trigger_of`."""
    merged = {**DEFAULT_ZIGZAG_EVENT_TYPES, **settings.webhook.event_types}
    return {k.strip().casefold(): v for k, v in merged.items()}


def trigger_of(event_type: str, settings: ZigZagSettings) -> str:
    """The canonical trigger of a raw event name, "" when it is not mapped."""
    return event_types(settings).get(event_type.strip().casefold(), "") if event_type else ""


def dispositions(settings: ZigZagSettings) -> dict[str, Disposition]:
    """Raw disposition (case-folded) -> canonical disposition."""
    merged = {**DEFAULT_ZIGZAG_DISPOSITIONS, **settings.webhook.dispositions}
    return {k.strip().casefold(): Disposition(v) for k, v in merged.items()}


def _scalar_text(value: Any) -> str:
    if isinstance(value, dict | list | bool):
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    try:
        return text(value)
    except (PayloadInvalid, ValueError, OverflowError):
        return ""


def envelope(body: bytes, settings: ZigZagSettings) -> Envelope:
    """Event id, event name and return reference, or "" for each that cannot be read."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, numbers too long, nested too deep
        return Envelope("", "", "")
    f = settings.webhook.fields
    return Envelope(
        event_id=_scalar_text(peek(payload, f.event_id)),
        event_type=_scalar_text(peek(payload, f.event_type)),
        return_ref=_scalar_text(peek(payload, f.return_ref)),
    )


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise PayloadInvalid("the body is not UTF-8 text") from None
    except ValueError as exc:  # JSONDecodeError, or a number too long to convert
        raise PayloadInvalid(f"the body is not JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise PayloadInvalid("the body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid(f"expected a JSON object, got {type(payload).__name__}")
    return payload


def _text_at(payload: Any, path: str) -> str:
    return text(get(payload, path), path)


def _quantity(value: Any, path: str) -> int | None:
    """Units as int or string; None when absent."""
    if is_placeholder(value):
        return None
    if isinstance(value, bool):
        raise PayloadInvalid(f"expected a quantity, got {value!r}", path=path)
    number: Decimal
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float | str):
        number = amount(value, path)
    else:
        raise PayloadInvalid(f"expected a quantity, got {type(value).__name__}", path=path)
    if number != number.to_integral_value() or number < 0 or number > MAX_QUANTITY:
        raise PayloadInvalid(f"not a quantity of units: {value!r}", path=path)
    return int(number)


@dataclass(frozen=True)
class _Item:
    item_id: str
    sku: str
    quantity: int
    received: int | None
    unit_price: Decimal
    unit_tax: Decimal
    reason: str
    condition: str
    raw_disposition: str
    disposition: Disposition | None  # None: not sent
    received_at: datetime | None
    priced: bool  # the payload carried a unit price


def _items(payload: dict[str, Any], settings: ZigZagSettings) -> list[_Item]:
    f = settings.webhook.fields
    list_path = f.items.removesuffix("[]")
    raw = get(payload, list_path)
    if is_placeholder(raw):
        return []
    if not isinstance(raw, list):
        raise PayloadInvalid(f"expected a list, got {type(raw).__name__}", path=list_path)
    table = dispositions(settings)
    out: list[_Item] = []
    for index, element in enumerate(raw):
        path = f"{list_path}[{index}]"
        if not isinstance(element, dict):
            raise PayloadInvalid(f"expected an object, got {type(element).__name__}",
                                 path=path)

        def at(key: str, p: str = path, e: dict[str, Any] = element) -> tuple[Any, str]:
            return get(e, key), f"{p}.{key}"

        sku = text(*at(f.item_sku))
        if not sku:
            raise PayloadInvalid("returned item has no SKU", path=f"{path}.{f.item_sku}")
        quantity = _quantity(*at(f.item_quantity))
        received = _quantity(*at(f.item_quantity_received))
        if quantity is None and received is None:
            raise PayloadInvalid("returned item has no quantity",
                                 path=f"{path}.{f.item_quantity}")
        raw_disposition = text(*at(f.item_disposition))
        disposition = (table.get(raw_disposition.casefold(), Disposition.UNKNOWN)
                       if raw_disposition else None)
        out.append(_Item(
            item_id=ident(*at(f.item_id)),
            sku=sku,
            quantity=quantity if quantity is not None else (received or 0),
            received=received,
            unit_price=amount(*at(f.item_unit_price)),
            unit_tax=amount(*at(f.item_unit_tax)),
            reason=text(*at(f.item_reason)),
            condition=text(*at(f.item_condition)),
            raw_disposition=raw_disposition,
            disposition=disposition,
            received_at=timestamp(*at(f.item_received_at)),
            priced=not is_placeholder(get(element, f.item_unit_price)),
        ))
    return out


def _unknown_dispositions(items: list[_Item], ref: str, settings: ZigZagSettings
                          ) -> tuple[Problem, ...]:
    problems: dict[str, Problem] = {}
    for item in items:
        if item.disposition is Disposition.UNKNOWN and item.raw_disposition:
            raw = item.raw_disposition
            problems.setdefault(raw, Problem(
                type="unmapped_return_reason",
                message=f"ZigZag disposition {raw!r} on {ref} (SKU {item.sku}) is not in "
                "[zigzag.webhook.dispositions]; it was not guessed.",
                dedupe_key=f"zigzag:disposition:{raw.casefold()}"[:255],
                details={"disposition": raw, "sku": item.sku, "associated_ref": ref},
            ))
    return tuple(problems.values())


def _line(item: _Item, settings: ZigZagSettings) -> ReturnLine:
    if item.quantity < 1:
        raise PayloadInvalid(f"item {item.sku} has quantity {item.quantity}; "
                             "a returned line needs at least one unit")
    if settings.webhook.prices_include_tax:
        gross, net = item.unit_price, item.unit_price - item.unit_tax
    else:
        net, gross = item.unit_price, item.unit_price + item.unit_tax
    return ReturnLine(
        sku=item.sku,
        quantity=item.quantity,
        unit_net=net,
        unit_tax=item.unit_tax,
        unit_gross=gross,
        reason=item.reason,
        condition=item.condition,
        disposition=item.disposition or Disposition.UNKNOWN,
        received_at=item.received_at,
        source_order_line_id=item.item_id,  # receipts join on it (domain/receipts.py)
    )


def _currency(payload: dict[str, Any], settings: ZigZagSettings) -> str:
    path = settings.webhook.fields.currency
    code = _text_at(payload, path).upper()
    if code and (len(code) != 3 or not code.isalpha() or not code.isascii()):
        raise PayloadInvalid(f"not a currency code: {code!r}", path=path)
    return code


def _snapshot(payload: dict[str, Any], settings: ZigZagSettings, *, ref: str, assoc: str,
              trigger: str, event_type: str, at: datetime | None,
              items: list[_Item]) -> ReturnCase:
    f = settings.webhook.fields
    if not items:
        raise PayloadInvalid("a return without items", path=f.items)
    refund = amount(get(payload, f.refund_amount), f.refund_amount)
    return ReturnCase(
        source="zigzag",
        source_return_id=ref,
        associated_ref=assoc,
        order_ref=_text_at(payload, f.order_ref),
        customer=Customer(
            email=_text_at(payload, f.customer_email).lower(),
            first_name=_text_at(payload, f.customer_first_name),
            last_name=_text_at(payload, f.customer_last_name),
        ),
        currency=_currency(payload, settings),
        state=_STATE_OF[trigger],
        source_state=event_type[:40],
        created_at=at if trigger == "requested" else None,
        updated_at=at,
        lines=tuple(_line(item, settings) for item in items),
        settlement=Settlement(refund_to_original=refund if refund > ZERO else ZERO),
    )


def _receipts(items: list[_Item], *, graded: bool, at: datetime | None
              ) -> tuple[UnitReceipt, ...]:
    out: list[UnitReceipt] = []
    for item in items:
        arrived = item.received if item.received is not None else item.quantity
        if arrived <= 0:
            continue
        disposition = (item.disposition or Disposition.UNKNOWN) if graded else None
        out.append(UnitReceipt(
            quantity=arrived,
            at=item.received_at or at,
            line_item_id=item.item_id,
            sku=item.sku,
            disposition=disposition,
            condition=item.condition,
        ))
    return tuple(out)


def _receipt_summary(event_type: str, receipts: tuple[UnitReceipt, ...], items: list[_Item],
                     graded: bool) -> str:
    units = sum(r.quantity for r in receipts)
    requested = sum(i.quantity for i in items)
    words = f"{event_type}: {units} unit{'s' if units != 1 else ''} "
    words += "graded" if graded else "received"
    if graded:
        counts = Counter(r.disposition.value for r in receipts if r.disposition is not None)
        if counts:
            words += " (" + ", ".join(f"{n} {d}" for d, n in sorted(counts.items())) + ")"
    if units < requested:
        words += f"; {requested - units} of {requested} requested not received"
    return words


def _refund_amount(payload: dict[str, Any], settings: ZigZagSettings,
                   required: bool) -> Decimal | None:
    path = settings.webhook.fields.refund_amount
    raw = get(payload, path)
    if is_placeholder(raw):
        if required:
            raise PayloadInvalid("a refund event without an amount", path=path)
        return None
    value = amount(raw, path)
    if value <= ZERO:
        raise PayloadInvalid(f"refund amount must be positive, got {value}", path=path)
    return value


def interpret(body: bytes, *, settings: ZigZagSettings) -> ZigZagInterpretation:
    """Understand one stored ZigZag webhook body.

    Raises :class:`PayloadInvalid` for a body that cannot be read; returns
    ``handled=False`` for an event name not mapped to a trigger (or mapped to ``ignore``).
    """
    payload = _load(body)
    f = settings.webhook.fields
    event_type = _text_at(payload, f.event_type)
    event_id = ident(get(payload, f.event_id), f.event_id)
    trigger = trigger_of(event_type, settings)
    if not trigger or trigger == "ignore":
        why = ("has no event type" if not event_type else
               f"type {event_type!r} is ignored by configuration" if trigger else
               f"type {event_type!r} is not in [zigzag.webhook.event_types]")
        return ZigZagInterpretation(handled=False, note=f"ZigZag event {why}; stored, not used",
                                    event_id=event_id, event_type=event_type)
    retailer = _text_at(payload, f.retailer_code)
    if settings.retailer_code and retailer and retailer != settings.retailer_code:
        raise PayloadInvalid(f"retailer code {retailer!r} is not ours "
                             f"({settings.retailer_code!r})", path=f.retailer_code)
    ref = _text_at(payload, f.return_ref)
    if not ref:
        raise PayloadInvalid("no return reference", path=f.return_ref)
    try:
        assoc = associated_ref(settings.associated_ref_prefix, ref)
    except IdentityError as exc:
        raise PayloadInvalid(str(exc), path=f.return_ref) from None
    at = timestamp(get(payload, f.occurred_at), f.occurred_at)
    common: dict[str, Any] = {"handled": True, "source_return_id": ref, "event_id": event_id,
                              "event_type": event_type, "trigger": trigger}

    if trigger in SNAPSHOT_TRIGGERS:
        items = _items(payload, settings)
        case = _snapshot(payload, settings, ref=ref, assoc=assoc, trigger=trigger,
                         event_type=event_type, at=at, items=items)
        return ZigZagInterpretation(snapshot=case,
                                    problems=_unknown_dispositions(items, assoc, settings),
                                    note=f"{event_type}: {case.units} units requested",
                                    **common)
    carrier = _text_at(payload, f.carrier)
    tracking = _text_at(payload, f.tracking_number)
    if trigger in ("received", "inspected"):
        graded = trigger == "inspected"
        items = _items(payload, settings)
        receipts = _receipts(items, graded=graded, at=at)
        summary = _receipt_summary(event_type, receipts, items, graded)
        evidence = Evidence(at=at, receipts=receipts, carrier=carrier,
                            tracking_number=tracking,
                            delivered_at=at if trigger == "received" else None,
                            state=_STATE_OF[trigger], summary=summary,
                            source_state=event_type[:40])
        problems = _unknown_dispositions(items, assoc, settings) if graded else ()
        fallback: ReturnCase | None = None
        if items and all(i.priced for i in items):
            try:
                fallback = _snapshot(payload, settings, ref=ref, assoc=assoc,
                                     trigger="updated", event_type=event_type, at=at,
                                     items=[replace(i, disposition=None) for i in items])
            except PayloadInvalid:
                fallback = None
        return ZigZagInterpretation(evidence=evidence, problems=problems, note=summary,
                                    fallback_snapshot=fallback, **common)
    if trigger == "in_transit":
        summary = f"{event_type}: parcel in transit" + (
            f" with {carrier}" if carrier else "") + (f", tracking {tracking}" if tracking else "")
        evidence = Evidence(at=at, label_status="in_transit", carrier=carrier,
                            tracking_number=tracking, state=ReturnState.IN_TRANSIT,
                            summary=summary, source_state=event_type[:40])
        return ZigZagInterpretation(evidence=evidence, note=summary, **common)
    if trigger == "cancelled":
        summary = f"{event_type}: return cancelled at ZigZag"
        return ZigZagInterpretation(
            evidence=Evidence(at=at, state=ReturnState.CANCELLED, summary=summary,
                              source_state=event_type[:40]),
            note=summary, **common)

    currency = _currency(payload, settings)
    order_ref = _text_at(payload, f.order_ref)
    method = _text_at(payload, f.refund_method)
    if trigger == "refund_requested":
        value = _refund_amount(payload, settings, required=False)
        request = RefundRequest(return_ref=ref, associated_ref=assoc, order_ref=order_ref,
                                amount=value, currency=currency, method=method,
                                event_id=event_id, occurred_at=at)
        shown = f"{value} {currency}".strip() if value is not None else "the credited amount"
        summary = f"{event_type}: ZigZag asks for a refund of {shown}" + (
            f" ({method})" if method else "")
        return ZigZagInterpretation(evidence=Evidence(at=at, summary=summary),
                                    refund_request=request, note=summary, **common)
    # refund_issued
    value = _refund_amount(payload, settings, required=True)
    assert value is not None
    reference = _text_at(payload, f.refund_reference)
    refund = ExternalRefund(return_ref=ref, associated_ref=assoc, order_ref=order_ref,
                            amount=value, currency=currency, method=method,
                            reference=reference, event_id=event_id, occurred_at=at)
    summary = (f"{event_type}: ZigZag reports a refund of {value} {currency}".rstrip()
               + (f" ({method})" if method else "")
               + (f", reference {reference}" if reference else "")
               + " made outside returnbridge")
    return ZigZagInterpretation(evidence=Evidence(at=at, summary=summary),
                                external_refund=refund, note=summary, **common)
