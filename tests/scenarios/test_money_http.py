"""Money checked whenever money news arrives, over HTTP against the Loop and Khaos
sandboxes, on SQLite and PostgreSQL: an over-refund after handover is one amount_mismatch
with its category; a shipping refund is a non-stock line when a SKU is configured, else an
open reconciliation item on the return; a Loop refund is recorded against the Khaos credit
note once (ProcessReturn), or becomes a finance task when Khaos already processed it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.platform import due_refs, record_now
from returnbridge.sandbox.khaos.state import Processing
from tests.conftest import LiveApp
from tests.khaos_sandbox._support import (
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
)


def _get(app: LiveApp, ref: str) -> dict[str, Any]:
    with app.api() as api:
        response = api.get(f"/api/v1/returns/{ref}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _money_exceptions(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in view["open_exceptions"] if e["type"] in ("amount_mismatch",
                                                                 "tax_drift")]


def _closed(payload: dict[str, Any], refund_total: str, *, refund_id: str = "",
            **extra: Any) -> dict[str, Any]:
    body = {**payload, "trigger": "return.closed", "state": "closed",
            "refund": refund_total, "total": refund_total, **extra}
    body["refunds"] = ([{"gateway": "shopify_payments", "amount": refund_total,
                         "currency": "GBP", "provider_refund_id": refund_id}]
                       if refund_id else [])
    return body


def test_over_refund_after_handover_is_one_amount_mismatch_then_resolved_when_explained(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        khaos = make_sandbox(app)
        try:
            opened = refund(return_id_with_reason(4100, damaged=False), "SCARF-GRY")
            [ref] = send_returns(app, [opened])
            assert khaos.poll_once() == 1  # handed over while open (release on decided)
            served = khaos.return_for(ref)
            assert served is not None and served.credit_value == Decimal("39.50")
            assert _money_exceptions(_get(app, ref)) == []

            # Loop closes it with 45.00 refunded: 5.50 more than the credit sent to Khaos.
            send_returns(app, [_closed(opened, "45.00", refund_id="RF-1")])
            view = _get(app, ref)
            assert view["khaos_status"] == "served"
            (gap,) = _money_exceptions(view)
            assert gap["type"] == "amount_mismatch" and gap["owner"] == "finance"
            assert gap["details"]["category"] == "refund"
            assert gap["details"]["gap"] == "5.50"
            assert gap["details"]["stage"] == "after_handover"
            assert gap["details"]["served_in_delivery"] == str(
                view["khaos_deliveries"][0]["delivery_id"])
            assert "45.00" in gap["message"] and "sent to Khaos is 39.50" in gap["message"]
            assert gap["next_action"].startswith("[refund]")

            # The same news again (a retry, the backstop): the same row, counted again.
            send_returns(app, [_closed(opened, "45.00", refund_id="RF-1",
                                       updated_at="2026-11-22 10:00:00")])
            (again,) = _money_exceptions(_get(app, ref))
            assert again["id"] == gap["id"] and again["count"] == 2

            # Loop says the 5.50 was refunded shipping: the gap closes, and the shipping
            # (no SKU configured) is an open reconciliation item on the return.
            send_returns(app, [_closed(opened, "45.00", refund_id="RF-1",
                                       refund_shipping_total="5.50",
                                       updated_at="2026-11-22 11:00:00")])
            view = _get(app, ref)
            assert _money_exceptions(view) == []
            (item,) = view["reconciliation_items"]
            assert (item["category"], item["amount"], item["status"]) == (
                "shipping", "5.50", "open")
            with app.api() as api:
                closed = api.get("/api/v1/exceptions", params={"status": "resolved"}).json()
            rows = closed["exceptions"]
            assert [e["id"] for e in rows if e["type"] == "amount_mismatch"] == [gap["id"]]
            assert khaos.poll_once() == 0  # never sent again
        finally:
            khaos.close()


def test_shipping_refund_goes_as_a_non_stock_line_when_a_sku_is_configured(
        runtime_factory: Callable[..., Runtime]) -> None:
    policy = {"shipping_refund_sku": "SHIP-REFUND", "non_stock_reason_id": "20"}
    with live(runtime_factory, policy=policy) as app:
        khaos = make_sandbox(app)
        khaos.add_item("SHIP-REFUND", stock_controlled=False)
        khaos.add_reason("20", processing=Processing.NO_STOCK)
        try:
            payload = _closed(refund(return_id_with_reason(4200, damaged=False),
                                     "SCARF-GRY"), "44.45", refund_shipping_total="4.95")
            [ref] = send_returns(app, [payload])
            assert khaos.poll_once() == 1
            record = khaos.return_for(ref)
            assert record is not None
            assert sorted((ln.sku, ln.unit_price) for ln in record.lines) == [
                ("SCARF-GRY", Decimal("39.50")), ("SHIP-REFUND", Decimal("4.95"))]
            view = _get(app, ref)
            assert view["reconciliation_items"] == []
            assert _money_exceptions(view) == []
        finally:
            khaos.close()


def test_shipping_refund_without_a_sku_is_a_reconciliation_item_on_the_return(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        khaos = make_sandbox(app)
        try:
            payload = _closed(refund(return_id_with_reason(4300, damaged=False),
                                     "SCARF-GRY"), "44.45", refund_shipping_total="4.95")
            [ref] = send_returns(app, [payload])
            view = _get(app, ref)
            assert _money_exceptions(view) == []
            (item,) = view["reconciliation_items"]
            assert (item["category"], item["amount"], item["currency"]) == (
                "shipping", "4.95", "GBP")
            assert "not on the Khaos credit note" in item["note"]
            assert khaos.poll_once() == 1
            record = khaos.return_for(ref)
            assert record is not None and [ln.sku for ln in record.lines] == ["SCARF-GRY"]
            send_returns(app, [payload])  # the same event again changes nothing
            assert len(_get(app, ref)["reconciliation_items"]) == 1
        finally:
            khaos.close()


def _delivered(payload: dict[str, Any]) -> dict[str, Any]:
    """Loop's label webhook: the parcel reached the warehouse."""
    return {"topic": "label", "trigger": "label.updated", "id": payload["id"],
            "label_status": "delivered", "label_updated_at": "2026-11-21T09:00:00+00:00",
            "carrier": "Royal Mail", "tracking_number": f"RM{payload['id']}GB"}


def test_refund_is_not_recorded_by_processing_a_return_whose_goods_have_not_arrived(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        # A Khaos that raises the credit note at import (stage 20 counted as cleared): the
        # one configuration where a Loop refund can be recorded on an unprocessed return.
        khaos = make_sandbox(app, credit_note_at="import")
        try:
            opened = refund(return_id_with_reason(4500, damaged=False), "SCARF-GRY")
            [ref] = send_returns(app, [opened])
            assert khaos.poll_once() == 1
            soap_url = khaos.serve_soap()
            rt = runtime_factory(khaos={"soap_url": soap_url,
                                         "cleared_credit_note_stages": ["20"]})
            with KhaosSoapClient(soap_url, timeout=10) as client:
                assert sweep_unconfirmed(rt, client).confirmed == 1
                send_returns(app, [_closed(opened, "39.50", refund_id="RF-4501")])
                assert record_now(rt, ref, client) == "credit_confirmed"
            assert khaos.soap_calls.count("ProcessReturn") == 0
            record = khaos.return_for(ref)
            assert record is not None and not record.processed and not record.stock_moved
            (task,) = _get(app, ref)["reconciliation_items"]
            assert task["category"] == "refund_record" and "not reported arrived" in task["note"]
        finally:
            khaos.close()


def test_loop_refund_is_recorded_against_the_credit_note_once_or_handed_to_finance(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        khaos = make_sandbox(app, credit_note_at="import")
        try:
            first = refund(return_id_with_reason(4400, damaged=False), "SCARF-GRY")
            second = refund(return_id_with_reason(4410, damaged=False), "SCARF-GRY")
            ref1, ref2 = send_returns(app, [first, second])
            assert khaos.poll_once() == 2
            soap_url = khaos.serve_soap()
            rt = runtime_factory(khaos={"soap_url": soap_url,
                                         "cleared_credit_note_stages": ["20"]})
            with KhaosSoapClient(soap_url, timeout=10) as client:
                assert sweep_unconfirmed(rt, client).confirmed == 2
                assert due_refs(rt) == []  # the Loop refund is not known yet
                send_returns(app, [_closed(first, "39.50", refund_id="RF-4401"),
                                   _closed(second, "39.50", refund_id="RF-4411")])
                assert sorted(due_refs(rt)) == sorted([ref1, ref2])
                send_returns(app, [_delivered(first), _delivered(second)])
                # The warehouse processed the second return before the refund was known.
                khaos.process_by_ref(ref2)

                assert record_now(rt, ref1, client) == "refund_recorded"
                assert record_now(rt, ref2, client) == "credit_confirmed"
                calls = khaos.soap_calls.count("ProcessReturn")
                # a second run records nothing twice
                assert record_now(rt, ref1, client) == "refund_recorded"
                assert record_now(rt, ref2, client) == "credit_confirmed"
                assert khaos.soap_calls.count("ProcessReturn") == calls == 2
                assert due_refs(rt) == []
            done = khaos.return_for(ref1)
            assert done is not None and done.processed and done.manual_auth_code == "RF-4401"
            view = _get(app, ref1)
            assert [r["provider_refund_id"] for r in view["refunds"]] == ["RF-4401"]
            assert view["reconciliation_items"] == []
            view = _get(app, ref2)
            (task,) = view["reconciliation_items"]
            assert (task["category"], task["reference"], task["amount"]) == (
                "refund_record", "RF-4411", "39.50")
            assert "already processed" in task["note"] and "RF-4411" in task["note"]
            assert khaos.return_for(ref2).manual_auth_code == ""  # type: ignore[union-attr]
        finally:
            khaos.close()
