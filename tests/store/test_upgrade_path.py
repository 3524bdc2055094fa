"""An upgrade from every earlier schema revision, with data, on SQLite and PostgreSQL
(docs/operations.md, "Upgrading"): what was stored before is still there and usable after
'returnbridge migrate' brings the database to head."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, column, insert, select, table
from sqlalchemy.types import JSON, Boolean, DateTime, Integer, LargeBinary, String, Text

from returnbridge.composition import Settings
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.store import audit
from returnbridge.store.audit import AuditLog
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import current_revision, head_revision, upgrade
from returnbridge.store.models import ReturnRow

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

_events = table(
    "inbound_events", column("source", String), column("channel", String),
    column("topic", String), column("trigger", String), column("dedupe_key", String),
    column("source_ref", String), column("received_at", DateTime(timezone=True)),
    column("headers", JSON), column("body", LargeBinary), column("body_sha256", String),
    column("status", String), column("error", Text), column("duplicates", Integer))
_returns = table(
    "returns", column("associated_ref", String), column("source", String),
    column("source_return_id", String), column("order_ref", String),
    column("customer_email", String), column("currency", String), column("state", String),
    column("source_state", String), column("khaos_status", String), column("khaos_urn", String),
    column("process_return", Boolean), column("first_seen_at", DateTime(timezone=True)),
    column("last_event_at", DateTime(timezone=True)), column("wait_reason", String),
    column("case_json", JSON), column("credit_note_code", String))
_audit = table(
    "audit_log", column("at", DateTime(timezone=True)), column("actor", String),
    column("action", String), column("subject", String), column("details", JSON),
    column("prev_hash", String), column("hash", String))


def _seed_old_schema(engine: Engine) -> bytes:
    """Rows as an older version wrote them (only columns every revision has)."""
    body = php_json(return_payload(4711, Scenario("refund", ("TEE-BLK-M",))))
    prev = audit.GENESIS
    with engine.begin() as conn:
        conn.execute(insert(_events).values(
            source="loop", channel="webhook", topic="return", trigger="return.created",
            dedupe_key=hashlib.sha256(body).hexdigest(), source_ref="4711", received_at=NOW,
            headers={"content-type": "application/json"}, body=body,
            body_sha256=hashlib.sha256(body).hexdigest(), status="received", error="",
            duplicates=0))
        conn.execute(insert(_returns).values(
            associated_ref="LR-OLD-1", source="loop", source_return_id="OLD-1",
            order_ref="#1", customer_email="old@example.co.uk", currency="GBP", state="closed",
            source_state="closed", khaos_status="credit_confirmed", khaos_urn="LOOPWEB",
            process_return=False, first_seen_at=NOW, last_event_at=NOW, wait_reason="",
            case_json={}, credit_note_code="CN000001"))
        for i in range(3):
            details = {"why": f"old entry {i}"}
            digest = audit._digest(prev, NOW.isoformat(), "ann", "exception.resolve",
                                   f"exception:{i}", details)
            conn.execute(insert(_audit).values(
                at=NOW, actor="ann", action="exception.resolve", subject=f"exception:{i}",
                details=details, prev_hash=prev, hash=digest))
            prev = digest
    return body


@pytest.mark.parametrize("start", ["0001", "0002"])
def test_upgrade_from_every_earlier_revision_keeps_data_usable(empty_db_url: str,
                                                               start: str) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine, start)
    assert current_revision(engine) == start
    _seed_old_schema(engine)
    before, after = upgrade(engine)
    assert (before, after) == (start, head_revision())
    engine.dispose()

    rt = Runtime.from_settings(Settings(  # type: ignore[arg-type]
        database={"url": empty_db_url},
        loop={"webhook_secrets": ["s"], "fallback_customer_urn": "LOOPWEB"},
        mapping={"reasons": [{"khaos_reason_id": "6", "processing": "restock"}]}))
    try:
        with rt.sessions() as s:
            old = s.scalars(select(ReturnRow).where(
                ReturnRow.associated_ref == "LR-OLD-1")).one()
            assert (old.credit_note_code, old.first_seen_via) == ("CN000001", "webhook")
            checked = audit.verify(s)
        assert checked.problems == [] and checked.rows == 3
        # An event stored by the old version but never applied is applied by the new one.
        with rt.sessions() as s:
            from returnbridge.store.models import InboundEvent

            event_id = s.scalars(select(InboundEvent.id)).one()
        assert apply_event(rt, event_id).status == "processed"
        view = return_view(rt, "LR-4711")
        assert view is not None and [line["sku"] for line in view["lines"]] == ["TEE-BLK-M"]
        # New audit entries chain onto the old ones and keep the anchor right.
        with rt.sessions() as s, s.begin():
            AuditLog(s).record(actor="upgrade-test", action="check")
        with rt.sessions() as s:
            again = audit.verify(s)
        assert again.problems == [] and again.rows == 4
        assert json.loads(json.dumps(view["lines"][0]["unit_gross"])) is not None
    finally:
        rt.close()
