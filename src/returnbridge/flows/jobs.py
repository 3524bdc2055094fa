"""Scheduled jobs (ARCHITECTURE 5.6-5.8): backstop, confirmation sweep, SLA checks, the
ZigZag stock push and the refund gate starter.

Every worker process runs the same clock; each due run is a DBOS workflow whose id is
``job:{name}:{time bucket}``, so however many workers there are, each run happens once.
A job that is not configured (no Loop API key, no ZigZag URL, ...) is simply not due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from dbos import DBOS, SetWorkflowID

from returnbridge.flows import platform_refunds  # noqa: F401  (registers its DBOS workflow)
from returnbridge.flows.runtime import Runtime

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


def _loop_backstop(rt: Runtime) -> str:
    from returnbridge.flows.health import record_failure, record_success
    from returnbridge.flows.loop_backstop import run_backstop
    from returnbridge.flows.loop_lease import SKIPPED, loop_api_lease
    from returnbridge.sources.loop.client import LoopError

    with loop_api_lease(rt) as mine:
        if not mine:
            return SKIPPED
        # Stored events are queued by the event pump within seconds.
        try:
            result = run_backstop(rt)
        except (LoopError, OSError) as exc:
            record_failure(rt, "loop", f"{type(exc).__name__}: {exc}")
            raise
    record_success(rt, "loop")
    return str(result)


def _khaos_confirm(rt: Runtime) -> str:
    from returnbridge.flows.khaos_confirm import run_confirm_cycle

    return str(run_confirm_cycle(rt, durable=True))


def _zigzag_stock(rt: Runtime) -> str:
    from returnbridge.flows.stock_push import push_stock
    from returnbridge.sources.zigzag.client import ZigZagClient

    client = ZigZagClient(rt.settings.zigzag)
    try:
        return str(push_stock(rt, client))
    finally:
        client.close()


def _refund_gate(rt: Runtime) -> str:
    from returnbridge.flows.refund_workflow import enqueue_due_refunds

    return f"{enqueue_due_refunds(rt)} refund workflow(s) started"


def _platform_refunds(rt: Runtime) -> str:
    from returnbridge.flows.platform_refunds import enqueue_due

    return f"{enqueue_due(rt)} platform refund(s) queued for recording in Khaos"


def _waiting_evidence(rt: Runtime) -> str:
    from returnbridge.flows.process import report_waiting_evidence

    return f"{report_waiting_evidence(rt)} return(s) known only from their events"


def _reconciliation(rt: Runtime) -> str:
    from returnbridge.flows.reconcile.service import run_continuous

    return str(run_continuous(rt))


def _alerts(rt: Runtime) -> str:
    from returnbridge.flows.alerts import run_alerts

    return str(run_alerts(rt))


def _loop_notes(rt: Runtime) -> str:
    from returnbridge.flows.loop_lease import SKIPPED, loop_api_lease
    from returnbridge.flows.loop_notes import write_back

    with loop_api_lease(rt) as mine:
        return str(write_back(rt)) if mine else SKIPPED


def _minutes(value: object) -> float:
    try:
        return max(0.0, float(value)) * 60.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


JOBS: tuple[Job, ...] = (
    Job("loop-backstop",
        lambda rt: _minutes(rt.settings.loop.backstop_interval_minutes)
        if rt.settings.loop.api_key.get_secret_value() else 0.0,
        _loop_backstop),
    Job("khaos-confirm",
        lambda rt: _minutes(getattr(rt.settings.khaos, "confirm_sweep_minutes", 15)),
        _khaos_confirm, direct=True),
    Job("zigzag-stock-push",
        lambda rt: _minutes(getattr(rt.settings.zigzag, "stock_push_minutes", 5))
        if rt.settings.zigzag.base_url else 0.0,
        _zigzag_stock),
    Job("evidence-without-return", lambda rt: 3600.0, _waiting_evidence),
    Job("refund-gate",
        lambda rt: rt.settings.shopify.refund_gate_seconds
        if rt.settings.shopify.shop_domain or rt.settings.shopify.base_url else 0.0,
        _refund_gate, direct=True),
    Job("platform-refund-record",
        lambda rt: _minutes(getattr(rt.settings.khaos, "confirm_sweep_minutes", 15))
        if rt.settings.khaos.soap_url else 0.0,
        _platform_refunds, direct=True),
    Job("reconciliation",
        lambda rt: max(0.0, rt.settings.reconciliation.interval_hours) * 3600.0,
        _reconciliation),
    Job("loop-notes",
        lambda rt: 60.0 if rt.settings.loop.api_key.get_secret_value()
        and rt.settings.loop.write_back_notes else 0.0,
        _loop_notes),
    Job("alerts",
        lambda rt: float(rt.settings.alerts.interval_seconds) if rt.settings.alerts.routes
        else 0.0,
        _alerts),
)
_BY_NAME = {job.name: job for job in JOBS}


def run_recorded(rt: Runtime, job: Job) -> str:
    """Run ``job`` and record its start and outcome in ``job_runs``."""
    from returnbridge.flows.health import record_job

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
    from returnbridge.flows.durable import runtime

    return run_recorded(runtime(), _BY_NAME[name])


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
    for job in JOBS:
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
    return {job.name: job.interval_seconds(rt) for job in JOBS}


class Scheduler:
    """A thread that checks for due jobs every few seconds (worker processes only), and
    once a minute whether any job has stopped running (``schedule_not_running``)."""

    def __init__(self, rt: Runtime, tick_seconds: float = 5.0) -> None:
        from returnbridge.store.models import utcnow

        self.rt = rt
        self.started_at = utcnow()
        self._last_check = 0.0
        intervals = [i for i in (job.interval_seconds(rt) for job in JOBS) if i > 0]
        self.tick = min([tick_seconds, *intervals])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rb-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                enqueue_due(self.rt)
            except Exception as exc:
                log.warning("scheduler tick failed; will retry", error=str(exc))
            if time.monotonic() - self._last_check >= 60:
                self._last_check = time.monotonic()
                try:
                    from returnbridge.flows.health import check_schedules

                    check_schedules(self.rt, intervals(self.rt), started_at=self.started_at)
                except Exception as exc:
                    log.warning("schedule check failed; will retry", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
