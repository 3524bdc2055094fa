"""Shared helpers for the stored-events tests: a live app with ZigZag configured, sending
ZigZag webhooks over HTTP, and a real database refusal to make processing fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.store.models import ExceptionRow, InboundEvent, ReturnRow
from tests.conftest import API_TOKEN, LiveApp, start_live_app
from tests.zigzag._support import fixture

SECRET = "zz-events-secret"
ZIGZAG = {"retailer_code": "GL123", "webhook_secret": SECRET}


def zigzag_app(factory: Callable[..., Runtime]) -> LiveApp:
    return start_live_app(factory, zigzag=ZIGZAG, api={"metrics_public": True})


def send(app: LiveApp, body: bytes) -> int:
    sender = ZigZagSender(f"{app.base_url}/webhooks/zigzag", secret=SECRET)
    try:
        response = sender.send_raw(body)
    finally:
        sender.close()
    assert response.status_code == 200, response.text
    return int(response.json()["event_id"])


def zigzag_body(name: str, **changes: Any) -> bytes:
    payload = json.loads(fixture(name))
    payload.update(changes)
    return json.dumps(payload).encode()


def write_config(path: Path, db_url: str) -> Path:
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n[zigzag]\nretailer_code = "GL123"\n'
        f'webhook_secret = "{SECRET}"\n\n[api]\ntokens = ["{API_TOKEN}"]\n\n'
        '[[mapping.reasons]]\nreason = "*damaged*"\nkhaos_reason_id = "7"\n'
        'processing = "write_off"\n\n'
        '[[mapping.reasons]]\nkhaos_reason_id = "6"\nprocessing = "restock"\n',
        encoding="utf-8")
    return path


def refuse_evidence(rt: Runtime) -> None:
    """The database refuses evidence timeline rows: processing graded/received events fails
    with a real database error (as a full disk or a broken migration would)."""
    with rt.engine.begin() as conn:
        if rt.engine.dialect.name == "sqlite":
            conn.execute(text(
                "CREATE TRIGGER rb_refuse_evidence BEFORE INSERT ON timeline "
                "WHEN NEW.kind = 'evidence' BEGIN "
                "SELECT RAISE(ABORT, 'timeline refuses evidence (test)'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION rb_refuse_evidence() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'timeline refuses evidence (test)'; END $$ "
                "LANGUAGE plpgsql"))
            conn.execute(text(
                "CREATE TRIGGER rb_refuse_evidence BEFORE INSERT ON timeline FOR EACH ROW "
                "WHEN (NEW.kind = 'evidence') EXECUTE FUNCTION rb_refuse_evidence()"))


def allow_evidence(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        if rt.engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER rb_refuse_evidence"))
        else:
            conn.execute(text("DROP TRIGGER rb_refuse_evidence ON timeline"))
            conn.execute(text("DROP FUNCTION rb_refuse_evidence()"))


def event(rt: Runtime, event_id: int) -> InboundEvent:
    with rt.sessions() as session:
        row = session.get(InboundEvent, event_id)
        assert row is not None
        session.expunge(row)
        return row


def the_return(rt: Runtime, ref: str = "RTN-000123") -> ReturnRow:
    with rt.sessions() as session:
        row = session.scalars(select(ReturnRow).where(ReturnRow.source_return_id == ref)).one()
        session.expunge(row)
        return row


def exceptions_of_type(rt: Runtime, type_: str) -> list[ExceptionRow]:
    with rt.sessions() as session:
        rows = list(session.scalars(select(ExceptionRow).where(ExceptionRow.type == type_)))
        for row in rows:
            session.expunge(row)
        return rows
