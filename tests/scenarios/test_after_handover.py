"""After Khaos has a return, the same AssociatedRef is never sent again. Changes that would
alter the Khaos document are status_drift (saying what was sent and what it would be now);
changes that do not (the refund being processed, the state closing) are just kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.store import returns_repo
from returnbridge.store.events import store_event
from returnbridge.store.models import ExceptionRow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.scenarios.test_posting_scenarios import MAPPING, loop_return, unit


def _ingest(rt: Runtime, body: dict[str, Any]) -> None:
    stored = store_event(rt.sessions, source="loop", body=json.dumps(body).encode(),
                         headers={}, topic="return", trigger=body["trigger"],
                         source_ref=str(body["id"]))
    assert apply_event(rt, stored.event_id).status == "processed"


def _drift(rt: Runtime) -> list[ExceptionRow]:
    with rt.sessions() as s:
        rows = s.query(ExceptionRow).filter(ExceptionRow.type == "status_drift").all()
        s.expunge_all()
        return rows


def test_closing_with_the_refund_processed_is_not_drift(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(mapping=MAPPING)
    opened = loop_return(701, [unit("TEE-BLK-M", 1)], refund="0.00")
    _ingest(rt, opened)
    assert serve_page(rt).refs == ("LR-701",)
    closed = loop_return(701, [unit("TEE-BLK-M", 1)], state="closed", refund="25.00",
                         trigger="return.closed", updated_at="2026-11-22 09:30:00")
    _ingest(rt, closed)
    assert _drift(rt) == []
    with rt.sessions() as s:
        row = ReturnsRepository(s).by_ref("LR-701")
        assert row is not None and row.state == "closed" and row.khaos_status == "served"
        # the newer money is kept for reconciliation; the served lines are untouched
        assert str(returns_repo.case_of(row).settlement.refund_to_original) == "25.00"
        assert [(ln.sku, ln.quantity) for ln in row.lines] == [("TEE-BLK-M", 1)]
    assert serve_page(rt).refs == ()


def test_a_unit_removed_after_handover_is_drift_saying_what_changed(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(mapping=MAPPING)
    _ingest(rt, loop_return(702, [unit("SCARF-GRY", 1), unit("SCARF-GRY", 2)]))
    assert serve_page(rt).refs == ("LR-702",)
    _ingest(rt, loop_return(702, [unit("SCARF-GRY", 1)], updated_at="2026-11-22 09:30:00"))
    (drift,) = _drift(rt)
    assert drift.owner == "ops" and drift.associated_ref == "LR-702"
    assert "Sent: 2 x SCARF-GRY" in drift.message and "Now: 1 x SCARF-GRY" in drift.message
    assert serve_page(rt).refs == ()  # never sent again


def test_cancelled_after_handover_is_drift(runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(mapping=MAPPING)
    _ingest(rt, loop_return(703, [unit("TEE-BLK-M", 1)]))
    assert serve_page(rt).refs == ("LR-703",)
    _ingest(rt, loop_return(703, [unit("TEE-BLK-M", 1)], state="cancelled",
                            updated_at="2026-11-22 09:30:00"))
    (drift,) = _drift(rt)
    assert "Now: nothing (the return is cancelled at loop)" in drift.message


def test_events_about_a_return_never_received_are_reported_then_applied(
        runtime_factory: Callable[..., Runtime]) -> None:
    from datetime import timedelta

    from returnbridge.flows.ingest.apply import report_waiting_evidence

    rt = runtime_factory(mapping=MAPPING)
    variant = unit("TEE-BLK-M", 1)["variant_id"]
    restock = {"topic": "restock", "trigger": "restock.requested", "id": 705,
               "order_id": 1, "restock_items": [{"variant_id": variant, "quantity": 1,
                                                 "location_id": 9}]}
    stored = store_event(rt.sessions, source="loop", body=json.dumps(restock).encode(),
                         headers={}, topic="restock", trigger="restock.requested",
                         source_ref="705")
    assert apply_event(rt, stored.event_id).status == "deferred"
    assert report_waiting_evidence(rt, older_than=timedelta(0)) == 1
    (waiting,) = _drift(rt)
    assert waiting.status == "open" and "never received the return" in waiting.message
    _ingest(rt, loop_return(705, [unit("TEE-BLK-M", 1)]))  # e.g. found by the backstop
    (waiting,) = _drift(rt)
    assert waiting.status == "resolved" and waiting.associated_ref == "LR-705"
    with rt.sessions() as s:
        row = ReturnsRepository(s).by_ref("LR-705")
        assert row is not None
        assert [t.kind for t in ReturnsRepository(s).timeline(row.id)].count("evidence") == 1


def test_unknown_topics_are_stored_and_counted(runtime_factory: Callable[..., Runtime]) -> None:
    from returnbridge.metrics import REGISTRY

    def seen() -> float:
        value = REGISTRY.get_sample_value("returnbridge_events_applied_total",
                                          {"source": "loop", "outcome": "unhandled"})
        return value or 0.0

    rt = runtime_factory(mapping=MAPPING)
    before = seen()
    body = {"topic": "shipment", "trigger": "shipment.processed", "id": 99}
    stored = store_event(rt.sessions, source="loop", body=json.dumps(body).encode(),
                         headers={}, topic="shipment", trigger="shipment.processed")
    assert apply_event(rt, stored.event_id).status == "unhandled"
    assert seen() == before + 1
