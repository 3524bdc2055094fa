"""Inbound events: stored first, with their raw bytes, deduplicated per source."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    exc,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, sessionmaker

from returnbridge.store.models import InboundEvent, utcnow
from returnbridge.store.reads import reading

# The database errors applying an event tells apart (named here so flows need no SQLAlchemy):
# a value the database cannot hold, and any error with a statement behind it.
DataError = exc.DataError
StatementError = exc.StatementError
IntegrityError = exc.IntegrityError  # a unique key taken (an event stored meanwhile)


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
    """Insert the event, or count a duplicate of one already stored, in a transaction of
    its own (committed before returning)."""
    with factory() as session, session.begin():
        return EventsRepository(session).store(
            source=source, body=body, headers=headers, dedupe_key=dedupe_key, topic=topic,
            trigger=trigger, source_ref=source_ref, channel=channel)


STATUSES = ("received", "processed", "unhandled", "deferred", "invalid", "failed")


def claim_query(limit: int, *, skip_locked: bool, not_ids: Sequence[int] = ()
                ) -> Select[InboundEvent]:
    """Received events, oldest first, that no older waiting event of the same return holds
    back."""
    return _claim_query(limit, skip_locked, tuple(not_ids))


@functools.lru_cache(maxsize=512)
def _claim_query(limit: int, skip_locked: bool, not_ids: tuple[int, ...]
                 ) -> Select[InboundEvent]:
    # Built once per shape: the worker claims before every batch, and building the
    # statement (an aliased correlated EXISTS) costs more than running it.
    e = InboundEvent
    older = aliased(InboundEvent)
    held_back = exists().where(older.source == e.source, older.source_ref == e.source_ref,
                               older.status == "received", older.id < e.id)
    stmt = (select(e).where(e.status == "received", or_(e.source_ref == "", ~held_back))
            .order_by(e.id).limit(limit))
    if not_ids:
        stmt = stmt.where(e.id.notin_(list(not_ids)))
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True, of=e)
    return stmt


def listen(engine: Engine, channel: str, stop: threading.Event,
           wake: threading.Event) -> None:
    """PostgreSQL: set ``wake`` on every NOTIFY on ``channel`` until ``stop`` is set. Raises
    when the connection fails (the caller waits and listens again)."""
    import psycopg

    url = engine.url.set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"LISTEN {channel}")
        while not stop.is_set():
            for _ in conn.notifies(timeout=1.0, stop_after=1):
                wake.set()


_EVENTS: Table = InboundEvent.__table__  # type: ignore[assignment]
# The event worker's outcome of one try: built once, run as a plain (Core) statement.
_MARK_ATTEMPTED: Update = (
    update(_EVENTS).where(_EVENTS.c.id == bindparam("event_id"))
    .values(status=bindparam("status"), error=bindparam("error"),
            processed_at=bindparam("processed_at"), attempts=_EVENTS.c.attempts + 1))


class EventsRepository:
    """Stored inbound events in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # Whether any event may be deferred, asked once per unit of work (a batch of the
        # event worker): most returns have none waiting, and the question costs a query.
        self._maybe_deferred: bool | None = None
        # The event worker's outcomes kept for one statement at the end of its batch
        # (:meth:`keep_marks`, :meth:`write_kept_marks`); None: written at once.
        self._kept_marks: list[dict[str, Any]] | None = None

    def keep_marks(self) -> None:
        """From now on, keep the worker's outcomes (``mark(..., attempted=True)``) and
        write them together in :meth:`write_kept_marks`, one round trip for a batch. Only
        for a batch without savepoints: a kept outcome is not rolled back with one."""
        self._kept_marks = []

    def write_kept_marks(self) -> None:
        kept, self._kept_marks = self._kept_marks, None
        if kept:
            self._session.connection().execute(_MARK_ATTEMPTED, kept)

    def get(self, event_id: int, *, for_update: bool = False) -> InboundEvent | None:
        stmt = select(InboundEvent).where(InboundEvent.id == event_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self._session.scalars(stmt).first()

    def refresh(self, event: InboundEvent) -> None:
        """Read ``event`` again from the database (after a rolled-back savepoint)."""
        self._session.refresh(event)

    def store(self, *, source: str, body: bytes, headers: dict[str, str],
              dedupe_key: str | None = None, topic: str = "", trigger: str = "",
              source_ref: str = "", channel: str = "webhook") -> StoredEvent:
        """:func:`store_event` inside this unit of work: insert the event, or count a
        duplicate of one already stored (the insert is tried in a savepoint)."""
        digest = sha256(body)
        key = column_text(dedupe_key or digest)
        topic, trigger = column_text(topic), column_text(trigger)
        source_ref = column_text(source_ref)
        try:
            with self._session.begin_nested():
                row = InboundEvent(
                    source=source, channel=channel, topic=topic[:80], trigger=trigger[:80],
                    dedupe_key=key, source_ref=source_ref[:80], headers=headers, body=body,
                    body_sha256=digest, status="received",
                )
                self._session.add(row)
                self._session.flush()
            return StoredEvent(row.id, source, key, duplicate=False)
        except IntegrityError:
            existing = self._session.scalars(select(InboundEvent).where(
                InboundEvent.source == source, InboundEvent.dedupe_key == key)).one()
            existing.duplicates += 1
            return StoredEvent(existing.id, source, key, duplicate=True)

    def mark(self, event_id: int, status: str, error: str = "", *,
             attempted: bool = False) -> None:
        """The event's outcome: its status, the error (if any) and when it was processed.
        ``attempted`` (the event worker) counts this try in the same UPDATE and leaves the
        event's object in the session as it was (the worker does not read it again)."""
        if status == "deferred":
            self._maybe_deferred = True
        if attempted:
            outcome = {"event_id": event_id, "status": status, "error": error[:4000],
                       "processed_at": utcnow()}
            if self._kept_marks is not None:
                self._kept_marks.append(outcome)
            else:
                self._session.connection().execute(_MARK_ATTEMPTED, outcome)
            return
        self._session.execute(update(InboundEvent).where(InboundEvent.id == event_id).values(
            status=status, error=error[:4000], processed_at=utcnow()))

    def add_attempt(self, event_id: int) -> None:
        """Count one more try of the event (its status unchanged)."""
        self._session.execute(update(InboundEvent).where(InboundEvent.id == event_id)
                              .values(attempts=InboundEvent.attempts + 1)
                              .execution_options(synchronize_session=False))

    def count_attempt(self, event: InboundEvent) -> None:
        """One more try of ``event`` (locked by the caller)."""
        event.attempts = (event.attempts or 0) + 1

    def reopen(self, event: InboundEvent) -> None:
        """Put ``event`` back to ``received`` (to apply it again) and count the try."""
        event.status = "received"
        event.attempts = (event.attempts or 0) + 1
        self._session.flush()

    def release_deferred(self, event: InboundEvent) -> None:
        """A deferred event whose return arrived: ``received`` again, to apply it now."""
        event.status = "received"
        self._session.flush()

    def note_error(self, event_id: int, error: str, *, count_attempt: bool) -> None:
        """Keep a failed try's error on the event (status unchanged), counting the try when
        it is not counted yet."""
        values: dict[str, Any] = {"error": error}
        if count_attempt:
            values["attempts"] = InboundEvent.attempts + 1
        self._session.execute(update(InboundEvent).where(InboundEvent.id == event_id)
                              .values(**values))

    def attempts(self, event_id: int) -> int:
        return int(self._session.scalar(select(InboundEvent.attempts)
                                        .where(InboundEvent.id == event_id)) or 0)

    def claim(self, limit: int, *, skip_locked: bool, not_ids: Sequence[int] = ()
              ) -> Sequence[InboundEvent]:
        """Up to ``limit`` received events for the worker (see :func:`claim_query`)."""
        return self._session.scalars(claim_query(limit, skip_locked=skip_locked,
                                                 not_ids=not_ids)).all()

    def deferred_for_update(self, source: str, source_ref: str) -> Sequence[InboundEvent]:
        """Events kept waiting for this return, oldest first, locked.

        Whether any event at all is deferred is read once per unit of work (events deferred
        later in it are noted by :meth:`mark`). That is enough: the worker claims an event
        only when every older event of its return is settled and committed
        (:func:`claim_query`), so what this return's snapshot must release is visible."""
        if self._maybe_deferred is None:
            with reading(self._session, InboundEvent):
                self._maybe_deferred = self._session.scalar(
                    select(InboundEvent.id).where(InboundEvent.status == "deferred").limit(1)
                ) is not None
        if not self._maybe_deferred:
            return []
        return self._session.scalars(
            select(InboundEvent)
            .where(InboundEvent.source == source, InboundEvent.status == "deferred",
                   InboundEvent.source_ref == source_ref)
            .order_by(InboundEvent.id)
            .with_for_update()
        ).all()

    def deferred_before(self, cutoff: datetime) -> list[tuple[str, str, int, datetime]]:
        """(source, source_ref, how many, first received) of events deferred since before
        ``cutoff``, one per return."""
        rows = self._session.execute(
            select(InboundEvent.source, InboundEvent.source_ref, func.count(),
                   func.min(InboundEvent.received_at))
            .where(InboundEvent.status == "deferred", InboundEvent.received_at <= cutoff)
            .group_by(InboundEvent.source, InboundEvent.source_ref)
        ).all()
        return [(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]

    def pending(self, older_than: timedelta, limit: int = 500) -> list[tuple[int, str, str]]:
        """(id, source, dedupe_key) of events received but not yet processed."""
        cutoff: datetime = utcnow() - older_than
        rows = self._session.execute(
            select(InboundEvent.id, InboundEvent.source, InboundEvent.dedupe_key)
            .where(InboundEvent.status == "received", InboundEvent.received_at <= cutoff)
            .order_by(InboundEvent.id)
            .limit(limit)
        ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def search(self, *, sources: Sequence[str] = (), statuses: Sequence[str] = (),
               received_before: datetime | None = None,
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
        total = self._session.scalar(
            select(func.count()).select_from(InboundEvent).where(*conditions))
        rows = self._session.scalars(
            select(InboundEvent).where(*conditions)
            .order_by(InboundEvent.id.desc()).limit(limit).offset(offset)
        ).all()
        return list(rows), int(total or 0)

    def failed_counts(self) -> dict[str, int]:
        """Events in status ``failed`` right now, per source."""
        rows = self._session.execute(
            select(InboundEvent.source, func.count())
            .where(InboundEvent.status == "failed").group_by(InboundEvent.source)
        ).all()
        return {str(source): int(count) for source, count in rows}

    # --- platforms (sources/) ---

    def refs_seen_on(self, source: str, channel: str, source_refs: Sequence[str]) -> set[str]:
        """Which of these return ids events from ``channel`` were stored for."""
        return set(self._session.scalars(select(InboundEvent.source_ref).where(
            InboundEvent.source == source, InboundEvent.channel == channel,
            InboundEvent.source_ref.in_(list(source_refs)))))

    def stored_keys(self, source: str, dedupe_keys: Sequence[str]) -> set[str]:
        """Which of these dedupe keys are stored already."""
        return set(self._session.scalars(select(InboundEvent.dedupe_key).where(
            InboundEvent.source == source, InboundEvent.dedupe_key.in_(list(dedupe_keys)))))

    def store_many(self, *, source: str, channel: str, topic: str, trigger: str,
                   headers: dict[str, str], bodies: dict[str, tuple[str, bytes]]
                   ) -> tuple[dict[str, int], set[str]]:
        """Store the events ``bodies`` (dedupe key -> (return id, body)) not stored yet and
        count a duplicate on the others: (event id by key, the keys stored now)."""
        existing = {str(k): int(i) for k, i in self._session.execute(
            select(InboundEvent.dedupe_key, InboundEvent.id).where(
                InboundEvent.source == source,
                InboundEvent.dedupe_key.in_(list(bodies)))).all()}
        rows: dict[str, InboundEvent] = {}
        for digest, (ref, body) in bodies.items():
            if digest in existing:
                continue
            rows[digest] = InboundEvent(
                source=source, channel=channel, topic=topic, trigger=trigger,
                dedupe_key=digest, source_ref=ref, headers=dict(headers), body=body,
                body_sha256=sha256(body), status="received")
        self._session.add_all(rows.values())
        if existing:
            self._session.execute(update(InboundEvent).where(
                InboundEvent.source == source,
                InboundEvent.dedupe_key.in_(list(existing))).values(
                duplicates=InboundEvent.duplicates + 1))
        self._session.flush()
        return {digest: row.id for digest, row in rows.items()} | existing, set(rows)
