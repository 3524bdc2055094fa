"""A returns platform defined entirely under tests/ (tests/platforms/toy.py) is registered,
receives a signed webhook over real HTTP, and its return is served to and imported by the
Khaos sandbox, on SQLite and PostgreSQL, with no edit under src/."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.service import free_port
from tests.conftest import API_TOKEN, KHAOS_PASSWORD, KHAOS_USER, LiveApp
from tests.platforms.toy import ToyWorldSettings, sign

SECRET = "toy-signing-secret"


def _settings(db_url: str, port: int) -> ToyWorldSettings:
    return ToyWorldSettings(
        database={"url": db_url}, api={"tokens": [API_TOKEN]},
        server={"port": port, "public_base_url": f"http://127.0.0.1:{port}"},
        khaos={"channel_username": KHAOS_USER, "channel_password": KHAOS_PASSWORD},
        mapping={"reasons": [{"source": "toy", "khaos_reason_id": "6",
                              "processing": "restock"}]},
        toy={"webhook_secret": SECRET, "fallback_customer_urn": "TOYWEB"})


def _body(rid: str) -> bytes:
    return json.dumps({"event": "return.created", "event_id": f"evt-{rid}", "id": rid,
                       "order": "#5001", "email": "ada@example.com",
                       "items": [{"sku": "TOY-RED", "qty": 2, "net": "10.00", "tax": "2.00",
                                  "reason": "too small"}]}).encode()


@pytest.fixture
def toy_app(db_url: str) -> LiveApp:
    port = free_port()
    app = LiveApp(Runtime.from_settings(_settings(db_url, port)), port)
    app.start()
    yield app  # type: ignore[misc]
    app.stop()
    app.rt.close()


def test_a_toy_platform_from_signed_webhook_to_a_return_in_khaos(toy_app: LiveApp) -> None:
    assert "toy" in toy_app.rt.platforms
    khaos = KhaosSandbox(f"{toy_app.base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                         reasons={"6": "restock"})
    try:
        khaos.add_item("TOY-RED", levels={1: 5})
        khaos.add_customer("TOYWEB", "ada@example.com", "Toy customers")
        body = _body("9001")
        with toy_app.client() as c:
            forged = c.post("/webhooks/toy", content=body,
                            headers={"X-Toy-Signature": sign(body, "wrong")})
            first = c.post("/webhooks/toy", content=body,
                           headers={"X-Toy-Signature": sign(body, SECRET)})
            again = c.post("/webhooks/toy", content=body,
                           headers={"X-Toy-Signature": sign(body, SECRET)})
            unknown = c.post("/webhooks/nosuch", content=body)
        assert forged.status_code == 401 and "X-Toy-Signature" in forged.json()["error"]
        assert first.status_code == 200 and first.json()["status"] == "stored"
        assert again.json()["status"] == "duplicate"
        assert unknown.status_code == 404
        with httpx.Client(base_url=toy_app.base_url, timeout=10,
                          headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
            view = api.get("/api/v1/returns/TY-9001").json()
            assert view["source"] == "toy" and view["khaos_status"] == "ready", view
            listed = api.get("/api/v1/returns", params={"source": "toy"}).json()
            assert [r["associated_ref"] for r in listed["returns"]] == ["TY-9001"]
        assert khaos.poll_once() == 1 and not khaos.failures
        imported = khaos.imported["TY-9001"]
        assert [(ln.sku, ln.quantity, ln.reason_id) for ln in imported.lines] == [
            ("TOY-RED", Decimal(2), "6")]
    finally:
        khaos.close()
