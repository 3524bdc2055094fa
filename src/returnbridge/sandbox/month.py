"""A sandbox month (issue #13): a realistic month of returns across the three legs, with
planted discrepancies whose category and amount are known.

``generate`` is pure and deterministic (a seed); ``load_legs`` bulk-inserts the month into
the reconciliation leg tables (executemany in batches, COPY on PostgreSQL), which is what the
tests, the demo and ``bench/reconcile.py`` reconcile. ``fill_system`` (see
``sandbox/month_system.py``) puts a month into the returns/refunds tables and the Shopify
sandbox instead, so the legs are collected the way production collects them.

The mix: Loop and ZigZag returns settled by refund to the original payment, store credit,
exchange or a mix; shipping refunds and handling fees on the credit note (not
discrepancies); and, on a configurable share of returns, one planted discrepancy each.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from returnbridge.domain.reconciliation import Category, from_minor, period_bounds
from returnbridge.store.models import (
    ReconCreditNoteLeg,
    ReconPaymentLeg,
    ReconPlatformLeg,
    table_of,
)

PLANTS: tuple[str, ...] = (
    "partial_refund", "goodwill_by_hand", "shipping_off_note", "store_credit_short",
    "credit_note_missing", "credit_note_value", "refund_twice", "tax_drift",
    "credit_note_without_refund", "handling_fee_off_note", "bonus", "upsell", "rounding",
)


@dataclass(frozen=True)
class Planted:
    key: str  # the AssociatedRef, or the order ref for a refund nothing ties to a return
    category: Category
    amount: Decimal  # signed contribution to money paid - credit value
    kind: str


@dataclass
class Month:
    period: str
    platform: list[dict[str, Any]] = field(default_factory=list)
    credit_notes: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    planted: list[Planted] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.platform)


# Plants that need a given outcome to exist at all.
_FORCED = {"partial_refund": "refund", "refund_twice": "refund", "shipping_off_note": "refund",
           "handling_fee_off_note": "refund", "store_credit_short": "store_credit",
           "bonus": "store_credit", "upsell": "exchange"}


def _price(rnd: random.Random) -> int:
    return rnd.choice((999, 1299, 1500, 1999, 2450, 2999, 3499, 4500, 5999, 7999, 12000))


def generate(period: str, size: int = 20_000, *, seed: int = 13,
             discrepancy_share: float = 0.05, offset: int = 0) -> Month:
    """``size`` returns in ``period``; about ``discrepancy_share`` of them carry one planted
    discrepancy (every kind at least once when size allows)."""
    start, end = period_bounds(period)
    span = int((end - start).total_seconds()) - 4 * 86400
    rnd = random.Random(seed)
    m = Month(period)
    n_plants = (max(len(PLANTS), int(size * discrepancy_share))
                if discrepancy_share > 0 and size >= 2 * len(PLANTS) else 0)
    plant_at = dict(zip(rnd.sample(range(size), n_plants),
                        (PLANTS[i % len(PLANTS)] for i in range(n_plants)), strict=True))
    refund_seq = 0
    customers = max(1, size * 4 // 5)

    def at(base: datetime, hours: int) -> datetime:
        return base + timedelta(hours=hours)

    for i in range(size):
        n = offset + i  # (a big month is generated in chunks: offset keeps ids unique)
        loop = rnd.random() < 0.6
        ref = f"LR-{7_000_000 + n}" if loop else f"ZZ-RTN-{500_000 + n}-1"
        order = f"#{100_000 + n}"
        units = rnd.choice((1, 1, 1, 2, 2, 3))
        goods = sum(_price(rnd) for _ in range(units))
        tax = round(goods / 6)
        outcome_at = start + timedelta(seconds=rnd.randrange(span))
        outcome = rnd.choices(("refund", "store_credit", "exchange", "mixed"),
                              weights=(55, 25, 15, 5))[0]
        kind = plant_at.get(i)
        outcome = _FORCED.get(kind or "", outcome)
        p: dict[str, Any] = {
            "associated_ref": ref, "source": "loop" if loop else "zigzag", "order_ref": order,
            "customer": f"customer{rnd.randrange(customers)}@example.com", "currency": "GBP",
            "state": "closed", "outcome_at": outcome_at, "units": units, "goods": goods,
            "tax": tax, "refund": 0, "store_credit": 0, "exchange_credit": 0, "shipping": 0,
            "handling_fee": 0, "bonus": 0, "upsell": 0}
        note: dict[str, Any] = {
            "associated_ref": ref, "code": f"CN{300_000 + n}", "value": goods, "tax": tax,
            "shipping_line": 0, "fee_line": 0, "stage": "Processed", "cleared": True,
            "raised_at": at(outcome_at, -rnd.randint(1, 48))}
        c: dict[str, Any] | None = note
        if outcome == "refund":
            p["refund"] = goods
        elif outcome == "store_credit":
            p["store_credit"] = goods
        elif outcome == "exchange":
            p["exchange_credit"] = goods
        else:
            part = goods // 2
            p["refund"], p["store_credit"] = part, goods - part
        # named components on the credit note (no discrepancy): some shipping refunds, fees
        if p["refund"] and rnd.random() < 0.08:
            p["shipping"] = note["shipping_line"] = 395
            p["refund"] += 395
            note["value"] += 395
        elif p["refund"] and rnd.random() < 0.08:
            p["handling_fee"] = note["fee_line"] = 300
            p["refund"] -= 300
            note["value"] -= 300
        pays: list[dict[str, Any]] = []

        def pay(amount: int, kind: str = "refund", *, attributed: bool = True,
                hours: int = 2, ref: str = ref, order: str = order,
                pays: list[dict[str, Any]] = pays, loop: bool = loop,
                outcome_at: datetime = outcome_at) -> None:
            nonlocal refund_seq
            refund_seq += 1
            pays.append({
                "associated_ref": ref if attributed else "", "order_ref": order, "kind": kind,
                "provider": "shopify",
                "provider_ref": (
                    f"gid://shopify/Refund/{offset * 3 + refund_seq}" if kind == "refund"
                    else f"gid://shopify/StoreCreditAccountCreditTransaction/"
                    f"{offset * 3 + refund_seq}"),
                "amount": amount, "gateway": "shopify_payments" if kind == "refund" else "",
                "ours": not loop, "matched_by": "tag" if not loop else "record",
                "created_at": at(outcome_at, hours)})

        planted: list[Planted] = []

        def plant(category: Category, pence: int, key: str = ref,
                  planted: list[Planted] = planted, kind: str = kind or "") -> None:
            planted.append(Planted(key, category, from_minor(pence), kind))

        if kind in ("shipping_off_note", "handling_fee_off_note") and not p["refund"]:
            p["refund"], p["store_credit"], p["exchange_credit"] = goods, 0, 0
        if kind == "shipping_off_note":
            s = rnd.choice((395, 450, 599))
            p["shipping"] += s
            p["refund"] += s
            plant(Category.SHIPPING, s)
        elif kind == "handling_fee_off_note":
            f = rnd.choice((200, 300, 350))
            p["handling_fee"] += f
            p["refund"] -= f
            plant(Category.HANDLING_FEE, -f)
        elif kind == "bonus":
            b = rnd.choice((500, 1000))
            p["bonus"] = b
            p["store_credit"] += b
            plant(Category.BONUS, b)
        elif kind == "upsell":
            u = rnd.choice((1000, 1500, 2500))
            p["upsell"] = u
            p["exchange_credit"] += u
            plant(Category.UPSELL, u)
        # the payments the platform's outcome should produce
        refund, sc = p["refund"], p["store_credit"]
        if kind == "partial_refund" and refund > 100:
            short = rnd.randint(100, refund // 2)
            refund -= short
            plant(Category.REFUND, -short)
        elif kind == "store_credit_short" and sc > 100:
            short = rnd.randint(100, sc // 2)
            sc -= short
            plant(Category.STORE_CREDIT, -short)
        if refund:
            pay(refund)
        if sc:
            pay(sc, "store_credit")
        if kind == "refund_twice" and refund:
            pay(refund, hours=30)
            plant(Category.DUPLICATE_REFUND, refund)
        elif kind == "goodwill_by_hand":
            g = rnd.choice((500, 1000, 2000))
            pay(g, attributed=False, hours=40)
            plant(Category.REFUND_WITHOUT_CREDIT_NOTE, g, key=order)
        elif kind == "credit_note_missing" and c is not None:
            money = sum(x["amount"] for x in pays) + p["exchange_credit"]
            if money:
                c = None
                plant(Category.REFUND_WITHOUT_CREDIT_NOTE, money)
        elif kind == "credit_note_value" and c is not None:
            d = rnd.choice((-1, 1)) * rnd.randint(units + 1, 2000)
            c["value"] += d
            plant(Category.CREDIT_NOTE_VALUE, -d)
        elif kind == "tax_drift" and c is not None:
            c["tax"] -= 10
            c["value"] -= 10
            plant(Category.TAX, 10)
        elif kind == "rounding" and c is not None:
            c["value"] -= 1
            plant(Category.ROUNDING, 1)
        elif kind == "credit_note_without_refund" and c is not None:
            pays.clear()
            p["exchange_credit"] = 0
            p["state"] = "closed"
            plant(Category.CREDIT_NOTE_WITHOUT_REFUND, -c["value"])
        m.platform.append(p)
        if c is not None:
            m.credit_notes.append(c)
        m.payments.extend(pays)
        m.planted.extend(planted)
    return m


def _batches(items: list[dict[str, Any]], n: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def load_legs(conn: Connection, month: Month, *, batch: int = 20_000) -> None:
    """Bulk-insert the month into the leg tables (COPY on PostgreSQL, executemany else)."""
    tables = ((table_of(ReconPlatformLeg), month.platform),
              (table_of(ReconCreditNoteLeg), month.credit_notes),
              (table_of(ReconPaymentLeg), month.payments))
    if conn.dialect.name == "postgresql":
        _copy(conn, tables)
        return
    for table, items in tables:
        for chunk in _batches(items, batch):
            conn.execute(sa.insert(table), chunk)


def _copy(conn: Connection, tables: Any) -> None:
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        for table, items in tables:
            if not items:
                continue
            cols = [c for c in items[0] if c != "id"]
            with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                for item in items:
                    copy.write_row([item[c] for c in cols])


def clear_legs(conn: Connection) -> None:
    for model in (ReconPaymentLeg, ReconCreditNoteLeg, ReconPlatformLeg):
        conn.execute(sa.delete(table_of(model)))


def planted_keys(month: Month) -> set[tuple[str, str, Decimal]]:
    return {(p.key, p.category.value, p.amount) for p in month.planted}


def found_keys(differences: list[dict[str, Any]]) -> set[tuple[str, str, Decimal]]:
    return {(d["associated_ref"] or d["order_ref"], d["category"], Decimal(str(d["amount"])))
            for d in differences}


def now() -> datetime:
    return datetime.now(UTC)
