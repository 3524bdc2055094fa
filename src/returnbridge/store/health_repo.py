"""What the running system recorded about itself: each external system's connection health
and each scheduled job's last run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from returnbridge.store.models import (
    ConnectionHealth,
    ExceptionRow,
    InboundEvent,
    JobRun,
    KhaosDelivery,
    KhaosOrderStatus,
    RefundRow,
    StockItem,
    Watermark,
)


@dataclass(frozen=True)
class EventQueue:
    """Stored events not applied: waiting for a worker, deferred, failed."""

    waiting: int
    oldest_waiting: datetime | None
    deferred: int
    failed: int


class HealthRepository:
    """Connection health and job runs in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def connection_succeeded(self, system: str, now: datetime) -> bool:
        """Record a successful call; True when the system was failing until now."""
        row = self._session.get(ConnectionHealth, system)
        if row is None:
            self._session.add(ConnectionHealth(system=system, consecutive_failures=0,
                                               last_error="", last_success_at=now))
            return False
        was_failing = row.consecutive_failures > 0
        row.consecutive_failures = 0
        row.failing_since = None
        row.last_success_at = now
        return was_failing

    def connection_failed(self, system: str, error: str, now: datetime) -> ConnectionHealth:
        """Count one more failed call; the system's health as it now stands."""
        row = self._session.get(ConnectionHealth, system)
        if row is None:
            row = ConnectionHealth(system=system, consecutive_failures=0, last_error="")
            self._session.add(row)
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        row.failing_since = row.failing_since or now
        row.last_error = error
        row.last_failure_at = now
        return row

    def connections(self) -> list[ConnectionHealth]:
        return list(self._session.scalars(select(ConnectionHealth)))

    def _job(self, name: str) -> JobRun:
        row = self._session.get(JobRun, name)
        if row is None:
            row = JobRun(name=name, last_error="", last_summary="")
            self._session.add(row)
        return row

    def job_started(self, name: str, now: datetime) -> None:
        self._job(name).last_started_at = now

    def job_succeeded(self, name: str, now: datetime, summary: str) -> None:
        row = self._job(name)
        row.last_success_at = now
        row.last_summary = summary[:2000]

    def job_failed(self, name: str, now: datetime, error: str) -> None:
        row = self._job(name)
        row.last_failure_at = now
        row.last_error = error[:2000]

    def job_run(self, name: str) -> JobRun | None:
        return self._session.get(JobRun, name)

    def job_runs(self) -> list[JobRun]:
        return list(self._session.scalars(select(JobRun)))

    # --- the evidence the Health page shows for each connection ---

    def last_event_received(self, source: str) -> datetime | None:
        """When the last event from ``source`` that did not fail was received."""
        return self._session.scalar(select(func.max(InboundEvent.received_at)).where(
            InboundEvent.source == source, InboundEvent.status != "failed"))

    def event_queue(self) -> EventQueue:
        """How many stored events wait for a worker (and since when), are deferred, failed:
        one query on the status index (applied events are not counted)."""
        rows = self._session.execute(
            select(InboundEvent.status, func.count(), func.min(InboundEvent.received_at))
            .where(InboundEvent.status.in_(("received", "deferred", "failed")))
            .group_by(InboundEvent.status)).all()
        found = {str(r[0]): (int(r[1]), r[2]) for r in rows}
        waiting, oldest = found.get("received", (0, None))
        return EventQueue(waiting=waiting, oldest_waiting=oldest,
                          deferred=found.get("deferred", (0, None))[0],
                          failed=found.get("failed", (0, None))[0])

    def last_failed_event(self, source: str) -> InboundEvent | None:
        return self._session.scalars(select(InboundEvent).where(
            InboundEvent.source == source, InboundEvent.status == "failed")
            .order_by(InboundEvent.id.desc()).limit(1)).first()

    def newest_open_problem(self, types: tuple[str, ...]) -> ExceptionRow | None:
        return self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.status == "open", ExceptionRow.type.in_(types))
            .order_by(ExceptionRow.last_seen_at.desc()).limit(1)).first()

    def last_khaos_poll(self) -> datetime | None:
        return self._session.scalar(select(func.max(KhaosDelivery.delivered_at)))

    def last_khaos_push(self) -> datetime | None:
        """The newest stock item or order status Khaos pushed."""
        seen = [d for d in (self._session.scalar(select(func.max(StockItem.updated_at))),
                            self._session.scalar(select(func.max(KhaosOrderStatus.updated_at))))
                if d]
        return max(seen) if seen else None

    def last_refund_made(self) -> datetime | None:
        return self._session.scalar(select(func.max(RefundRow.created_at)).where(
            RefundRow.origin == "returnbridge"))

    def watermarks(self) -> list[Watermark]:
        return list(self._session.scalars(select(Watermark).order_by(Watermark.name)))

