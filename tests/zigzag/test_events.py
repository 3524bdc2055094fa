"""ZigZag events (default contract and a mapped contract) into interpretations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Disposition
from returnbridge.sources.zigzag.events import envelope, interpret

from ._support import fixture, zigzag_settings

S = zigzag_settings()


def test_return_created_is_a_snapshot_with_lines_prices_and_customer() -> None:
    result = interpret(fixture("return_created.json"), settings=S)
    assert result.handled and result.trigger == "requested"
    case = result.snapshot
    assert case is not None and result.evidence is None
    assert (case.source, case.source_return_id, case.associated_ref, case.order_ref) == (
        "zigzag", "RTN-000123", "ZZ-RTN-000123", "100085875")
    assert case.customer.email == "ann.lee@example.com"
    assert case.currency == "GBP" and case.state is ReturnState.REQUESTED
    red, blue = case.lines
    assert (red.sku, red.quantity, red.unit_gross, red.unit_tax, red.unit_net) == (
        "30D24LRED", 2, Decimal("44.99"), Decimal("7.50"), Decimal("37.49"))
    assert (blue.sku, blue.quantity, blue.unit_gross, blue.unit_net) == (
        "30D24LBLU", 1, Decimal("20.00"), Decimal("16.67"))
    assert red.reason == "Too small" and red.disposition is Disposition.UNKNOWN
    assert case.created_at == datetime(2026, 3, 4, 10, 15, tzinfo=UTC)


def test_net_prices_when_configured() -> None:
    settings = zigzag_settings(webhook={"prices_include_tax": False})
    case = interpret(fixture("return_created.json"), settings=settings).snapshot
    assert case is not None
    assert (case.lines[0].unit_net, case.lines[0].unit_gross) == (
        Decimal("44.99"), Decimal("52.49"))


def test_graded_event_gives_receipts_with_dispositions_and_partial_quantities() -> None:
    result = interpret(fixture("return_graded.json"), settings=S)
    assert result.handled and result.snapshot is None and result.trigger == "inspected"
    evidence = result.evidence
    assert evidence is not None and evidence.state is ReturnState.INSPECTED
    got = [(r.sku, r.quantity, r.disposition, r.condition, r.line_item_id)
           for r in evidence.receipts]
    assert got == [("30D24LRED", 1, Disposition.RESTOCK, "Grade A", "1"),
                   ("30D24LBLU", 1, Disposition.WRITE_OFF, "Grade C", "2")]
    assert "1 of 3 requested not received" in evidence.summary
    assert not result.problems


def test_received_event_is_arrival_without_grade() -> None:
    result = interpret(fixture("return_received_partial.json"), settings=S)
    evidence = result.evidence
    assert evidence is not None and evidence.state is ReturnState.RECEIVED
    assert [(r.sku, r.quantity, r.disposition) for r in evidence.receipts] == [
        ("30D24LRED", 1, None), ("30D24LBLU", 1, None)]
    assert evidence.receipts[0].at == datetime(2026, 3, 8, 9, 55, tzinfo=UTC)
    assert evidence.delivered_at == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Resellable", Disposition.RESTOCK), ("damaged", Disposition.WRITE_OFF),
    ("Faulty", Disposition.WRITE_OFF), ("Quarantine", Disposition.RESALE_HOLD),
    ("Recycle", Disposition.RECYCLE), ("Donate", Disposition.DONATE),
    ("Missing", Disposition.MISSING),
])
def test_default_dispositions(raw: str, expected: Disposition) -> None:
    payload = json.loads(fixture("return_graded.json"))
    payload["items"][0]["disposition"] = raw
    evidence = interpret(json.dumps(payload).encode(), settings=S).evidence
    assert evidence is not None and evidence.receipts[0].disposition is expected


def test_unknown_disposition_is_never_guessed_and_opens_an_exception() -> None:
    payload = json.loads(fixture("return_graded.json"))
    payload["items"][0]["disposition"] = "Outlet"
    result = interpret(json.dumps(payload).encode(), settings=S)
    assert result.evidence is not None
    assert result.evidence.receipts[0].disposition is Disposition.UNKNOWN
    assert [p.type for p in result.problems] == ["unmapped_return_reason"]
    assert "Outlet" in result.problems[0].message


def test_refund_issued_is_an_external_refund_to_reconcile() -> None:
    result = interpret(fixture("refund_issued.json"), settings=S)
    refund = result.external_refund
    assert result.handled and refund is not None and result.refund_request is None
    assert (refund.associated_ref, refund.amount, refund.currency, refund.method,
            refund.reference, refund.order_ref) == (
        "ZZ-RTN-000123", Decimal("64.99"), "GBP", "store_credit", "gid://shopify/Refund/991",
        "100085875")
    assert result.evidence is not None and "64.99 GBP" in result.evidence.summary


def test_refund_requested_is_a_request_for_the_gate() -> None:
    result = interpret(fixture("refund_requested.json"), settings=S)
    assert result.refund_request is not None and result.external_refund is None
    assert result.refund_request.amount == Decimal("64.99")


def test_in_transit_and_cancelled_are_state_evidence() -> None:
    transit = interpret(fixture("return_in_transit.json"), settings=S).evidence
    assert transit is not None and transit.state is ReturnState.IN_TRANSIT
    assert (transit.carrier, transit.tracking_number) == ("Royal Mail", "JD0002212345678901")
    cancelled = interpret(fixture("return_cancelled.json"), settings=S)
    assert cancelled.evidence is not None
    assert cancelled.evidence.state is ReturnState.CANCELLED
    assert cancelled.source_return_id == "RTN-000124"


def test_unknown_event_is_stored_not_used() -> None:
    result = interpret(fixture("label_printed_unknown.json"), settings=S)
    assert not result.handled and "LabelPrinted" in result.note


def test_event_types_can_be_added_or_ignored_by_configuration() -> None:
    mapped = zigzag_settings(webhook={"event_types": {"LabelPrinted": "in_transit"}})
    assert interpret(fixture("label_printed_unknown.json"), settings=mapped).handled
    # the default names keep working next to an added one
    assert interpret(fixture("return_created.json"), settings=mapped).handled
    ignored = zigzag_settings(webhook={"event_types": {"ReturnInTransit": "ignore"}})
    assert not interpret(fixture("return_in_transit.json"), settings=ignored).handled


def test_a_different_contract_is_configuration_not_code() -> None:
    settings = zigzag_settings(
        associated_ref_prefix="ZG-",
        webhook={
            "fields": {
                "event_id": "id", "event_type": "type", "occurred_at": "timestamp",
                "return_ref": "return.ref", "order_ref": "return.order.number",
                "items": "lines[]", "item_sku": "product.code",
                "item_quantity_received": "qtyReceived", "item_condition": "grade",
                "item_disposition": "outcome",
            },
            "event_types": {"RETURN_PROCESSED": "inspected"},
            "dispositions": {"RESTOCK": "restock", "BIN": "write_off"},
        })
    body = fixture("other_contract_processed.json")
    result = interpret(body, settings=settings)
    assert result.handled and result.event_id == "98765"
    assert result.source_return_id == "Z-555"
    evidence = result.evidence
    assert evidence is not None
    assert evidence.at == datetime(2026, 3, 9, 13, 2, tzinfo=UTC)
    assert [(r.sku, r.quantity, r.disposition, r.condition) for r in evidence.receipts] == [
        ("30D24LRED", 1, Disposition.RESTOCK, "A"), ("30D24LBLU", 2, Disposition.WRITE_OFF, "D")]
    assert envelope(body, settings).event_id == "98765"


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "not JSON"),
    (b"{\"a\": \"\x80\"}", "UTF-8"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"eventType": "ReturnCreated", "items": []}).encode(), "return reference"),
    (json.dumps({"eventType": "ReturnCreated", "returnReference": "R1"}).encode(), "items"),
    (json.dumps({"eventType": "ReturnCreated", "returnReference": "R1",
                 "items": [{"quantity": 1}]}).encode(), "SKU"),
    (json.dumps({"eventType": "ReturnCreated", "returnReference": "R1",
                 "items": [{"sku": "A", "quantity": 1.5}]}).encode(), "quantity"),
    (json.dumps({"eventType": "RefundIssued", "returnReference": "R1"}).encode(), "amount"),
    (json.dumps({"eventType": "ReturnCreated", "returnReference": "R1", "retailerCode": "X",
                 "items": [{"sku": "A", "quantity": 1}]}).encode(), "not ours"),
    (json.dumps({"eventType": "ReturnCreated", "returnReference": "R" * 60,
                 "items": [{"sku": "A", "quantity": 1}]}).encode(), "50"),
])
def test_unreadable_input_is_payload_invalid(body: bytes, fragment: str) -> None:
    with pytest.raises(PayloadInvalid, match=fragment):
        interpret(body, settings=S)


def test_envelope_never_fails() -> None:
    assert envelope(b"\x00garbage", S).event_id == ""
    env = envelope(fixture("return_graded.json"), S)
    assert (env.event_id, env.event_type, env.return_ref) == (
        "e0a4c3d2-5b6f-4a1c-8d9e-112233445566", "ReturnGraded", "RTN-000123")
    assert envelope(json.dumps({"eventId": {"x": 1}, "customer": 5}).encode(), S).event_id == ""


def test_graded_event_carries_a_fallback_picture_for_out_of_order_delivery() -> None:
    graded = interpret(fixture("return_graded.json"), settings=S)
    fallback = graded.fallback_snapshot
    assert fallback is not None and fallback.state is ReturnState.REQUESTED
    assert [(line.sku, line.quantity, line.unit_gross, line.disposition)
            for line in fallback.lines] == [
        ("30D24LRED", 2, Decimal("44.99"), Disposition.UNKNOWN),
        ("30D24LBLU", 1, Decimal("20.00"), Disposition.UNKNOWN)]
    # a received event without prices cannot stand in for the return: no zero-priced lines
    received = interpret(fixture("return_received_partial.json"), settings=S)
    assert received.fallback_snapshot is None
