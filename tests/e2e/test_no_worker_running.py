"""``serve --no-worker`` with no worker anywhere: the jobs never run, so ``serve`` itself
opens ``schedule_not_running`` for ops and, since the alert cycle is one of the late jobs,
e-mails it (nothing else would)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from returnbridge.sandbox.demo import API_TOKEN, write_demo_config
from returnbridge.sandbox.service import ServiceProcess, free_port
from tests.alerts._receivers import Mailbox, mail_routes_toml
from tests.e2e.crash_hooks import MODULE, SCHEDULE_WATCH_SECONDS

pytestmark = pytest.mark.slow


def _open(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.get("/api/v1/exceptions", params={"type": "schedule_not_running"})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["exceptions"]
    return found


def test_serve_reports_and_alerts_when_no_worker_runs_the_jobs(db_url: str,
                                                               tmp_path: Path) -> None:
    mailbox = Mailbox()
    mailbox.start()
    port = free_port()
    config = write_demo_config(tmp_path, port, db_url)
    with config.open("a") as fh:
        fh.write(mail_routes_toml(mailbox, interval_seconds=5))
    service = ServiceProcess(config, port, tmp_path / "service.log", "--no-worker",
                             module=MODULE)
    service.start(env={SCHEDULE_WATCH_SECONDS: "1"})
    api = httpx.Client(base_url=service.base_url, timeout=10,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})
    try:
        deadline = time.monotonic() + 90  # a bound for a busy machine, not a measurement
        while not (mail := mailbox.to("ops@example.com")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert mail, "no e-mail to ops"
        assert "schedule_not_running" in str(mail[0]["Subject"])
        late = {e["details"]["job"]: e for e in _open(api)}
        assert "alerts" in late
        assert late["alerts"]["owner"] == "ops"
        assert "has not completed since" in late["alerts"]["message"]
        time.sleep(3)  # more checks: the same exception, not a second one
        assert [e["id"] for e in _open(api) if e["details"]["job"] == "alerts"] == [
            late["alerts"]["id"]]
    finally:
        api.close()
        service.stop()
        mailbox.stop()
