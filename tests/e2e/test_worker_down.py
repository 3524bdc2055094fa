"""A worker child that keeps dying is reported to ops, on the console's API and by e-mail
from ``serve`` itself (the alert cycle normally runs in the worker), while webhooks are
still stored; once a worker stays up, the stored events are applied and the exception
resolves itself."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from returnbridge.sandbox.demo import API_TOKEN, LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from tests.alerts._receivers import Mailbox, mail_routes_toml
from tests.e2e.crash_hooks import MODULE, WORKER_EXIT_WHILE, WORKER_STABLE_AFTER
from tests.e2e.test_real_process import wait_for_status

pytestmark = pytest.mark.slow


def _worker_down(api: httpx.Client, status: str) -> list[dict[str, Any]]:
    r = api.get("/api/v1/exceptions", params={"type": "worker_down", "status": status})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["exceptions"]
    return items


def _until(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout  # a bound for a busy machine, not a measurement
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.3)
    return found


def test_a_worker_that_keeps_dying_is_reported_and_resolves_when_it_stays_up(
        db_url: str, tmp_path: Path) -> None:
    mailbox = Mailbox()
    mailbox.start()
    port = free_port()
    config = write_demo_config(tmp_path, port, db_url)
    with config.open("a") as fh:
        fh.write(mail_routes_toml(mailbox))
    dying = tmp_path / "worker-dies"
    dying.write_text("while this file exists", encoding="utf-8")
    service = ServiceProcess(config, port, tmp_path / "service.log", module=MODULE)
    service.start(env={"RB_SERVER__WORKER_MODE": "process", WORKER_EXIT_WHILE: str(dying),
                       WORKER_STABLE_AFTER: "8"})
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    api = httpx.Client(base_url=service.base_url, timeout=10,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})
    try:
        # Webhooks are still answered and kept while the worker is down.
        assert sender.send(return_payload(8301, Scenario("refund", ("TEE-BLK-M",)))
                           ).status_code == 200
        [down] = _until("worker_down on the API", lambda: _worker_down(api, "open"))
        assert down["owner"] == "ops"
        assert "Webhooks are stored but not applied" in down["message"]
        assert "died 3 times" in down["message"]
        assert "exit code 70" in down["message"]
        mail = _until("the worker_down e-mail to ops", lambda: mailbox.to("ops@example.com"))
        assert "worker_down" in str(mail[0]["Subject"])
        assert api.get("/api/v1/returns/LR-8301").status_code == 404  # not applied yet
        metrics = httpx.get(f"{service.base_url}/metrics", timeout=10).text
        exits = next(line for line in metrics.splitlines()
                     if line.startswith("returnbridge_worker_process_exits_total "))
        assert float(exits.split()[1]) >= 3

        dying.unlink()  # the cause is fixed: the next worker stays up
        wait_for_status(service.base_url, "LR-8301", "ready", timeout=90)
        [resolved] = _until("worker_down resolved", lambda: _worker_down(api, "resolved"))
        assert resolved["id"] == down["id"]
        assert _worker_down(api, "open") == []
        metrics = httpx.get(f"{service.base_url}/metrics", timeout=10).text
        assert "returnbridge_worker_process_up 1.0" in metrics
    finally:
        api.close()
        sender.close()
        service.stop()
        mailbox.stop()
