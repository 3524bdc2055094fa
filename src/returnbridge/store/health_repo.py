"""What the running system recorded about itself: each external system's connection health
and each scheduled job's last run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.store.models import ConnectionHealth, JobRun


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
