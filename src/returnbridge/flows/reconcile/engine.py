"""The matching engine: one set-based SQL pass over the three legs (SQLAlchemy Core, the
same statement on SQLite and PostgreSQL).

The database joins the legs per return, aggregates the payments and computes every
difference column in integer pence (``domain/reconciliation.py`` names them); Python only
streams the rows to the writers. Each difference is signed as its contribution to
``money paid - credit value``, so per return they add up exactly to that gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from returnbridge.domain.reconciliation import Category, from_minor, period_bounds
from returnbridge.store.models import ReconCreditNoteLeg, ReconPaymentLeg, ReconPlatformLeg

P = ReconPlatformLeg.__table__
C = ReconCreditNoteLeg.__table__
PAY = ReconPaymentLeg.__table__

# The difference columns the statement computes, in the order they are reported.
DIFF_COLUMNS: tuple[Category, ...] = (
    Category.CREDIT_NOTE_WITHOUT_REFUND, Category.REFUND_WITHOUT_CREDIT_NOTE,
    Category.TAX, Category.ROUNDING, Category.CREDIT_NOTE_VALUE, Category.SHIPPING,
    Category.HANDLING_FEE, Category.BONUS, Category.UPSELL, Category.REFUND,
    Category.DUPLICATE_REFUND, Category.STORE_CREDIT, Category.UNEXPLAINED,
)


@dataclass(frozen=True)
class Scope:
    period: str
    source: str = "all"  # a returns platform's name, or all
    prefixes: tuple[str, ...] = ()  # AssociatedRef prefixes of ``source`` (legs without P)

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return period_bounds(self.period)


@dataclass
class Row:
    """One return in the period, its three legs and its differences (pence)."""

    associated_ref: str
    values: dict[str, Any]
    diffs: dict[Category, int] = field(default_factory=dict)

    def money(self, name: str) -> Decimal:
        return from_minor(int(self.values.get(name) or 0))


def _in(col: Any, start: datetime, end: datetime) -> Any:
    return sa.and_(col >= start, col < end)


def _refs(scope: Scope) -> sa.Subquery:
    start, end = scope.bounds
    return sa.union(
        sa.select(P.c.associated_ref.label("ref")).where(_in(P.c.outcome_at, start, end)),
        sa.select(C.c.associated_ref.label("ref")).where(_in(C.c.raised_at, start, end)),
        sa.select(PAY.c.associated_ref.label("ref")).where(
            _in(PAY.c.created_at, start, end), PAY.c.associated_ref != ""),
    ).subquery("refs")


def _pay() -> sa.Subquery:
    is_refund = PAY.c.kind == "refund"
    return (sa.select(
        PAY.c.associated_ref.label("ref"),
        sa.func.sum(sa.case((is_refund, PAY.c.amount), else_=0)).label("refunded"),
        sa.func.sum(sa.case((is_refund, 1), else_=0)).label("n_refunds"),
        sa.func.max(sa.case((is_refund, PAY.c.amount), else_=0)).label("max_refund"),
        sa.func.sum(sa.case((is_refund, 0), else_=PAY.c.amount)).label("sc_issued"),
        sa.func.max(sa.case((PAY.c.ours, 1), else_=0)).label("ours"),
    ).where(PAY.c.associated_ref != "").group_by(PAY.c.associated_ref).subquery("pay"))


def statement(scope: Scope) -> sa.Select[Any]:
    refs, pay = _refs(scope), _pay()
    z = sa.literal(0)
    co = sa.func.coalesce
    refunded = co(pay.c.refunded, z)
    sc_issued = co(pay.c.sc_issued, z)
    exchange = co(P.c.exchange_credit, z)
    money = refunded + sc_issued + exchange
    has_c = C.c.associated_ref.is_not(None)
    has_p = P.c.associated_ref.is_not(None)
    both = sa.and_(has_c, money != 0)
    matched = sa.and_(both, has_p)
    tax = P.c.tax - C.c.tax
    note = P.c.goods + C.c.shipping_line - C.c.fee_line - C.c.value - tax
    units = sa.case((P.c.units > 1, P.c.units), else_=1)
    small = sa.func.abs(note) <= units
    rgap = refunded - P.c.refund
    dup = sa.and_(co(pay.c.n_refunds, z) > 1, rgap == co(pay.c.max_refund, z), rgap > 0)
    platform_gap = (P.c.refund + P.c.store_credit + P.c.exchange_credit) - (
        P.c.goods + P.c.shipping - P.c.handling_fee + P.c.bonus + P.c.upsell)

    def when(cond: Any, value: Any) -> Any:
        return sa.case((cond, value), else_=0)

    diffs = {
        Category.CREDIT_NOTE_WITHOUT_REFUND: when(
            sa.and_(has_c, money == 0, C.c.value != 0), -C.c.value),
        Category.REFUND_WITHOUT_CREDIT_NOTE: when(sa.not_(has_c), money),
        Category.TAX: when(matched, tax),
        Category.ROUNDING: when(sa.and_(matched, small), note),
        Category.CREDIT_NOTE_VALUE: when(sa.and_(matched, sa.not_(small)), note),
        Category.SHIPPING: when(matched, P.c.shipping - C.c.shipping_line),
        Category.HANDLING_FEE: when(matched, C.c.fee_line - P.c.handling_fee),
        Category.BONUS: when(matched, P.c.bonus),
        Category.UPSELL: when(matched, P.c.upsell),
        Category.REFUND: when(sa.and_(matched, sa.not_(dup)), rgap),
        Category.DUPLICATE_REFUND: when(sa.and_(matched, dup), rgap),
        Category.STORE_CREDIT: when(matched, sc_issued - P.c.store_credit),
        Category.UNEXPLAINED: sa.case((matched, platform_gap),
                                      (sa.and_(both, sa.not_(has_p)), money - C.c.value),
                                      else_=0),
    }
    cols = [
        refs.c.ref.label("associated_ref"),
        co(P.c.source, "").label("source"), co(P.c.order_ref, "").label("order_ref"),
        co(P.c.customer, "").label("customer"), co(P.c.currency, "").label("currency"),
        co(P.c.state, "").label("platform_state"), P.c.outcome_at,
        co(P.c.units, z).label("units"),
        co(P.c.goods, z).label("platform_goods"), co(P.c.tax, z).label("platform_tax"),
        co(P.c.refund, z).label("platform_refund"),
        co(P.c.store_credit, z).label("platform_store_credit"),
        exchange.label("exchange_credit"),
        co(P.c.shipping, z).label("shipping_refund"),
        co(P.c.handling_fee, z).label("handling_fee"), co(P.c.bonus, z).label("bonus"),
        co(P.c.upsell, z).label("upsell"),
        co(C.c.code, "").label("credit_note_code"), co(C.c.value, z).label("credit_value"),
        co(C.c.tax, z).label("credit_tax"), co(C.c.stage, "").label("credit_stage"),
        co(C.c.cleared, sa.false()).label("credit_cleared"), C.c.raised_at,
        refunded.label("refunded"), co(pay.c.n_refunds, z).label("n_refunds"),
        sc_issued.label("store_credit_issued"), money.label("money_paid"),
        has_p.label("has_platform"), has_c.label("has_credit_note"),
        *(expr.label(f"d_{cat.value}") for cat, expr in diffs.items()),
    ]
    stmt = (sa.select(*cols).select_from(
        refs.outerjoin(P, P.c.associated_ref == refs.c.ref)
        .outerjoin(C, C.c.associated_ref == refs.c.ref)
        .outerjoin(pay, pay.c.ref == refs.c.ref)))
    if scope.source != "all":
        by_prefix = [refs.c.ref.startswith(p) for p in scope.prefixes]
        stmt = stmt.where(sa.or_(P.c.source == scope.source,
                                 sa.and_(P.c.source.is_(None), sa.or_(sa.false(), *by_prefix))))
    return stmt.order_by(refs.c.ref)


def rows(conn: Connection, scope: Scope, batch: int = 5000) -> Iterator[Row]:
    """Every return in the period with its legs and differences, streamed."""
    # per statement: Connection.execution_options would change the whole connection
    result = conn.execute(statement(scope).execution_options(stream_results=True,
                                                             yield_per=batch))
    for rec in result.mappings():
        values = dict(rec)
        diffs = {cat: int(values.pop(f"d_{cat.value}") or 0) for cat in DIFF_COLUMNS}
        yield Row(str(values["associated_ref"]), values,
                  {c: v for c, v in diffs.items() if v != 0})


def unattributed_payments(conn: Connection, scope: Scope) -> Iterator[dict[str, Any]]:
    """Refunds nothing ties to a return (made by hand, goodwill): orphans."""
    start, end = scope.bounds
    stmt = (sa.select(PAY.c.provider, PAY.c.provider_ref, PAY.c.order_ref, PAY.c.kind,
                      PAY.c.amount, PAY.c.gateway, PAY.c.created_at)
            .where(PAY.c.associated_ref == "", _in(PAY.c.created_at, start, end))
            .order_by(PAY.c.created_at, PAY.c.provider_ref))
    for rec in conn.execute(stmt).mappings():
        yield dict(rec)
