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


def test_a_batch_finds_returns_stored_earlier_and_creates_new_ones_once(
        runtime_factory: Callable[..., Runtime]) -> None:
    """The worker reads a batch's returns in one query: a later event of a stored return
    updates that row, a new return gets one row, and nothing is applied twice."""
    rt = runtime_factory()
    first = return_payload(4201, Scenario("refund", ("TEE-BLK-M",)))
    store_event(rt.sessions, source="loop", body=json.dumps(first).encode(), headers={})
    worker = EventWorker(rt, batch_seconds=60.0)
    assert worker.run_batch() == 1
    closed = return_payload(4201, Scenario("refund", ("TEE-BLK-M",), state="closed"),
                            trigger="return.closed")
    closed["updated_at"] = "2099-01-01T00:00:00+00:00"
    bodies = [closed, return_payload(4202, Scenario("refund", ("TEE-BLK-M",)))]
    ids = [store_event(rt.sessions, source="loop", body=json.dumps(b).encode(),
                       headers={}).event_id for b in bodies]
    assert worker.run_batch() == 2

    with rt.unit_of_work() as uow:
        statuses = list(uow.session.scalars(select(InboundEvent.status).where(
            InboundEvent.id.in_(ids)).order_by(InboundEvent.id)))
        rows = {r.associated_ref: r for r in uow.session.scalars(select(ReturnRow))}
    assert statuses == ["processed", "processed"]
    assert sorted(rows) == ["LR-4201", "LR-4202"]
    assert rows["LR-4201"].state == "closed"
    assert rows["LR-4202"].state == "requested"


def _lines(rt: Runtime, ref: str) -> list[tuple[int, str, int]]:
    with rt.unit_of_work() as uow:
        row = uow.session.scalars(select(ReturnRow).where(
            ReturnRow.associated_ref == ref)).one()
        return [(line.id, line.sku, line.quantity) for line in row.lines]


def test_an_update_keeps_unchanged_lines_and_replaces_changed_ones(
        runtime_factory: Callable[..., Runtime]) -> None:
    """Most updates of a return (a label, a note) leave its lines as they were: they are not
    rewritten. An update that changes them writes the new ones."""
    rt = runtime_factory()
    worker = EventWorker(rt, batch_seconds=60.0)

    def apply(skus: tuple[str, ...], edited: str) -> None:
        body = return_payload(4301, Scenario("refund", skus),
                              trigger="return.updated" if edited else "return.created")
        body["edited_at"] = edited or None
        store_event(rt.sessions, source="loop", body=json.dumps(body).encode(), headers={})
        assert worker.run_batch() == 1

    apply(("TEE-BLK-M",), "")
    created = _lines(rt, "LR-4301")
    assert [(sku, qty) for _, sku, qty in created] == [("TEE-BLK-M", 1)]
    apply(("TEE-BLK-M",), "2026-11-21T12:00:00+00:00")  # nothing about the items changed
    assert _lines(rt, "LR-4301") == created
    apply(("TEE-BLK-M", "JEAN-IND-32"), "2026-11-22T12:00:00+00:00")  # an item added
    changed = _lines(rt, "LR-4301")
    assert sorted((sku, qty) for _, sku, qty in changed) == [("JEAN-IND-32", 1),
                                                             ("TEE-BLK-M", 1)]
    with rt.unit_of_work() as uow:
        statuses = set(uow.session.scalars(select(InboundEvent.status)))
    assert statuses == {"processed"}
