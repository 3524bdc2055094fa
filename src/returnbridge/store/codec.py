"""ReturnCase <-> JSON for the ``returns.case_json`` column (Decimals as strings)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

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
    UnitReceipt,
)


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    return value


def case_to_json(case: ReturnCase) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(case)
    return result


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dec(value: Any) -> Decimal:
    return Decimal(value)


def _line(d: dict[str, Any]) -> ReturnLine:
    return ReturnLine(
        sku=d["sku"], quantity=d["quantity"], unit_net=_dec(d["unit_net"]),
        unit_tax=_dec(d["unit_tax"]), unit_gross=_dec(d["unit_gross"]),
        discount=_dec(d["discount"]), reason=d["reason"], parent_reason=d["parent_reason"],
        condition=d["condition"], disposition=Disposition(d["disposition"]),
        physical_return_expected=d["physical_return_expected"],
        received_at=_dt(d["received_at"]), source_unit_ids=tuple(d["source_unit_ids"]),
        variant_id=d["variant_id"], barcode=d["barcode"], title=d["title"],
        source_order_line_id=d["source_order_line_id"],
        unit_nets=tuple(_dec(x) for x in d["unit_nets"]),
        unit_taxes=tuple(_dec(x) for x in d["unit_taxes"]),
    )


def _exchange(d: dict[str, Any]) -> ExchangeLine:
    return ExchangeLine(
        sku=d["sku"], quantity=d["quantity"], unit_net=_dec(d["unit_net"]),
        unit_tax=_dec(d["unit_tax"]), unit_gross=_dec(d["unit_gross"]),
        out_of_stock=d["out_of_stock"], title=d["title"], variant_id=d["variant_id"],
    )


def case_from_json(d: dict[str, Any]) -> ReturnCase:
    cust = d["customer"]
    addr = cust.get("address")
    s = d["settlement"]
    t = d["totals"]
    return ReturnCase(
        source=str(d["source"]),
        source_return_id=d["source_return_id"],
        associated_ref=d["associated_ref"],
        order_ref=d["order_ref"],
        customer=Customer(
            email=cust["email"], first_name=cust["first_name"], last_name=cust["last_name"],
            address=Address(**addr) if addr else None, urn=cust["urn"],
        ),
        currency=d["currency"],
        state=ReturnState(d["state"]),
        source_state=d["source_state"],
        created_at=_dt(d["created_at"]),
        updated_at=_dt(d["updated_at"]),
        lines=tuple(_line(x) for x in d["lines"]),
        exchanges=tuple(_exchange(x) for x in d["exchanges"]),
        settlement=Settlement(
            refund_to_original=_dec(s["refund_to_original"]),
            gateway_refunds=tuple(
                GatewayRefund(g["gateway"], _dec(g["amount"]), g["provider_refund_id"])
                for g in s["gateway_refunds"]
            ),
            store_credit=_dec(s["store_credit"]), exchange_credit=_dec(s["exchange_credit"]),
            upsell=_dec(s["upsell"]), handling_fee=_dec(s["handling_fee"]),
            shipping_refund=_dec(s["shipping_refund"]), bonus_credit=_dec(s["bonus_credit"]),
        ),
        totals=SourceTotals(product=_dec(t["product"]), discount=_dec(t["discount"]),
                            tax=_dec(t["tax"]), total=_dec(t["total"])),
        source_order_id=d["source_order_id"],
        events=tuple(d["events"]),
        receipts=tuple(_receipt(x) for x in d.get("receipts", ())),
        parcel=_parcel(d.get("parcel") or {}),
    )


def _receipt(d: dict[str, Any]) -> UnitReceipt:
    disposition = d.get("disposition")
    return UnitReceipt(
        quantity=d["quantity"], at=_dt(d.get("at")), line_item_id=d.get("line_item_id", ""),
        variant_id=d.get("variant_id", ""), sku=d.get("sku", ""),
        disposition=Disposition(disposition) if disposition else None,
        condition=d.get("condition", ""),
    )


def _parcel(d: dict[str, Any]) -> Parcel:
    return Parcel(label_status=d.get("label_status", ""), carrier=d.get("carrier", ""),
                  tracking_number=d.get("tracking_number", ""),
                  delivered_at=_dt(d.get("delivered_at")))
