"""Inbound events: stored first, with their raw bytes, deduplicated per source."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.store.models import InboundEvent, utcnow


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    source: str
    dedupe_key: str
    duplicate: bool


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def column_text(value: str) -> str:
    """Envelope text as a column can hold it: PostgreSQL refuses NUL characters (and a
    refusal here would answer 500 and make the sender retry the same bytes forever)."""
    return value.replace("\x00", "")


def store_event(
    factory: sessionmaker[Session],
    *,
    source: str,
    body: bytes,
    headers: dict[str, str],
    dedupe_key: str | None = None,
    topic: str = "",
    trigger: str = "",
    source_ref: str = "",
    channel: str = "webhook",
) -> StoredEvent:
    """Insert the event, or count a duplicate of one already stored. Commits before returning."""
    digest = sha256(body)
    key = column_text(dedupe_key or digest)
    topic, trigger, source_ref = column_text(topic), column_text(trigger), column_text(source_ref)
    try:
        with factory() as session, session.begin():
            row = InboundEvent(
                source=source, channel=channel, topic=topic[:80], trigger=trigger[:80],
                dedupe_key=key, source_ref=source_ref[:80], headers=headers, body=body,
                body_sha256=digest, status="received",
            )
            session.add(row)
            session.flush()
            return StoredEvent(row.id, source, key, duplicate=False)
    except IntegrityError:
        with factory() as session, session.begin():
            existing = session.scalars(
                select(InboundEvent).where(
                    InboundEvent.source == source, InboundEvent.dedupe_key == key
                )
            ).one()
            existing.duplicates += 1
            return StoredEvent(existing.id, source, key, duplicate=True)


def pending_events(session: Session, older_than: timedelta,
                   limit: int = 500) -> list[tuple[int, str, str]]:
    """(id, source, dedupe_key) of events received but not yet processed."""
    cutoff: datetime = utcnow() - older_than
    rows = session.execute(
        select(InboundEvent.id, InboundEvent.source, InboundEvent.dedupe_key)
        .where(InboundEvent.status == "received", InboundEvent.received_at <= cutoff)
        .order_by(InboundEvent.id)
        .limit(limit)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def mark_event(session: Session, event_id: int, status: str, error: str = "") -> None:
    session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id)
        .values(status=status, error=error[:4000], processed_at=utcnow())
    )


# --- The read side for operators (events list|show|replay) ---------------------------------

STATUSES = ("received", "processed", "unhandled", "deferred", "invalid", "failed")


def get_event(session: Session, event_id: int, *, for_update: bool = False
              ) -> InboundEvent | None:
    stmt = select(InboundEvent).where(InboundEvent.id == event_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def search_events(session: Session, *, sources: Sequence[str] = (),
                  statuses: Sequence[str] = (), received_before: datetime | None = None,
                  received_since: datetime | None = None,
                  refs: Sequence[tuple[str | None, str]] = (), topic: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[InboundEvent], int]:
    """One page of events, newest first, and how many match in total.

    ``refs`` are (source or None, source_ref) pairs, any of which matches."""
    conditions: list[ColumnElement[bool]] = []
    if sources:
        conditions.append(InboundEvent.source.in_(list(sources)))
    if statuses:
        conditions.append(InboundEvent.status.in_(list(statuses)))
    if received_before is not None:
        conditions.append(InboundEvent.received_at <= received_before)
    if received_since is not None:
        conditions.append(InboundEvent.received_at >= received_since)
    if topic:
        conditions.append(func.lower(InboundEvent.topic) == topic.strip().lower())
    if refs:
        conditions.append(or_(*(
            and_(InboundEvent.source == source, InboundEvent.source_ref == ref)
            if source else InboundEvent.source_ref == ref
            for source, ref in refs)))
    total = session.scalar(select(func.count()).select_from(InboundEvent).where(*conditions))
    rows = session.scalars(
        select(InboundEvent).where(*conditions)
        .order_by(InboundEvent.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total or 0)


def failed_counts(session: Session) -> dict[str, int]:
    """Events in status ``failed`` right now, per source."""
    rows = session.execute(
        select(InboundEvent.source, func.count())
        .where(InboundEvent.status == "failed").group_by(InboundEvent.source)
    ).all()
    return {str(source): int(count) for source, count in rows}
