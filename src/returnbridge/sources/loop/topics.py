"""Every Loop webhook topic (and backstop list elements) into an :class:`Interpretation`.

``topic`` and ``trigger`` come from the stored event's columns (the webhook reads them from
the payload with :func:`~returnbridge.sources.loop.parser.envelope`); events stored by the
backstop or backfill carry one return object from the list API with topic ``return`` and
trigger ``backstop``. Reference: ``loop_returns_api.md`` §2.5 and §5.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import (
    amount,
    ident,
    is_placeholder,
    items,
    obj,
    text,
    timestamp,
)
from returnbridge.domain.evidence import Evidence, Interpretation
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Disposition, ReturnCase, UnitReceipt
from returnbridge.domain.money import ZERO
from returnbridge.sources.loop.parser import envelope, parse_return
from returnbridge.sources.loop.settings import LoopSettings

# EasyPost label statuses (reference §2.5, §3.6). The return label is addressed to the
# merchant's return destination, so "delivered" means the parcel reached the warehouse.
_LABEL_STATES: dict[str, ReturnState] = {
    "in_transit": ReturnState.IN_TRANSIT,
    "out_for_delivery": ReturnState.IN_TRANSIT,
    "delivered": ReturnState.RECEIVED,
}
_NO_LABEL = frozenset({"", "n/a", "pending"})


def interpret(body: bytes, *, topic: str, trigger: str, settings: LoopSettings) -> Interpretation:
    """What one stored Loop event means. Raises PayloadInvalid for unreadable input; a topic
    this version does not use gives ``handled=False`` with a note, never an error."""
    try:
        payload = json.loads(body)
    except ValueError as exc:  # not UTF-8, not JSON, or a number too long to convert
        raise PayloadInvalid(f"the body is not JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise PayloadInvalid("the body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid(f"a Loop event must be a JSON object, got {type(payload).__name__}")
    if not topic:
        topic, trigger, _ = envelope(payload)
    topic = topic.strip().casefold()
    trigger = trigger.strip().casefold()
    handler = _HANDLERS.get(topic)
    if handler is None:
        _, _, ref = envelope(payload)
        return Interpretation(handled=False, source_return_id=ref,
                              note=f"Loop topic {topic or '?'}/{trigger or '?'} stored; not "
                              "used by this version")
    return handler(payload, trigger, settings)


# --- return -----------------------------------------------------------------------------


def _return(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    case = parse_return(payload, prefix=settings.associated_ref_prefix,
                        keep_item_outcomes=settings.keep_item_line_outcomes)
    if is_keep_item(payload, settings):
        case = mark_keep_item(case)
    return Interpretation(handled=True, source_return_id=case.source_return_id, snapshot=case,
                          note=f"return {trigger or 'snapshot'}")


def is_keep_item(payload: dict[str, Any], settings: LoopSettings) -> bool:
    """The configured keep-item rule (LoopSettings.keep_item_*) for a whole return."""
    methods = {m.strip().casefold() for m in settings.keep_item_return_methods}
    raw_method = payload.get("return_method")
    candidates: list[Any] = []
    if isinstance(raw_method, dict):
        candidates = [raw_method.get("method_type"), raw_method.get("provider"),
                      raw_method.get("type")]
    elif isinstance(raw_method, str):
        candidates = [raw_method]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip().casefold() in methods:
            return True
    if settings.keep_item_when_closed_without_label:
        state = text(payload.get("state"), "state").casefold()
        label = text(payload.get("label_status"), "label_status").casefold()
        labels = payload.get("labels")
        no_labels = is_placeholder(labels) or labels in ([], {})
        tracking = payload.get("tracking_number")
        no_tracking = is_placeholder(tracking) if not isinstance(tracking, int) else False
        if state == "closed" and label in _NO_LABEL and no_labels and no_tracking:
            return True
    return False


def mark_keep_item(case: ReturnCase) -> ReturnCase:
    lines = tuple(replace(line, physical_return_expected=False) for line in case.lines)
    return replace(case, lines=lines)


# --- label --------------------------------------------------------------------------------


def _return_ref(payload: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, dict | list):
            raise PayloadInvalid(f"expected an id, got {type(value).__name__}", path=key)
        ref = ident(value, key)
        if ref:
            return ref
    raise PayloadInvalid("the event names no Loop return", path=keys[0])


def _label(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    # Loop's label payload calls the return id ``id``; one older example says ``return_id``.
    ref = _return_ref(payload, "id", "return_id")
    status = text(payload.get("label_status"), "label_status").casefold()
    at = timestamp(payload.get("label_updated_at"), "label_updated_at")
    carrier = text(payload.get("carrier"), "carrier")
    tracking = ident(payload.get("tracking_number"), "tracking_number")
    state = _LABEL_STATES.get(status)
    summary = f"label {trigger.removeprefix('label.') or 'event'}: {status or 'no status'}"
    if carrier or tracking:
        summary += f" ({' '.join(p for p in (carrier, tracking) if p)})"
    evidence = Evidence(
        at=at, label_status=status, carrier=carrier, tracking_number=tracking,
        delivered_at=at if status == "delivered" else None, state=state, summary=summary,
    )
    return Interpretation(handled=True, source_return_id=ref, evidence=evidence, note=summary)


# --- restock ------------------------------------------------------------------------------


def _quantity(value: Any, path: str) -> int:
    number = amount(value, path)
    if number != number.to_integral_value() or number < 0:
        raise PayloadInvalid(f"expected a whole non-negative quantity, got {value!r}", path=path)
    return int(number)


def _restock(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    ref = _return_ref(payload, "id", "return_id")
    raw_items = payload.get("restock_items")
    # A list, or (older docs) an object keyed by the Shopify order line item id.
    elements = items(raw_items, "restock_items")
    receipts: list[UnitReceipt] = []
    by_variant: dict[str, int] = {}
    for i, raw in enumerate(elements):
        path = f"restock_items[{i}]"
        element = obj(raw, path)
        variant = ident(element.get("variant_id"), f"{path}.variant_id")
        if not variant:
            raise PayloadInvalid("restock item has no variant_id", path=f"{path}.variant_id")
        qty = _quantity(element.get("available_adjustment", 1), f"{path}.available_adjustment")
        if qty:
            by_variant[variant] = by_variant.get(variant, 0) + qty
    for variant, qty in by_variant.items():
        receipts.append(UnitReceipt(quantity=qty, at=None, variant_id=variant,
                                    disposition=Disposition.RESTOCK))
    units = sum(by_variant.values())
    summary = f"restock requested for {units} unit{'s' if units != 1 else ''}"
    evidence = Evidence(at=None, receipts=tuple(receipts), summary=summary,
                        state=ReturnState.RECEIVED if receipts else None)
    return Interpretation(handled=True, source_return_id=ref, evidence=evidence, note=summary)


# --- gift card ----------------------------------------------------------------------------


def giftcard_amounts(payload: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """(total credit issued, bonus part). The bonus key is spelled two ways (§2.5)."""
    bonus_key = "gift_card_bonus_credit"
    if is_placeholder(payload.get(bonus_key)) and "gift_card_bonus" in payload:
        bonus_key = "gift_card_bonus"
    bonus = amount(payload.get(bonus_key), bonus_key)
    total = amount(payload.get("total_credit_issued"), "total_credit_issued")
    if total == ZERO:
        total = (amount(payload.get("gift_card_subtotal"), "gift_card_subtotal")
                 + amount(payload.get("gift_card_tax"), "gift_card_tax") + bonus)
    return total, bonus


def _giftcard(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    ref = _return_ref(payload, "return_id")
    total, bonus = giftcard_amounts(payload)
    currency = text(payload.get("currency"), "currency").upper()
    card = ident(payload.get("id"), "id")
    summary = (f"gift card {'(automatic, out of stock) ' if not card else card + ' '}"
               f"requested: {total} {currency}".rstrip())
    if bonus:
        summary += f" including bonus {bonus}"
    evidence = Evidence(at=None, store_credit=total, summary=summary)
    return Interpretation(handled=True, source_return_id=ref, evidence=evidence, note=summary)


# --- return.processing.failed -------------------------------------------------------------


def _processing(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    ref = _return_ref(payload, "return_id", "id")
    if trigger and trigger != "return.processing.failed":
        return Interpretation(handled=False, source_return_id=ref,
                              note=f"return.processing/{trigger} stored; not used")
    message = text(payload.get("message"), "message") or "Loop gave no reason"
    loop_state = text(payload.get("return_state"), "return_state")
    origin = text(payload.get("source"), "source")
    rma = f"{settings.associated_ref_prefix}{ref}"
    problem = Problem(
        type="source_processing_failed",
        message=f"Loop could not process return {ref} ({rma}): {message}. "
        f"It stays {loop_state or 'open'} in Loop until processed again"
        + (f" (processing was started from {origin})." if origin else "."),
        dedupe_key=f"loop:{ref}:processing_failed",
        details={"return_id": ref, "message": message, "return_state": loop_state,
                 "source": origin},
    )
    state = ReturnState.REVIEW if loop_state.casefold().replace("_", " ") in (
        "review", "needs review") else None
    evidence = Evidence(at=None, state=state, summary=f"Loop processing failed: {message}")
    return Interpretation(handled=True, source_return_id=ref, evidence=evidence,
                          problems=(problem,), note="processing failed")


# --- Happy Returns shipments and label requests -------------------------------------------


def _shipment(payload: dict[str, Any], trigger: str, settings: LoopSettings) -> Interpretation:
    shipment = ident(payload.get("loop_shipment_id"), "loop_shipment_id")
    happy = ident(payload.get("happy_returns_shipment_id"), "happy_returns_shipment_id")
    # The documented payload names no return, so it cannot be tied to one here; the
    # return's own webhooks and the backstop carry the effect.
    return Interpretation(handled=False,
                          note=f"Happy Returns shipment {happy or '?'} (Loop shipment "
                          f"{shipment or '?'}) {trigger or 'event'}; the payload names no "
                          "return, so it is kept for reference only")


def _label_request(payload: dict[str, Any], trigger: str,
                   settings: LoopSettings) -> Interpretation:
    raw = payload.get("return_id")
    ref = "" if isinstance(raw, dict | list | bool) else text(raw)
    products = items(payload.get("products"), "products")
    return Interpretation(handled=False, source_return_id=ref,
                          note=f"label request {trigger.removeprefix('label.request.') or '?'} "
                          f"for {len(products)} product(s): third-party label generation is "
                          "not done by returnbridge; kept for reference")


_HANDLERS = {
    "return": _return,
    "label": _label,
    "restock": _restock,
    "giftcard": _giftcard,
    "return.processing": _processing,
    "happy.returns.shipment": _shipment,
    "label.request": _label_request,
}
