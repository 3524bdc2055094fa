"""A worker killed in the middle of a batch: nothing lost, nothing applied twice; the
worker in threads of ``serve`` and in its child process ([server].worker_mode)."""

import os
import signal
import time
from contextlib import suppress
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from returnbridge.sandbox.demo import LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import normalise_url
from returnbridge.store.models import InboundEvent, ReturnRow, TimelineEntry
from tests.e2e.crash_hooks import MARKER, MODULE, PAUSE_MID_BATCH_AFTER

pytestmark = pytest.mark.slow

RETURN_IDS = [7101, 7102, 7103, 7104, 7105, 7106]


def _state(db_url: str) -> tuple[dict[str, int], int, dict[int, int], list[int]]:
    """(events per status, returns, event timeline entries per return, attempts per event)"""
    # A plain engine: a reader that never asks for SQLite's write lock (the paused batch
    # holds it).
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(InboundEvent.status, func.count())
                                         .group_by(InboundEvent.status)).all())
            returns = conn.scalar(select(func.count()).select_from(ReturnRow)) or 0
            timeline = dict(conn.execute(
                select(TimelineEntry.return_id, func.count())
                .where(TimelineEntry.kind == "event").group_by(TimelineEntry.return_id)).all())
            attempts = list(conn.scalars(select(InboundEvent.attempts)
                                         .order_by(InboundEvent.id)))
    finally:
        engine.dispose()
    return statuses, returns, timeline, attempts


@pytest.mark.parametrize("worker_mode", ["thread", "process"])
def test_sigkill_in_the_middle_of_a_batch_loses_nothing_and_applies_nothing_twice(
        db_url: str, tmp_path: Path, worker_mode: str) -> None:
    port = free_port()
    config = write_demo_config(tmp_path, port, db_url)
    # 1. Store the events without applying them, so the next worker takes them as one batch.
    service = ServiceProcess(config, port, tmp_path / "service.log", "--no-worker")
    service.start()
    sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        for rid in RETURN_IDS:
            payload = return_payload(rid, Scenario("refund", ("TEE-BLK-M",)))
            assert sender.send(payload).status_code == 200
    finally:
        sender.close()
        service.stop()
    assert _state(db_url)[0] == {"received": len(RETURN_IDS)}

    # 2. A worker that stops after applying 3 events of its batch, before the commit: kill it.
    marker = tmp_path / "paused"
    service = ServiceProcess(config, port, tmp_path / "service.log", module=MODULE)
    # (Not waiting for readiness: on SQLite the open batch holds the only write lock.)
    mode = {"RB_SERVER__WORKER_MODE": worker_mode}
    service.start(env={PAUSE_MID_BATCH_AFTER: "3", MARKER: str(marker), **mode}, wait=False)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert time.monotonic() < deadline, "the worker never reached the middle of a batch"
            time.sleep(0.1)
        statuses, returns, _, attempts = _state(db_url)
        # Three events are applied inside the open transaction; none of it is visible.
        assert statuses == {"received": len(RETURN_IDS)} and returns == 0
        assert attempts == [0] * len(RETURN_IDS)
    finally:
        # SIGKILL mid-batch: the process that paused (serve, or its worker child) and
        # serve itself (never leave a paused process behind).
        if marker.exists():
            with suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
        service.kill()

    # 3. Restart: every event applied exactly once.
    service.start(env=mode)
    try:
        deadline = time.monotonic() + 120
        while (statuses := _state(db_url)[0]) != {"processed": len(RETURN_IDS)}:
            assert time.monotonic() < deadline, f"events not all processed: {statuses}"
            time.sleep(0.2)
        _, returns, timeline, attempts = _state(db_url)
        assert returns == len(RETURN_IDS)
        assert sorted(timeline.values()) == [1] * len(RETURN_IDS)  # one event entry each
        assert attempts == [1] * len(RETURN_IDS)  # the killed try left no trace
    finally:
        service.stop()
