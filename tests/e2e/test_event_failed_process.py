"""A real ``returnbridge serve`` process with DBOS: an event whose processing keeps failing
ends as one ``event_failed`` exception and on /metrics; a replay over the API applies it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from returnbridge.composition import Settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.demo import API_TOKEN, ZIGZAG_SECRET, write_demo_config
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from tests.events._support import allow_evidence, refuse_evidence, zigzag_body

pytestmark = pytest.mark.slow


def _wait(api: httpx.Client, path: str, ready: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = api.get(path).json()
        if ready(last):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{path} did not get there within {timeout}s; last answer {last}")


def test_retries_exhausted_then_replayed(db_url: str, tmp_path: Path) -> None:
    rt = Runtime.from_settings(Settings(database={"url": db_url}))  # type: ignore[arg-type]
    port = free_port()
    service = ServiceProcess(write_demo_config(tmp_path, port, db_url), port,
                             tmp_path / "service.log")
    service.start()
    sender = ZigZagSender(f"{service.base_url}/webhooks/zigzag", secret=ZIGZAG_SECRET)
    api = httpx.Client(base_url=service.base_url, timeout=10,
                       headers={"Authorization": f"Bearer {API_TOKEN}"})
    try:
        assert sender.send_raw(zigzag_body("return_created.json")).status_code == 200
        _wait(api, "/api/v1/events?status=processed", lambda r: r["total"] == 1)
        refuse_evidence(rt)
        graded = sender.send_raw(zigzag_body("return_graded.json")).json()["event_id"]

        failed = _wait(api, "/api/v1/exceptions?type=event_failed",
                       lambda r: r["total"] == 1)["exceptions"][0]
        assert failed["details"]["event_id"] == str(graded)
        assert failed["associated_ref"] == "ZZ-RTN-000123"
        assert "timeline refuses evidence" in failed["message"]
        shown = api.get(f"/api/v1/events/{graded}").json()
        assert shown["status"] == "failed" and shown["attempts"] == 5
        metrics = httpx.get(f"{service.base_url}/metrics", timeout=10).text
        assert 'returnbridge_failed_events{source="zigzag"} 1.0' in metrics

        allow_evidence(rt)
        replayed = api.post(f"/api/v1/events/{graded}/replay",
                            json={"by": "ops-on-call", "why": "database fixed"}).json()
        assert replayed["outcome"] == "processed"
        assert replayed["resolved_exceptions"] == [failed["id"]]
        assert api.get("/api/v1/exceptions?type=event_failed").json()["total"] == 0
        view = api.get("/api/v1/returns/ZZ-RTN-000123").json()
        assert (view["state"], view["source_state"]) == ("inspected", "ReturnGraded")
    finally:
        api.close()
        sender.close()
        service.stop()
        rt.close()
