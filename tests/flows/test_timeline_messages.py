"""Timeline and exception messages on the money path never end in an empty placeholder
("tagged with credit note ", "not released yet: "): a tired reader must see every code."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.flows.confirm.by_hand import confirm_credit
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.actions import resolve
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.ingest.events import record_failure, replay_event
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store.events import store_event
from returnbridge.store.models import ExceptionRow, ReturnRow, TimelineEntry
from returnbridge.store.returns_repo import ReturnsRepository
from tests.events._support import allow_evidence, refuse_evidence, zigzag_body

# Text that ends where a value should follow: a separator, an opening bracket, a word that
# announces a code or name, an empty quote or bracket pair, or trailing whitespace.
DANGLING = re.compile(
    r"(\s$|[:=(,]\s*$|\b(?:for|with|of|by|to|at|from|note|code|ref|reference|urn|sku|id|"
    r"number|refund)$|\s\(\s*\)|''|\"\"|:\s*[.;,)])", re.IGNORECASE)


def dangling(message: str) -> bool:
    return bool(DANGLING.search(message))


def test_the_detector_catches_the_known_shapes() -> None:
    assert dangling("refunded 10.00 GBP in Shopify (refund 123), tagged with credit note ")
    assert dangling("pending -> ready: ")
    assert dangling("served; credit note ()")
    assert not dangling("pending -> ready: validated; waiting for Khaos to fetch it")
    assert not dangling("credit note CN-1 for 10.00 (operator: checked)")


def _ingest(rt: Runtime, source: str, body: bytes, **kw: str) -> int:
    stored = store_event(rt.sessions, source=source, body=body, headers={}, **kw)
    apply_event(rt, stored.event_id)
    return stored.event_id


def test_money_path_messages_have_no_empty_placeholders(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(zigzag={"retailer_code": "GL123"})
    loop = lambda p: _ingest(rt, "loop", json.dumps(p).encode())  # noqa: E731
    refund = return_payload(301, Scenario("refund", ("TEE-BLK-M", "JEAN-IND-32")))
    loop(refund)
    loop(return_payload(302, Scenario("exchange", ("JEAN-IND-32",))))
    unmapped = return_payload(303, Scenario("refund", ("TEE-BLK-M",)))
    unmapped["line_items"][0]["return_reason"] = "Arrived on the wrong planet"
    rt_strict = runtime_factory(mapping={"reasons": [
        {"reason": "Too small", "khaos_reason_id": "6", "processing": "restock"}]})
    _ingest(rt_strict, "loop", json.dumps(unmapped).encode())
    cancelled = {**copy.deepcopy(return_payload(304, Scenario("refund", ("TEE-BLK-M",)))),
                 "trigger": "return.updated", "state": "cancelled"}
    loop(cancelled)
    serve_page(rt, continuation="2019-12-31 12:00:00Z")
    confirm_credit(rt, "LR-301", "CN-301", Decimal("10.00"), "finance", "checked in Khaos")
    # Changed at Loop after the handover: status_drift with what was sent and what is now.
    changed = {**copy.deepcopy(refund), "trigger": "return.updated", "state": "closed"}
    changed["line_items"] = changed["line_items"][:1]
    loop(changed)
    # ZigZag: a journey, a failure and its replay.
    zz = lambda name: _ingest(rt, "zigzag", zigzag_body(name), source_ref="RTN-000123")  # noqa: E731
    zz("return_created.json")
    refuse_evidence(rt)
    graded = store_event(rt.sessions, source="zigzag", body=zigzag_body("return_graded.json"),
                         headers={}, source_ref="RTN-000123").event_id
    with pytest.raises(DBAPIError):  # the database refuses: the try fails
        apply_event(rt, graded)
    record_failure(rt, graded, "retries exhausted")
    allow_evidence(rt)
    replay_event(rt, graded, "ops-person", "dropped the trigger")
    with rt_strict.sessions() as session:
        held = session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == "unmapped_return_reason")).first()
    assert held is not None
    resolve(rt, held.id, "ops-person", "mapped by hand")

    with rt.sessions() as session:
        lines = [(t.kind, t.message) for t in session.scalars(select(TimelineEntry))]
        problems = [(e.type, e.message) for e in session.scalars(select(ExceptionRow))]
        row = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == "LR-301")
                              ).one()
        ReturnsRepository(session).set_khaos_status(row, KhaosStatus.DONE, "")
        session.flush()
        last = list(ReturnsRepository(session).timeline(row.id))[-1].message
    kinds = {kind for kind, _ in lines}
    assert {"event", "khaos_status", "evidence", "event_failed", "event_replay",
            "exception_resolved"} <= kinds, kinds
    assert {"status_drift", "event_failed", "unmapped_return_reason"} <= {t for t, _ in problems}
    assert [m for _, m in lines if dangling(m)] == []
    assert [m for _, m in problems if dangling(m)] == []
    assert last == "credit_confirmed -> done"  # no reason given: no dangling ": "
