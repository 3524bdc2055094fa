import copy
import json
from typing import Any

from sqlalchemy import func, select

from returnbridge.erp.khaos.channel import assert_no_null
from returnbridge.flows.console.queries import exception_list, return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store.events import store_event
from returnbridge.store.models import KhaosDeliveryItem, ReturnRow
from tests.conftest import LOOP_FIXTURES


def ingest(rt: Runtime, payload: Any) -> int:
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    stored = store_event(rt.sessions, source="loop", body=body, headers={})
    apply_event(rt, stored.event_id)
    return stored.event_id


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((LOOP_FIXTURES / name).read_text())
    return data


def test_a_loop_return_becomes_ready_with_reasons_and_fallback_urn(
        runtime_factory: Any) -> None:
    runtime = runtime_factory(khaos={"currency": "USD"})  # the fixture is a USD return
    ingest(runtime, fixture("return_updated_closed_refund.json"))
    view = return_view(runtime, "LR-6042537")
    assert view is not None
    assert view["khaos_status"] == "ready" and view["state"] == "closed"
    assert view["khaos_urn"] == "LOOPWEB" and view["process_return"] is False
    assert [(ln["sku"], ln["quantity"], ln["khaos_reason_id"]) for ln in view["lines"]] == [
        ("AU1022E00000", 1, "6")]
    assert [t["kind"] for t in view["timeline"]] == ["event", "khaos_status"]


def test_applying_the_same_event_twice_changes_nothing(runtime: Runtime) -> None:
    event_id = ingest(runtime, fixture("return_created_exchange.json"))
    first = return_view(runtime, "LR-1673")
    outcome = apply_event(runtime, event_id)
    assert outcome.status == "skipped"
    assert return_view(runtime, "LR-1673") == first


def test_out_of_order_events_end_in_the_same_state(runtime: Runtime) -> None:
    created = return_payload(5, Scenario("refund", ("TEE-BLK-M",)))
    closed = {**copy.deepcopy(created), "trigger": "return.updated", "state": "closed"}
    ingest(runtime, closed)
    ingest(runtime, created)  # arrives late
    view = return_view(runtime, "LR-5")
    assert view is not None and view["state"] == "closed"
    assert "older news ignored" in view["timeline"][-1]["message"]


def test_unmapped_reason_holds_the_return_and_a_mapping_fix_releases_it(
        runtime_factory: Any) -> None:
    strict = runtime_factory(mapping={"reasons": [
        {"reason": "Too big", "khaos_reason_id": "6", "processing": "restock"}]})
    payload = return_payload(12, Scenario("refund", ("TEE-BLK-M",)))  # reason "Too small"
    ingest(strict, payload)
    view = return_view(strict, "LR-12")
    assert view is not None and view["khaos_status"] == "held"
    [exc] = view["open_exceptions"]
    assert exc["type"] == "unmapped_return_reason" and exc["owner"] == "ops"
    assert "Too small" in exc["message"] and "[[mapping.reasons]]" in exc["next_action"]

    fixed = runtime_factory()  # the catch-all mapping is now configured
    ingest(fixed, {**payload, "trigger": "return.updated"})
    view = return_view(fixed, "LR-12")
    assert view is not None and view["khaos_status"] == "ready" and not view["open_exceptions"]
    [resolved] = exception_list(fixed, "resolved")
    assert resolved["resolved_by"] == "returnbridge" and "re-evaluated" in resolved["resolution"]


def test_invalid_payload_is_kept_and_raises_payload_invalid(runtime: Runtime) -> None:
    event_id = ingest(runtime, {"topic": "return", "trigger": "return.created", "id": "9",
                                "state": "teleported", "line_items": []})
    ingest(runtime, b"{not json")
    types = [e["type"] for e in exception_list(runtime)]
    assert types.count("payload_invalid") == 2
    [first] = [e for e in exception_list(runtime) if e["details"]["event_id"] == str(event_id)]
    assert "teleported" in first["message"]


def test_cancelled_return_is_not_served(runtime: Runtime) -> None:
    ingest(runtime, return_payload(21, Scenario("cancelled", ("TEE-BLK-M",), state="cancelled")))
    page = serve_page(runtime)
    assert page.refs == ()
    view = return_view(runtime, "LR-21")
    assert view is not None and view["khaos_status"] == "pending"
    assert "cancelled" in view["waiting_for"]


def test_served_document_is_valid_and_each_return_is_served_once(runtime: Runtime) -> None:
    for i in range(3):
        ingest(runtime, return_payload(100 + i, Scenario("exchange", ("JEAN-IND-32",))))
    page = serve_page(runtime, continuation="2019-12-31 12:00:00Z")
    doc = json.loads(page.document)
    assert_no_null(doc)
    assert doc["ApiVersion"] == 1000 and len(doc["Returns"]) == 3
    ret = doc["Returns"][0]
    assert ret["AssociatedRef"] == "LR-100" and ret["URN"] == "LOOPWEB"
    assert ret["CreatedDate"] == "2026-11-20T10:15:00"  # Europe/London in November, no offset
    assert ret["InvoiceAddress"]["Country"] == {"Code": "GB"}
    assert ret["ReturnedItems"][0] == {
        "SKU": "JEAN-IND-32", "Mapping": [{"Mapping": "StockCode"}], "Quantity": 1,
        "ReturnReason": {"ID": "6"}, "ExtendedDescription": [], "UnitPrice": {"Gross": 79.0}}
    assert ret["ExchangeItems"][0]["SKU"] == "JEAN-IND-34"
    assert ret["ProcessReturn"] is False
    assert serve_page(runtime).refs == ()  # the next poll finds nothing new
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(KhaosDeliveryItem)) == 3
        statuses = set(s.scalars(select(ReturnRow.khaos_status)))
    assert statuses == {"served"}


def test_paging_and_specific_ids(runtime_factory: Any) -> None:
    rt = runtime_factory(khaos={"page_size": 2})
    for i in range(5):
        ingest(rt, return_payload(200 + i, Scenario("refund", ("TEE-BLK-M",))))
    seen: list[str] = []
    continuation = ""
    for _ in range(5):
        page = serve_page(rt, continuation=continuation)
        seen.extend(page.refs)
        continuation = page.continuation
        if not continuation:
            break
    assert seen == [f"LR-{200 + i}" for i in range(5)]  # oldest first, no loss, no repeat
    again = serve_page(rt, specific_ids='"LR-201", LR-203 ,LR-999')
    assert again.refs == ("LR-201", "LR-203")
    view = return_view(rt, "LR-201")
    assert view is not None and [d["redelivery"] for d in view["khaos_deliveries"]] == [
        False, True]
