"""The state of the Khaos sandbox: catalogue, stock per site, customers, return reasons,
imported returns with their credit notes and exchange orders, and how Khaos imports and
processes a CustomerReturn (reference §1.5, §3). Pure Python, guarded by one lock."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class Processing(StrEnum):
    """A return reason's processing type (reference §3.1)."""

    RESTOCK = "restock"  # "Return to Stock": back into sellable stock
    WRITE_OFF = "write_off"  # "Stock Missing / Write off": nothing comes back
    NO_STOCK = "no_stock"  # no goods expected (keep item, refund only)


class CreditNoteAt(StrEnum):
    """When the sandbox raises a return's credit note (reference §3.3a). Real Khaos raises
    it at *Process* (documented); ``import`` is what the first sandbox did, kept so the
    product can be shown to work whichever way a real installation turns out to behave."""

    IMPORT = "import"  # at import, at stage Processing until the return is processed
    PROCESS = "process"  # only when the return is processed (import with ProcessReturn
    # true, SOAP ProcessReturn, or the warehouse clicking Process)


class SandboxFault(Exception):
    """What the SOAP service answers as a ``<Fault>`` (the text is the faultstring)."""


@dataclass
class SandboxItem:
    stock_id: str
    stock_code: str
    description: str = ""
    other_ref: str = ""
    barcodes: tuple[str, ...] = ()
    publish_on_web: bool = True
    discontinued: bool = False
    stock_controlled: bool = True
    sell_price: Decimal = Decimal("0.00")


@dataclass
class SandboxCustomer:
    urn: str
    email: str = ""
    name: str = ""
    company_id: str = ""


@dataclass
class SandboxReason:
    reason_id: str
    name: str
    processing: Processing


@dataclass
class ReturnLineRecord:
    sku: str
    stock_id: str  # "" when the catalogue is open (legacy mode) and the SKU is not known
    quantity: Decimal
    reason_id: str
    processing: Processing
    unit_price: Decimal


@dataclass
class ExchangeOrder:
    order_code: str
    associated_ref: str
    items: list[tuple[str, str, Decimal]]  # (sku, stock_id, quantity)


@dataclass
class KhaosReturn:
    """One imported CustomerReturn, its credit note and (optionally) its exchange order.
    ``credit_note_code`` is "" while Khaos has raised no credit note for it."""

    return_code: str
    associated_ref: str
    urn: str
    credit_note_code: str
    credit_value: Decimal
    credit_value_net: Decimal
    lines: list[ReturnLineRecord]
    exchange: ExchangeOrder | None
    site_id: int
    imported_at: datetime
    processed: bool = False
    partially_processed: bool = False
    issued: bool = False
    stock_moved: bool = False
    manual_auth_code: str = ""
    deleted: bool = False
    # Exchange items waiting for Process (credit notes at processing: the exchange order is
    # raised with the credit note, reference §3.3a).
    pending_exchange: list[tuple[str, str, Decimal]] = field(default_factory=list)

    # The shape the first sandbox had (kept for the demo and older tests).
    @property
    def items(self) -> list[tuple[str, float, str]]:
        return [(ln.sku, float(ln.quantity), ln.reason_id) for ln in self.lines]

    @property
    def exchange_items(self) -> list[tuple[str, float]]:
        return [(sku, float(q)) for sku, _, q in (self.exchange.items if self.exchange else [])]

    @property
    def stage(self) -> tuple[str, str]:
        """(INVOICE_STAGE_ID, description) of the credit note ("", "" while there is none).
        An unprocessed return's credit note (raised at import) is at stage Processing."""
        if not self.credit_note_code:
            return "", ""
        if self.issued:
            return "70", "Issued"
        if self.processed:
            return "16", "Issue invoices"
        return "20", "Processing"


@dataclass
class ImportFailure:
    associated_ref: str
    reason: str


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


@dataclass
class KhaosState:
    """Everything the sandbox knows. ``strict_*`` False means "accept anything" (the open
    mode the first, minimal sandbox had when given no catalogue, customers or reasons)."""

    site_id: int = 1
    move_stock_on_process: bool = True
    credit_note_at: CreditNoteAt = CreditNoteAt.PROCESS
    items: dict[str, SandboxItem] = field(default_factory=dict)  # by StockID
    levels: dict[tuple[str, int], list[Decimal]] = field(default_factory=dict)  # avail, on order
    customers: dict[str, SandboxCustomer] = field(default_factory=dict)  # by URN
    # web orders by AssociatedRef: (order code, URN)
    sales_orders: dict[str, tuple[str, str]] = field(default_factory=dict)
    reasons: dict[str, SandboxReason] = field(default_factory=dict)
    returns: dict[str, KhaosReturn] = field(default_factory=dict)  # by AssociatedRef
    failures: list[ImportFailure] = field(default_factory=list)
    dirty_levels: set[tuple[str, int]] = field(default_factory=set)
    changed_returns: set[str] = field(default_factory=set)  # for OrderStatusUpload pushes
    lock: threading.RLock = field(default_factory=threading.RLock)
    _counter: dict[str, int] = field(default_factory=dict)

    # -- setup -----------------------------------------------------------------------------

    def next_code(self, prefix: str) -> str:
        with self.lock:
            n = self._counter.get(prefix, 0) + 1
            self._counter[prefix] = n
            return f"{prefix}{n:06d}"

    def add_item(self, stock_code: str, *, stock_id: str = "", description: str = "",
                 other_ref: str = "", barcodes: Iterable[str] = (), publish_on_web: bool = True,
                 discontinued: bool = False, stock_controlled: bool = True,
                 sell_price: Decimal | str = "0.00",
                 levels: Mapping[int, Decimal | int | str] | None = None) -> SandboxItem:
        with self.lock:
            sid = stock_id or str(1000 + len(self.items) + 1)
            item = SandboxItem(sid, stock_code, description or stock_code, other_ref,
                               tuple(barcodes), publish_on_web, discontinued, stock_controlled,
                               _dec(sell_price))
            self.items[sid] = item
            for site, qty in (levels or {}).items():
                self.set_level(sid, site, _dec(qty))
            return item

    def set_level(self, stock_id: str, site_id: int, available: Decimal,
                  on_order: Decimal | None = None) -> None:
        with self.lock:
            current = self.levels.get((stock_id, site_id), [Decimal(0), Decimal(0)])
            self.levels[(stock_id, site_id)] = [
                available, current[1] if on_order is None else on_order]
            self.dirty_levels.add((stock_id, site_id))

    def add_customer(self, urn: str, email: str = "", name: str = "") -> SandboxCustomer:
        with self.lock:
            cust = SandboxCustomer(urn, email.lower(), name or urn,
                                   str(5000 + len(self.customers) + 1))
            self.customers[urn] = cust
            return cust

    def add_sales_order(self, associated_ref: str, urn: str, order_code: str = "") -> str:
        """A web order already in Khaos (its AssociatedRef is the shop's order reference),
        so ExportOrderStatusEx can tell which customer placed it."""
        with self.lock:
            code = order_code or f"SO{len(self.sales_orders) + 1:06d}"
            self.sales_orders[associated_ref] = (code, urn)
            return code

    def add_reason(self, reason_id: str, name: str = "",
                   processing: Processing | str = Processing.RESTOCK) -> SandboxReason:
        with self.lock:
            reason = SandboxReason(reason_id, name or f"Reason {reason_id}",
                                   Processing(processing))
            self.reasons[reason_id] = reason
            return reason

    # -- lookups ---------------------------------------------------------------------------

    def find_item(self, sku: str, mappings: Iterable[str]) -> SandboxItem | None:
        """The item ``sku`` names under the given MappingTypes (first that matches)."""
        with self.lock:
            for mapping in mappings:
                for item in self.items.values():
                    if mapping in ("StockCode", "WebCode") and item.stock_code == sku:
                        return item
                    if mapping == "OtherRef" and item.other_ref and item.other_ref == sku:
                        return item
                    if mapping == "Barcode" and sku in item.barcodes:
                        return item
                    if mapping == "Automatic" and sku in (item.stock_code, item.other_ref,
                                                          *item.barcodes):
                        return item
            return None

    def item_by_code(self, stock_code: str) -> SandboxItem:
        found = self.find_item(stock_code, ["StockCode"])
        if found is None:
            raise KeyError(f"no stock item {stock_code!r} in the sandbox catalogue")
        return found

    def level(self, stock_code: str, site_id: int | None = None) -> Decimal:
        """Available stock of ``stock_code`` at a site (default: the returns site)."""
        with self.lock:
            item = self.item_by_code(stock_code)
            site = self.site_id if site_id is None else site_id
            return self.levels.get((item.stock_id, site), [Decimal(0), Decimal(0)])[0]

    def by_return_code(self, return_code: str) -> KhaosReturn | None:
        with self.lock:
            return next((r for r in self.returns.values()
                         if r.return_code == return_code and not r.deleted), None)

    # -- import (CReturnDownload) ----------------------------------------------------------

    def import_document(self, doc: Mapping[str, Any]) -> int:
        """Import a CustomerReturnImport; returns how many returns were imported. A document
        without ApiVersion 1000 fails as a whole; otherwise each return fails alone."""
        if str(doc.get("ApiVersion")) != "1000":
            raise ValueError(f"ApiVersion must be 1000, got {doc.get('ApiVersion')!r}")
        returns = doc.get("Returns") or []
        if isinstance(returns, dict):  # the vendor example wraps a single object
            returns = [returns]
        count = 0
        for ret in returns:
            with self.lock:
                reason = self.refusal(ret)
                if reason:
                    self.failures.append(ImportFailure(str(ret.get("AssociatedRef", "?")),
                                                       reason))
                    continue
                self._import_one(ret)
                count += 1
        return count

    def refusal(self, ret: Mapping[str, Any]) -> str:
        """Why Khaos would fail this return's import, or ""."""
        if _has_null(ret):
            return "null value in the return"
        ref = ret.get("AssociatedRef")
        if not ref:
            return "AssociatedRef missing"
        if ref in self.returns:
            return f"duplicate AssociatedRef {ref}"
        urn = str(ret.get("URN", ""))
        if not urn or (self.customers and urn not in self.customers):
            return f"unknown customer URN {urn!r}"
        for part in ("InvoiceAddress", "InvoiceContact"):
            if part not in ret:
                return f"{part} missing"
        for key in ("Line1", "Town", "Country"):
            if key not in ret["InvoiceAddress"]:
                return f"InvoiceAddress.{key} missing"
        items = ret.get("ReturnedItems") or []
        if not items:
            return "no ReturnedItems"
        for item in items:
            sku = str(item.get("SKU", ""))
            mappings = _mappings(item)
            if self.items and self.find_item(sku, mappings) is None:
                return f"unknown SKU {sku!r} under mapping {'/'.join(mappings)}"
            rid = str((item.get("ReturnReason") or {}).get("ID", ""))
            if not rid or (self.reasons and rid not in self.reasons):
                return f"unknown return reason {rid!r}"
            if _dec(item.get("Quantity", 0)) <= 0:
                return f"quantity of {sku!r} must be positive"
        for item in ret.get("ExchangeItems") or []:
            sku = str(item.get("SKU", ""))
            found = self.find_item(sku, _mappings(item))
            if self.items and found is None:
                return f"unknown exchange SKU {sku!r}"
            if found is not None and (found.discontinued or not found.publish_on_web):
                return f"exchange item {sku!r} is discontinued or not published to web"
        return ""

    def _import_one(self, ret: Mapping[str, Any]) -> KhaosReturn:
        lines = []
        gross = net = Decimal(0)
        for item in ret["ReturnedItems"]:
            found = self.find_item(str(item["SKU"]), _mappings(item))
            rid = str(item["ReturnReason"]["ID"])
            reason = self.reasons.get(rid)
            price = item.get("UnitPrice") or {}
            qty = _dec(item["Quantity"])
            unit_gross = _dec(price.get("Gross", price.get("Net", 0)))
            unit_net = _dec(price.get("Net", price.get("Gross", 0)))
            gross += unit_gross * qty
            net += unit_net * qty
            lines.append(ReturnLineRecord(
                sku=str(item["SKU"]), stock_id=found.stock_id if found else "", quantity=qty,
                reason_id=rid, processing=reason.processing if reason else Processing.RESTOCK,
                unit_price=unit_gross))
        wanted: list[tuple[str, str, Decimal]] = []
        for item in ret.get("ExchangeItems") or []:
            found = self.find_item(str(item["SKU"]), _mappings(item))
            wanted.append((str(item["SKU"]), found.stock_id if found else "",
                           _dec(item["Quantity"])))
        record = KhaosReturn(
            return_code=self.next_code("SR"), associated_ref=str(ret["AssociatedRef"]),
            urn=str(ret["URN"]),
            credit_note_code=(self.next_code("CN") if self.credit_note_at is CreditNoteAt.IMPORT
                              else ""),
            credit_value=gross.quantize(Decimal("0.01")),
            credit_value_net=net.quantize(Decimal("0.01")), lines=lines, exchange=None,
            site_id=self.site_id, imported_at=datetime.now(UTC), pending_exchange=wanted,
        )
        if self.credit_note_at is CreditNoteAt.IMPORT:
            self._raise_exchange(record)
        self.returns[record.associated_ref] = record
        self.changed_returns.add(record.associated_ref)
        if _truthy(ret.get("ProcessReturn", False)):
            self._process(record, "")
        return record

    # -- processing (warehouse, or SOAP ProcessReturn) -------------------------------------

    def process_return(self, return_code: str, manual_auth_code: str) -> str:
        """Desktop ProcessReturn with its documented faults (reference §2.5)."""
        if not return_code or not manual_auth_code:
            raise SandboxFault("Return Code or Auth Code not defined")
        return self.process(return_code, manual_auth_code)

    def process(self, return_code: str, manual_auth_code: str = "") -> str:
        """The warehouse clicks Process on the return (no auth code needed)."""
        with self.lock:
            record = self.by_return_code(return_code)
            if record is None:
                raise SandboxFault("Return does not exist or has been deleted")
            if record.partially_processed:
                raise SandboxFault("Return has been partially processed, unable to continue")
            if record.processed:
                raise SandboxFault("Return has already been processed")
            self._process(record, manual_auth_code)
            return "Return has successfully been processed"

    def issue(self, return_code: str) -> None:
        """Issue the return (end of the flow); stock moves here without Move-on-Process."""
        with self.lock:
            record = self.by_return_code(return_code)
            if record is None:
                raise SandboxFault("Return does not exist or has been deleted")
            if not record.processed:
                self._process(record, "")
            record.issued = True
            self.changed_returns.add(record.associated_ref)
            self._move_stock(record)

    def _process(self, record: KhaosReturn, auth: str) -> None:
        record.processed = True
        record.manual_auth_code = auth
        if not record.credit_note_code:  # processing turns the return into a credit note
            record.credit_note_code = self.next_code("CN")  # (and its exchange order)
        self._raise_exchange(record)
        self.changed_returns.add(record.associated_ref)
        if self.move_stock_on_process:
            self._move_stock(record)

    def _raise_exchange(self, record: KhaosReturn) -> None:
        """The exchange order, with its items reserved (once)."""
        if not record.pending_exchange or record.exchange is not None:
            return
        record.exchange = ExchangeOrder(self.next_code("SO"), record.associated_ref, [])
        for sku, stock_id, qty in record.pending_exchange:
            record.exchange.items.append((sku, stock_id, qty))
            item = self.items.get(stock_id)
            if item is not None and item.stock_controlled:  # reserved for the order
                self._adjust(stock_id, self.site_id, -qty)
        record.pending_exchange = []

    def _move_stock(self, record: KhaosReturn) -> None:
        if record.stock_moved:
            return
        record.stock_moved = True
        for line in record.lines:
            item = self.items.get(line.stock_id)
            if line.processing is Processing.RESTOCK and item is not None \
                    and item.stock_controlled:
                self._adjust(line.stock_id, record.site_id, line.quantity)

    def _adjust(self, stock_id: str, site_id: int, delta: Decimal) -> None:
        current = self.levels.get((stock_id, site_id), [Decimal(0), Decimal(0)])
        self.levels[(stock_id, site_id)] = [current[0] + delta, current[1]]
        self.dirty_levels.add((stock_id, site_id))

    # -- documents -------------------------------------------------------------------------

    def order_statuses(self, refs: Iterable[str]) -> list[dict[str, Any]]:
        """``OrderStatus`` objects (OrderStatusUpload) for returns by AssociatedRef: the
        return as a credit-note document (OrderType 2), its credit note as the shipment
        (``Code``) with the stage as its ``Status`` (no shipment while none is raised)."""
        push_stage = {"20": "Processing", "16": "Issue", "70": "Archived"}
        out = []
        with self.lock:
            for ref in sorted(refs):
                r = self.returns.get(ref)
                if r is None or r.deleted:
                    continue
                stage_id, _ = r.stage
                status: dict[str, Any] = {
                    "OrderID": f"R{r.return_code}", "OrderCode": r.return_code,
                    "AssociatedRef": r.associated_ref, "OrderType": "2",
                    "Status": "Complete" if r.issued else "Received",
                    "GrossTotal": float(r.credit_value),
                    "Shipments": ([{"Code": r.credit_note_code,
                                    "Status": push_stage.get(stage_id, "Processing")}]
                                  if r.credit_note_code else []),
                }
                out.append(status)
        return out

    def stock_statuses(self, keys: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
        """``StockStatus`` objects (reference §1.6) for (StockID, SiteID) pairs."""
        out = []
        with self.lock:
            for stock_id, site in sorted(keys):
                item = self.items.get(stock_id)
                if item is None:
                    continue
                avail, on_order = self.levels.get((stock_id, site), [Decimal(0), Decimal(0)])
                status: dict[str, Any] = {"StockCode": item.stock_code, "StockID": stock_id,
                                          "SiteID": site}
                if item.stock_controlled:
                    status["Levels"] = {"Available": float(avail), "OnOrder": float(on_order)}
                else:
                    status["RelationshipPotential"] = {"FromChildren": 0, "FromParents": 0}
                out.append(status)
        return out

    def stock_items(self) -> list[dict[str, Any]]:
        """``StockItem`` objects (reference §1.6) for the whole catalogue."""
        with self.lock:
            return [{
                "StockID": it.stock_id, "StockCode": it.stock_code,
                "ShortDescription": it.description, "OtherRef": it.other_ref,
                "BuyPrice": {"Net": 0.0}, "SellPrice": {"Gross": float(it.sell_price)},
                "TaxRate": {"Code": "1", "ID": "1", "Name": "Standard"},
                "StockType1": {"ID": "1", "Name": "General"},
                "StockType2": {"ID": "1", "Name": "General"},
                "Options": {"PublishOnWeb": it.publish_on_web, "Discontinued": it.discontinued,
                            "DropShipItem": False, "DiscountsDisabled": False,
                            "RunToZero": False, "VatReliefQualified": False,
                            "StockControlled": it.stock_controlled, "FreeText": False},
                "SupplierInfo": [], "Images": [],
                "Barcodes": [{"Barcode": b} for b in it.barcodes],
            } for it in self.items.values()]

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data (the sandbox's ``GET /state``)."""
        with self.lock:
            return {
                "site_id": self.site_id,
                "move_stock_on_process": self.move_stock_on_process,
                "credit_note_at": self.credit_note_at.value,
                "items": [{"stock_id": i.stock_id, "stock_code": i.stock_code,
                           "other_ref": i.other_ref, "barcodes": list(i.barcodes),
                           "publish_on_web": i.publish_on_web,
                           "discontinued": i.discontinued} for i in self.items.values()],
                "levels": [{"stock_id": sid, "site_id": site, "available": str(v[0]),
                            "on_order": str(v[1])}
                           for (sid, site), v in sorted(self.levels.items())],
                "customers": [{"urn": c.urn, "email": c.email} for c in self.customers.values()],
                "reasons": [{"id": r.reason_id, "name": r.name,
                             "processing": r.processing.value} for r in self.reasons.values()],
                "returns": [{
                    "associated_ref": r.associated_ref, "return_code": r.return_code,
                    "urn": r.urn, "credit_note_code": r.credit_note_code,
                    "credit_note_stage": r.stage[1],
                    "credit_value": str(r.credit_value), "processed": r.processed,
                    "issued": r.issued, "stock_moved": r.stock_moved,
                    "exchange_order": r.exchange.order_code if r.exchange else "",
                    "lines": [{"sku": ln.sku, "quantity": str(ln.quantity),
                               "reason_id": ln.reason_id, "processing": ln.processing.value}
                              for ln in r.lines],
                } for r in self.returns.values()],
                "failures": [{"associated_ref": f.associated_ref, "reason": f.reason}
                             for f in self.failures],
            }


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "-1", "yes"}
    return bool(value)


def _mappings(item: Mapping[str, Any]) -> list[str]:
    raw = item.get("Mapping")
    if isinstance(raw, str):
        return [raw]
    names = [str(m.get("Mapping", "")) for m in raw or [] if isinstance(m, dict)]
    return [n for n in names if n] or ["StockCode"]
