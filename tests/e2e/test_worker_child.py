"""``serve`` with its workflows in a child process ([server].worker_mode = "process"): events
stored by serve wake the child, a child that dies is replaced and the replacement carries
on, and a child whose serve dies (even SIGKILL) stops by itself."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from returnbridge.sandbox.demo import LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, alive, children, free_port
from returnbridge.store.db import normalise_url
from returnbridge.store.models import ReturnRow

pytestmark = pytest.mark.slow


def _until(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.2)


def _ready_refs(db_url: str) -> set[str]:
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            return set(conn.scalars(select(ReturnRow.associated_ref)
                                    .where(ReturnRow.khaos_status == "ready")))
    finally:
        engine.dispose()


def test_worker_child_applies_is_replaced_and_follows_serve(db_url: str,
                                                            tmp_path: Path) -> None:
    port = free_port()
    service = ServiceProcess(write_demo_config(tmp_path, port, db_url), port,
                             tmp_path / "service.log")
    service.start(env={"RB_SERVER__WORKER_MODE": "process"})
    assert service.proc is not None
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        (first,) = children(service.proc.pid)
        assert sender.send(return_payload(8101, Scenario("refund", ("TEE-BLK-M",)))
                           ).status_code == 200
        _until("the first return applied", lambda: "LR-8101" in _ready_refs(db_url))

        os.kill(first, signal.SIGKILL)  # the worker dies; serve answers and replaces it
        _until("a new worker child", lambda: children(service.proc.pid) not in ([], [first]))
        (second,) = children(service.proc.pid)
        assert sender.send(return_payload(8102, Scenario("refund", ("TEE-BLK-M",)))
                           ).status_code == 200
        _until("the second return applied", lambda: "LR-8102" in _ready_refs(db_url))

        service.kill()  # SIGKILL serve: its child sees the pipe close and stops
        _until("the orphaned worker child to stop", lambda: not alive(second))
    finally:
        sender.close()
        service.stop()
