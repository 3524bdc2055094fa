"""Group commit for the inbox: many received events stored in one transaction.

A webhook is answered only once its event is committed. Committing each event on its own
costs a transaction (and on PostgreSQL a WAL flush) per request; here the events that
arrive while one batch is being written share the next transaction, and each request waits
for the commit that holds its event. Deduplication is unchanged: ``(source, dedupe_key)``
is unique, a second copy only counts ``duplicates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Insert, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.store.db import write_gate
from returnbridge.store.events import StoredEvent, column_text, sha256
from returnbridge.store.models import InboundEvent, utcnow

# Workers on other processes or hosts LISTEN on this channel (PostgreSQL only).
NOTIFY_CHANNEL = "returnbridge_events"


@dataclass(frozen=True)
class NewEvent:
    source: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    dedupe_key: str | None = None
    topic: str = ""
    trigger: str = ""
    source_ref: str = ""
    channel: str = "webhook"


TABLE: Table = InboundEvent.__table__  # type: ignore[assignment]


def _insert(conn: Connection) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(TABLE).on_conflict_do_nothing(
            index_elements=["source", "dedupe_key"])
    return sqlite.insert(TABLE).on_conflict_do_nothing(
        index_elements=["source", "dedupe_key"])


def store_events(factory: sessionmaker[Session], events: Sequence[NewEvent]) -> list[StoredEvent]:
    """Store ``events`` in one transaction, in order; one result each. Commits before
    returning; raises (and stores none of them) if the transaction fails."""
    out: list[StoredEvent] = []
    with write_gate(factory.kw.get("bind")), factory() as session, session.begin():
        conn = session.connection()
        insert = _insert(conn).returning(TABLE.c.id)
        table = TABLE
        fresh = False
        for e in events:
            digest = sha256(e.body)
            key = column_text(e.dedupe_key or digest)
            new_id = conn.execute(insert.values(
                source=e.source, channel=e.channel, topic=column_text(e.topic)[:80],
                trigger=column_text(e.trigger)[:80], dedupe_key=key,
                source_ref=column_text(e.source_ref)[:80], headers=e.headers, body=e.body,
                body_sha256=digest, status="received", received_at=utcnow(), error="",
                duplicates=0, attempts=0)).scalar()
            if new_id is not None:
                out.append(StoredEvent(int(new_id), e.source, key, duplicate=False))
                fresh = True
                continue
            conn.execute(update(table).where(table.c.source == e.source,
                                             table.c.dedupe_key == key)
                         .values(duplicates=table.c.duplicates + 1))
            existing = conn.execute(select(table.c.id).where(
                table.c.source == e.source, table.c.dedupe_key == key)).scalar_one()
            out.append(StoredEvent(int(existing), e.source, key, duplicate=True))
        if fresh and conn.dialect.name == "postgresql":
            # Delivered at commit, to every worker listening (any host).
            conn.exec_driver_sql(f"NOTIFY {NOTIFY_CHANNEL}")
    return out
