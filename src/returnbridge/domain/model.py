"""The canonical return (ARCHITECTURE 4): one shape whatever the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.money import ZERO


class Disposition(StrEnum):
    RESTOCK = "restock"
    RESALE_HOLD = "resale_hold"
    WRITE_OFF = "write_off"
    RECYCLE = "recycle"
    DONATE = "donate"
    MISSING = "missing"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Address:
    name: str = ""
    company: str = ""
    line1: str = ""
    line2: str = ""
    town: str = ""
    county: str = ""
    postcode: str = ""
    country_code: str = ""
    country_name: str = ""
    phone: str = ""


@dataclass(frozen=True)
class Customer:
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    address: Address | None = None
    urn: str = ""  # resolved Khaos customer URN, "" until resolved


@dataclass(frozen=True)
class ReturnLine:
    """One SKU and outcome group; a platform's per-unit elements are grouped into quantities."""

    sku: str
    quantity: int
    unit_net: Decimal
    unit_tax: Decimal
    unit_gross: Decimal
    discount: Decimal = ZERO
    reason: str = ""
    parent_reason: str = ""
    condition: str = ""
    disposition: Disposition = Disposition.UNKNOWN
    physical_return_expected: bool = True
    received_at: datetime | None = None
    source_unit_ids: tuple[str, ...] = ()
    variant_id: str = ""
    barcode: str = ""
    title: str = ""
    source_order_line_id: str = ""
    # Per-unit figures as sent; kept so that penny differences can be explained.
    unit_nets: tuple[Decimal, ...] = ()
    unit_taxes: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class ExchangeLine:
    sku: str
    quantity: int
    unit_net: Decimal
    unit_tax: Decimal
    unit_gross: Decimal
    out_of_stock: bool = False
    title: str = ""
    variant_id: str = ""


@dataclass(frozen=True)
class GatewayRefund:
    gateway: str
    amount: Decimal
    provider_refund_id: str = ""


@dataclass(frozen=True)
class Settlement:
    refund_to_original: Decimal = ZERO
    gateway_refunds: tuple[GatewayRefund, ...] = ()
    store_credit: Decimal = ZERO
    exchange_credit: Decimal = ZERO
    upsell: Decimal = ZERO
    handling_fee: Decimal = ZERO
    shipping_refund: Decimal = ZERO
    bonus_credit: Decimal = ZERO


@dataclass(frozen=True)
class UnitReceipt:
    """Goods physically arrived (and possibly graded), as a source stated it.

    Joined to return lines by the first non-empty key of ``line_item_id`` (one of a
    line's source unit ids), ``variant_id``, ``sku``. A later statement about the same key
    replaces an earlier one (so "received" then "graded" does not count twice).
    """

    quantity: int
    at: datetime | None
    line_item_id: str = ""
    variant_id: str = ""
    sku: str = ""
    disposition: Disposition | None = None  # None: arrived, not graded yet
    condition: str = ""

    @property
    def key(self) -> str:
        if self.line_item_id:
            return f"unit:{self.line_item_id}"
        if self.variant_id:
            return f"variant:{self.variant_id}"
        return f"sku:{self.sku}"


@dataclass(frozen=True)
class Parcel:
    """The customer's parcel, from label / shipment events."""

    label_status: str = ""
    carrier: str = ""
    tracking_number: str = ""
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class SourceTotals:
    """Header figures as the source sent them, for identity checks."""

    product: Decimal = ZERO
    discount: Decimal = ZERO
    tax: Decimal = ZERO
    total: Decimal = ZERO


@dataclass(frozen=True)
class ReturnCase:
    source: str  # the returns platform's name (validated where it is registered)
    source_return_id: str
    associated_ref: str
    order_ref: str
    customer: Customer
    currency: str
    state: ReturnState
    source_state: str
    created_at: datetime | None
    updated_at: datetime | None
    lines: tuple[ReturnLine, ...] = ()
    exchanges: tuple[ExchangeLine, ...] = ()
    settlement: Settlement = field(default_factory=Settlement)
    totals: SourceTotals = field(default_factory=SourceTotals)
    source_order_id: str = ""
    events: tuple[str, ...] = ()
    receipts: tuple[UnitReceipt, ...] = ()
    parcel: Parcel = field(default_factory=Parcel)

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)
