"""Scheduled jobs (ARCHITECTURE 5.6-5.8): the confirmation sweep, SLA checks, the refund
gate starter, reconciliation, alerts, and each returns platform's own jobs (its backstop,
its stock push).

Every worker process runs the same clock; each due run is a DBOS workflow whose id is
``job:{name}:{time bucket}``, so however many workers there are, each run happens once.
A job that is not configured (no API key, no URL, ...) is simply not due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from dbos import DBOS, SetWorkflowID

from returnbridge.flows.confirm.queue import run_confirm_cycle
from returnbridge.flows.engine.current import runtime
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.alerts import run_alerts
from returnbridge.flows.exceptions.health import check_schedules, record_job
from returnbridge.flows.ingest.apply import report_waiting_evidence
from returnbridge.flows.reconcile.service import run_continuous
from returnbridge.flows.refunds import platform as platform_refunds
from returnbridge.flows.refunds.workflow import enqueue_due_refunds
from returnbridge.store.models import utcnow

log = structlog.get_logger(__name__)

JOBS_QUEUE = "jobs"


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: Callable[[Runtime], float]  # 0 = off
    run: Callable[[Runtime], str]
    # Jobs that only start other workflows run on the scheduler thread itself (DBOS cannot
    # start a workflow from inside a step); the workflows they start carry business ids,
    # so two processes doing it is harmless.
    direct: bool = False


def _khaos_confirm(rt: Runtime) -> str:
    return str(run_confirm_cycle(rt, durable=True))


def _refund_gate(rt: Runtime) -> str:
    return f"{enqueue_due_refunds(rt)} refund workflow(s) started"


def _platform_refunds(rt: Runtime) -> str:
    return f"{platform_refunds.enqueue_due(rt)} platform refund(s) queued for recording in Khaos"


def _waiting_evidence(rt: Runtime) -> str:
    return f"{report_waiting_evidence(rt)} return(s) known only from their events"


def _reconciliation(rt: Runtime) -> str:
    return str(run_continuous(rt))


def _alerts(rt: Runtime) -> str:
    return str(run_alerts(rt))


def _minutes(value: float) -> float:
    return max(0.0, float(value)) * 60.0


CORE_JOBS: tuple[Job, ...] = (
    Job("khaos-confirm",
        lambda rt: _minutes(rt.settings.khaos.confirm_sweep_minutes),
        _khaos_confirm, direct=True),
    Job("evidence-without-return", lambda rt: 3600.0, _waiting_evidence),
    Job("refund-gate",
        lambda rt: rt.settings.shopify.refund_gate_seconds
        if rt.settings.shopify.shop_domain or rt.settings.shopify.base_url else 0.0,
        _refund_gate, direct=True),
    Job("platform-refund-record",
        lambda rt: _minutes(rt.settings.khaos.confirm_sweep_minutes)
        if rt.settings.khaos.soap_url else 0.0,
        _platform_refunds, direct=True),
    Job("reconciliation",
        lambda rt: max(0.0, rt.settings.reconciliation.interval_hours) * 3600.0,
        _reconciliation),
    Job("alerts",
        lambda rt: float(rt.settings.alerts.interval_seconds) if rt.settings.alerts.routes
        else 0.0,
        _alerts),
)


def jobs(rt: Runtime) -> tuple[Job, ...]:
    """The core's jobs, then each returns platform's own (its backstop, its stock push)."""
    return CORE_JOBS + tuple(Job(j.name, j.interval_seconds, j.run)
                             for platform in rt.platforms for j in platform.jobs())


def job_named(rt: Runtime, name: str) -> Job:
    for job in jobs(rt):
        if job.name == name:
            return job
    raise LookupError(f"no scheduled job named {name!r}")


def run_recorded(rt: Runtime, job: Job) -> str:
    """Run ``job`` and record its start and outcome in ``job_runs``."""
    record_job(rt, job.name, ok=None)
    try:
        summary = job.run(rt)
    except Exception as exc:
        record_job(rt, job.name, ok=False, summary=f"{type(exc).__name__}: {exc}")
        raise
    record_job(rt, job.name, ok=True, summary=summary)
    return summary


@DBOS.step()
def run_job_step(name: str) -> str:
    rt = runtime()
    return run_recorded(rt, job_named(rt, name))


@DBOS.workflow()
def job_workflow(name: str) -> str:
    summary = run_job_step(name)
    log.info("scheduled job ran", job=name, summary=summary)
    return summary


_LAST_DIRECT: dict[tuple[int, str], int] = {}


def enqueue_due(rt: Runtime, now: float | None = None) -> list[str]:
    """Start every job whose current time bucket has not run yet."""
    now = time.time() if now is None else now
    started = []
    for job in jobs(rt):
        interval = job.interval_seconds(rt)
        if interval <= 0:
            continue
        bucket = int(now // interval)
        if job.direct:
            if _LAST_DIRECT.get((id(rt), job.name)) == bucket:
                continue
            _LAST_DIRECT[(id(rt), job.name)] = bucket
            try:
                log.info("scheduled job ran", job=job.name, summary=run_recorded(rt, job))
            except Exception as exc:
                log.warning("scheduled job failed; will retry", job=job.name, error=str(exc))
        else:
            with SetWorkflowID(f"job:{job.name}:{bucket}"):
                DBOS.enqueue_workflow(JOBS_QUEUE, job_workflow, job.name)
        started.append(job.name)
    return started


def intervals(rt: Runtime) -> dict[str, float]:
    """Each job's interval in seconds (0: not configured, so never late)."""
    return {job.name: job.interval_seconds(rt) for job in jobs(rt)}


class Scheduler:
    """A thread that checks for due jobs every few seconds (worker processes only), and
    once a minute whether any job has stopped running (``schedule_not_running``)."""

    def __init__(self, rt: Runtime, tick_seconds: float = 5.0) -> None:
        self.rt = rt
        self.started_at = utcnow()
        self._last_check = 0.0
        intervals = [i for i in (job.interval_seconds(rt) for job in jobs(rt)) if i > 0]
        self.tick = min([tick_seconds, *intervals])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rb-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                enqueue_due(self.rt)
            except Exception as exc:
                log.warning("scheduler tick failed; will retry", error=str(exc))
            if time.monotonic() - self._last_check >= 60:
                self._last_check = time.monotonic()
                try:
                    check_schedules(self.rt, intervals(self.rt), started_at=self.started_at)
                except Exception as exc:
                    log.warning("schedule check failed; will retry", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
