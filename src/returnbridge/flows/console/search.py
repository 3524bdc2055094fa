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

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.returns_platform import NAME_PATTERN
from returnbridge.store.models import utcnow
from returnbridge.store.return_search import ReturnCriteria
from returnbridge.store.unit_of_work import UnitOfWork

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


def criteria(f: ReturnFilters, now: datetime | None = None) -> ReturnCriteria:
    """The filters checked and made into search criteria (``BadSearch`` says what is
    wrong)."""
    now = now or utcnow()
    if f.status and f.status not in STATUSES:
        raise BadSearch(f"unknown status {f.status!r}; use one of {', '.join(STATUSES)}")
    if f.source and not NAME_PATTERN.match(f.source):
        raise BadSearch(f"unknown source {f.source!r}")
    email = f.email.strip()
    full_email = bool(email) and bool(_FULL_EMAIL.match(email))
    start = end = by = None
    if f.date_from.strip():
        start = datetime.combine(_day(f.date_from, "date_from"), time.min, UTC)
    if f.date_to.strip():
        end = datetime.combine(_day(f.date_to, "date_to") + timedelta(days=1), time.min, UTC)
    if f.min_age_days.strip():
        try:
            days = float(f.min_age_days)
        except ValueError:
            raise BadSearch(f"min_age_days must be a number of days, not "
                            f"{f.min_age_days!r}") from None
        by = now - timedelta(days=days)
    return ReturnCriteria(
        status=f.status, source=f.source, ref=f.ref, order=f.order,
        email_in=tuple(sorted({email, email.lower()})) if full_email else (),
        email="" if full_email else f.email, q=f.q, sku=f.sku, first_seen_from=start,
        first_seen_before=end, first_seen_by=by)


def search_returns(uow: UnitOfWork, f: ReturnFilters, *, limit: int = 50,
                   offset: int = 0, sources: Collection[str] = ()) -> ReturnPage:
    """One page of returns matching ``f``, newest first, with the total count. ``sources``:
    the returns platforms that exist, to refuse any other (empty: any name)."""
    if f.source and sources and f.source not in sources:
        raise BadSearch(f"unknown source {f.source!r}; use {' or '.join(sources)}")
    if limit < 1 or offset < 0:
        raise BadSearch("limit must be at least 1 and offset at least 0")
    limit = min(limit, MAX_LIMIT)
    now = utcnow()
    total, rows = uow.return_search.page(criteria(f, now), limit=limit, offset=offset)
    open_counts = uow.return_search.open_exception_counts([r.id for r in rows])
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
