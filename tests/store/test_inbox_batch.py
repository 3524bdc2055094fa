"""Group commit stores a batch in one statement: fresh events get new ids, a copy (already
stored, or earlier in the same batch) is answered as a duplicate naming the stored event,
and the stored row counts every copy."""

from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.inbox import NewEvent, store_events
from returnbridge.store.models import InboundEvent


def _event(key: str, body: bytes = b"{}") -> NewEvent:
    return NewEvent(source="loop", body=body, headers={"x-loop-topic": "return"},
                    dedupe_key=key, topic="return", trigger="return.created", source_ref=key)


def test_a_batch_answers_each_event_in_order_and_counts_copies(runtime: Runtime) -> None:
    [earlier] = store_events(runtime.sessions, [_event("R-3")])
    out = store_events(runtime.sessions, [_event("R-1"), _event("R-2"), _event("R-1"),
                                          _event("R-3"), _event("R-4")])
    assert [(s.dedupe_key, s.duplicate) for s in out] == [
        ("R-1", False), ("R-2", False), ("R-1", True), ("R-3", True), ("R-4", False)]
    assert out[2].event_id == out[0].event_id  # the copy names the stored event
    assert out[3].event_id == earlier.event_id
    assert len({out[0].event_id, out[1].event_id, out[4].event_id, earlier.event_id}) == 4
    with runtime.sessions() as s:
        rows = {r.dedupe_key: r for r in s.scalars(select(InboundEvent))}
    assert sorted(rows) == ["R-1", "R-2", "R-3", "R-4"]
    assert {k: r.duplicates for k, r in rows.items()} == {"R-1": 1, "R-2": 0, "R-3": 1,
                                                          "R-4": 0}
    assert all(r.status == "received" for r in rows.values())
    assert rows["R-2"].headers == {"x-loop-topic": "return"}


def test_an_event_without_a_key_is_deduplicated_by_its_body(runtime: Runtime) -> None:
    a = NewEvent(source="loop", body=b'{"id": 1}')
    first = store_events(runtime.sessions, [a, a])
    again = store_events(runtime.sessions, [a])
    assert [s.duplicate for s in first + again] == [False, True, True]
    assert first[0].event_id == first[1].event_id == again[0].event_id
