"""Alerts reach the owning team once, digests bundle, failing channels are visible and
catch up (over a real SMTP server and a real HTTP receiver; SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from returnbridge.cli import app
from returnbridge.composition import Settings
from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.alerts import run_alerts
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import AlertOutbox, ExceptionRow, utcnow
from tests.alerts._receivers import Mailbox, WebhookReceiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def _raise(rt: Runtime, type_: str, key: str, ref: str = "") -> int:
    with rt.sessions() as session, session.begin():
        row = ExceptionsRepository(session).raise_problem(
            Problem(type_, f"{type_} found for {key}", dedupe_key=key),
            associated_ref=ref)
        return row.id


def _routes(mailbox: Mailbox, webhook: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    routes = [
        {"name": "ops-mail", "owner": "ops", "urls": [mailbox.url("ops@example.com")]},
        {"name": "cx-mail", "owner": "cx", "urls": [mailbox.url("cx@example.com")]},
        {"name": "finance-hook", "owner": "finance", "urls": [webhook.url("finance")]},
    ]
    return {"routes": routes, "console_base_url": "https://rb.example.com/console", **extra}


def test_a_blocking_exception_mails_its_owner_once_and_nobody_else(
        runtime_factory: Callable[..., Runtime], mailbox: Mailbox,
        webhook: WebhookReceiver) -> None:
    rt = runtime_factory(alerts=_routes(mailbox, webhook))
    exc_id = _raise(rt, "sku_mismatch", "LR-1001:SKU-X", "LR-1001")

    # The next alert run (every [alerts].interval_seconds) sends it.
    result = run_alerts(rt, utcnow() + timedelta(seconds=rt.settings.alerts.interval_seconds))
    assert result.sent == 1
    ops = mailbox.to("ops@example.com")
    assert len(ops) == 1
    assert mailbox.to("cx@example.com") == []
    assert webhook.received == []
    subject = str(ops[0]["Subject"])
    assert "sku_mismatch" in subject and "LR-1001" in subject and "BLOCKING" in subject
    body = Mailbox.text(ops[0])
    assert "Next action (ops): Correct the SKU in Khaos" in body
    assert f"https://rb.example.com/console/exceptions/{exc_id}" in body

    # The same problem found again, another run, and a restarted process: no second alert.
    _raise(rt, "sku_mismatch", "LR-1001:SKU-X", "LR-1001")
    run_alerts(rt, utcnow() + timedelta(minutes=5))
    restarted = Runtime.from_settings(rt.settings)
    try:
        run_alerts(restarted, utcnow() + timedelta(minutes=10))
    finally:
        restarted.close()
    assert len(mailbox.to("ops@example.com")) == 1
    with rt.sessions() as session:
        sent = session.scalars(select(AlertOutbox).where(AlertOutbox.status == "sent")).all()
        assert [(r.route, r.exception_id) for r in sent] == [("ops-mail", exc_id)]


def test_ten_warnings_make_one_digest(runtime_factory: Callable[..., Runtime],
                                      mailbox: Mailbox, webhook: WebhookReceiver) -> None:
    routes = [{"name": "finance-digest", "owner": "finance", "mode": "digest",
               "digest": "hourly", "urls": [mailbox.url("finance@example.com")]}]
    rt = runtime_factory(alerts={"routes": routes})
    ids = [_raise(rt, "tax_drift", f"LR-{2000 + i}", f"LR-{2000 + i}") for i in range(10)]
    # A blocking exception of another team is not in finance's digest.
    _raise(rt, "unknown_customer", "LR-3000", "LR-3000")
    now = utcnow()

    first = run_alerts(rt, now)
    assert first.sent == 0 and mailbox.messages == []  # waits for the end of the hour

    later = run_alerts(rt, now + timedelta(hours=1))
    assert later.digests == 1 and later.sent == 1
    run_alerts(rt, now + timedelta(hours=2))  # nothing new: no empty digest
    messages = mailbox.to("finance@example.com")
    assert len(messages) == 1
    assert "10 new exception(s) for finance" in str(messages[0]["Subject"])
    body = Mailbox.text(messages[0])
    for exc_id in ids:
        assert f"#{exc_id} warning tax_drift" in body
    assert "unknown_customer" not in body
    assert "Next action (finance)" in body


def test_digest_leaves_out_what_was_resolved_before_it_went(
        runtime_factory: Callable[..., Runtime], mailbox: Mailbox,
        webhook: WebhookReceiver) -> None:
    routes = [{"name": "fin", "owner": "finance", "mode": "digest",
               "urls": [mailbox.url("finance@example.com")]}]
    rt = runtime_factory(alerts={"routes": routes})
    kept = _raise(rt, "tax_drift", "LR-1", "LR-1")
    gone = _raise(rt, "tax_drift", "LR-2", "LR-2")
    now = utcnow()
    run_alerts(rt, now)
    with rt.sessions() as session, session.begin():
        ExceptionsRepository(session).resolve_by_key("tax_drift", "LR-2", by="t", how="fixed")
    run_alerts(rt, now + timedelta(hours=1))
    body = Mailbox.text(mailbox.to("finance@example.com")[0])
    assert f"#{kept} " in body and f"#{gone} " not in body


def test_a_failing_channel_is_an_exception_and_catches_up_when_it_recovers(
        runtime_factory: Callable[..., Runtime], mailbox: Mailbox,
        webhook: WebhookReceiver) -> None:
    rt = runtime_factory(alerts=_routes(mailbox, webhook, channel_failure_threshold=3))
    webhook.failing = True
    exc_id = _raise(rt, "duplicate_refund_suspected", "order-77", "LR-77")
    now = utcnow()
    for minutes in (0, 1, 3):  # each retry after its back-off
        result = run_alerts(rt, now + timedelta(minutes=minutes))
        assert result.failed >= 1
    assert webhook.received == []

    with rt.sessions() as session:
        failing = session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == "alert_channel_failing")).one()
        assert failing.status == "open" and failing.owner == "ops"
        assert "finance-hook" in failing.message
    # ops hears about it by its own route
    ops = mailbox.to("ops@example.com")
    assert len(ops) == 1 and "alert_channel_failing" in str(ops[0]["Subject"])

    webhook.failing = False
    run_alerts(rt, now + timedelta(minutes=10))
    run_alerts(rt, now + timedelta(minutes=20))
    assert len(webhook.received) == 1
    assert "duplicate_refund_suspected" in webhook.received[0]["title"]
    assert f"/exceptions/{exc_id}" in webhook.received[0]["message"]
    with rt.sessions() as session:
        failing = session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == "alert_channel_failing")).one()
        assert failing.status == "resolved"


def test_escalation_and_age_alert_again_once(runtime_factory: Callable[..., Runtime],
                                             mailbox: Mailbox,
                                             webhook: WebhookReceiver) -> None:
    rt = runtime_factory(alerts=_routes(mailbox, webhook, realert_after_hours=[24]))
    exc_id = _raise(rt, "status_drift", "LR-9", "LR-9")  # ops, warning
    now = utcnow()
    run_alerts(rt, now)
    with rt.sessions() as session, session.begin():
        row = session.get(ExceptionRow, exc_id)
        assert row is not None
        row.severity = "blocking"
    run_alerts(rt, now + timedelta(minutes=5))
    run_alerts(rt, now + timedelta(hours=25))
    run_alerts(rt, now + timedelta(hours=26))
    subjects = [str(m["Subject"]) for m in mailbox.to("ops@example.com")]
    assert len(subjects) == 3
    assert subjects[1].startswith("[returnbridge] Escalated: BLOCKING")
    assert subjects[2].startswith("[returnbridge] Still open:")


def test_quiet_hours_hold_alerts_until_they_end(runtime_factory: Callable[..., Runtime],
                                                mailbox: Mailbox,
                                                webhook: WebhookReceiver) -> None:
    now = utcnow()
    start = (now - timedelta(minutes=30)).strftime("%H:%M")
    end = (now + timedelta(minutes=30)).strftime("%H:%M")
    routes = [{"name": "ops-night", "owner": "ops", "quiet_hours": f"{start}-{end}",
               "urls": [mailbox.url("ops@example.com")]}]
    rt = runtime_factory(alerts={"routes": routes, "timezone": "UTC"})
    _raise(rt, "sku_mismatch", "k1")
    run_alerts(rt, now)
    assert mailbox.messages == []
    run_alerts(rt, now + timedelta(minutes=31))
    assert len(mailbox.to("ops@example.com")) == 1


def test_routes_filter_by_severity_and_type(runtime_factory: Callable[..., Runtime],
                                            mailbox: Mailbox, webhook: WebhookReceiver) -> None:
    routes = [
        {"name": "all-blocking", "owner": "*", "min_severity": "blocking",
         "urls": [mailbox.url("oncall@example.com")]},
        {"name": "drift-only", "owner": "ops", "types": ["status_drift"],
         "urls": [mailbox.url("drift@example.com")]},
    ]
    rt = runtime_factory(alerts={"routes": routes})
    _raise(rt, "status_drift", "a")  # ops warning
    _raise(rt, "unknown_customer", "b")  # cx blocking
    _raise(rt, "tax_drift", "c")  # finance warning: nobody
    run_alerts(rt, utcnow())
    assert ["unknown_customer" in str(m["Subject"]) for m in mailbox.to("oncall@example.com")] \
        == [True]
    assert ["status_drift" in str(m["Subject"]) for m in mailbox.to("drift@example.com")] \
        == [True]


def test_cli_alerts_test_sends_to_the_teams_routes(db_url: str, mailbox: Mailbox,
                                                   webhook: WebhookReceiver,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Any) -> None:
    monkeypatch.setenv("HOOK_PATH", "finance-secret-path-1234")
    config = tmp_path / "rb.toml"
    config.write_text(f"""
[database]
url = "{db_url}"

[[alerts.routes]]
owner = "finance"
urls = ["json://127.0.0.1:{webhook.port}/${{HOOK_PATH}}"]

[[alerts.routes]]
owner = "cx"
urls = ["{mailbox.url('cx@example.com')}"]
""")
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "test", "--owner", "finance", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "finance-immediate-1: sent" in result.output
    assert len(webhook.received) == 1 and mailbox.messages == []
    assert "Test alert" in webhook.received[0]["title"]

    webhook.failing = True
    result = runner.invoke(app, ["alerts", "test", "--owner", "finance", "-c", str(config)])
    assert result.exit_code == 1
    assert "finance-secret-path-1234" not in result.output


def test_alert_urls_take_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "T000/B000/XXXXXXXXXXXXXXXX")
    monkeypatch.setenv("MORE_URLS", "json://hooks.example.com/abc, mailto://u:pw-123@x.com")
    settings = Settings(alerts={"routes": [
        {"owner": "cx", "urls": ["slack://${SLACK_TOKEN}"], "urls_env": "MORE_URLS"}]})
    urls = settings.alerts.routes[0].resolved_urls()
    assert urls == ["slack://T000/B000/XXXXXXXXXXXXXXXX", "json://hooks.example.com/abc",
                    "mailto://u:pw-123@x.com"]
    secrets = settings.secret_values()
    assert "XXXXXXXXXXXXXXXX" in secrets and "pw-123" in secrets


def test_a_burst_of_exceptions_is_capped_per_route_and_summarised(
        runtime_factory: Callable[..., Runtime], mailbox: Mailbox,
        webhook: WebhookReceiver) -> None:
    routes = [{"name": "ops-mail", "owner": "ops", "urls": [mailbox.url("ops@example.com")]}]
    rt = runtime_factory(alerts={"routes": routes, "max_immediate_per_run": 3})
    ids = [_raise(rt, "sku_mismatch", f"k{i}") for i in range(8)]
    run_alerts(rt, utcnow())
    run_alerts(rt, utcnow() + timedelta(minutes=1))
    messages = mailbox.to("ops@example.com")
    assert len(messages) == 4  # three single alerts and one summary of the other five
    summary = [m for m in messages if "more than 3 at once" in str(m["Subject"])]
    assert len(summary) == 1
    body = Mailbox.text(summary[0])
    assert all(f"#{i} " in body for i in ids[3:]) and f"#{ids[0]} " not in body
