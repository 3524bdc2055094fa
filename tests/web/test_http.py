import base64
import json
from typing import Any

from returnbridge.sandbox.khaos.poller import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender, php_json
from returnbridge.sources.loop.signature import sign
from tests.conftest import (
    KHAOS_PASSWORD,
    KHAOS_USER,
    LOOP_SECRET,
    LiveApp,
    loop_fixture_bytes,
    start_live_app,
)


def test_signed_fixture_bytes_are_accepted_as_sent(runtime_factory: Any) -> None:
    live_app = start_live_app(runtime_factory, khaos={"currency": "USD"})  # a USD return
    try:
        body = loop_fixture_bytes("return_updated_closed_refund.json")
        with live_app.client() as c:
            r = c.post("/webhooks/loop", content=body,
                       headers={"X-Loop-Signature": sign(body, LOOP_SECRET)})
        assert r.status_code == 200 and r.json()["status"] == "stored"
        with live_app.api() as api:
            assert api.get("/api/v1/returns/LR-6042537").json()["khaos_status"] == "ready"
    finally:
        live_app.stop()


def test_bad_signature_is_401_and_nothing_is_stored(live_app: LiveApp) -> None:
    body = loop_fixture_bytes("return_created_exchange.json")
    with live_app.client() as c:
        wrong = c.post("/webhooks/loop", content=body,
                       headers={"X-Loop-Signature": sign(body, "other-secret")})
        missing = c.post("/webhooks/loop", content=body)
        reencoded = json.dumps(json.loads(body)).encode()  # the trap: parse + re-serialise
        tampered = c.post("/webhooks/loop", content=reencoded,
                          headers={"X-Loop-Signature": sign(body, LOOP_SECRET)})
    assert [wrong.status_code, missing.status_code, tampered.status_code] == [401, 401, 401]
    with live_app.api() as api:
        assert api.get("/api/v1/returns/LR-1673").status_code == 404
        exceptions = api.get("/api/v1/exceptions").json()["exceptions"]
    assert [e["type"] for e in exceptions] == ["signature_invalid"]  # one row, not per request


def test_duplicate_delivery_is_200_and_still_one_return(live_app: LiveApp) -> None:
    sender = LoopSender(f"{live_app.base_url}/webhooks/loop", LOOP_SECRET)
    payload = return_payload(77, Scenario("refund", ("TEE-BLK-M",)))
    first, second = sender.send(payload), sender.send(payload)
    sender.close()
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    with live_app.api() as api:
        view = api.get("/api/v1/returns/LR-77").json()
    assert len([t for t in view["timeline"] if t["kind"] == "event"]) == 1


def test_any_configured_secret_is_accepted(runtime_factory: Any) -> None:
    app = start_live_app(runtime_factory, loop={"webhook_secrets": ["first-sub", "second-sub"]})
    try:
        body = php_json(return_payload(5, Scenario("refund", ("TEE-BLK-M",))))
        with app.client() as c:
            r = c.post("/webhooks/loop", content=body,
                       headers={"X-Loop-Signature": sign(body, "second-sub")})
        assert r.status_code == 200
    finally:
        app.stop()


def test_unknown_topic_is_stored_and_answered_200(live_app: LiveApp) -> None:
    body = loop_fixture_bytes("label_updated.json")
    with live_app.client() as c:
        r = c.post("/webhooks/loop", content=body,
                   headers={"X-Loop-Signature": sign(body, LOOP_SECRET)})
    assert r.status_code == 200


def test_oversized_body_is_refused_clearly(runtime_factory: Any) -> None:
    app = start_live_app(runtime_factory, server={"max_body_bytes": 2048})
    try:
        body = b"{" + b" " * 4096 + b"}"
        with app.client() as c:
            r = c.post("/webhooks/loop", content=body,
                       headers={"X-Loop-Signature": sign(body, LOOP_SECRET)})
        assert r.status_code == 413 and "2048" in r.json()["error"]
    finally:
        app.stop()


def test_khaos_routes_need_basic_auth(live_app: LiveApp) -> None:
    with live_app.client() as c:
        assert c.get("/khaos/returns").status_code == 401
        r = c.get("/khaos/config.json", auth=(KHAOS_USER, "wrong"))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        bad = base64.b64encode(b"\xff\xfe").decode()
        assert c.get("/khaos/returns", headers={"Authorization": f"Basic {bad}"}
                     ).status_code == 401


def test_config_file_points_khaos_at_this_service(live_app: LiveApp) -> None:
    with live_app.khaos() as c:
        doc = c.get("/khaos/config.json").json()["EndpointConfig"]
        xml = c.get("/khaos/config.xml")
    base = live_app.rt.settings.server.public_base_url
    assert doc["CReturnDownload"] == {"URL": f"{base}/khaos/returns", "Format": "JSON",
                                      "Frequency": 15}
    assert doc["StockStatusUpload"]["URL"] == f"{base}/khaos/stock-status"
    assert xml.headers["content-type"].startswith("application/xml")
    assert b"<CReturnDownload><URL>" in xml.content


def test_api_needs_a_bearer_token(live_app: LiveApp) -> None:
    with live_app.client() as c:
        assert c.get("/api/v1/returns/LR-1").status_code == 401
        assert c.get("/api/v1/returns/LR-1", headers={"Authorization": "Bearer nope"}
                     ).status_code == 401
    with live_app.api() as api:
        assert api.get("/api/v1/returns/LR-1").status_code == 404


def test_webhook_to_khaos_import_over_http(live_app: LiveApp) -> None:
    sender = LoopSender(f"{live_app.base_url}/webhooks/loop", LOOP_SECRET)
    for i in range(3):
        assert sender.send(return_payload(300 + i, Scenario("refund", ("SCARF-GRY",)))
                           ).status_code == 200
    sender.close()
    khaos = KhaosSandbox(f"{live_app.base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                         catalogue=set(CATALOGUE), customers={"LOOPWEB"}, reasons={"6", "7"})
    assert khaos.poll() == 3 and khaos.poll() == 0
    assert sorted(khaos.imported) == ["LR-300", "LR-301", "LR-302"] and not khaos.failures
    with live_app.api() as api:
        assert api.get("/api/v1/returns/LR-300").json()["khaos_status"] == "served"


def test_probes(runtime_factory: Any) -> None:
    from returnbridge import __version__

    app = start_live_app(runtime_factory, api={"metrics_token": "metrics-token-0123456789"})
    try:
        with app.client() as c:
            assert c.get("/healthz").json() == {"status": "ok", "version": __version__}
            assert c.get("/readyz").json() == {"status": "ready"}
            assert c.get("/metrics").status_code == 401
            metrics = c.get("/metrics",
                            headers={"Authorization": "Bearer metrics-token-0123456789"})
            assert "returnbridge_webhooks_total" in metrics.text
    finally:
        app.stop()
