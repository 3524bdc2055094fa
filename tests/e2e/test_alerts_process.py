"""Alerts from a real ``returnbridge serve`` process: the scheduled job (a DBOS workflow)
finds a new exception and e-mails the owning team through a local SMTP server."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.service import ServiceProcess, free_port
from returnbridge.store.db import make_engine
from returnbridge.store.models import JobRun, utcnow
from tests.alerts._receivers import Mailbox, mail_routes_toml
from tests.e2e.test_real_process import write_config

pytestmark = pytest.mark.slow


def _wait_for_alert_run_after(db_url: str, moment: datetime) -> None:
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with Session(engine) as session:
                run = session.get(JobRun, "alerts")
                if run is not None and run.last_success_at and run.last_success_at > moment:
                    return
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError("the alerts job did not run again")


def test_the_worker_mails_a_new_exception_to_its_owner_once(db_url: str,
                                                            tmp_path: Path) -> None:
    mailbox = Mailbox()
    mailbox.start()
    port = free_port()
    config = write_config(tmp_path, db_url, port)
    with config.open("a") as fh:
        fh.write(mail_routes_toml(mailbox, ("ops", "cx"), interval_seconds=5))
    service = ServiceProcess(config, port, tmp_path / "service.log")
    sender = LoopSender(f"{service.base_url}/webhooks/loop", "not-the-secret")
    try:
        service.start()
        payload = return_payload(5151, Scenario("refund", ("TEE-BLK-M",)))
        assert sender.send(payload).status_code == 401  # -> signature_invalid, owner ops
        deadline = time.monotonic() + 90  # a bound for a busy machine, not a measurement
        while not mailbox.to("ops@example.com") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sender.send(payload).status_code == 401  # the same problem again
        _wait_for_alert_run_after(db_url, utcnow())  # a later run: still no second mail
        ops = mailbox.to("ops@example.com")
        assert len(ops) == 1, [str(m["Subject"]) for m in ops]
        assert "signature_invalid" in str(ops[0]["Subject"])
        assert "Next action (ops)" in Mailbox.text(ops[0])
        assert mailbox.to("cx@example.com") == []
    finally:
        sender.close()
        service.stop()
        mailbox.stop()
