"""Inbound events: stored first, with their raw bytes, deduplicated per source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
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


def _text(value: str) -> str:
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
    key = _text(dedupe_key or digest)
    topic, trigger, source_ref = _text(topic), _text(trigger), _text(source_ref)
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
