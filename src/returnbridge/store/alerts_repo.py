"""The alert outbox (one row per message to send, per route) and each route's health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from returnbridge.store.models import AlertOutbox, AlertRouteState, ExceptionRow


class AlertsRepository:
    """The alert outbox and route states in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # --- scan ---

    def known_keys(self, exception_ids: list[int]) -> dict[tuple[str, int], set[str]]:
        """(route, exception id) -> the alert keys already written for it."""
        known: dict[tuple[str, int], set[str]] = {}
        for start in range(0, len(exception_ids), 500):
            for route_name, exc_id, key in self._session.execute(
                    select(AlertOutbox.route, AlertOutbox.exception_id, AlertOutbox.alert_key)
                    .where(AlertOutbox.exception_id.in_(exception_ids[start:start + 500]))):
                known.setdefault((route_name, int(exc_id or 0)), set()).add(key)
        return known

    def add_unless_known(self, values: dict[str, Any]) -> bool:
        """Insert an outbox row unless (route, alert_key) exists; True when inserted."""
        dialect = self._session.get_bind().dialect.name
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = maker(AlertOutbox).values(**values).on_conflict_do_nothing(
            index_elements=["route", "alert_key"])
        result = self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    def bursts(self) -> list[tuple[AlertOutbox, ExceptionRow]]:
        """Rows over a route's per-run cap, with their exceptions, by route."""
        return [(o, e) for o, e in self._session.execute(
            select(AlertOutbox, ExceptionRow)
            .join(ExceptionRow, ExceptionRow.id == AlertOutbox.exception_id)
            .where(AlertOutbox.status == "burst").order_by(AlertOutbox.route, AlertOutbox.id))]

    # --- digests ---

    def queued_due_for_update(self, route: str,
                              now: datetime) -> list[tuple[AlertOutbox, ExceptionRow]]:
        """The route's queued rows due by ``now`` (locked, skipping locked ones)."""
        return [(o, e) for o, e in self._session.execute(
            select(AlertOutbox, ExceptionRow)
            .join(ExceptionRow, ExceptionRow.id == AlertOutbox.exception_id)
            .where(AlertOutbox.route == route, AlertOutbox.status == "queued",
                   AlertOutbox.due_at <= now)
            .order_by(ExceptionRow.first_seen_at, ExceptionRow.id)
            .with_for_update(skip_locked=True))]

    def key_taken(self, route: str, alert_key: str) -> bool:
        return self._session.scalars(select(AlertOutbox).where(
            AlertOutbox.route == route, AlertOutbox.alert_key == alert_key)).first() is not None

    def add_digest(self, route: str, alert_key: str, title: str, body: str,
                   now: datetime) -> AlertOutbox:
        """A pending digest message (its id assigned)."""
        digest = AlertOutbox(route=route, alert_key=alert_key, kind="digest", status="pending",
                             title=title, body=body, attempts=0, last_error="", created_at=now,
                             due_at=now)
        self._session.add(digest)
        self._session.flush()
        return digest

    def mark_digested(self, rows: list[AlertOutbox], digest: AlertOutbox) -> None:
        for row in rows:
            row.status = "digested"
            row.digest_id = digest.id

    # --- deliver ---

    def due_ids(self, now: datetime) -> list[int]:
        return list(self._session.scalars(
            select(AlertOutbox.id).where(AlertOutbox.status == "pending",
                                         AlertOutbox.due_at <= now)
            .order_by(AlertOutbox.id)))

    def lock(self, outbox_id: int) -> AlertOutbox | None:
        """The outbox row, locked (None if another process holds it)."""
        return self._session.scalars(select(AlertOutbox).where(AlertOutbox.id == outbox_id)
                                     .with_for_update(skip_locked=True)).first()

    def drop(self, row: AlertOutbox, why: str | None = None) -> None:
        """Never send ``row``; ``why`` (when given) is kept as its last error."""
        row.status = "dropped"
        if why is not None:
            row.last_error = why

    def postpone(self, row: AlertOutbox, until: datetime) -> None:
        row.due_at = until

    def count_attempt(self, row: AlertOutbox) -> None:
        row.attempts += 1

    def mark_sent(self, row: AlertOutbox, now: datetime) -> None:
        row.status = "sent"
        row.sent_at = now
        row.last_error = ""

    def mark_failed(self, row: AlertOutbox, error: str, retry_at: datetime) -> None:
        row.last_error = error
        row.due_at = retry_at

    def route_state(self, name: str) -> AlertRouteState:
        state = self._session.get(AlertRouteState, name)
        if state is None:
            state = AlertRouteState(route=name, consecutive_failures=0, last_error="")
            self._session.add(state)
        return state

    def route_succeeded(self, state: AlertRouteState, now: datetime) -> None:
        state.consecutive_failures = 0
        state.last_success_at = now

    def route_failed(self, state: AlertRouteState, error: str, now: datetime) -> None:
        state.consecutive_failures += 1
        state.last_error = error
        state.last_failure_at = now

    def pending_count(self, route: str) -> int:
        return len(list(self._session.scalars(select(AlertOutbox.id).where(
            AlertOutbox.route == route, AlertOutbox.status == "pending"))))

    # --- status ---

    def counts_by_route_and_status(self) -> list[tuple[str, str, int]]:
        return [(route, status, int(n)) for route, status, n in self._session.execute(
            select(AlertOutbox.route, AlertOutbox.status, func.count())
            .group_by(AlertOutbox.route, AlertOutbox.status))]

    def route_states(self) -> list[AlertRouteState]:
        return list(self._session.scalars(select(AlertRouteState)))
