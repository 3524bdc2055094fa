"""A ZigZag return's source_state is the most advanced stage ZigZag reported, in whatever
order its webhooks arrive (over HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from sqlalchemy import select

from returnbridge.domain.evidence import Evidence, apply_evidence
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.merge import merge
from returnbridge.domain.model import Customer, ReturnCase
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import ReturnRow
from tests.events._support import send, zigzag_app

from ._support import fixture

JOURNEY = ("return_created.json", "return_in_transit.json", "return_received_partial.json",
           "return_graded.json")
# What each event says, in lifecycle order; the last one is the most advanced.
STAGES = {"return_created.json": ("requested", "ReturnCreated"),
          "return_in_transit.json": ("in_transit", "ReturnInTransit"),
          "return_received_partial.json": ("received", "ReturnReceived"),
          "return_graded.json": ("inspected", "ReturnGraded")}


def _body(name: str, ref: str, n: int) -> bytes:
    payload = json.loads(fixture(name))
    payload["returnReference"] = ref
    payload["eventId"] = f"{payload['eventId']}-{n}"
    return json.dumps(payload).encode()


def _states(rt: Runtime) -> dict[str, tuple[str, str]]:
    with rt.sessions() as session:
        return {r.source_return_id: (r.state, r.source_state)
                for r in session.scalars(select(ReturnRow))}


def test_every_delivery_order_ends_at_the_most_advanced_stage(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = zigzag_app(runtime_factory)
    try:
        expected: dict[str, tuple[str, str]] = {}
        orders = list(itertools.permutations(JOURNEY))
        for n, order in enumerate(orders):
            ref = f"RTN-P{n:02d}"
            for name in order:
                send(app, _body(name, ref, n))
            expected[ref] = STAGES["return_graded.json"]
        # In order, after each step: the stage just reported, never the first one.
        seen = []
        for name in JOURNEY:
            send(app, _body(name, "RTN-STEPS", 99))
            seen.append(_states(app.rt)["RTN-STEPS"])
        assert seen == [STAGES[name] for name in JOURNEY]
        # Graded then a late ReturnCreated and ReturnInTransit: still ReturnGraded.
        for name in ("return_graded.json", "return_created.json", "return_in_transit.json"):
            send(app, _body(name, "RTN-LATE", 98))
        expected["RTN-LATE"] = STAGES["return_graded.json"]
        states = _states(app.rt)
        assert {ref: states[ref] for ref in expected} == expected
        assert len(orders) == 24
    finally:
        app.stop()


def _case(state: ReturnState, source_state: str) -> ReturnCase:
    return ReturnCase(source="loop", source_return_id="1", associated_ref="LR-1",
                      order_ref="#1", customer=Customer(email="a@example.com"),
                      currency="GBP", state=state, source_state=source_state,
                      created_at=None, updated_at=None)


def test_source_state_never_moves_back_for_snapshots_or_evidence() -> None:
    closed = merge(None, _case(ReturnState.CLOSED, "closed"), "e1").case
    late = merge(closed, _case(ReturnState.REQUESTED, "open"), "e2").case
    assert (late.state, late.source_state) == (ReturnState.CLOSED, "closed")
    received = apply_evidence(_case(ReturnState.INSPECTED, "ReturnGraded"),
                              Evidence(at=None, state=ReturnState.RECEIVED,
                                       source_state="ReturnReceived"), "e3")
    assert received.source_state == "ReturnGraded"
    moved = apply_evidence(_case(ReturnState.REQUESTED, "ReturnCreated"),
                           Evidence(at=None, state=ReturnState.IN_TRANSIT,
                                    source_state="ReturnInTransit"), "e4")
    assert (moved.state, moved.source_state) == (ReturnState.IN_TRANSIT, "ReturnInTransit")
    # Evidence that names no stage (a Loop label topic) leaves the source state alone.
    label = apply_evidence(_case(ReturnState.REQUESTED, "open"),
                           Evidence(at=None, state=ReturnState.IN_TRANSIT), "e5")
    assert (label.state, label.source_state) == (ReturnState.IN_TRANSIT, "open")
