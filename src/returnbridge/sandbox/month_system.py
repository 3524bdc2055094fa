"""Put a sandbox month (``sandbox/month.py``) where production reads it from: the returns
table (each return's settlement in ``case_json``, its served lines and credit note), the
refunds table (ours, and the platforms' reported refunds) and the Shopify sandbox (one order
per return, its refunds: ours tagged, Loop's, and refunds made by hand). The legs are then
collected by ``flows/reconcile/legs.refresh`` exactly as in production.

Shipping / fee lines on the credit note need ``[policy] shipping_refund_sku``,
``handling_fee_sku`` and ``non_stock_reason_id`` set to ``SHIPPING_SKU``, ``FEE_SKU`` and
``NON_STOCK_REASON``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Customer, ReturnCase, Settlement, SourceTotals
from returnbridge.domain.reconciliation import from_minor
from returnbridge.sandbox.month import Month
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.store.codec import case_to_json
from returnbridge.store.models import RefundRow, ReturnLineRow, ReturnRow

SHIPPING_SKU, FEE_SKU, NON_STOCK_REASON = "SHIP-REFUND", "HANDLING-FEE", "99"


def policy_settings() -> dict[str, Any]:
    return {"shipping_refund_sku": SHIPPING_SKU, "handling_fee_sku": FEE_SKU,
            "non_stock_reason_id": NON_STOCK_REASON}


def _split(total: int, n: int) -> list[int]:
    base = total // n
    return [total - base * (n - 1)] + [base] * (n - 1)


def _lines(goods: int, tax: int, units: int, c: dict[str, Any] | None) -> list[ReturnLineRow]:
    out = []
    gross_parts = _split(goods if c is None else c["value"] - c["shipping_line"]
                         + c["fee_line"], units)
    tax_parts = _split(tax if c is None else c["tax"], units)
    for i, (g, t) in enumerate(zip(gross_parts, tax_parts, strict=True)):
        out.append(ReturnLineRow(
            position=i, sku=f"SKU-{i}", quantity=1, unit_net=from_minor(g - t),
            unit_tax=from_minor(t), unit_gross=from_minor(g), discount=Decimal("0.00"),
            reason="Too big", disposition="restock", khaos_reason_id="6"))
    if c is not None:
        for sku, amount in ((SHIPPING_SKU, c["shipping_line"]), (FEE_SKU, -c["fee_line"])):
            if amount:
                out.append(ReturnLineRow(
                    position=len(out), sku=sku, quantity=1, unit_net=from_minor(amount),
                    unit_tax=Decimal("0.00"), unit_gross=from_minor(amount),
                    discount=Decimal("0.00"), khaos_reason_id=NON_STOCK_REASON,
                    physical_return_expected=False, disposition="no_return"))
    return out


def fill_system(session: Session, shopify: ShopifySandbox, month: Month) -> None:
    notes = {c["associated_ref"]: c for c in month.credit_notes}
    pays: dict[str, list[dict[str, Any]]] = {}
    for p in month.payments:
        pays.setdefault(p["order_ref"], []).append(p)
    for p in month.platform:
        ref, c = p["associated_ref"], notes.get(p["associated_ref"])
        m = from_minor
        case = ReturnCase(
            source=str(p["source"]), source_return_id=ref, associated_ref=ref,
            order_ref=p["order_ref"], customer=Customer(email=p["customer"]),
            currency=p["currency"], state=ReturnState(p["state"]), source_state=p["state"],
            created_at=p["outcome_at"], updated_at=p["outcome_at"],
            settlement=Settlement(
                refund_to_original=m(p["refund"]), store_credit=m(p["store_credit"]),
                exchange_credit=m(p["exchange_credit"]), upsell=m(p["upsell"]),
                handling_fee=m(p["handling_fee"]), shipping_refund=m(p["shipping"]),
                bonus_credit=m(p["bonus"])),
            totals=SourceTotals(product=m(p["goods"] - p["tax"]), tax=m(p["tax"]),
                                total=m(p["goods"])))
        row = ReturnRow(
            associated_ref=ref, source=p["source"], source_return_id=ref,
            order_ref=p["order_ref"], customer_email=p["customer"], currency=p["currency"],
            state=p["state"], source_state=p["state"],
            khaos_status="credit_confirmed" if c else "served",
            source_created_at=p["outcome_at"], source_updated_at=p["outcome_at"],
            first_seen_at=p["outcome_at"], last_event_at=p["outcome_at"],
            served_at=p["outcome_at"], case_json=case_to_json(case),
            credit_note_code=c["code"] if c else "",
            credit_note_value=from_minor(c["value"]) if c else None,
            credit_confirmed_at=c["raised_at"] if c else None,
            credit_source="soap" if c else "")
        row.lines = _lines(p["goods"], p["tax"], p["units"], c)
        session.add(row)
        order_total = (p["goods"] + p["shipping"]) * 3 + 10_000
        shopify.add_order(p["order_ref"], from_minor(order_total), p["currency"])
        for pay in pays.get(p["order_ref"], []):
            _pay(session, shopify, row, pay)
    session.flush()


def _pay(session: Session, shopify: ShopifySandbox, row: ReturnRow,
         pay: dict[str, Any]) -> None:
    from returnbridge.flows.refunds.gate import refund_key

    amount = from_minor(pay["amount"])
    ref = row.associated_ref
    if pay["kind"] == "store_credit":
        session.add(RefundRow(
            associated_ref=ref, provider="store_credit", origin="returnbridge",
            idempotency_key=f"store-credit-{pay['provider_ref']}",
            provider_refund_id=pay["provider_ref"], order_ref=row.order_ref, amount=amount,
            currency=row.currency, status="created", created_at=pay["created_at"],
            details={"method": "store_credit"}))
        return
    if not pay["associated_ref"]:
        note = "Goodwill refund"
    elif row.source == "zigzag":
        note = f"Credit note {row.credit_note_code} for return {ref} [{refund_key(ref)}]"
    else:
        note = f"Loop refund for return {ref}"
    refund = shopify.add_manual_refund(row.order_ref, amount, note=note)
    refund.created_at = pay["created_at"].isoformat().replace("+00:00", "Z")
    if pay["associated_ref"] and row.source == "loop" and not _is_repeat(session, ref):
        session.add(RefundRow(
            associated_ref=ref, provider="loop", origin="external",
            idempotency_key=f"external-loop-{refund.id}", provider_refund_id=refund.id,
            order_ref=row.order_ref, amount=amount, currency=row.currency,
            status="reported", created_at=pay["created_at"]))


def _is_repeat(session: Session, ref: str) -> bool:
    """The platform reports one refund per return; a second one on the order was not it."""
    return any(isinstance(o, RefundRow) and o.associated_ref == ref and o.provider == "loop"
               for o in session.new)
