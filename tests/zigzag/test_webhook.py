"""POST /webhooks/zigzag over a real socket: auth, storage, dedupe and ZigZag's retry codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.store.models import InboundEvent
from tests.conftest import LiveApp, start_live_app

from ._support import fixture

SECRET = "zz-webhook-secret"


def _events(app: LiveApp) -> list[InboundEvent]:
    with app.rt.sessions() as session:
        return list(session.scalars(select(InboundEvent).where(InboundEvent.source == "zigzag")
                                    .order_by(InboundEvent.id)))


def _app(factory: Callable[..., Runtime], **zigzag: Any) -> LiveApp:
    return start_live_app(factory, zigzag={"retailer_code": "GL123", **zigzag})


def test_stored_then_duplicate_by_event_id(runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET)
    try:
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
        body = fixture("return_graded.json")
        first = sender.send_raw(body)
        # ZigZag's daily retry of the same event, re-serialised: still the same event.
        second = sender.send_raw(json.dumps(json.loads(body), indent=4).encode())
        sender.close()
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.json()["status"] == "stored"
        assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
        (row,) = _events(app)
        assert (row.dedupe_key, row.topic, row.source_ref, row.duplicates) == (
            "id:e0a4c3d2-5b6f-4a1c-8d9e-112233445566", "ReturnGraded", "RTN-000123", 1)
        assert row.body == body  # the raw bytes, exactly as sent
    finally:
        app.stop()


def test_without_event_id_the_body_hash_deduplicates(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET)
    try:
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
        payload = json.loads(fixture("return_created.json"))
        del payload["eventId"]
        a, b = sender.send(payload), sender.send(payload)
        payload["orderNumber"] = "other"
        c = sender.send(payload)
        sender.close()
        assert [r.json()["status"] for r in (a, b, c)] == ["stored", "duplicate", "stored"]
        assert len(_events(app)) == 2
    finally:
        app.stop()


def test_bad_or_missing_secret_is_401_and_nothing_is_stored(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET)
    try:
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
        body = fixture("return_created.json")
        wrong = sender.send_raw(body, secret="guess")
        missing = sender.send_raw(body, secret="")
        sender.close()
        assert (wrong.status_code, missing.status_code) == (401, 401)  # ZigZag retries 401
        assert _events(app) == []
        with app.api() as api:
            exceptions = api.get("/api/v1/exceptions").json()["exceptions"]
        assert [e["type"] for e in exceptions] == ["signature_invalid"]
    finally:
        app.stop()


def test_basic_auth_alone_and_together_with_the_secret(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET, webhook_username="zigzag",
               webhook_password="basic-pass")
    try:
        url = f"{app.base_url}/webhooks/zigzag"
        body = fixture("return_created.json")
        both = ZigZagSender(url, secret=SECRET, basic=("zigzag", "basic-pass"))
        only_secret = ZigZagSender(url, secret=SECRET)
        wrong_pass = ZigZagSender(url, secret=SECRET, basic=("zigzag", "nope"))
        codes = [s.send_raw(body).status_code for s in (only_secret, wrong_pass, both)]
        for s in (both, only_secret, wrong_pass):
            s.close()
        assert codes == [401, 401, 200]
    finally:
        app.stop()
    basic_only = _app(runtime_factory, webhook_username="zigzag", webhook_password="pw")
    try:
        sender = ZigZagSender(f"{basic_only.base_url}/webhooks/zigzag")
        ok = sender.send_raw(fixture("return_created.json"), basic=("zigzag", "pw"))
        bad = sender.send_raw(fixture("return_created.json"), basic=("zigzag", "pw2"))
        sender.close()
        assert (ok.status_code, bad.status_code) == (200, 401)
    finally:
        basic_only.stop()


def test_no_configured_credentials_refuses_everything(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory)
    try:
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag")
        response = sender.send_raw(fixture("return_created.json"))
        sender.close()
        assert response.status_code == 401
        assert "no webhook credentials are configured" in response.json()["error"]
    finally:
        app.stop()


def test_unreadable_body_is_stored_and_answered_200_never_400(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET)
    try:
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
        response = sender.send_raw(b"{not json")
        sender.close()
        assert response.status_code == 200 and response.json()["status"] == "stored"
        (row,) = _events(app)
        assert row.body == b"{not json"
    finally:
        app.stop()


def test_failure_before_storing_is_500_which_zigzag_retries(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = _app(runtime_factory, webhook_secret=SECRET)
    try:
        with app.rt.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_events RENAME TO inbound_events_away"))
        sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
        response = sender.send_raw(fixture("return_created.json"))
        with app.rt.engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbound_events_away RENAME TO inbound_events"))
        retried = sender.send_raw(fixture("return_created.json"))
        sender.close()
        assert response.status_code == 500  # never 503/429: ZigZag does not retry those
        assert retried.status_code == 200 and retried.json()["status"] == "stored"
    finally:
        app.stop()


def test_sandbox_journey_with_duplicates_out_of_order_stores_each_event_once(
        runtime_factory: Callable[..., Runtime]) -> None:
    from returnbridge.sandbox.zigzag.samples import SampleItem, journey

    app = _app(runtime_factory, webhook_secret=SECRET, webhook_username="zz",
               webhook_password="pw")
    try:
        sender = ZigZagSender.for_settings(f"{app.base_url}/webhooks/zigzag",
                                           app.rt.settings.zigzag)
        events = journey("RTN-9", [SampleItem("30D24LRED", quantity=2, received=1),
                                   SampleItem("30D24LBLU", disposition="Damaged")],
                         refund_requested=True)
        responses = sender.deliver(events, duplicates=1, shuffle_seed=7)
        sender.close()
        assert {r.status_code for r in responses} == {200}
        assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 5 + ["stored"] * 5
        assert sorted(e.topic for e in _events(app)) == sorted(
            ["ReturnCreated", "ReturnInTransit", "ReturnReceived", "ReturnGraded",
             "RefundRequested"])
    finally:
        app.stop()
