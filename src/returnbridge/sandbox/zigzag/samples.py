"""Default-contract ZigZag events (design ZIGZAG_EVENTS.md) for the sandbox and tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

_NS = uuid.UUID("0d1f5c2e-7a43-4f59-9c1e-2b7a6c1d0e99")


@dataclass(frozen=True)
class SampleItem:
    sku: str
    quantity: int = 1
    unit_price: str = "44.99"
    unit_tax: str = "7.50"
    reason: str = "Too small"
    condition: str = "Grade A"
    disposition: str = "Resellable"  # the value sent with ReturnGraded
    received: int | None = None  # units that arrive; None: all of them
    item_id: str = ""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_id(ref: str, event_type: str, seq: int = 0) -> str:
    return str(uuid.uuid5(_NS, f"{ref}/{event_type}/{seq}"))


def event(
    event_type: str,
    ref: str,
    items: list[SampleItem] | tuple[SampleItem, ...] = (),
    *,
    occurred_at: datetime,
    order_number: str = "100085875",
    email: str = "ann.lee@example.com",
    retailer_code: str = "GL123",
    currency: str = "GBP",
    refund_amount: Decimal | str | None = None,
    refund_method: str = "original_payment",
    refund_reference: str | None = None,
    seq: int = 0,
    graded: bool | None = None,
) -> dict[str, Any]:
    """One event of the default contract. Items carry dispositions on ReturnGraded only."""
    graded = event_type == "ReturnGraded" if graded is None else graded
    received = event_type in ("ReturnReceived", "ReturnGraded")
    body_items: list[dict[str, Any]] = []
    for index, item in enumerate(items, start=1):
        element: dict[str, Any] = {
            "itemId": item.item_id or str(index), "sku": item.sku, "quantity": item.quantity,
            "unitPrice": item.unit_price, "unitTax": item.unit_tax,
            "returnReason": item.reason,
        }
        if received:
            element["quantityReceived"] = (item.quantity if item.received is None
                                           else item.received)
            element["receivedAt"] = _iso(occurred_at)
        if graded:
            element["condition"] = item.condition
            element["disposition"] = item.disposition
        body_items.append(element)
    payload: dict[str, Any] = {
        "eventId": event_id(ref, event_type, seq),
        "eventType": event_type,
        "occurredAt": _iso(occurred_at),
        "retailerCode": retailer_code,
        "returnReference": ref,
        "orderNumber": order_number,
        "currency": currency,
        "customer": {"email": email, "firstName": "Ann", "lastName": "Lee"},
        "trackingNumber": "JD0002212345678901" if event_type != "ReturnCreated" else None,
        "carrier": "Royal Mail" if event_type != "ReturnCreated" else None,
        "warehouseDcCode": "GB0064" if received else None,
        "items": body_items,
        "refund": {
            "amount": str(refund_amount) if refund_amount is not None else None,
            "method": refund_method,
            "reference": refund_reference,
        },
    }
    return payload


def refund_total(items: list[SampleItem] | tuple[SampleItem, ...]) -> Decimal:
    """Gross value of the units that arrive."""
    return sum((Decimal(i.unit_price) * (i.quantity if i.received is None else i.received)
                for i in items), Decimal("0.00"))


def journey(ref: str, items: list[SampleItem] | tuple[SampleItem, ...], *,
            start: datetime | None = None, refund_requested: bool = False,
            **common: Any) -> list[dict[str, Any]]:
    """created -> in transit -> received -> graded (-> refund requested), a day apart."""
    at = start or datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    steps = ["ReturnCreated", "ReturnInTransit", "ReturnReceived", "ReturnGraded"]
    events = [event(name, ref, items, occurred_at=at + timedelta(days=n), **common)
              for n, name in enumerate(steps)]
    if refund_requested:
        events.append(event("RefundRequested", ref, (), occurred_at=at + timedelta(days=5),
                            refund_amount=refund_total(items), **common))
    return events
