"""Reason-mapping coverage of a period, from per-day pre-grouped rows (issue #14).

The console's Mapping page with ``?days=N`` groups every line of the returns seen in the
last N days by (source, reason, condition, disposition, keep item). Grouping 100,000
returns on every page view is too slow, so the grouping is kept per UTC day of
``returns.last_event_at`` in ``reason_coverage_days``: a return counts on exactly one day,
so the days of a period add up (returns, lines, units) or combine (latest seen, example).

Keeping it current, by design rather than by every writer remembering to:

- database triggers (migration 0012) on ``returns`` (``last_event_at``, ``source``,
  ``associated_ref`` changed, or deleted) and ``return_lines`` (inserted, deleted, or a
  grouped column changed) mark the return's old and new day in ``reason_coverage_dirty``;
- a reader first rebuilds the dirty days (``refresh``): each is a small grouped query over
  one day's returns, done in the database. The marks it rebuilt are deleted by key; a mark
  written meanwhile by another transaction stays, so the day is rebuilt again next time;
- a period is then the sum of its whole days from the table plus the cut-off day (only
  partly inside the period) grouped live, and any day still dirty (on PostgreSQL, one
  whose mark another transaction holds) grouped live too.

PostgreSQL: marks are upserted (``ON CONFLICT DO UPDATE``) so a writer waits for a reader
rebuilding that mark's day instead of leaving it stale; readers skip locked marks, and only
one reader at a time rebuilds (a transaction advisory lock; the others group live).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session

from returnbridge.store.models import (
    ReasonCoverageDay,
    ReasonCoverageDirty,
    ReturnLineRow,
    ReturnRow,
)

# pg_try_advisory_xact_lock key: "rcov" in ASCII; only one reader rebuilds at a time.
_ADVISORY_KEY = 0x72636F76
_CHUNK = 500


@dataclass
class Group:
    source: str
    reason: str
    condition: str
    disposition: str
    physical_return_expected: bool
    returns: int = 0
    lines: int = 0
    units: int = 0
    last_seen: datetime | None = None
    example_ref: str = ""

    def add(self, returns: int, lines: int, units: int, last: datetime | None,
            example: str) -> None:
        """Another day's share: a return counts on one day only, so counts add up."""
        self.returns += returns
        self.lines += lines
        self.units += units
        if last is not None and (self.last_seen is None or last > self.last_seen):
            self.last_seen = last
        self.example_ref = max(self.example_ref, example)


def _start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(0), tzinfo=UTC)


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


_COMBO = (ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
          ReturnLineRow.disposition, ReturnLineRow.physical_return_expected)


def _aggregates(*first: ColumnElement[Any]) -> Select[Any]:
    return (select(*first, *_COMBO, func.count(func.distinct(ReturnRow.id)), func.count(),
                   func.coalesce(func.sum(ReturnLineRow.quantity), 0),
                   func.max(ReturnRow.last_event_at), func.max(ReturnRow.associated_ref))
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .group_by(*_COMBO))


def _in_day(day: str, since: datetime | None = None) -> ColumnElement[bool]:
    start = _start(day)
    return and_(ReturnRow.last_event_at >= (since or start),
                ReturnRow.last_event_at < start + timedelta(days=1))


class ReasonCoverageRepository:
    """The per-day coverage table, and the live grouping, in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _rebuild_day(self, day: str) -> None:
        t = ReasonCoverageDay
        self._session.execute(delete(t).where(t.day == day))
        self._session.execute(insert(t).from_select(
            [t.day, t.source, t.reason, t.condition, t.disposition,
             t.physical_return_expected, t.returns, t.lines, t.units, t.last_seen,
             t.example_ref],
            _aggregates(literal(day, String(10))).where(_in_day(day))))

    def refresh(self) -> set[str]:
        """Rebuild every dirty day in this unit of work; returns the days still dirty (on
        PostgreSQL, marks held by another transaction). Use a unit of work of its own, so
        the rebuilt days are committed (and the advisory lock let go) before the read."""
        session = self._session
        if session.scalar(select(ReasonCoverageDirty.day).limit(1)) is None:
            return set()
        pg = session.get_bind().dialect.name == "postgresql"
        marks: list[tuple[str, int]] = []
        if not pg or session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                    {"k": _ADVISORY_KEY}):
            stmt = select(ReasonCoverageDirty.day, ReasonCoverageDirty.return_id)
            if pg:
                stmt = stmt.with_for_update(skip_locked=True)
            marks = [(str(d), int(r)) for d, r in session.execute(stmt)]
        for day in sorted({d for d, _ in marks}):
            self._rebuild_day(day)
        for i in range(0, len(marks), _CHUNK):
            session.execute(delete(ReasonCoverageDirty).where(
                tuple_(ReasonCoverageDirty.day, ReasonCoverageDirty.return_id)
                .in_(marks[i:i + _CHUNK])))
        return {str(d) for d in session.scalars(select(ReasonCoverageDirty.day).distinct())}

    def since(self, cutoff: datetime, still_dirty: Iterable[str] = ()) -> list[Group]:
        """Coverage of the returns whose ``last_event_at >= cutoff``: whole days from the
        table, the cut-off day and the ``still_dirty`` days grouped live. Sorted by key."""
        first = day_of(cutoff)
        live_days = sorted(d for d in set(still_dirty) if d > first)
        t = ReasonCoverageDay
        key = (t.source, t.reason, t.condition, t.disposition, t.physical_return_expected)
        stored = (select(*key, func.sum(t.returns), func.sum(t.lines), func.sum(t.units),
                         func.max(t.last_seen), func.max(t.example_ref))
                  .where(t.day > first).group_by(*key))
        if live_days:
            stored = stored.where(t.day.not_in(live_days))
        live = _aggregates().where(or_(_in_day(first, cutoff),
                                       *(_in_day(d) for d in live_days)))
        merged: dict[tuple[str, str, str, str, bool], Group] = {}
        for row in [*self._session.execute(stored), *self._session.execute(live)]:
            k = (str(row[0]), str(row[1]), str(row[2]), str(row[3]), bool(row[4]))
            group = merged.setdefault(k, Group(*k))
            group.add(int(row[5]), int(row[6]), int(row[7] or 0), row[8], str(row[9] or ""))
        return [merged[k] for k in sorted(merged)]

    def seen_since(self, cutoff: datetime) -> int:
        """Returns whose ``last_event_at >= cutoff``."""
        return self._count(ReturnRow.last_event_at >= cutoff)

    # --- the returns still to be sent (a small set): grouped live ---

    def in_status(self, statuses: Sequence[str]) -> list[Any]:
        """(source, reason, condition, disposition, physical, returns, lines, units, last
        seen, example ref) of the lines of the returns in ``statuses``, grouped."""
        return list(self._session.execute(
            select(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                   ReturnLineRow.disposition, ReturnLineRow.physical_return_expected,
                   func.count(func.distinct(ReturnRow.id)), func.count(),
                   func.sum(ReturnLineRow.quantity), func.max(ReturnRow.last_event_at),
                   func.max(ReturnRow.associated_ref))
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnRow.khaos_status.in_(statuses))
            .group_by(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                      ReturnLineRow.disposition, ReturnLineRow.physical_return_expected)))

    def count_in_status(self, statuses: Sequence[str]) -> int:
        return self._count(ReturnRow.khaos_status.in_(statuses))

    def _count(self, scope: ColumnElement[bool]) -> int:
        return int(self._session.scalar(
            select(func.count()).select_from(ReturnRow).where(scope)) or 0)
