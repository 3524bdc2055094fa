"""The Health page's data: configuration checks, whether stored events are being applied,
what each connection last did, schedules.

"Last success" is evidence the database already holds (the last event received from a
source, the last Khaos poll answered, the last push from Khaos, the last refund made); "last
error" is the newest failed event or open exception about that connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from returnbridge.checks import check_settings
from returnbridge.flows.engine.jobs import jobs
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.health_repo import EventQueue, HealthRepository
from returnbridge.store.models import JobRun

# A worker applies a stored event within seconds (it is woken when one is stored, and polls
# every [server].event_poll_seconds); one that has waited this long means no worker runs,
# or the workers cannot keep up.
EVENTS_BEHIND_AFTER = timedelta(minutes=15)  # as deploy/prometheus/alerts.yml pages


def _last_run(run: JobRun) -> datetime | None:
    times = [t for t in (run.last_success_at, run.last_failure_at, run.last_started_at) if t]
    return max(times) if times else None


def _last_result(run: JobRun) -> str:
    failed_last = run.last_failure_at is not None and (
        run.last_success_at is None or run.last_failure_at >= run.last_success_at)
    return f"failed: {run.last_error}" if failed_last else run.last_summary


def _iso(value: datetime | None) -> str:
    return value.isoformat()[:19].replace("T", " ") if value else ""


def _duration(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} days {(minutes // 60) % 24} h"


def event_processing(queue: EventQueue, now: datetime) -> dict[str, Any]:
    """The Event processing section: the figures, a verdict and, when something is wrong,
    what to do about it."""
    waited = now - queue.oldest_waiting if queue.oldest_waiting else None
    if not queue.waiting:
        verdict, level = "Every stored event has been applied.", "ok"
    elif waited is None or waited < EVENTS_BEHIND_AFTER:
        verdict = (f"{queue.waiting} event(s) waiting to be applied; the oldest arrived "
                   f"{_duration(waited or timedelta())} ago. Normal during a burst.")
        level = "ok"
    else:
        verdict = (f"{queue.waiting} event(s) waiting; the oldest has waited "
                   f"{_duration(waited)}. Check that a worker is running ('returnbridge "
                   "worker' processes, or the worker child of 'serve': an open worker_down "
                   "exception says it keeps dying) and read its log. If it runs but cannot "
                   "keep up, add workers (docs/operations.md, Sizing).")
        level = "error"
    actions: list[str] = []
    if queue.failed:
        actions.append(f"{queue.failed} event(s) failed after their retries: each has an "
                       "event_failed exception (runbook docs/runbooks/event_failed.md); "
                       "'returnbridge events list --status failed' lists them.")
    if queue.deferred:
        actions.append(f"{queue.deferred} event(s) deferred: about a return returnbridge "
                       "has not received yet; applied as soon as it arrives (a status_drift "
                       "exception opens for ops when one waits too long).")
    return {"waiting": queue.waiting,
            "oldest_waiting": _iso(queue.oldest_waiting),
            "waited": _duration(waited) if waited is not None else "",
            "deferred": queue.deferred, "failed": queue.failed,
            "verdict": verdict, "level": level, "actions": actions}


def _source(health: HealthRepository, source: str) -> dict[str, str]:
    last_ok = health.last_event_received(source)
    failed = health.last_failed_event(source)
    return {"last_success": _iso(last_ok),
            "last_success_what": "last event received",
            "last_error": _iso(failed.received_at) if failed else "",
            "error": (failed.error[:300] if failed else "")}


def health_data(rt: Runtime) -> dict[str, Any]:
    s = rt.settings
    findings = [{"level": f.level.value, "key": f.key, "message": f.message}
                for f in check_settings(s)]
    with rt.unit_of_work() as uow:
        health = uow.health
        connections: list[dict[str, str]] = []
        for platform in rt.platforms:
            configured = platform.configured(platform.settings(s))
            row = {"name": platform.title, "configured": "yes" if configured else "no",
                   **_source(health, platform.name)}
            connections.append(row)
        last_poll = health.last_khaos_poll()
        last_push = health.last_khaos_push()
        soap = health.newest_open_problem(("khaos_import_unconfirmed", "credit_note_missing"))
        connections.append({
            "name": "Khaos channel (polls and pushes)", "configured":
            "yes" if s.khaos.channel_password.get_secret_value() else "no",
            "last_success": _iso(last_poll), "last_success_what":
            f"last poll answered; last push received {_iso(last_push) or 'never'}",
            "last_error": "", "error": ""})
        connections.append({
            "name": "Khaos SOAP", "configured": "yes" if s.khaos.soap_url else "no",
            "last_success": "", "last_success_what": "see credit notes confirmed on returns",
            "last_error": _iso(soap.last_seen_at) if soap else "",
            "error": soap.message[:300] if soap else ""})
        last_refund = health.last_refund_made()
        refund_problem = health.newest_open_problem(("duplicate_refund_suspected",
                                                     "refund_before_credit"))
        connections.append({
            "name": "Shopify", "configured": "yes" if (s.shopify.shop_domain
                                                       or s.shopify.base_url) else "no",
            "last_success": _iso(last_refund), "last_success_what": "last refund made",
            "last_error": _iso(refund_problem.last_seen_at) if refund_problem else "",
            "error": refund_problem.message[:300] if refund_problem else ""})
        events = event_processing(health.event_queue(), datetime.now(UTC))
        all_marks = health.watermarks()
        runs = {r.name: r for r in health.job_runs()}
    marks = [{"name": m.name, "value": m.value[:80], "updated_at": _iso(m.updated_at)}
             for m in all_marks]
    job_rows = []
    for job in jobs(rt):
        seconds = job.interval_seconds(rt)
        last = runs.get(job.name)
        job_rows.append({"name": job.name,
                     "every": f"{seconds / 60:g} min" if seconds > 0 else "off (not configured)",
                     "last_run": _iso(_last_run(last)) if last else "",
                     "last_result": _last_result(last) if last else ""})
    return {"findings": findings, "events": events, "connections": connections,
            "jobs": job_rows,
            "watermarks": marks,
            "errors": sum(1 for f in findings if f["level"] == "error"),
            "warnings": sum(1 for f in findings if f["level"] == "warning")}
