"""The service as users run it: a real ``returnbridge serve`` process with DBOS."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from returnbridge.sandbox.demo import (
    API_TOKEN,
    KHAOS_PASSWORD,
    KHAOS_USER,
    LOOP_SECRET,
    write_demo_config,
)
from returnbridge.sandbox.khaos.poller import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port

pytestmark = pytest.mark.slow


def write_config(directory: Path, db_url: str, port: int) -> Path:
    return write_demo_config(directory, port, db_url)


def wait_for_status(base_url: str, ref: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    view: dict = {}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"},
                      timeout=5) as api:
        while time.monotonic() < deadline:
            r = api.get(f"/api/v1/returns/{ref}")
            if r.status_code == 200:
                view = r.json()
                if view["khaos_status"] == status:
                    return view
            time.sleep(0.2)
    raise AssertionError(f"{ref} did not reach {status} within {timeout}s; last view {view}")


def test_sigkill_right_after_the_200_then_restart_serves_the_return_once(
        db_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, db_url, port)
    service = ServiceProcess(config, port, tmp_path / "service.log")
    service.start()
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    payload = return_payload(4242, Scenario("refund", ("TEE-BLK-M", "TEE-BLK-M")))
    try:
        assert sender.send(payload).status_code == 200
        service.kill()  # no graceful shutdown: the event is stored, its processing may not be

        service.start()
        assert sender.send(payload).status_code == 200  # Loop's retry after the "outage"
        view = wait_for_status(service.base_url, "LR-4242", "ready")
        assert sum(ln["quantity"] for ln in view["lines"]) == 2
        assert len([t for t in view["timeline"] if t["kind"] == "event"]) == 1

        khaos = KhaosSandbox(f"{service.base_url}/khaos/config.json", KHAOS_USER,
                             KHAOS_PASSWORD, catalogue=set(CATALOGUE), customers={"LOOPWEB"})
        assert khaos.poll() == 1
        service.kill()
        service.start()
        assert khaos.poll() == 0  # nothing is served a second time, even after a crash
        view = wait_for_status(service.base_url, "LR-4242", "served")
        assert len(view["khaos_deliveries"]) == 1
        assert list(khaos.imported) == ["LR-4242"] and not khaos.failures
    finally:
        sender.close()
        service.stop()


def test_serve_refuses_an_unmigrated_database(empty_db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, empty_db_url, free_port())
    result = subprocess.run(
        [sys.executable, "-m", "returnbridge", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "has not been set up yet" in result.stderr
    assert "returnbridge migrate" in result.stderr


def test_demo_exits_zero_and_shows_khaos_imports() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "returnbridge", "demo"], capture_output=True, text=True,
        timeout=120, check=False, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # refund, exchange, multi-unit, store credit, closed, keep item (Loop) and three ZigZag
    # returns are imported; the cancelled Loop return is never sent.
    assert "the Khaos sandbox imported 9 and refused 0" in out
    assert "imported, credit note CN0000" in out
    assert "desktop SOAP sweep: 9 credit note(s) confirmed" in out
    # Money safety: a partial request is paid as asked, store credit is never a card
    # refund, a goodwill refund holds the refund while the stock still moves.
    assert "ZigZag asked for 80.00 GBP -> 1 Shopify refund(s) of 80.00 GBP" in out
    assert "[returnbridge-refund-ZZ-RTN-000123]" in out
    assert "44.99 GBP credited to the customer's Shopify store credit, 0 card refund(s)" in out
    assert "refund held for finance (duplicate_refund_suspected, owner finance)" in out
    assert "stock moved in Khaos: True" in out
    assert "30D24LRED: 10 before, 13 after" in out
    assert out.rstrip().endswith("All checks passed.")
