"""Search the returns: the console's Returns page and ``GET /api/v1/returns?…``.

Filters combine with AND; text filters are case-insensitive "contains" except ``sku``
(exact, as Khaos matches SKUs), ``status``/``source`` (exact values) and a whole e-mail
address (exact, as stored or lower-case: fast on a large table)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Boolean, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.returns_platform import NAME_PATTERN
from returnbridge.store.models import ExceptionRow, ReturnLineRow, ReturnRow, utcnow

STATUSES = tuple(s.value for s in KhaosStatus)
MAX_LIMIT = 500
_FULL_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BadSearch(ValueError):
    """A filter value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ReturnFilters:
    q: str = ""  # AssociatedRef, order or e-mail
    status: str = ""
    source: str = ""
    ref: str = ""
    order: str = ""
    email: str = ""
    sku: str = ""
    date_from: str = ""  # YYYY-MM-DD, first seen on or after
    date_to: str = ""  # YYYY-MM-DD, first seen on or before
    min_age_days: str = ""  # first seen at least this many days ago

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class ReturnPage:
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]] = field(default_factory=list)


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise BadSearch(f"{name} must be a date like 2026-11-30, not {value!r}") from None


def _like(value: str) -> str:
    escaped = value.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Contains(ColumnElement[bool]):
    """``column`` contains ``pattern`` (a ``_like`` pattern), in any case."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: Any, pattern: str) -> None:
        self.column = column
        self.pattern = literal(pattern)


@compiles(_Contains)
def _contains_any(element: _Contains, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.ilike(element.pattern, escape="\\"), **kw))


@compiles(_Contains, "sqlite")
def _contains_sqlite(element: _Contains, compiler: Any, **kw: Any) -> str:
    # SQLite's LIKE already ignores case exactly as far as its lower() does (ASCII), so
    # ilike's lower(column) on every row of a scan is work for nothing (3x slower).
    return str(compiler.process(element.column.like(element.pattern, escape="\\"), **kw))


def apply_filters(stmt: Any, f: ReturnFilters, now: datetime | None = None) -> Any:
    """``stmt`` (a select over returns) narrowed by every filter given."""
    now = now or utcnow()
    if f.status:
        if f.status not in STATUSES:
            raise BadSearch(f"unknown status {f.status!r}; use one of {', '.join(STATUSES)}")
        stmt = stmt.where(ReturnRow.khaos_status == f.status)
    if f.source:
        if not NAME_PATTERN.match(f.source):
            raise BadSearch(f"unknown source {f.source!r}")
        stmt = stmt.where(ReturnRow.source == f.source)
    if f.ref.strip():
        stmt = stmt.where(_Contains(ReturnRow.associated_ref, _like(f.ref)))
    if f.order.strip():
        stmt = stmt.where(_Contains(ReturnRow.order_ref, _like(f.order)))
    if f.email.strip():
        email = f.email.strip()
        if _FULL_EMAIL.match(email):  # a whole address: exact (any case), by index
            stmt = stmt.where(ReturnRow.customer_email.in_(sorted({email, email.lower()})))
        else:
            stmt = stmt.where(_Contains(ReturnRow.customer_email, _like(email)))
    if f.q.strip():
        pattern = _like(f.q)
        stmt = stmt.where(or_(_Contains(ReturnRow.associated_ref, pattern),
                              _Contains(ReturnRow.order_ref, pattern),
                              _Contains(ReturnRow.customer_email, pattern)))
    if f.sku.strip():
        stmt = stmt.where(ReturnRow.id.in_(select(ReturnLineRow.return_id).where(
            ReturnLineRow.sku == f.sku.strip())))
    if f.date_from.strip():
        start = datetime.combine(_day(f.date_from, "date_from"), time.min, UTC)
        stmt = stmt.where(ReturnRow.first_seen_at >= start)
    if f.date_to.strip():
        end = datetime.combine(_day(f.date_to, "date_to") + timedelta(days=1), time.min, UTC)
        stmt = stmt.where(ReturnRow.first_seen_at < end)
    if f.min_age_days.strip():
        try:
            days = float(f.min_age_days)
        except ValueError:
            raise BadSearch(f"min_age_days must be a number of days, not "
                            f"{f.min_age_days!r}") from None
        stmt = stmt.where(ReturnRow.first_seen_at <= now - timedelta(days=days))
    return stmt


def search_returns(session: Session, f: ReturnFilters, *, limit: int = 50,
                   offset: int = 0, sources: Collection[str] = ()) -> ReturnPage:
    """One page of returns matching ``f``, newest first, with the total count. ``sources``:
    the returns platforms that exist, to refuse any other (empty: any name)."""
    if f.source and sources and f.source not in sources:
        raise BadSearch(f"unknown source {f.source!r}; use {' or '.join(sources)}")
    if limit < 1 or offset < 0:
        raise BadSearch("limit must be at least 1 and offset at least 0")
    limit = min(limit, MAX_LIMIT)
    now = utcnow()
    text_search = bool(f.q.strip() or f.ref.strip() or f.order.strip() or (
        f.email.strip() and not _FULL_EMAIL.match(f.email.strip())))
    columns = (ReturnRow.id, ReturnRow.associated_ref, ReturnRow.source,
               ReturnRow.source_return_id, ReturnRow.order_ref, ReturnRow.customer_email,
               ReturnRow.state, ReturnRow.khaos_status, ReturnRow.wait_reason,
               ReturnRow.first_seen_at, ReturnRow.last_event_at, ReturnRow.credit_note_code)
    newest = (ReturnRow.first_seen_at.desc(), ReturnRow.id.desc())
    if text_search:
        # A "contains" filter cannot use an ordinary index: one pass over the narrow covering
        # index ix_returns_search (0010; on PostgreSQL trigram indexes) gives the page's ids
        # and the count together, never reading the wide rows with their case JSON; then
        # only the page's rows are read.
        hits = session.execute(apply_filters(
            select(ReturnRow.id, func.count().over()), f, now)
            .order_by(*newest).limit(limit).offset(offset)).all()
        page_ids = [int(i) for i, _ in hits]
        total = int(hits[0][1]) if hits else int(session.scalar(apply_filters(
            select(func.count()).select_from(ReturnRow), f, now)) or 0)
        rows = session.execute(select(*columns).where(ReturnRow.id.in_(page_ids))
                               .order_by(*newest)).all() if page_ids else []
    else:
        total = int(session.scalar(apply_filters(
            select(func.count()).select_from(ReturnRow), f, now)) or 0)
        rows = session.execute(apply_filters(select(*columns), f, now).order_by(*newest)
                               .limit(limit).offset(offset)).all()
    ids = [r.id for r in rows]
    open_counts: dict[int, int] = {}
    if ids:
        open_counts = {int(rid or 0): int(n) for rid, n in session.execute(
            select(ExceptionRow.return_id, func.count()).where(
                ExceptionRow.return_id.in_(ids), ExceptionRow.status == "open")
            .group_by(ExceptionRow.return_id)).all()}
    items = [{
        "associated_ref": r.associated_ref, "source": r.source,
        "source_return_id": r.source_return_id, "order_ref": r.order_ref,
        "customer_email": r.customer_email, "state": r.state,
        "khaos_status": r.khaos_status, "waiting_for": r.wait_reason,
        "first_seen_at": r.first_seen_at.isoformat(),
        "last_event_at": r.last_event_at.isoformat(),
        "age_days": round((now - r.first_seen_at).total_seconds() / 86400, 1),
        "credit_note_code": r.credit_note_code,
        "open_exceptions": open_counts.get(r.id, 0),
    } for r in rows]
    return ReturnPage(total=total, limit=limit, offset=offset, items=items)
