"""SIGKILL between the Shopify refund call and storing its result, then restart: still
exactly one refund, with the worker in threads of ``serve`` and in its child process. A
real ``returnbridge serve`` process (DBOS) against the Shopify sandbox; the Shopify
sandbox's log shows the second call was a replay of the same key."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from returnbridge.flows.refunds.gate import refund_key
from returnbridge.sandbox.demo import (
    API_TOKEN,
    KHAOS_PASSWORD,
    KHAOS_USER,
    ZIGZAG_SECRET,
    write_demo_config,
)
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, journey
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.sources.zigzag.settings import ZigZagSettings
from tests.e2e.crash_hooks import KILL_AFTER_PAYMENT, MARKER, MODULE
from tests.e2e.test_real_process import wait_for_status

pytestmark = pytest.mark.slow



def _config(tmp_path: Path, db_url: str, port: int, shopify: ShopifySandbox) -> Path:
    # The demo's configuration already holds [zigzag], [policy] and the mapping; it adds
    # [shopify] (refund gate every second) when given the sandbox's settings.
    return write_demo_config(tmp_path, port, db_url, shopify=shopify.settings())


@pytest.mark.parametrize("worker_mode", ["thread", "process"])
def test_sigkill_between_refund_call_and_store_still_pays_once(db_url: str, tmp_path: Path,
                                                              worker_mode: str) -> None:
    shopify = ShopifySandbox().start()
    shopify.add_order("100085875", "44.99")
    port = free_port()
    service = ServiceProcess(_config(tmp_path, db_url, port, shopify), port,
                             tmp_path / "service.log", module=MODULE)
    marker = tmp_path / "killed"
    ref = "ZZ-RTN-900"
    key = refund_key(ref)
    try:
        mode = {"RB_SERVER__WORKER_MODE": worker_mode}
        service.start(env={KILL_AFTER_PAYMENT: "1", MARKER: str(marker), **mode})
        sender = ZigZagSender.for_settings(f"{service.base_url}/webhooks/zigzag",
                                           ZigZagSettings(webhook_secret=ZIGZAG_SECRET))
        items = [SampleItem("30D24LRED", unit_price="44.99", unit_tax="7.50")]
        assert all(r.status_code == 200 for r in sender.deliver(
            journey("RTN-900", items, refund_requested=True)))
        sender.close()
        wait_for_status(service.base_url, ref, "ready")
        with httpx.Client(base_url=service.base_url, auth=(KHAOS_USER, KHAOS_PASSWORD),
                          timeout=10) as khaos:
            assert khaos.get("/khaos/returns").status_code == 200
        with httpx.Client(base_url=service.base_url, timeout=10,
                          headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
            r = api.post(f"/api/v1/returns/{ref}/confirm-credit",
                         json={"credit_note_code": "CN000900", "value": "44.99", "by": "finance",
                               "reason": "seen in Khaos"})
            assert r.status_code == 200, r.text
        # The refund gate runs, calls Shopify, and the process running it dies before it
        # stores the refund.
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the fault hook did not fire"
        assert len(shopify.order("#100085875").refunds) == 1
        assert service.proc is not None
        if worker_mode == "thread":  # the whole service died: start it again
            service.proc.wait(30)
            assert len(shopify.refund_calls(key)) == 1
            service.start(env=mode)  # DBOS recovers the workflow, repeats the same key
        else:  # serve kept answering and starts another worker child, which recovers it
            assert int(marker.read_text()) != service.proc.pid
            assert service.proc.poll() is None
        view = wait_for_status(service.base_url, ref, "done", timeout=90)
        calls = shopify.refund_calls(key)
        assert len(calls) == 2 and calls[1].replayed
        assert len(shopify.order("#100085875").refunds) == 1
        (paid,) = [t["message"] for t in view["timeline"]
                   if t["kind"] == "refund" and "in Shopify" in t["message"]]
        (refund,) = shopify.order("#100085875").refunds
        assert f"(refund {refund.id}), tagged with credit note CN000900" in paid
    finally:
        service.stop()
        shopify.stop()
