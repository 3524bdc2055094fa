"""Several ``returnbridge worker`` processes on one database, as on several hosts sharing one
PostgreSQL (docs/operations.md, "How to scale out"): every event applied exactly once, the
events of each return in the order they arrived, and the work shared between the workers.

Each worker is its own process with its own executor id, as a worker on another host is;
``serve --no-worker`` only stores and answers. On PostgreSQL the workers claim with
``SKIP LOCKED`` and wake on ``NOTIFY``; on SQLite they take turns at the write gate."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from returnbridge.sandbox.demo import LOOP_SECRET, write_demo_config
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import normalise_url
from returnbridge.store.models import InboundEvent, ReturnRow, TimelineEntry

pytestmark = pytest.mark.slow

WORKERS = 3
RETURN_IDS = list(range(8201, 8231))  # 30 returns
STEPS = (("return.created", "open"), ("return.updated", "open"), ("return.closed", "closed"))
# Small batches and quick polls, so that three workers have something to share in a test.
WORKER_ENV = {"RB_SERVER__EVENT_BATCH_SIZE": "3", "RB_SERVER__EVENT_POLL_SECONDS": "0.2"}


@contextmanager
def workers(config: Path, logs: Path, count: int) -> Iterator[list[Path]]:
    """``count`` worker processes, each with its own executor id and log; stopped after."""
    procs: list[subprocess.Popen[bytes]] = []
    files = [logs / f"worker-{n}.log" for n in range(1, count + 1)]
    try:
        for n, path in enumerate(files, start=1):
            env = {**os.environ, "RB_CONFIG": str(config), **WORKER_ENV,
                   "RB_SERVER__EXECUTOR_ID": f"host-{n}-worker"}
            with path.open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "returnbridge", "worker"],
                    stdout=log, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 90
        for proc, path in zip(procs, files, strict=True):
            while "worker running" not in path.read_text(errors="replace"):
                assert proc.poll() is None, f"a worker exited: {path.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"a worker did not start: {path}"
                time.sleep(0.1)
        yield files
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _applied_by(log: Path) -> int:
    """Events a worker says it applied (its JSON log lines "events applied")."""
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "events applied":
                total += int(record["count"])
    return total


def _payload(rid: int, trigger: str, state: str) -> dict[str, Any]:
    return return_payload(rid, Scenario("refund", ("TEE-BLK-M",), state=state), trigger=trigger)


def _statuses(db_url: str) -> dict[str, int]:
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            return dict(conn.execute(select(InboundEvent.status, func.count())
                                     .group_by(InboundEvent.status)).all())
    finally:
        engine.dispose()


def _applied(db_url: str) -> tuple[list[int], dict[str, str], dict[str, list[int]],
                                   dict[int, str]]:
    """(attempts per event, state per return, event ids per return in timeline order,
    return id (source's) of each event)"""
    engine = create_engine(normalise_url(db_url))
    try:
        with engine.connect() as conn:
            attempts = list(conn.scalars(select(InboundEvent.attempts)))
            events = dict(conn.execute(select(InboundEvent.id, InboundEvent.source_ref)).all())
            states = dict(conn.execute(select(ReturnRow.source_return_id, ReturnRow.state)).all())
            order: dict[str, list[int]] = {}
            for rid, evidence in conn.execute(
                    select(ReturnRow.source_return_id, TimelineEntry.evidence)
                    .join(ReturnRow, ReturnRow.id == TimelineEntry.return_id)
                    .where(TimelineEntry.kind == "event").order_by(TimelineEntry.id)):
                order.setdefault(rid, []).append(int(evidence["event_id"]))
    finally:
        engine.dispose()
    return attempts, states, order, events


def test_workers_on_several_hosts_apply_every_event_once_in_order_and_share_the_work(
        db_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_demo_config(tmp_path, port, db_url)
    service = ServiceProcess(config, port, tmp_path / "service.log", "--no-worker")
    service.start()
    try:
        with workers(config, tmp_path, WORKERS) as logs:
            sender = LoopSender(f"{service.base_url}/webhooks/loop", LOOP_SECRET)
            try:
                for trigger, state in STEPS:  # each return's events arrive in this order
                    for rid in RETURN_IDS:
                        assert sender.send(_payload(rid, trigger, state)).status_code == 200
            finally:
                sender.close()
            expected = len(RETURN_IDS) * len(STEPS)
            deadline = time.monotonic() + 120
            while (statuses := _statuses(db_url)) != {"processed": expected}:
                assert time.monotonic() < deadline, f"not all applied: {statuses}"
                time.sleep(0.2)
            per_worker = [_applied_by(path) for path in logs]
    finally:
        service.stop()

    attempts, states, order, events = _applied(db_url)
    assert attempts == [1] * expected  # each applied once: no retry, no second apply
    assert states == {str(rid): "closed" for rid in RETURN_IDS}  # the last event won
    assert len(order) == len(RETURN_IDS)
    for rid, applied in order.items():
        assert len(applied) == len(STEPS), (rid, applied)
        assert applied == sorted(applied), f"return {rid}: events applied out of order"
        assert {events[e] for e in applied} == {rid}
    # The work was shared, and the workers' own counts add up to every event, once.
    assert sum(per_worker) == expected, per_worker
    assert sum(1 for n in per_worker if n) >= 2, per_worker
