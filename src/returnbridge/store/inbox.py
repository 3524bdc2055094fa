"""Group commit for the inbox: many received events stored in one transaction.

A webhook is answered only once its event is committed. Committing each event on its own
costs a transaction (and on PostgreSQL a WAL flush) per request; here the events that
arrive while one batch is being written share the next transaction, and each request waits
for the commit that holds its event. Deduplication is unchanged: ``(source, dedupe_key)``
is unique, a second copy only counts ``duplicates``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Dialect, Engine, Table
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.store.db import SQLITE_BUSY_TIMEOUT_MS
from returnbridge.store.events import StoredEvent, column_text, sha256
from returnbridge.store.models import InboundEvent, utcnow
from returnbridge.store.write_gate import write_gate, write_gate_within

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
# store_events_soon: how long SQLite's own lock may keep it waiting once the gate is held
# (only a writer outside returnbridge's gate, another program, can hold it then).
SOON_BUSY_MS = 20


class _Busy(Exception):
    """SQLite stayed locked for ``SOON_BUSY_MS``."""


def _row(e: NewEvent, received_at: object) -> dict[str, object]:
    digest = sha256(e.body)
    return dict(source=e.source, channel=e.channel, topic=column_text(e.topic)[:80],
                trigger=column_text(e.trigger)[:80],
                dedupe_key=column_text(e.dedupe_key or digest),
                source_ref=column_text(e.source_ref)[:80], headers=e.headers, body=e.body,
                body_sha256=digest, status="received", received_at=received_at, error="",
                duplicates=0, attempts=0)


COLUMNS = ("source", "channel", "topic", "trigger", "dedupe_key", "source_ref", "headers",
           "body", "body_sha256", "status", "received_at", "error", "duplicates", "attempts")


class _Statements:
    """The inbox's SQL for one database dialect, as plain DBAPI text, and SQLAlchemy's own
    bind processors for its columns (so a row is written exactly as the ORM writes it)."""

    def __init__(self, dialect: Dialect) -> None:
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.postgres = dialect.name == "postgresql"
        self.processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(COLUMNS):
            process = TABLE.c[name].type._cached_bind_processor(dialect)
            if process is not None:
                self.processors.append((i, process))
        self._inserts: dict[int, str] = {}
        # Identifiers are the model's own, quoted by the dialect; every value is a parameter.
        quote = dialect.identifier_preparer.quote
        self.table = quote(TABLE.name)
        self.columns = ", ".join(quote(name) for name in COLUMNS)
        m = self.mark
        self.count_copies = (f"UPDATE {self.table} SET duplicates = duplicates + {m} "  # noqa: S608
                             f"WHERE source = {m} AND dedupe_key = {m}")
        self.find = f"SELECT id FROM {self.table} WHERE source = {m} AND dedupe_key = {m}"  # noqa: S608

    def insert(self, rows: int) -> str:
        """Multi-row INSERT of ``rows`` events that skips a key already stored and returns
        the stored ids (one text per batch size, kept)."""
        sql = self._inserts.get(rows)
        if sql is None:
            one = "(" + ", ".join([self.mark] * len(COLUMNS)) + ")"
            sql = self._inserts[rows] = (
                f"INSERT INTO {self.table} ({self.columns}) VALUES "  # noqa: S608
                f"{', '.join([one] * rows)} ON CONFLICT (source, dedupe_key) DO NOTHING "
                "RETURNING id, source, dedupe_key")
        return sql

    def values(self, rows: Sequence[dict[str, object]]) -> list[object]:
        out: list[object] = []
        for row in rows:
            values = [row[name] for name in COLUMNS]
            for i, process in self.processors:
                values[i] = process(values[i])
            out.extend(values)
        return out


_STATEMENTS: dict[str, _Statements] = {}


def _statements(dialect: Dialect) -> _Statements:
    found = _STATEMENTS.get(dialect.name)
    if found is None:
        found = _STATEMENTS[dialect.name] = _Statements(dialect)
    return found


def store_events(factory: sessionmaker[Session], events: Sequence[NewEvent]) -> list[StoredEvent]:
    """Store ``events`` in one transaction, in order; one result each. Commits before
    returning; raises (and stores none of them) if the transaction fails.

    One multi-row INSERT for the batch, sent as plain SQL on the pool's DBAPI connection:
    the request path waits for this, and SQLAlchemy's statement machinery cost four times
    the database's own work for a batch of a few events (docs/operations.md, "Sizing",
    session 11).
    A copy already stored, or earlier in the same batch, is a duplicate: its row's
    ``duplicates`` counts it and its answer names the stored event."""
    if not events:
        return []
    engine: Engine = factory.kw["bind"]
    with write_gate(engine, priority=True):
        return _store_committed(engine, events)


def store_events_soon(factory: sessionmaker[Session], events: Sequence[NewEvent],
                      wait_s: float) -> list[StoredEvent] | None:
    """:func:`store_events` if SQLite's write gate comes free within ``wait_s`` (the event
    worker ends its batch after the current event for it), else None (nothing stored): for
    a caller that must not wait for a long transaction of another writer."""
    if not events:
        return []
    engine: Engine = factory.kw["bind"]
    with write_gate_within(engine, wait_s) as held:
        if not held:
            return None
        try:
            return _store_committed(engine, events, busy_ms=SOON_BUSY_MS)
        except _Busy:
            return None


def _store_committed(engine: Engine, events: Sequence[NewEvent], busy_ms: int = 0
                     ) -> list[StoredEvent]:
    received_at = utcnow()
    rows = [_row(e, received_at) for e in events]
    sql = _statements(engine.dialect)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if not sql.postgres:  # the connection runs in autocommit mode (store/db.py)
                _begin_immediate(cursor, busy_ms)
            out = _store(cursor, sql, rows)
            if sql.postgres and not all(s.duplicate for s in out):
                # Delivered at commit, to every worker listening (any host).
                cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool
    return out


def _begin_immediate(cursor: DBAPICursor, busy_ms: int) -> None:
    """SQLite's BEGIN IMMEDIATE; with ``busy_ms``, waiting at most that long for a writer
    (then :class:`_Busy`) instead of the connection's usual ``busy_timeout``."""
    if not busy_ms:
        cursor.execute("BEGIN IMMEDIATE")
        return
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    try:
        cursor.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _Busy from exc
    finally:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _store(cursor: DBAPICursor, sql: _Statements, rows: list[dict[str, object]]
           ) -> list[StoredEvent]:
    cursor.execute(sql.insert(len(rows)), sql.values(rows))
    inserted = {(str(source), str(key)): int(event_id)
                for event_id, source, key in cursor.fetchall()}
    out: list[StoredEvent] = []
    repeats: dict[tuple[str, str], int] = {}
    answered: set[tuple[str, str]] = set()
    for row in rows:
        key = (str(row["source"]), str(row["dedupe_key"]))
        if key in inserted and key not in answered:
            answered.add(key)
            out.append(StoredEvent(inserted[key], key[0], key[1], duplicate=False))
        else:
            repeats[key] = repeats.get(key, 0) + 1
            out.append(StoredEvent(0, key[0], key[1], duplicate=True))
    if repeats:
        existing = _count_duplicates(cursor, sql, repeats)
        out = [StoredEvent(existing[(s.source, s.dedupe_key)], s.source, s.dedupe_key,
                           duplicate=True) if s.duplicate else s for s in out]
    return out


def _count_duplicates(cursor: DBAPICursor, sql: _Statements,
                      repeats: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Count each repeat on its stored event; the stored ids by (source, key)."""
    found: dict[tuple[str, str], int] = {}
    for (source, key), times in repeats.items():
        cursor.execute(sql.count_copies, (times, source, key))
        cursor.execute(sql.find, (source, key))
        row = cursor.fetchone()
        if row is None:  # not stored, and not inserted: the INSERT would have said so
            raise RuntimeError(f"event {source}/{key} is neither new nor stored")
        found[(source, key)] = int(row[0])
    return found
