"""Alerts to the owning teams (docs/alerts.md), through Apprise, from a durable outbox.

One run (the ``alerts`` scheduled job, or ``run_alerts`` directly):

1. **scan**: every open exception is matched against the ``[[alerts.routes]]``; for each
   route that takes it, an ``alert_outbox`` row is written under a key naming the cause
   (``exc:{id}:{severity}``; an escalation to a higher severity and each age threshold are
   new keys). The key is unique per route, so a restart, a second worker or the same problem
   seen again never writes (or sends) a second alert for the same cause.
2. **digests**: rows of digest routes wait as ``queued`` until their period ends; then they
   become one digest row (exceptions resolved in the meantime are dropped).
3. **deliver**: due ``pending`` rows are sent; a failure keeps the row pending and retries it
   with back-off; after ``channel_failure_threshold`` failures in a row the route is
   reported as an ``alert_channel_failing`` exception for ops, resolved by the next success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from returnbridge.config import AlertsSettings, Settings, url_secrets
from returnbridge.domain.alerts import (
    ExceptionFacts,
    RouteRule,
    alert_keys,
    digest_message,
    digest_period_start,
    exception_message,
    link,
    quiet_until,
    retry_delay,
)
from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import AlertOutbox, ExceptionRow, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

# (urls, title, body) -> None when delivered, else what went wrong (no secrets in it)
Sender = Callable[[Sequence[str], str, str], str | None]


@dataclass(frozen=True)
class Route:
    rule: RouteRule
    urls: tuple[str, ...]


@dataclass(frozen=True)
class AlertRun:
    queued: int  # outbox rows written by the scan
    digests: int  # digests built
    sent: int
    failed: int

    def __str__(self) -> str:
        return (f"{self.queued} alert(s) queued, {self.digests} digest(s) built, "
                f"{self.sent} sent, {self.failed} failed")


def configured_routes(settings: Settings) -> list[Route]:
    alerts = settings.alerts
    return [
        Route(RouteRule(name=alerts.route_name(i), owner=r.owner, mode=r.mode,
                        digest=r.digest, min_severity=r.min_severity,
                        max_severity=r.max_severity, types=tuple(r.types),
                        quiet_hours=r.quiet_hours),
              tuple(r.resolved_urls()))
        for i, r in enumerate(alerts.routes)
    ]


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _url_secrets(urls: Sequence[str]) -> list[str]:
    return url_secrets(list(urls))


def apprise_send(urls: Sequence[str], title: str, body: str) -> str | None:
    """Send through Apprise (its own socket timeouts apply: 4 s connect and read for HTTP
    services by default, adjustable per URL with ``?cto=`` and ``?rto=``)."""
    import apprise

    if not urls:
        return "the route has no URLs (check urls, urls_env and the environment variables)"
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            scheme = url.split("://", 1)[0] if "://" in url else "?"
            return f"not a valid Apprise URL (scheme {scheme!r})"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = notifier.notify(title=title, body=body)
    if ok:
        return None
    text = captured.getvalue() if hasattr(captured, "getvalue") else ""
    lines = [" ".join(line.split(" - ")[2:]) or line for line in str(text).splitlines()]
    return _redact("; ".join(x for x in lines if x)[:500] or "delivery failed",
                   _url_secrets(urls))


# --- 1. scan ---------------------------------------------------------------------------


def _facts(row: ExceptionRow) -> ExceptionFacts:
    return ExceptionFacts(id=row.id, type=row.type, owner=row.owner, severity=row.severity,
                          associated_ref=row.associated_ref, message=row.message,
                          next_action=row.next_action, count=row.count,
                          first_seen_at=row.first_seen_at)


def exception_link(settings: Settings, exception_id: int) -> str:
    console = settings.alerts.console_base_url
    return link(console or settings.server.public_base_url, exception_id, console=bool(console))


def next_digest_at(now: datetime, period: str, alerts: AlertsSettings) -> datetime:
    step = timedelta(days=1) if period == "daily" else timedelta(hours=1)
    return digest_period_start(now + step, period, alerts.timezone, alerts.digest_hour)


def scan(rt: Runtime, now: datetime | None = None) -> int:
    """Write the outbox rows for open exceptions not yet alerted for their current cause."""
    now = now or utcnow()
    routes = configured_routes(rt.settings)
    if not routes:
        return 0
    alerts = rt.settings.alerts
    thresholds = list(alerts.realert_after_hours)
    written = 0
    fresh: dict[str, int] = {}  # single alerts written per route in this run
    with rt.unit_of_work() as uow:
        rows = uow.exceptions.open_rows()
        if not rows:
            return 0
        known = uow.alerts.known_keys([r.id for r in rows])
        for row in rows:
            facts = _facts(row)
            for route in routes:
                rule = route.rule
                if not rule.takes(row.owner, row.severity, row.type):
                    continue
                have = known.get((rule.name, row.id), set())
                key, age_keys = alert_keys(facts, now, thresholds)
                todo: list[tuple[str, str, str]] = []  # (key, status, cause)
                live = "queued" if rule.mode == "digest" else "pending"
                if not have:
                    todo.append((key, live, ""))
                    todo.extend((k, "superseded", "age") for k in age_keys)
                else:
                    if key not in have:
                        todo.append((key, live, "escalated"))
                    for k in age_keys:
                        if k not in have:
                            todo.append((k, "pending" if rule.mode == "immediate"
                                         else "superseded", "age"))
                for alert_key, wanted, cause in todo:
                    status = wanted
                    if status == "pending" and (
                            fresh.setdefault(rule.name, 0) >= alerts.max_immediate_per_run):
                        status = "burst"  # summarised below instead of one message each
                    if status == "pending":
                        fresh[rule.name] += 1
                    title, body = exception_message(
                        facts, exception_link(rt.settings, row.id), now, cause)
                    due = (next_digest_at(now, rule.digest, rt.settings.alerts)
                           if status == "queued" else now)
                    if uow.alerts.add_unless_known({
                        "route": rule.name, "alert_key": alert_key, "kind": "exception",
                        "exception_id": row.id, "status": status, "title": title,
                        "body": body, "attempts": 0, "last_error": "", "created_at": now,
                        "due_at": due,
                    }) and status in ("pending", "queued", "burst"):
                        written += 1
        _summarise_bursts(uow, rt.settings, now)
    return written


def _summarise_bursts(uow: UnitOfWork, settings: Settings, now: datetime) -> None:
    """Rows over a route's per-run cap become one summary message for that route."""
    rows = uow.alerts.bursts()
    by_route: dict[str, list[tuple[AlertOutbox, ExceptionRow]]] = {}
    for outbox, exc in rows:
        by_route.setdefault(outbox.route, []).append((outbox, exc))
    for route, items in by_route.items():
        title, body = digest_message(
            route, [(_facts(e), exception_link(settings, e.id)) for _, e in items], now,
            intro=f"More exceptions opened at once than route {route} gets one by one "
            f"([alerts].max_immediate_per_run = {settings.alerts.max_immediate_per_run}); "
            "here are the rest, still open.")
        title = f"{title} (more than {settings.alerts.max_immediate_per_run} at once)"[:250]
        summary = uow.alerts.add_digest(route, f"burst:{now.isoformat()}:{items[0][0].id}",
                                        title, body, now)
        uow.alerts.mark_digested([outbox for outbox, _ in items], summary)


# --- 2. digests ------------------------------------------------------------------------


def build_digests(rt: Runtime, now: datetime | None = None) -> int:
    """Turn the queued rows of each digest route whose period has ended into one digest."""
    now = now or utcnow()
    alerts = rt.settings.alerts
    built = 0
    for route in configured_routes(rt.settings):
        rule = route.rule
        if rule.mode != "digest":
            continue
        with rt.unit_of_work() as uow:
            items = uow.alerts.queued_due_for_update(rule.name, now)
            if not items:
                continue
            live = [(o, e) for o, e in items if e.status == "open"]
            for outbox, exc in items:
                if exc.status != "open":
                    uow.alerts.drop(outbox)
            if not live:
                continue
            period = digest_period_start(now, rule.digest, alerts.timezone, alerts.digest_hour)
            title, body = digest_message(
                rule.name, [(_facts(e), exception_link(rt.settings, e.id)) for _, e in live],
                now)
            key = f"digest:{period.isoformat()}"
            if uow.alerts.key_taken(rule.name, key):  # a late item in a period already digested
                key = f"digest:{period.isoformat()}:{live[0][0].id}"
            digest = uow.alerts.add_digest(rule.name, key, title, body, now)
            uow.alerts.mark_digested([outbox for outbox, _ in live], digest)
            built += 1
    return built


# --- 3. deliver ------------------------------------------------------------------------


def deliver(rt: Runtime, now: datetime | None = None,
            send: Sender | None = None) -> tuple[int, int]:
    """Send due pending rows; (sent, failed). A route that fails is not tried again in
    this run; its rows wait for their retry time."""
    now = now or utcnow()
    send = send or apprise_send
    alerts = rt.settings.alerts
    routes = {r.rule.name: r for r in configured_routes(rt.settings)}
    with rt.unit_of_work() as uow:
        due = uow.alerts.due_ids(now)
    sent = failed = 0
    failing: set[str] = set()
    for outbox_id in due:
        with rt.unit_of_work() as uow:
            row = uow.alerts.lock(outbox_id)
            if row is None or row.status != "pending" or row.route in failing:
                continue
            route = routes.get(row.route)
            if route is None:
                uow.alerts.drop(row, "the route is no longer configured")
                continue
            if row.exception_id is not None and row.kind == "exception":
                exc = uow.exceptions.get(row.exception_id)
                if exc is None or exc.status != "open":
                    uow.alerts.drop(row, "the exception was closed before the alert went")
                    continue
            quiet = quiet_until(now, route.rule.quiet_hours, alerts.timezone)
            if quiet is not None:
                uow.alerts.postpone(row, quiet)
                continue
            error = send(route.urls, row.title, row.body)
            uow.alerts.count_attempt(row)
            state = uow.alerts.route_state(row.route)
            if error is None:
                uow.alerts.mark_sent(row, now)
                uow.alerts.route_succeeded(state, now)
                uow.exceptions.resolve_by_key(
                    "alert_channel_failing", f"route:{row.route}",
                    by="returnbridge", how=f"delivered to route {row.route} again")
                sent += 1
                continue
            failed += 1
            failing.add(row.route)
            uow.alerts.mark_failed(row, error,
                                   now + retry_delay(row.attempts, alerts.max_retry_minutes))
            uow.alerts.route_failed(state, error, now)
            log.warning("alert delivery failed; will retry", route=row.route, error=error,
                        attempts=row.attempts)
            if state.consecutive_failures >= alerts.channel_failure_threshold:
                waiting = uow.alerts.pending_count(row.route)
                uow.exceptions.raise_problem(Problem(
                    "alert_channel_failing",
                    f"Alerts to route {row.route} failed {state.consecutive_failures} time(s) "
                    f"in a row; {waiting} alert(s) wait for it. Last error: {error}",
                    dedupe_key=f"route:{row.route}",
                    details={"route": row.route, "last_error": error,
                             "waiting": str(waiting)},
                ), associated_ref="")
    return sent, failed


def run_alerts(rt: Runtime, now: datetime | None = None,
               send: Sender | None = None) -> AlertRun:
    """One full alert cycle: scan, digests, deliver."""
    now = now or utcnow()
    queued = scan(rt, now)
    digests = build_digests(rt, now)
    sent, failed = deliver(rt, now, send)
    # A channel that just started failing opened an exception: alert it (to other routes)
    # in this same run rather than the next.
    if failed:
        queued += scan(rt, now)
        more_sent, more_failed = deliver(rt, now, send)
        sent, failed = sent + more_sent, failed + more_failed
    return AlertRun(queued, digests, sent, failed)


def send_test(settings: Settings, owner: str | None = None,
              send: Sender | None = None) -> list[tuple[str, str | None]]:
    """Send a test message on every route (or those for ``owner``); (route, error) each."""
    send = send or apprise_send
    results = []
    for route in configured_routes(settings):
        if owner and route.rule.owner not in (owner, "*"):
            continue
        title = f"[returnbridge] Test alert for route {route.rule.name}"
        body = (f"This is a test from returnbridge. Route {route.rule.name} takes "
                f"{route.rule.owner} exceptions ({route.rule.mode}"
                + (f", {route.rule.digest}" if route.rule.mode == "digest" else "")
                + f", from {route.rule.min_severity}). Nothing needs doing.\n"
                f"Exceptions: {exception_link(settings, 0).rsplit('/', 1)[0]}")
        results.append((route.rule.name, send(route.urls, title, body)))
    return results


def outbox_summary(uow: UnitOfWork) -> list[dict[str, Any]]:
    """Per route: counts by status and the route's health, for ``alerts status``."""
    counts: dict[str, dict[str, Any]] = {}
    for route, status, n in uow.alerts.counts_by_route_and_status():
        counts.setdefault(route, {"route": route})[status] = n
    for state in uow.alerts.route_states():
        entry = counts.setdefault(state.route, {"route": state.route})
        entry["consecutive_failures"] = state.consecutive_failures
        entry["last_error"] = state.last_error
        entry["last_success_at"] = (state.last_success_at.isoformat()
                                    if state.last_success_at else None)
    return sorted(counts.values(), key=lambda e: str(e["route"]))
