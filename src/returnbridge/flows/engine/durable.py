"""Durable execution (ARCHITECTURE 5).

Stored events are applied by the event worker (flows/ingest/worker.py): micro-batches, one
transaction each, the event's status committed with its effects, so a crash, a second
process or a redelivery never applies an event twice and never loses one. Nothing on the
request path talks to the workflow engine; storing an event only wakes the worker.

DBOS runs what has external side effects and must resume after a crash: scheduled jobs, the
refund gate, the Khaos SOAP queue. ``process_event_workflow`` stays registered so that event
workflows queued by an earlier version still finish after an upgrade (they skip events
already applied).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from dbos import DBOS

from returnbridge.flows.confirm.queue import register_soap_queue
from returnbridge.flows.decide.reevaluate import reevaluate_if_mapping_changed
from returnbridge.flows.engine import jobs
from returnbridge.flows.engine.current import install, runtime
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest import events as events_admin
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.ingest.worker import EventWorker
from returnbridge.flows.refunds import workflow as refund_workflow
from returnbridge.store.db import create_private_file, is_sqlite, normalise_url, sqlite_path

log = structlog.get_logger(__name__)

EVENTS_QUEUE = "events"


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=1.0, backoff_rate=2.0)
def apply_event_step(event_id: int) -> str:
    outcome = apply_event(runtime(), event_id)
    log.info("event applied", event_id=event_id, status=outcome.status,
             ref=outcome.associated_ref, khaos_status=outcome.khaos_status)
    return outcome.status


@DBOS.step()
def mark_failed_step(event_id: int, error: str) -> None:
    """Retries exhausted: the event becomes ``failed`` with an ``event_failed`` exception."""
    events_admin.record_failure(runtime(), event_id, error)


@DBOS.workflow()
def process_event_workflow(event_id: int) -> str:
    try:
        return apply_event_step(event_id)
    except Exception as exc:  # retries exhausted: keep the event visible, never lose it
        mark_failed_step(event_id, f"{type(exc).__name__}: {exc}")
        log.error("event failed", event_id=event_id, error=str(exc))
        return "failed"


def system_database_url(rt: Runtime) -> str:
    configured = rt.settings.database.system_url
    if configured:
        return normalise_url(configured)
    url = normalise_url(rt.settings.database.url)
    if is_sqlite(url):
        path = sqlite_path(url)
        base = path if path is not None else Path("returnbridge.db")
        system = base.with_suffix(".dbos.sqlite")
        create_private_file(system)  # DBOS would create it world-readable
        return f"sqlite:///{system}"
    return url


class Durable:
    """Start and stop DBOS for one process; ``worker`` decides whether it runs workflows."""

    def __init__(self, rt: Runtime, *, worker: bool, pump_interval: float | None = None
                 ) -> None:
        self.rt = rt
        self.worker = worker
        server = rt.settings.server
        # pump_interval: how often an idle worker looks for stored events it was not told of.
        self.events = EventWorker(
            rt, batch_size=server.event_batch_size,
            idle_poll_seconds=server.event_poll_seconds if pump_interval is None
            else pump_interval)
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self._scheduler: jobs.Scheduler | None = None

    def wake(self) -> None:
        """Events were stored by this process: apply them now (no database round trip)."""
        if self.worker:
            self.events.wake()

    def defer_to_requests(self, busy: Callable[[], bool]) -> None:
        """Between batches, the event worker lets this process's webhook answers go first
        while ``busy()`` (flows/ingest/worker.py)."""
        if self.worker:
            self.events.requests_waiting = busy

    def start(self) -> None:
        install(self.rt)
        DBOS(config={
            "name": "returnbridge",
            "system_database_url": system_database_url(self.rt),
            "log_level": "WARNING",
            "executor_id": self.rt.settings.server.executor_id,
        })
        if not self.worker:
            DBOS.listen_queues([])
        DBOS.launch()
        server = self.rt.settings.server
        # Only event workflows queued by an earlier version are left here: a slow poll.
        DBOS.register_queue(EVENTS_QUEUE, worker_concurrency=server.workflow_concurrency,
                            polling_interval_sec=max(10.0, server.queue_poll_seconds),
                            on_conflict="always_update")
        DBOS.register_queue(jobs.JOBS_QUEUE, worker_concurrency=2,
                            polling_interval_sec=server.queue_poll_seconds,
                            on_conflict="always_update")
        DBOS.register_queue(refund_workflow.REFUNDS_QUEUE, worker_concurrency=4,
                            polling_interval_sec=server.queue_poll_seconds,
                            on_conflict="always_update")
        register_soap_queue(self.rt.settings)
        if self.worker:
            self._scheduler = jobs.Scheduler(self.rt)
            self._scheduler.start()
            self._pump = threading.Thread(target=self._reevaluate, name="reevaluate",
                                          daemon=True)
            self._pump.start()
            self.events.start()

    def _reevaluate(self) -> None:
        try:
            result = reevaluate_if_mapping_changed(self.rt)
            if result is not None:
                log.info("held returns re-evaluated after a configuration change",
                         examined=result.examined, released=result.released)
        except Exception as exc:
            log.warning("re-evaluation after a configuration change failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self.worker:
            self.events.stop()
        if self._pump is not None:
            self._pump.join(timeout=5)
        DBOS.destroy(workflow_completion_timeout_sec=5)
        install(None)
