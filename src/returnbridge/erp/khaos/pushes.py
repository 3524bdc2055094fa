"""What Khaos POSTs to us (reference §1.6): StockItems (StockUpload), StockStatuses
(StockStatusUpload) and OrderStatuses (OrderStatusUpload), in JSON or XML.

Parsing is tolerant of the contract's known wobbles (IDs as strings or numbers, XML booleans
``True``/``false``/``-1``, ``ShortDescription`` vs ``StockDescription``, ``Deleted`` as IDs or
``{"StockID": ...}`` objects). A body that is not the documented document at all raises
``PayloadInvalid``; a single unusable entry is skipped and named in ``problems`` so that one
bad item never blocks the rest of a batch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.erp.khaos.xml import XmlInvalid, parse_document

PushKind = Literal["stock", "stock-status", "order-status"]
PUSH_KINDS: tuple[PushKind, ...] = ("stock", "stock-status", "order-status")
_ROOTS: dict[PushKind, str] = {"stock": "StockItems", "stock-status": "StockStatuses",
                               "order-status": "OrderStatuses"}


class _EntryInvalid(ValueError):
    pass


@dataclass(frozen=True)
class StockItemRecord:
    stock_id: str
    stock_code: str
    other_ref: str
    description: str
    barcodes: tuple[str, ...]
    publish_on_web: bool
    discontinued: bool
    stock_controlled: bool
    raw: dict[str, Any] = field(compare=False, hash=False)


@dataclass(frozen=True)
class StockUpload:
    items: tuple[StockItemRecord, ...]
    deleted: tuple[str, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class StockLevelRecord:
    stock_id: str
    site_id: str
    stock_code: str
    available: Decimal
    on_order: Decimal
    from_children: bool  # True: no Levels, Available is RelationshipPotential.FromChildren


@dataclass(frozen=True)
class StockStatuses:
    statuses: tuple[StockLevelRecord, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class PushedOrderStatus:
    """One order status Khaos pushed (OrderStatusUpload); ExportOrderStatusEx answers with
    ``soap.OrderStatusRecord``, a different shape."""

    order_id: str
    order_code: str
    associated_ref: str
    status: str
    order_type: str
    invoice_code: str
    stage: str
    total: Decimal | None
    raw: dict[str, Any] = field(compare=False, hash=False)


@dataclass(frozen=True)
class OrderStatuses:
    statuses: tuple[PushedOrderStatus, ...]
    problems: tuple[str, ...] = ()


# --------------------------------------------------------------------------- documents

def body_format(body: bytes, content_type: str = "") -> Literal["JSON", "XML"]:
    """XML when the content type says so or the body starts with ``<``; else JSON."""
    ctype = content_type.lower()
    if "xml" in ctype:
        return "XML"
    if "json" in ctype:
        return "JSON"
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "XML" if head == b"<" else "JSON"


def load_document(kind: PushKind, body: bytes, content_type: str = "") -> dict[str, Any]:
    """The pushed document as a JSON-shaped dict (XML is converted); raises PayloadInvalid."""
    if not body.strip():
        raise PayloadInvalid("the body is empty")
    if body_format(body, content_type) == "XML":
        try:
            root, content = parse_document(body)
        except XmlInvalid as exc:
            raise PayloadInvalid(str(exc)) from None
        if root != _ROOTS[kind]:
            raise PayloadInvalid(f"expected a <{_ROOTS[kind]}> document, got <{root}>")
        return content if isinstance(content, dict) else {}
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except ValueError as exc:  # not UTF-8, not JSON, or a number too long to convert
        raise PayloadInvalid(f"the body is neither XML nor JSON "
                             f"({str(exc)[:200]})") from None
    except RecursionError:
        raise PayloadInvalid("the body is nested too deeply to read") from None
    if isinstance(doc, dict) and set(doc) == {_ROOTS[kind]} and isinstance(doc[_ROOTS[kind]],
                                                                          dict):
        doc = doc[_ROOTS[kind]]  # tolerate {"StockItems": {...}} wrapping
    if not isinstance(doc, dict):
        raise PayloadInvalid(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _list(doc: Mapping[str, Any], key: str, *, required: bool) -> list[Any]:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise PayloadInvalid(f"{key!r} is missing")
        return []
    if isinstance(value, dict):  # one XML child under a wrapper we did not know
        return [value]
    if not isinstance(value, list):
        raise PayloadInvalid(f"{key!r} must be a list, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- scalars

def _str(value: Any, what: str, *, required: bool = False) -> str:
    if value is None or value in ("", {}):
        if required:
            raise _EntryInvalid(f"{what} is missing")
        return ""
    if isinstance(value, bool):
        raise _EntryInvalid(f"{what} must be text, got a boolean")
    if isinstance(value, int | str):
        return str(value).strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise _EntryInvalid(f"{what} must be text, got {type(value).__name__}")


_TRUE = {"true", "1", "-1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


def _bool(value: Any, what: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return default if low == "" else False
    raise _EntryInvalid(f"{what} must be a boolean, got {value!r}")


_MAX_DIGITS = 12  # integer digits any quantity or price in a push may have


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None or value == "":
        raise _EntryInvalid(f"{what} must be a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _EntryInvalid(f"{what} must be finite, got {value!r}")
        return Decimal(repr(value))
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _EntryInvalid(f"{what} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise _EntryInvalid(f"{what} must be finite, got {value!r}")
    if number != 0 and not -12 <= number.adjusted() < _MAX_DIGITS:
        shown = str(value)[:40] + ("..." if len(str(value)) > 40 else "")
        raise _EntryInvalid(f"{what} is out of range, got {shown}")
    return number


def _site(value: Any) -> str:
    site = _str(value, "SiteID", required=True)
    try:
        return str(int(Decimal(site)))
    except (InvalidOperation, ValueError):
        return site


def _entries(items: list[Any], label: str, key: str, parse: Any) -> tuple[list[Any], list[str]]:
    records: list[Any] = []
    problems: list[str] = []
    for i, entry in enumerate(items):
        if not isinstance(entry, dict):
            problems.append(f"{label}[{i}] is not an object")
            continue
        try:
            records.append(parse(entry))
        except _EntryInvalid as exc:
            ref = entry.get(key)
            named = f" ({key} {ref})" if isinstance(ref, str | int) and ref != "" else ""
            problems.append(f"{label}[{i}]{named}: {exc}")
    return records, problems


# --------------------------------------------------------------------------- StockItems

def _barcodes(value: Any) -> tuple[str, ...]:
    if value in (None, "", {}):
        return ()
    entries = value if isinstance(value, list) else [value]
    found: list[str] = []
    for entry in entries:
        code = entry.get("Barcode") if isinstance(entry, dict) else entry
        text = _str(code, "Barcodes[].Barcode")
        if text and text not in found:
            found.append(text)
    return tuple(found)


def _stock_item(entry: dict[str, Any]) -> StockItemRecord:
    options = entry.get("Options")
    opts = options if isinstance(options, dict) else {}
    description = entry.get("StockDescription", entry.get("ShortDescription"))
    return StockItemRecord(
        stock_id=_str(entry.get("StockID"), "StockID", required=True),
        stock_code=_str(entry.get("StockCode"), "StockCode", required=True),
        other_ref=_str(entry.get("OtherRef"), "OtherRef"),
        description=_str(description, "StockDescription"),
        barcodes=_barcodes(entry.get("Barcodes")),
        publish_on_web=_bool(opts.get("PublishOnWeb"), "Options.PublishOnWeb", True),
        discontinued=_bool(opts.get("Discontinued"), "Options.Discontinued", False),
        stock_controlled=_bool(opts.get("StockControlled"), "Options.StockControlled", True),
        raw=entry,
    )


def _deleted_id(entry: Any) -> str:
    if isinstance(entry, dict):
        return _str(entry.get("StockID"), "Deleted[].StockID", required=True)
    return _str(entry, "Deleted[]", required=True)


def parse_stock_upload(body: bytes, content_type: str = "") -> StockUpload:
    doc = load_document("stock", body, content_type)
    if "Items" not in doc and "Deleted" not in doc:
        raise PayloadInvalid("a StockItems document needs 'Items' and 'Deleted'")
    records, problems = _entries(_list(doc, "Items", required=False), "Items", "StockID",
                                 _stock_item)
    deleted: list[str] = []
    for i, entry in enumerate(_list(doc, "Deleted", required=False)):
        try:
            deleted.append(_deleted_id(entry))
        except _EntryInvalid as exc:
            problems.append(f"Deleted[{i}]: {exc}")
    return StockUpload(tuple(records), tuple(deleted), tuple(problems))


# --------------------------------------------------------------------------- StockStatuses

def _stock_level(entry: dict[str, Any]) -> StockLevelRecord:
    stock_id = _str(entry.get("StockID"), "StockID", required=True)
    site_id = _site(entry.get("SiteID"))
    code = _str(entry.get("StockCode"), "StockCode")
    levels = entry.get("Levels")
    if isinstance(levels, dict) and levels:
        on_order = levels.get("OnOrder")
        return StockLevelRecord(
            stock_id, site_id, code, _decimal(levels.get("Available"), "Levels.Available"),
            _decimal(on_order, "Levels.OnOrder") if on_order not in (None, "") else Decimal(0),
            from_children=False,
        )
    potential = entry.get("RelationshipPotential")
    if isinstance(potential, dict) and potential.get("FromChildren") not in (None, ""):
        available = _decimal(potential.get("FromChildren"), "RelationshipPotential.FromChildren")
        return StockLevelRecord(stock_id, site_id, code, available, Decimal(0),
                                from_children=True)
    raise _EntryInvalid("neither Levels nor RelationshipPotential.FromChildren is present")


def parse_stock_statuses(body: bytes, content_type: str = "") -> StockStatuses:
    doc = load_document("stock-status", body, content_type)
    records, problems = _entries(_list(doc, "Statuses", required=True), "Statuses", "StockID",
                                 _stock_level)
    return StockStatuses(tuple(records), tuple(problems))


# --------------------------------------------------------------------------- OrderStatuses

def _total(entry: dict[str, Any]) -> Decimal | None:
    for key in ("GrossTotal", "Total", "OrderTotal"):
        if entry.get(key) not in (None, ""):
            return _decimal(entry[key], key)
    return None


def _order_status(entry: dict[str, Any]) -> PushedOrderStatus:
    shipments = entry.get("Shipments")
    ships = [s for s in (shipments if isinstance(shipments, list) else [shipments])
             if isinstance(s, dict)]
    last = ships[-1] if ships else {}
    status = _str(entry.get("Status", entry.get("OrderStatus")), "Status")
    return PushedOrderStatus(
        order_id=_str(entry.get("OrderID"), "OrderID", required=True),
        order_code=_str(entry.get("OrderCode"), "OrderCode"),
        associated_ref=_str(entry.get("AssociatedRef"), "AssociatedRef"),
        status=status,
        order_type=_str(entry.get("OrderType", entry.get("SOrderType")), "OrderType"),
        invoice_code=_str(last.get("Code"), "Shipments[].Code"),
        stage=_str(last.get("Status"), "Shipments[].Status") or status,
        total=_total(entry),
        raw=entry,
    )


def parse_order_statuses(body: bytes, content_type: str = "") -> OrderStatuses:
    doc = load_document("order-status", body, content_type)
    records, problems = _entries(_list(doc, "Statuses", required=True), "Statuses", "OrderID",
                                 _order_status)
    return OrderStatuses(tuple(records), tuple(problems))
