"""One batch of the event worker with a good event, an unreadable one and another good one:
the good ones are applied, the unreadable one is kept as ``invalid`` with its
``payload_invalid`` exception and counted in the metrics, and every event's try is counted
once (with its outcome, in the same transaction)."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.worker import EventWorker
from returnbridge.metrics import REGISTRY
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store.events import store_event
from returnbridge.store.models import ExceptionRow, InboundEvent, ReturnRow


def _invalid_count() -> float:
    return REGISTRY.get_sample_value("returnbridge_events_applied_total",
                                     {"source": "loop", "outcome": "invalid"}) or 0.0


def test_a_batch_applies_the_good_and_keeps_the_unreadable(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory()
    bodies = [json.dumps(return_payload(4101, Scenario("refund", ("TEE-BLK-M",)))).encode(),
              json.dumps({**return_payload(4102, Scenario("refund", ("TEE-BLK-M",))),
                          "id": {"not": "text"}}).encode(),
              json.dumps(return_payload(4103, Scenario("refund", ("TEE-BLK-M",)))).encode()]
    ids = [store_event(rt.sessions, source="loop", body=b, headers={}).event_id
           for b in bodies]
    invalid_before = _invalid_count()

    worker = EventWorker(rt, batch_seconds=60.0)  # one batch takes all three
    assert worker.run_batch() == 3
    assert worker.run_batch() == 0

    with rt.unit_of_work() as uow:
        events = {e.id: e for e in uow.session.scalars(select(InboundEvent))}
        refs = set(uow.session.scalars(select(ReturnRow.associated_ref)))
        (problem,) = uow.session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == "payload_invalid"))
    assert [events[i].status for i in ids] == ["processed", "invalid", "processed"]
    assert [events[i].attempts for i in ids] == [1, 1, 1]
    assert refs == {"LR-4101", "LR-4103"}
    assert problem.details["event_id"] == str(ids[1])
    assert f"events show {ids[1]}" in problem.next_action
    assert _invalid_count() == invalid_before + 1
