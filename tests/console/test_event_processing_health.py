"""The Health page says whether stored events are being applied, and what to do when they
are not: over real HTTP on SQLite and PostgreSQL, and the verdict's rules on their own."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from returnbridge.flows.console import accounts
from returnbridge.store.health_repo import EventQueue
from returnbridge.store.models import InboundEvent
from returnbridge.web.console.health_view import event_processing
from tests.conftest import LiveApp, start_live_app

PASSWORD = "a long enough password"
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


def test_nothing_waiting_reads_as_all_applied() -> None:
    shown = event_processing(EventQueue(0, None, 0, 0), NOW)
    assert shown["level"] == "ok" and shown["verdict"] == "Every stored event has been applied."
    assert shown["actions"] == []


def test_a_burst_waiting_a_few_minutes_is_normal() -> None:
    shown = event_processing(EventQueue(40, NOW - timedelta(minutes=3), 0, 0), NOW)
    assert shown["level"] == "ok"
    assert "40 event(s) waiting" in shown["verdict"] and "3 min ago" in shown["verdict"]
    assert "worker" not in shown["verdict"]


def test_events_waiting_too_long_name_the_worker_and_the_sizing_guide() -> None:
    shown = event_processing(EventQueue(7, NOW - timedelta(hours=2, minutes=5), 0, 0), NOW)
    assert shown["level"] == "error"
    assert "the oldest has waited 2 h 5 min" in shown["verdict"]
    assert "Check that a worker is running" in shown["verdict"]
    assert "worker_down" in shown["verdict"] and "Sizing" in shown["verdict"]


def test_the_verdict_turns_when_the_prometheus_rule_would_page() -> None:
    # deploy/prometheus/alerts.yml pages when the oldest stored event waits over 900 s.
    levels = [event_processing(EventQueue(1, NOW - timedelta(minutes=m), 0, 0), NOW)["level"]
              for m in (14, 16)]
    assert levels == ["ok", "error"]


def test_failed_and_deferred_events_say_where_to_look() -> None:
    shown = event_processing(EventQueue(0, None, 2, 3), NOW)
    assert shown["level"] == "ok"  # nothing waits for a worker
    failed, deferred = shown["actions"]
    assert failed.startswith("3 event(s) failed") and "event_failed" in failed
    assert "events list --status failed" in failed
    assert deferred.startswith("2 event(s) deferred")


@pytest.fixture
def app(runtime_factory: Any) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory)
    with live.rt.unit_of_work() as uow:
        accounts.add_user(uow, "ada", "admin", PASSWORD, by="test")
    yield live
    live.stop()


def _store(live: LiveApp, key: str, status: str, age: timedelta) -> None:
    body = f'{{"id": "{key}"}}'.encode()
    with live.rt.sessions() as s, s.begin():
        s.add(InboundEvent(source="loop", dedupe_key=key, source_ref=key, body=body,
                           body_sha256=hashlib.sha256(body).hexdigest(), status=status,
                           received_at=datetime.now(UTC) - age))


def _health_text(live: LiveApp) -> str:
    client = live.client(follow_redirects=True)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    client.post("/console/login", data={"username": "ada", "password": PASSWORD,
                                        "csrf_token": token.group(1), "next": ""})
    page = client.get("/console/health")
    assert page.status_code == 200
    found = re.search(r'data-testid="events-verdict">([^<]*)<', page.text)
    assert found is not None, page.text[:1000]
    return found.group(1) + "\n" + page.text


def test_the_health_page_shows_events_left_waiting_and_clears_when_applied(
        app: LiveApp) -> None:
    assert _health_text(app).startswith("Every stored event has been applied.")
    _store(app, "LR-1", "received", timedelta(minutes=25))
    _store(app, "LR-2", "received", timedelta(minutes=1))
    _store(app, "LR-3", "failed", timedelta(hours=3))
    text = _health_text(app)
    verdict = text.splitlines()[0]
    assert verdict.startswith("2 event(s) waiting; the oldest has waited 25 min.")
    assert "Check that a worker is running" in verdict
    assert "1 event(s) failed after their retries" in text
    with app.rt.sessions() as s, s.begin():
        s.execute(update(InboundEvent).where(InboundEvent.status == "received")
                  .values(status="processed", processed_at=datetime.now(UTC)))
    assert _health_text(app).startswith("Every stored event has been applied.")
