"""The reconciliation tables: the legs, the matching engine's one set-based SQL pass over
them (SQLAlchemy Core, the same statement on SQLite and PostgreSQL), the continuous checks'
reads and the console's stored reports.

The database joins the legs per return, aggregates the payments and computes every
difference column in integer pence (``domain/reconciliation.py`` names them); Python only
streams the rows to the writers. Each difference is signed as its contribution to
``money paid - credit value``, so per return they add up exactly to that gap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from returnbridge.domain.reconciliation import Category, from_minor, period_bounds
from returnbridge.store.models import (
    KhaosOrderStatus,
    ReconciliationReport,
    ReconCreditNoteLeg,
    ReconLegsVersion,
    ReconPaymentLeg,
    ReconPlatformLeg,
    RefundRow,
    ReturnLineRow,
    ReturnRow,
    table_of,
    utcnow,
)
from returnbridge.store.reconciliation_read import read_month

P = ReconPlatformLeg.__table__
C = ReconCreditNoteLeg.__table__
PAY = ReconPaymentLeg.__table__

# What a spreadsheet reads as a formula when a cell starts with it.
SPREADSHEET_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

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
    # a slice of the month by AssociatedRef, [refs_from, refs_to) (None: open-ended)
    refs_from: str | None = None
    refs_to: str | None = None

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


def _slice(col: Any, scope: Scope) -> Any:
    """``col`` within the scope's slice of references (true for the whole month)."""
    conds = [col >= scope.refs_from] if scope.refs_from is not None else []
    if scope.refs_to is not None:
        conds.append(col < scope.refs_to)
    return sa.and_(sa.true(), *conds)


def _refs(scope: Scope) -> sa.Subquery:
    start, end = scope.bounds
    return sa.union(
        sa.select(P.c.associated_ref.label("ref")).where(
            _in(P.c.outcome_at, start, end), _slice(P.c.associated_ref, scope)),
        sa.select(C.c.associated_ref.label("ref")).where(
            _in(C.c.raised_at, start, end), _slice(C.c.associated_ref, scope)),
        sa.select(PAY.c.associated_ref.label("ref")).where(
            _in(PAY.c.created_at, start, end), PAY.c.associated_ref != "",
            _slice(PAY.c.associated_ref, scope)),
    ).subquery("refs")


def _pay(scope: Scope) -> sa.Subquery:
    is_refund = PAY.c.kind == "refund"

    def total(expr: Any) -> Any:  # SUM(bigint) is numeric on PostgreSQL: keep it integer
        return sa.cast(sa.func.sum(expr), sa.BigInteger)

    return (sa.select(
        PAY.c.associated_ref.label("ref"),
        total(sa.case((is_refund, PAY.c.amount), else_=0)).label("refunded"),
        total(sa.case((is_refund, 1), else_=0)).label("n_refunds"),
        sa.func.max(sa.case((is_refund, PAY.c.amount), else_=0)).label("max_refund"),
        total(sa.case((is_refund, 0), else_=PAY.c.amount)).label("sc_issued"),
    ).where(PAY.c.associated_ref != "", _slice(PAY.c.associated_ref, scope))
            .group_by(PAY.c.associated_ref).subquery("pay"))


def _joined_text(parts: list[Any]) -> Any:
    text: Any = sa.cast(parts[0], sa.String)
    for part in parts[1:]:
        text = text + "," + sa.cast(part, sa.String)
    return text


def split_differences(text: str | None) -> tuple[dict[Category, int], int, int]:
    """The statement's ``differences`` text: ({category: pence}, platform VAT, credit VAT)."""
    if text is None:
        return {}, 0, 0
    values = [int(v) for v in text.split(",")]
    n = len(DIFF_COLUMNS)
    return ({c: v for c, v in zip(DIFF_COLUMNS, values[:n], strict=True) if v},
            values[n], values[n + 1])


def statement(scope: Scope) -> sa.Select[Any]:
    refs, pay = _refs(scope), _pay(scope)
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
    # The pack's matched-returns CSV columns first, in its order, then what the differences
    # need, then the differences (``pack._check_columns`` holds the pack to this order).
    cols = [
        refs.c.ref.label("associated_ref"),
        co(P.c.source, "").label("source"), co(P.c.order_ref, "").label("order_ref"),
        co(P.c.customer, "").label("customer"), co(P.c.currency, "").label("currency"),
        co(P.c.state, "").label("platform_state"),
        co(P.c.goods, z).label("platform_goods"),
        co(P.c.refund, z).label("platform_refund"),
        co(P.c.store_credit, z).label("platform_store_credit"),
        exchange.label("exchange_credit"),
        co(P.c.shipping, z).label("shipping_refund"),
        co(P.c.handling_fee, z).label("handling_fee"), co(P.c.bonus, z).label("bonus"),
        co(P.c.upsell, z).label("upsell"),
        co(C.c.code, "").label("credit_note_code"), co(C.c.value, z).label("credit_value"),
        co(C.c.stage, "").label("credit_stage"),
        co(C.c.cleared, sa.false()).label("credit_cleared"),
        refunded.label("refunded"), sc_issued.label("store_credit_issued"),
        money.label("money_paid"),
        has_c.label("has_credit_note"),
        # a text a spreadsheet would run (= + - @ tab CR first): the pack neutralises it
        sa.or_(*(sa.func.substr(col, 1, 1).in_(SPREADSHEET_FORMULA_STARTS) for col in (
            refs.c.ref, P.c.source, P.c.order_ref, P.c.customer, P.c.currency, P.c.state,
            C.c.code, C.c.stage))).label("formula_like"),
        # the differences in DIFF_COLUMNS' order, then the two VAT amounts, as one text
        # ("d1,d2,...,platform_tax,credit_tax"), only on a return with a difference: a
        # month is a million rows and 95% have none, so 15 mostly-zero columns cost more
        # to read than the few texts cost to split
        sa.case((sa.or_(*(expr != 0 for expr in diffs.values())), _joined_text(
            [*diffs.values(), co(P.c.tax, z), co(C.c.tax, z)])), else_=sa.null())
        .label("differences"),
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


class ReportStoredMeanwhile(Exception):
    """Another view stored the same month's report at the same moment."""


class ReconciliationRepository:
    """The reconciliation tables in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def _conn(self) -> Connection:
        return self._session.connection()

    # --- the engine ---

    @contextmanager
    def batches(self, scope: Scope,
                size: int = 5000) -> Iterator[tuple[list[str], Iterator[list[Sequence[Any]]]]]:
        """The engine's rows for ``scope`` as (column names, batches of plain tuples), in
        ``statement``'s column order; how a month is read: ``reconciliation_read``."""
        def build(refs_from: str | None, refs_to: str | None) -> sa.Select[Any]:
            if refs_from is None and refs_to is None:
                return statement(scope)
            return statement(replace(scope, refs_from=refs_from, refs_to=refs_to))

        unsliced = scope.refs_from is None and scope.refs_to is None
        with read_month(self._conn, scope.bounds, build, size, may_slice=unsliced) as read:
            yield read

    def unattributed_payments(self, scope: Scope) -> Iterator[dict[str, Any]]:
        """Refunds nothing ties to a return (made by hand, goodwill): orphans."""
        start, end = scope.bounds
        stmt = (sa.select(PAY.c.provider, PAY.c.provider_ref, PAY.c.order_ref, PAY.c.kind,
                          PAY.c.amount, PAY.c.gateway, PAY.c.created_at)
                .where(PAY.c.associated_ref == "", _in(PAY.c.created_at, start, end))
                .order_by(PAY.c.created_at, PAY.c.provider_ref))
        for rec in self._conn.execute(stmt).mappings():
            yield dict(rec)

    def liability(self, scope: Scope) -> Iterator[dict[str, Any]]:
        """Store credit per customer for the returns in the period (credited vs issued)."""
        sub = statement(scope).subquery("m")
        stmt = (sa.select(sub.c.customer, sub.c.currency,
                          sa.func.sum(sub.c.platform_store_credit).label("credited"),
                          sa.func.sum(sub.c.store_credit_issued).label("issued"),
                          sa.func.count().label("returns"))
                .where(sa.or_(sub.c.platform_store_credit != 0, sub.c.store_credit_issued != 0))
                .group_by(sub.c.customer, sub.c.currency).order_by(sub.c.customer))
        for rec in self._conn.execute(stmt).mappings():
            yield {"customer": rec["customer"], "currency": rec["currency"],
                   "credited": from_minor(int(rec["credited"] or 0)),
                   "issued": from_minor(int(rec["issued"] or 0)),
                   "returns": int(rec["returns"])}

    def count(self, scope: Scope) -> int:
        """How many returns the engine reports for ``scope``."""
        sub = statement(scope).subquery()
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(sub)).scalar_one())

    # --- the legs ---

    def parents_touched_since(self, since: datetime) -> list[ReturnRow]:
        return list(self._session.scalars(
            sa.select(ReturnRow).where(ReturnRow.parent_id.is_(None),
                                       ReturnRow.last_event_at >= since)
            .order_by(ReturnRow.id)))

    def stages(self, refs: list[str]) -> dict[str, str]:
        """AssociatedRef -> the latest stage Khaos pushed for it."""
        return {s.associated_ref: s.stage for s in self._session.scalars(
            sa.select(KhaosOrderStatus).where(KhaosOrderStatus.associated_ref.in_(refs))
            .order_by(KhaosOrderStatus.updated_at))} if refs else {}

    def refunds_since(self, since: datetime, refs: list[str]) -> list[RefundRow]:
        return list(self._session.scalars(sa.select(RefundRow).where(
            sa.or_(RefundRow.created_at >= since, RefundRow.associated_ref.in_(refs)))))

    def _replace(self, table: sa.Table, key: str, items: list[dict[str, Any]]) -> None:
        for i in range(0, len(items), 500):
            chunk = items[i:i + 500]
            self._session.execute(
                sa.delete(table).where(table.c[key].in_([x[key] for x in chunk])))
            self._session.execute(sa.insert(table), chunk)

    def replace_platform_legs(self, items: list[dict[str, Any]]) -> None:
        self._replace(table_of(ReconPlatformLeg), "associated_ref", items)

    def replace_credit_note_legs(self, items: list[dict[str, Any]]) -> None:
        self._replace(table_of(ReconCreditNoteLeg), "associated_ref", items)

    def replace_payment_legs(self, items: list[dict[str, Any]]) -> None:
        self._replace(table_of(ReconPaymentLeg), "provider_ref", items)

    # --- the continuous checks ---

    def settled_not_cleared(self, before: datetime) -> list[Any]:
        """Returns the platform settled before ``before`` whose credit note is missing or
        not cleared (ref, state, outcome_at, code, stage, value)."""
        stmt = (sa.select(P.c.associated_ref, P.c.state, P.c.outcome_at, C.c.code, C.c.stage,
                          C.c.value)
                .select_from(P.outerjoin(C, C.c.associated_ref == P.c.associated_ref))
                .where(P.c.state.in_(("resolved", "closed")), P.c.outcome_at < before,
                       sa.or_(C.c.associated_ref.is_(None), sa.not_(C.c.cleared))))
        return list(self._session.execute(stmt).mappings())

    def in_status_since(self, statuses: Sequence[str], since: Any, before: datetime,
                        ended: Sequence[str]) -> list[tuple[str, datetime | None]]:
        """(ref, since) of live returns in ``statuses`` whose ``since`` column is older
        than ``before``."""
        stmt = sa.select(ReturnRow.associated_ref, since).where(
            ReturnRow.khaos_status.in_(statuses), since < before,
            ReturnRow.state.not_in(ended))
        return [(ref, at) for ref, at in self._session.execute(stmt)]

    def received_not_graded(self, before: datetime,
                            ended: Sequence[str]) -> list[tuple[str, datetime | None]]:
        """(ref, first receipt) of live returns with a line received before ``before`` and
        still not graded."""
        stmt = (sa.select(ReturnRow.associated_ref, sa.func.min(ReturnLineRow.received_at))
                .join(ReturnLineRow, ReturnLineRow.return_id == ReturnRow.id)
                .where(ReturnLineRow.received_at.is_not(None),
                       ReturnLineRow.received_at < before,
                       ReturnLineRow.disposition == "unknown",
                       ReturnRow.state.not_in(ended))
                .group_by(ReturnRow.associated_ref))
        return [(ref, at) for ref, at in self._session.execute(stmt)]

    # --- the console's stored reports ---

    def legs_version(self) -> int | None:
        """The change count of the legs; None if its row is missing (then nothing is kept)."""
        n = self._conn.scalar(sa.select(ReconLegsVersion.n).where(ReconLegsVersion.id == 1))
        return None if n is None else int(n)

    def stored_report(self, period: str, source: str,
                      version: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(summary, differences) stored for this month at ``version``, if any."""
        t = ReconciliationReport
        row = self._conn.execute(sa.select(t.summary, t.differences).where(
            t.period == period, t.source == source, t.legs_version == version)).first()
        return None if row is None else (dict(row[0]), list(row[1]))

    def store_report(self, period: str, source: str, version: int, summary: dict[str, Any],
                     differences: list[dict[str, Any]]) -> None:
        """Keep this month's report for ``version`` (ReportStoredMeanwhile if another view
        stored it at the same moment)."""
        t = ReconciliationReport
        conn = self._conn
        try:
            conn.execute(sa.delete(t).where(t.period == period, t.source == source))
            conn.execute(sa.insert(t).values(
                period=period, source=source, legs_version=version, computed_at=utcnow(),
                summary=summary, differences=differences))
        except IntegrityError as exc:
            raise ReportStoredMeanwhile(period) from exc
