"""Collecting the three legs into the reconciliation tables (issue #13).

1. platform: each return's settlement as the platform stated it (``returns.case_json``);
2. credit note: code and value (``returns``), VAT and shipping / fee lines from the document
   Khaos was served, stage from Khaos's order-status pushes or the SOAP sweep, cleared when
   confirmed or at a configured stage;
3. payments: the refunds on each returned order read from Shopify (refunds made by hand
   included), attributed to a return by our tag, by a platform's recorded refund id, or by
   amount; without Shopify, the refunds table (ours and those the platforms reported).

Each refresh rewrites the rows of the returns it looks at (idempotent).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.reconciliation import to_minor
from returnbridge.flows.confirm.sightings import is_cleared
from returnbridge.flows.decide.money import served_basis
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.gate import refund_key
from returnbridge.payments.shopify.client import ShopifyError
from returnbridge.store.codec import case_from_json
from returnbridge.store.models import RefundRow, ReturnRow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

_SETTLED = (ReturnState.RESOLVED.value, ReturnState.CLOSED.value)
_CONFIRMED = (KhaosStatus.CREDIT_CONFIRMED.value, KhaosStatus.REFUND_RECORDED.value,
              KhaosStatus.DONE.value)
_STORE_CREDIT_PROVIDERS = ("store_credit", "gift_card", "shopify_store_credit")


class OrderReader(Protocol):
    def find_order(self, name: str) -> Any: ...


def _platform(row: ReturnRow) -> dict[str, Any]:
    case = case_from_json(row.case_json)
    s, t = case.settlement, case.totals
    goods = t.total if (t.total or t.product) else sum(
        (ln.unit_gross * ln.quantity for ln in case.lines), Decimal(0))
    settled = row.state in _SETTLED
    return {
        "associated_ref": row.associated_ref, "source": row.source,
        "order_ref": row.order_ref, "customer": row.customer_email,
        "currency": row.currency, "state": row.state,
        "outcome_at": (row.source_updated_at or row.last_event_at) if settled else None,
        "units": case.units, "goods": to_minor(goods), "tax": to_minor(t.tax),
        "refund": to_minor(s.refund_to_original), "store_credit": to_minor(s.store_credit),
        "exchange_credit": to_minor(s.exchange_credit),
        "shipping": to_minor(s.shipping_refund), "handling_fee": to_minor(s.handling_fee),
        "bonus": to_minor(s.bonus_credit), "upsell": to_minor(s.upsell)}


def _credit_note(rt: Runtime, uow: UnitOfWork, row: ReturnRow,
                 stages: dict[str, str]) -> dict[str, Any] | None:
    if not row.credit_note_code:
        return None
    basis = served_basis(rt, uow.returns, row)
    stage = row.credit_note_stage or stages.get(row.associated_ref, "")
    # cleared: confirmed (only a cleared credit note confirms), or at a stage
    # [khaos] cleared_credit_note_stages names
    cleared = row.khaos_status in _CONFIRMED or (
        bool(stage) and is_cleared(rt.settings, stage, stage))
    value = row.credit_note_value if row.credit_note_value is not None else basis.value
    return {
        "associated_ref": row.associated_ref, "code": row.credit_note_code,
        "value": to_minor(value), "tax": to_minor(basis.goods_tax),
        "shipping_line": to_minor(basis.shipping_line or Decimal(0)),
        "fee_line": to_minor(basis.fee_line or Decimal(0)), "stage": stage or row.khaos_status,
        "cleared": cleared,
        "raised_at": row.credit_confirmed_at or row.imported_at or row.served_at}


def refresh(rt: Runtime, since: datetime, *, orders: OrderReader | None = None) -> dict[str, int]:
    """Rewrite the legs of every return touched since ``since``; returns counts.

    Read what the database knows, then (outside any transaction: a call to Shopify never
    holds one open) the orders' refunds as Shopify lists them, then write the legs."""
    counts = {"platform": 0, "credit_notes": 0, "payments": 0, "orders_read": 0}
    with rt.unit_of_work() as uow:
        returns = uow.reconciliation.parents_touched_since(since)
        refs = [r.associated_ref for r in returns]
        stages = uow.reconciliation.stages(refs)
        platform = [_platform(r) for r in returns]
        notes = [n for n in (_credit_note(rt, uow, r, stages) for r in returns) if n]
        recorded = uow.reconciliation.refunds_since(since, refs)
    payments = _from_refunds_table(recorded)
    if orders is not None:
        read, from_shopify = _from_orders(orders, returns, platform, recorded)
        counts["orders_read"] = read
        # the order's refunds as Shopify lists them replace what the table says for it
        shopify_orders = {p["order_ref"] for p in from_shopify} | {
            r.order_ref for r in returns if r.order_ref}
        payments = [p for p in payments if p["kind"] != "refund"
                    or p["order_ref"] not in shopify_orders] + from_shopify
    with rt.unit_of_work() as uow:
        uow.reconciliation.replace_platform_legs(platform)
        uow.reconciliation.replace_credit_note_legs(notes)
        uow.reconciliation.replace_payment_legs(payments)
    counts["platform"], counts["credit_notes"] = len(platform), len(notes)
    counts["payments"] = len(payments)
    return counts


def _from_refunds_table(recorded: Iterable[RefundRow]) -> list[dict[str, Any]]:
    out = []
    for r in recorded:
        store_credit = r.provider in _STORE_CREDIT_PROVIDERS or (
            (r.details or {}).get("method") == "store_credit")
        out.append({
            "associated_ref": r.associated_ref, "order_ref": r.order_ref,
            "kind": "store_credit" if store_credit else "refund", "provider": r.provider,
            "provider_ref": r.provider_refund_id or r.idempotency_key,
            "amount": to_minor(r.amount), "gateway": "", "ours": r.origin == "returnbridge",
            "matched_by": "record", "created_at": r.created_at})
    return out


def _from_orders(orders: OrderReader, returns: list[ReturnRow], platform: list[dict[str, Any]],
                 recorded: list[RefundRow]) -> tuple[int, list[dict[str, Any]]]:
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in platform:
        if p["order_ref"]:
            by_order[p["order_ref"]].append(p)
    ids = {pid.strip(): r.associated_ref for r in recorded
           for pid in (r.provider_refund_id or "").split(",") if pid.strip()}
    out: list[dict[str, Any]] = []
    read = 0
    for order_ref, rets in sorted(by_order.items()):
        try:
            order = orders.find_order(order_ref)
        except ShopifyError as exc:
            log.warning("reconciliation could not read the order", order=order_ref,
                        error=str(exc))
            continue
        read += 1
        open_amount = {p["associated_ref"]: p["refund"] for p in rets}
        attributed: dict[int, str] = {}
        for refund in order.refunds:
            amount = to_minor(refund.amount)
            ref, how = "", ""
            tagged = [p["associated_ref"] for p in rets
                      if f"[{refund_key(p['associated_ref'])}]" in (refund.note or "")]
            if tagged:
                ref, how = tagged[0], "tag"
            elif refund.id in ids or refund.id.rsplit("/", 1)[-1] in ids:
                ref = ids.get(refund.id) or ids[refund.id.rsplit("/", 1)[-1]]
                how = "record"
            else:
                hit = next((r for r, a in open_amount.items() if a == amount), "")
                if hit:
                    ref, how = hit, "amount"
                elif amount in attributed:
                    ref, how = attributed[amount], "repeat"
            if ref and how != "repeat":
                open_amount.pop(ref, None)
            if ref:
                attributed.setdefault(amount, ref)
            out.append({
                "associated_ref": ref, "order_ref": order_ref, "kind": "refund",
                "provider": "shopify", "provider_ref": refund.id, "amount": amount,
                "gateway": refund.gateway, "ours": how == "tag", "matched_by": how,
                "created_at": refund.created_at})
    return read, out


def default_since(start: datetime) -> datetime:
    """Returns touched since a little before the period can carry its legs."""
    return start - timedelta(days=62)
