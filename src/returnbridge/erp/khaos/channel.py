"""Documents of the Khaos channel contract (reference §1): EndpointConfig and
CustomerReturnImport. Khaos rejects JSON null, so nothing here ever emits one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from returnbridge.domain.model import Address, Customer, ExchangeLine

API_VERSION = 1000

# Field lengths from the Address / Contact object tables.
_LIMITS = {"Line1": 35, "Line2": 35, "Line3": 35, "Town": 35, "County": 35, "Postcode": 10,
           "Telephone": 25, "Organisation": 50, "Forename": 50, "Surname": 50, "Email": 100}


class NullInDocument(ValueError):
    """A document for Khaos contains null; Khaos would fail the import."""


@dataclass(frozen=True)
class ServedLine:
    sku: str
    quantity: int
    khaos_reason_id: str
    unit_net: Decimal
    unit_gross: Decimal


@dataclass(frozen=True)
class ServedReturn:
    associated_ref: str
    created_at: datetime
    urn: str
    customer: Customer
    lines: tuple[ServedLine, ...]
    exchanges: tuple[ExchangeLine, ...]
    process_return: bool
    order_ref: str = ""
    notes: str = ""
    # The original Khaos order, as one SourceOrder key ("SOrderCode", "SOrderID" or
    # "AssociatedRef") and its value; None when unknown. OneOf: never more than one key.
    source_order: tuple[str, str] | None = None
    brand_id: str = ""
    sales_source_id: str = ""
    delivery_address: Address | None = None  # None: the customer's address


@dataclass(frozen=True)
class ChannelOptions:
    unit_price: str  # "Gross" | "Net"
    sku_mapping: str
    match_address_on: tuple[str, ...]
    match_contact_on: tuple[str, ...]
    timezone: str = "Europe/London"


def khaos_datetime(value: datetime, tz: str) -> str:
    """RFC 3339 without an offset, in the ERP's local time."""
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S")


def _clip(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value in ("", None):
            continue
        clipped = value[: _LIMITS[key]] if isinstance(value, str) and key in _LIMITS else value
        out[key] = clipped
    return out


def _address(addr: Address | None, email: str) -> dict[str, Any]:
    if addr is None:
        return {}
    return _clip({
        "Line1": addr.line1, "Line2": addr.line2, "Town": addr.town, "County": addr.county,
        "Postcode": addr.postcode,
        "Country": {"Code": addr.country_code} if addr.country_code else None,
        "Telephone": addr.phone, "Organisation": addr.company, "Email": email,
    })


def _contact(customer: Customer) -> dict[str, Any]:
    return _clip({"Forename": customer.first_name, "Surname": customer.last_name,
                  "Email": customer.email})


def _price(net: Decimal, gross: Decimal, which: str) -> dict[str, float]:
    # The contract types prices as double; Decimal -> float happens only here, at the wire.
    value = gross if which == "Gross" else net
    return {which: float(value)}


# CustomerReturn properties in the documented order (XML readers may depend on it).
RETURN_FIELDS = ("AssociatedRef", "CreatedDate", "URN", "InvoiceAddress", "InvoiceContact",
                 "DeliveryAddress", "DeliveryContact", "ReturnedItems", "ExchangeItems", "Brand",
                 "SalesSource", "Notes", "ProcessReturn")
SOURCE_ORDER_KEYS = ("SOrderCode", "SOrderID", "AssociatedRef", "SOrderItemID")


def _returned_item(line: ServedLine, ret: ServedReturn, opts: ChannelOptions) -> dict[str, Any]:
    item: dict[str, Any] = {
        "SKU": line.sku,
        "Mapping": [{"Mapping": opts.sku_mapping}],
        "Quantity": line.quantity,
        "ReturnReason": {"ID": line.khaos_reason_id},
        "ExtendedDescription": [],
        "UnitPrice": _price(line.unit_net, line.unit_gross, opts.unit_price),
    }
    if ret.source_order is not None:
        key, value = ret.source_order
        if key not in SOURCE_ORDER_KEYS:
            raise ValueError(f"unknown SourceOrder key {key!r}")
        if value:
            item["SourceReturnReference"] = {"SourceOrder": {key: value}}
    return item


def customer_return(ret: ServedReturn, opts: ChannelOptions) -> dict[str, Any]:
    mapping = [{"Mapping": opts.sku_mapping}]
    delivery = ret.delivery_address or ret.customer.address
    doc: dict[str, Any] = {
        "AssociatedRef": ret.associated_ref,
        "CreatedDate": khaos_datetime(ret.created_at, opts.timezone),
        "URN": ret.urn,
        "InvoiceAddress": _address(ret.customer.address, ret.customer.email),
        "InvoiceContact": _contact(ret.customer),
        "DeliveryAddress": _address(delivery, ret.customer.email),
        "DeliveryContact": _contact(ret.customer),
        "ReturnedItems": [_returned_item(line, ret, opts) for line in ret.lines],
        "ProcessReturn": ret.process_return,
    }
    if ret.brand_id:
        doc["Brand"] = {"ID": ret.brand_id}
    if ret.sales_source_id:
        doc["SalesSource"] = {"ID": ret.sales_source_id}
    if ret.exchanges:
        doc["ExchangeItems"] = [
            {"SKU": ex.sku, "Mapping": mapping, "Quantity": ex.quantity,
             "ExtendedDescription": [],
             "UnitPrice": _price(ex.unit_net, ex.unit_gross, opts.unit_price)}
            for ex in ret.exchanges
        ]
    if ret.notes:
        doc["Notes"] = ret.notes
    # Only the documented shape: an address without its required lines is left out
    # rather than sent half-empty (InvoiceAddress stays, Khaos reports what is missing).
    if not _complete_address(doc.get("DeliveryAddress", {})):
        doc.pop("DeliveryAddress", None)
    ordered = {k: doc[k] for k in RETURN_FIELDS if k in doc}
    return {k: v for k, v in ordered.items() if v not in ({}, "")}


def _complete_address(addr: dict[str, Any]) -> bool:
    return all(addr.get(key) for key in ("Line1", "Town", "Country"))


def customer_return_import(returns: list[ServedReturn], opts: ChannelOptions) -> dict[str, Any]:
    doc = {
        "Returns": [customer_return(r, opts) for r in returns],
        "ApiVersion": API_VERSION,
        "Config": {"MatchAddressOn": list(opts.match_address_on),
                   "MatchContactOn": list(opts.match_contact_on)},
    }
    assert_no_null(doc)
    return doc


def endpoint_config(base_url: str, fmt: str, poll_minutes: int) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "EndpointConfig": {
            "CReturnDownload": {"URL": f"{base}/khaos/returns", "Format": fmt,
                                "Frequency": poll_minutes},
            "StockUpload": {"URL": f"{base}/khaos/stock", "Format": fmt},
            "StockStatusUpload": {"URL": f"{base}/khaos/stock-status", "Format": fmt},
            "OrderStatusUpload": {"URL": f"{base}/khaos/order-status", "Format": fmt},
        }
    }


def assert_no_null(value: Any, path: str = "$") -> None:
    """Raise NullInDocument naming the first null found. A page is tens of thousands of
    values: they are walked without building paths, and the path is worked out only for a
    document that has a null."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            _raise_at_null(value, path)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _raise_at_null(value: Any, path: str) -> None:
    if value is None:
        raise NullInDocument(f"null at {path}")
    if isinstance(value, dict):
        for key, item in value.items():
            _raise_at_null(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _raise_at_null(item, f"{path}[{i}]")
