"""On SQLite the inbox commits on the event loop's own thread when the write gate comes free
soon. A long write by something else (an import, a console action) must not freeze the
service meanwhile: a health check is answered while that write is still going on, and the
webhook that arrived during it is stored and answered once the write is done."""

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sandbox.service import free_port
from returnbridge.sources.loop.signature import sign
from returnbridge.store.models import InboundEvent
from returnbridge.store.write_gate import write_gate
from tests.conftest import LOOP_SECRET, LiveApp, make_settings


@pytest.fixture
def sqlite_app(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveApp]:
    path = tmp_path / "returnbridge.db"
    shutil.copyfile(sqlite_template, path)
    port = free_port()
    rt = Runtime.from_settings(make_settings(
        f"sqlite:///{path}", server={"port": port, "public_base_url": f"http://127.0.0.1:{port}"}))
    app = LiveApp(rt)
    app.start()
    yield app
    app.stop()
    rt.close()


def test_a_long_write_elsewhere_holds_webhooks_back_but_not_health_checks(
        sqlite_app: LiveApp) -> None:
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with write_gate(sqlite_app.rt.engine):
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert holding.wait(10)
    answers: dict[str, int] = {}
    body = php_json(return_payload(5151, Scenario("refund", ("TEE-BLK-M",))))

    def deliver() -> None:
        answers["webhook"] = httpx.post(
            f"{sqlite_app.base_url}/webhooks/loop", content=body, timeout=30,
            headers={"X-Loop-Signature": sign(body, LOOP_SECRET),
                     "Content-Type": "application/json"}).status_code

    delivery = threading.Thread(target=deliver)
    try:
        delivery.start()
        time.sleep(0.5)  # the delivery reaches the inbox and waits for the gate
        assert httpx.get(f"{sqlite_app.base_url}/healthz", timeout=5).status_code == 200
        assert "webhook" not in answers  # still waiting for the long write
    finally:
        release.set()
        writer.join(10)
    delivery.join(30)
    assert answers["webhook"] == 200
    with sqlite_app.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 1
