"""``serve``'s own check that the scheduled jobs run, when it runs no jobs itself.

The jobs, the check that opens ``schedule_not_running`` and the alert cycle all run in the
worker (``returnbridge worker``, ``serve``'s worker child, or ``serve``'s threads). When no
worker runs at all (``serve --no-worker`` with every worker stopped, or a worker child that
cannot start), nothing would notice. So a ``serve`` that runs no jobs in its own process
checks once a minute too: it opens ``schedule_not_running`` for each late job (the same
dedupe key as the worker's check, so never twice) and, when the alert cycle itself is late,
runs one cycle so the exception reaches its owners (deliveries are locked per row: a worker
that comes back cannot send the same alert twice).
"""

from __future__ import annotations

import threading

import structlog

from returnbridge.flows.engine.jobs import intervals
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.alerts import run_alerts
from returnbridge.flows.exceptions.health import check_schedules
from returnbridge.store.models import utcnow

log = structlog.get_logger(__name__)

WATCH_SECONDS = 60.0
ALERTS_JOB = "alerts"


class ScheduleWatch:
    """A thread of ``serve`` that checks the schedules every ``WATCH_SECONDS``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.started_at = utcnow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="schedule-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            self.check_once()

    def check_once(self) -> list[str]:
        """One check; returns the late jobs. Never raises."""
        try:
            late = check_schedules(self.rt, intervals(self.rt), started_at=self.started_at)
        except Exception as exc:
            log.warning("schedule check failed; will retry", error=str(exc))
            return []
        if late:
            log.warning("scheduled jobs are late; is a worker running?", jobs=late)
        if ALERTS_JOB in late:
            try:
                run_alerts(self.rt)
            except Exception as exc:
                log.warning("could not send alerts in place of the worker", error=str(exc))
        return late
