"""Search the returns (the console's Returns page and ``GET /api/v1/returns?…``): the
queries behind ``flows/console/search.py``, which checks the filters first.

Criteria combine with AND; the text ones are case-insensitive "contains"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from returnbridge.store.models import ExceptionRow, ReturnLineRow, ReturnRow


@dataclass(frozen=True)
class ReturnCriteria:
    """Checked filters: empty text and None mean "any"."""

    status: str = ""
    source: str = ""
    ref: str = ""  # contains
    order: str = ""  # contains
    email_in: tuple[str, ...] = ()  # a whole address: exact, as given or lower-case
    email: str = ""  # contains
    q: str = ""  # AssociatedRef, order or e-mail contains
    sku: str = ""  # exact
    first_seen_from: datetime | None = None
    first_seen_before: datetime | None = None
    first_seen_by: datetime | None = None  # on or before

    @property
    def text_search(self) -> bool:
        """Whether a "contains" filter is used (it cannot use an ordinary index)."""
        return bool(self.q.strip() or self.ref.strip() or self.order.strip()
                    or self.email.strip())


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


def _narrowed(stmt: Any, c: ReturnCriteria) -> Any:
    """``stmt`` (a select over returns) narrowed by every criterion given."""
    if c.status:
        stmt = stmt.where(ReturnRow.khaos_status == c.status)
    if c.source:
        stmt = stmt.where(ReturnRow.source == c.source)
    if c.ref.strip():
        stmt = stmt.where(_Contains(ReturnRow.associated_ref, _like(c.ref)))
    if c.order.strip():
        stmt = stmt.where(_Contains(ReturnRow.order_ref, _like(c.order)))
    if c.email_in:
        stmt = stmt.where(ReturnRow.customer_email.in_(list(c.email_in)))
    elif c.email.strip():
        stmt = stmt.where(_Contains(ReturnRow.customer_email, _like(c.email)))
    if c.q.strip():
        pattern = _like(c.q)
        stmt = stmt.where(or_(_Contains(ReturnRow.associated_ref, pattern),
                              _Contains(ReturnRow.order_ref, pattern),
                              _Contains(ReturnRow.customer_email, pattern)))
    if c.sku.strip():
        stmt = stmt.where(ReturnRow.id.in_(select(ReturnLineRow.return_id).where(
            ReturnLineRow.sku == c.sku.strip())))
    if c.first_seen_from is not None:
        stmt = stmt.where(ReturnRow.first_seen_at >= c.first_seen_from)
    if c.first_seen_before is not None:
        stmt = stmt.where(ReturnRow.first_seen_at < c.first_seen_before)
    if c.first_seen_by is not None:
        stmt = stmt.where(ReturnRow.first_seen_at <= c.first_seen_by)
    return stmt


_COLUMNS = (ReturnRow.id, ReturnRow.associated_ref, ReturnRow.source,
            ReturnRow.source_return_id, ReturnRow.order_ref, ReturnRow.customer_email,
            ReturnRow.state, ReturnRow.khaos_status, ReturnRow.wait_reason,
            ReturnRow.first_seen_at, ReturnRow.last_event_at, ReturnRow.credit_note_code)
_NEWEST = (ReturnRow.first_seen_at.desc(), ReturnRow.id.desc())


class ReturnSearchRepository:
    """Return searches in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def page(self, c: ReturnCriteria, *, limit: int, offset: int) -> tuple[int, Sequence[Any]]:
        """(total, rows): one page of the matching returns, newest first; each row has
        id, associated_ref, source, source_return_id, order_ref, customer_email, state,
        khaos_status, wait_reason, first_seen_at, last_event_at and credit_note_code."""
        session = self._session
        if c.text_search:
            # A "contains" filter cannot use an ordinary index: one pass over the narrow
            # covering index ix_returns_search (0010; on PostgreSQL trigram indexes) gives
            # the page's ids and the count together, never reading the wide rows with their
            # case JSON; then only the page's rows are read.
            hits = session.execute(_narrowed(
                select(ReturnRow.id, func.count().over()), c)
                .order_by(*_NEWEST).limit(limit).offset(offset)).all()
            page_ids = [int(i) for i, _ in hits]
            total = int(hits[0][1]) if hits else int(session.scalar(_narrowed(
                select(func.count()).select_from(ReturnRow), c)) or 0)
            rows: Sequence[Any] = session.execute(
                select(*_COLUMNS).where(ReturnRow.id.in_(page_ids))
                .order_by(*_NEWEST)).all() if page_ids else []
        else:
            total = int(session.scalar(_narrowed(
                select(func.count()).select_from(ReturnRow), c)) or 0)
            rows = session.execute(_narrowed(select(*_COLUMNS), c).order_by(*_NEWEST)
                                   .limit(limit).offset(offset)).all()
        return total, rows

    def open_exception_counts(self, return_ids: Sequence[int]) -> dict[int, int]:
        """Open exceptions per return, of those with any."""
        if not return_ids:
            return {}
        return {int(rid or 0): int(n) for rid, n in self._session.execute(
            select(ExceptionRow.return_id, func.count()).where(
                ExceptionRow.return_id.in_(return_ids), ExceptionRow.status == "open")
            .group_by(ExceptionRow.return_id)).all()}
