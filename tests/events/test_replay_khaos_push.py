"""A Khaos push stored but not applied (its transaction failed after storing) is replayed
into the mirror through the same path the event pump uses."""

from __future__ import annotations

from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.events import list_events, replay_event
from returnbridge.store.events import sha256, store_event
from returnbridge.store.models import StockItem
from tests.khaos_channel.test_pushes import STOCK_XML


def test_a_stored_khaos_push_is_replayed_into_the_mirror(runtime: Runtime) -> None:
    stored = store_event(runtime.sessions, source="khaos", body=STOCK_XML, headers={},
                         dedupe_key=f"stock:{sha256(STOCK_XML)}", topic="stock",
                         channel="push", trigger="XML")
    waiting = list_events(runtime, source="khaos", status="received")
    assert [e["id"] for e in waiting.items] == [stored.event_id]

    first = replay_event(runtime, stored.event_id, "ops", "push transaction failed")
    second = replay_event(runtime, stored.event_id, "ops", "again")
    assert (first.outcome, first.status_after) == ("processed", "processed")
    assert second.outcome == "unchanged"
    with runtime.sessions() as session:
        codes = sorted(session.scalars(select(StockItem.stock_code)))
    assert codes == ["DRC1.JUSTINWBK115-R", "MUG1"]
