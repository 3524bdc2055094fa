"""The refund gate: credit note first, one Shopify refund tagged with its code, never twice.

ZigZag events arrive over real HTTP at /webhooks/zigzag; refunds go to the Shopify sandbox
over real HTTP; every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from returnbridge.flows.confirm.by_hand import confirm_credit
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.flows.refunds.gate import Action, refund_key, run_refund_gate
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, event, journey
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from returnbridge.store.models import ExceptionRow, RefundRow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.conftest import LiveApp, start_live_app

ORDER = "100085875"
ITEMS = [SampleItem("30D24LRED", quantity=1, unit_price="44.99", unit_tax="7.50")]
ZZ = {"webhook_secret": "zz-shared-secret", "fallback_customer_urn": "ZZWEB",
      "retailer_code": "GL123"}
POLICY = {"fallback_address_line1": "Unit 4, Hub Park", "fallback_address_town": "Grantham",
          "fallback_address_postcode": "NG31 7FZ"}
MAPPING = {"reasons": [
    {"source": "zigzag", "disposition": "restock", "khaos_reason_id": "6",
     "processing": "restock"},
    {"source": "zigzag", "disposition": "write_off", "khaos_reason_id": "7",
     "processing": "write_off"},
]}


@pytest.fixture
def shopify() -> Iterator[ShopifySandbox]:
    sandbox = ShopifySandbox().start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def app(runtime_factory: Callable[..., Runtime], shopify: ShopifySandbox) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory, zigzag=ZZ, mapping=MAPPING, policy=POLICY,
                          shopify=shopify.settings())
    try:
        yield live
    finally:
        live.stop()


def _send(app: LiveApp, payloads: list[dict[str, Any]]) -> None:
    sender = ZigZagSender.for_settings(f"{app.base_url}/webhooks/zigzag",
                                       app.rt.settings.zigzag)
    try:
        for response in sender.deliver(payloads):
            assert response.status_code == 200, response.text
    finally:
        sender.close()


def _graded_and_credited(app: LiveApp, ref: str, code: str = "CN000123") -> None:
    _send(app, journey(ref, ITEMS, refund_requested=True))
    page = serve_page(app.rt)
    assert f"ZZ-{ref}" in page.refs
    confirm_credit(app.rt, f"ZZ-{ref}", code, Decimal("44.99"), "finance@shop", "test")


def _gate(app: LiveApp) -> ShopifyClient:
    return ShopifyClient(app.rt.settings.shopify)


def _row_state(rt: Runtime, ref: str) -> tuple[str, list[str], list[RefundRow]]:
    with rt.sessions() as s:
        row = ReturnsRepository(s).by_ref(ref)
        assert row is not None
        timeline = [t.message for t in ReturnsRepository(s).timeline(row.id)]
        refunds = s.query(RefundRow).filter(RefundRow.associated_ref == ref).all()
        s.expunge_all()
        return row.khaos_status, timeline, refunds


def _open(rt: Runtime, type_: str) -> list[ExceptionRow]:
    with rt.sessions() as s:
        rows = s.query(ExceptionRow).filter(ExceptionRow.type == type_,
                                            ExceptionRow.status == "open").all()
        s.expunge_all()
        return rows


def test_credit_note_first_then_exactly_one_refund_tagged_with_its_code(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    _graded_and_credited(app, "RTN-1")
    with _gate(app) as client:
        plan = run_refund_gate(app.rt, "ZZ-RTN-1", client, None)
        assert plan.action is Action.PAY
        again = run_refund_gate(app.rt, "ZZ-RTN-1", client, None)
    assert again.action is Action.NOT_READY  # done: nothing more to pay
    calls = shopify.refund_calls(refund_key("ZZ-RTN-1"))
    assert len(calls) == 1
    (refund,) = shopify.order(f"#{ORDER}").refunds
    assert "CN000123" in refund.note and refund.amount == Decimal("44.99")
    status, timeline, refunds = _row_state(app.rt, "ZZ-RTN-1")
    assert status == "done"
    assert [r.origin for r in refunds] == ["returnbridge"]
    assert any("refunded 44.99 GBP to the original payment in Shopify (refund "
               f"{refund.id}), tagged with credit note CN000123" in m for m in timeline)
    assert any("finance records the refund against credit note CN000123" in m
               for m in timeline)
    # Without desktop SOAP, recording the refund in Khaos is a visible task for finance.
    (task,) = _open(app.rt, "finance_task")
    assert task.owner == "finance" and refund.id in task.next_action
    assert "CN000123" in task.next_action and "44.99 GBP" in task.next_action


def test_no_refund_before_the_credit_note_is_confirmed(app: LiveApp,
                                                       shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    _send(app, journey("RTN-2", ITEMS, refund_requested=True))
    with _gate(app) as client:
        assert run_refund_gate(app.rt, "ZZ-RTN-2", client, None).action is Action.NOT_READY
    assert shopify.refund_calls() == []


def test_a_manual_refund_on_the_order_is_a_suspected_duplicate_and_nothing_is_paid(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    shopify.add_manual_refund(ORDER, "44.99", "Goodwill - customer called")
    _graded_and_credited(app, "RTN-3")
    with _gate(app) as client:
        assert run_refund_gate(app.rt, "ZZ-RTN-3", client, None).action is Action.HOLD
        assert run_refund_gate(app.rt, "ZZ-RTN-3", client, None).action is Action.HOLD
    assert shopify.refund_calls() == []
    (suspect,) = _open(app.rt, "duplicate_refund_suspected")
    assert suspect.owner == "finance" and "Goodwill" in suspect.message
    assert _row_state(app.rt, "ZZ-RTN-3")[0] == "credit_confirmed"


def test_refund_made_at_zigzag_is_reconciled_not_repeated(app: LiveApp,
                                                          shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    at = datetime(2026, 3, 10, tzinfo=UTC)
    _send(app, journey("RTN-4", ITEMS))
    # ZigZag refunds the customer itself before Khaos has a credit note.
    _send(app, [event("RefundIssued", "RTN-4", (), occurred_at=at, refund_amount="44.99",
                      refund_reference="re_123")])
    (early,) = _open(app.rt, "refund_before_credit")
    assert early.associated_ref == "ZZ-RTN-4"
    serve_page(app.rt)
    confirm_credit(app.rt, "ZZ-RTN-4", "CN000124", Decimal("44.99"), "finance@shop", "test")
    with _gate(app) as client:
        assert run_refund_gate(app.rt, "ZZ-RTN-4", client, None).action is Action.RECONCILED
    assert shopify.refund_calls() == []
    status, _, refunds = _row_state(app.rt, "ZZ-RTN-4")
    assert status == "done" and [r.origin for r in refunds] == ["external"]


def test_events_twice_and_out_of_order_reach_the_same_state(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    two = [SampleItem("30D24LRED", quantity=2, received=1, unit_price="44.99",
                      unit_tax="7.50")]
    in_order = journey("RTN-5", two)
    shuffled = journey("RTN-6", two)
    _send(app, in_order)
    sender = ZigZagSender.for_settings(f"{app.base_url}/webhooks/zigzag",
                                       app.rt.settings.zigzag)
    try:
        assert all(r.status_code == 200
                   for r in sender.deliver(shuffled, duplicates=1, shuffle_seed=3))
    finally:
        sender.close()

    def state(ref: str) -> tuple[Any, ...]:
        with app.rt.sessions() as s:
            row = ReturnsRepository(s).by_ref(ref)
            assert row is not None
            return (row.state, row.khaos_status, row.process_return,
                    [(ln.sku, ln.quantity, ln.disposition, ln.khaos_reason_id)
                     for ln in row.lines])

    assert state("ZZ-RTN-5") == state("ZZ-RTN-6")
    assert state("ZZ-RTN-5")[1] == "ready" and state("ZZ-RTN-5")[3] == [
        ("30D24LRED", 1, "restock", "6")]  # one of two units arrived: credited for one


def test_partial_receipt_keeps_the_rest_open_and_visible(app: LiveApp) -> None:
    two = [SampleItem("30D24LRED", quantity=2, received=1, unit_price="44.99",
                      unit_tax="7.50")]
    _send(app, journey("RTN-7", two, start=datetime(2026, 3, 1, tzinfo=UTC)
                       - timedelta(days=1)))
    with app.api() as api:
        body = api.get("/api/v1/returns/ZZ-RTN-7").json()
    assert body["khaos_status"] == "ready"
    assert any("1 unit(s) not received yet" in t["message"] for t in body["timeline"])


def test_units_arriving_after_handover_become_a_follow_up_document(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "89.98")
    first = [SampleItem("30D24LRED", quantity=2, received=1, unit_price="44.99",
                        unit_tax="7.50")]
    _send(app, journey("RTN-8", first))
    _send(app, [event("RefundRequested", "RTN-8", (), refund_amount="44.99",
                      occurred_at=datetime(2026, 3, 12, tzinfo=UTC))])
    assert serve_page(app.rt).refs == ("ZZ-RTN-8",)
    # The second unit turns up a week later and is graded.
    late = [SampleItem("30D24LRED", quantity=2, received=2, unit_price="44.99",
                       unit_tax="7.50")]
    _send(app, [event("ReturnGraded", "RTN-8", late, seq=1,
                      occurred_at=datetime(2026, 3, 20, tzinfo=UTC)),
                event("RefundRequested", "RTN-8", (), refund_amount="44.99", seq=1,
                      occurred_at=datetime(2026, 3, 21, tzinfo=UTC))])
    page = serve_page(app.rt)
    assert page.refs == ("ZZ-RTN-8-2",)  # never the same AssociatedRef twice
    with app.rt.sessions() as s:
        parent = ReturnsRepository(s).by_ref("ZZ-RTN-8")
        child = ReturnsRepository(s).by_ref("ZZ-RTN-8-2")
        assert parent is not None and child is not None
        assert child.parent_id == parent.id
        assert [(ln.sku, ln.quantity) for ln in parent.lines] == [("30D24LRED", 1)]
        assert [(ln.sku, ln.quantity, ln.khaos_reason_id) for ln in child.lines] == [
            ("30D24LRED", 1, "6")]
    # Repeating the late event changes nothing.
    _send(app, [event("ReturnGraded", "RTN-8", late, seq=1,
                      occurred_at=datetime(2026, 3, 20, tzinfo=UTC))])
    assert serve_page(app.rt).refs == ()
    # Each document gets its own credit note and its own refund.
    confirm_credit(app.rt, "ZZ-RTN-8", "CN000801", Decimal("44.99"), "finance", "test")
    confirm_credit(app.rt, "ZZ-RTN-8-2", "CN000802", Decimal("44.99"), "finance", "test")
    with _gate(app) as client:
        assert run_refund_gate(app.rt, "ZZ-RTN-8", client, None).action is Action.PAY
        assert run_refund_gate(app.rt, "ZZ-RTN-8-2", client, None).action is Action.PAY
    notes = sorted(r.note for r in shopify.order(f"#{ORDER}").refunds)
    assert len(notes) == 2 and "CN000801" in notes[0] and "CN000802" in notes[1]
    with app.api() as api:
        parent_view = api.get("/api/v1/returns/ZZ-RTN-8").json()
        child_view = api.get("/api/v1/returns/ZZ-RTN-8-2").json()
    assert parent_view["follow_ups"] == ["ZZ-RTN-8-2"]
    assert child_view["follow_up_of"] == "ZZ-RTN-8"
    assert [(r["origin"], r["amount"]) for r in child_view["refunds"]] == [
        ("returnbridge", "44.99")]


def _served_unprocessed(rt: Runtime, ref: str) -> None:
    """A return Khaos imported unprocessed (served before returnbridge sent platform-graded
    returns processed): the one case where ProcessReturn records the refund."""
    with rt.sessions() as s, s.begin():
        row = ReturnsRepository(s).by_ref(ref)
        assert row is not None
        row.process_return = False


class _KhaosAnsweringLate:
    """ProcessReturn works, but the first answer is lost (the process dies or the network
    drops); Khaos then says the return is already processed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def process_return(self, return_code: str, manual_auth_code: str) -> str:
        from returnbridge.erp.khaos.soap_faults import ReturnAlreadyProcessed, SoapTransportError

        self.calls.append((return_code, manual_auth_code))
        if len(self.calls) == 1:
            raise SoapTransportError("connection reset while reading the answer")
        raise ReturnAlreadyProcessed("soap:Server", "Return has already been processed",
                                     "ProcessReturn")


def test_a_lost_process_return_answer_is_recorded_not_sent_to_finance(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    from returnbridge.flows.refunds.gate import pay, plan_refund, record_in_khaos

    shopify.add_order(ORDER, "44.99")
    _graded_and_credited(app, "RTN-10")
    _served_unprocessed(app.rt, "ZZ-RTN-10")
    khaos = _KhaosAnsweringLate()
    with _gate(app) as client:
        plan = plan_refund(app.rt, "ZZ-RTN-10", client)
        pay(app.rt, plan, client)
    with pytest.raises(Exception, match="connection reset"):
        record_in_khaos(app.rt, plan, khaos)  # the workflow step fails and is retried
    assert record_in_khaos(app.rt, plan, khaos) == "refund_recorded"
    _, timeline, _ = _row_state(app.rt, "ZZ-RTN-10")
    assert any("our call got through, its answer was lost" in m for m in timeline)
    assert not any("by hand" in m for m in timeline)


class _KhaosWithoutTheReturn:
    def process_return(self, return_code: str, manual_auth_code: str) -> str:
        from returnbridge.erp.khaos.soap_faults import ReturnNotFound

        raise ReturnNotFound("soap:Server", "Return does not exist or has been deleted",
                             "ProcessReturn")


def test_khaos_refusing_process_return_is_an_exception_for_finance(
        app: LiveApp, shopify: ShopifySandbox) -> None:
    shopify.add_order(ORDER, "44.99")
    _graded_and_credited(app, "RTN-11")
    _served_unprocessed(app.rt, "ZZ-RTN-11")
    with _gate(app) as client:
        run_refund_gate(app.rt, "ZZ-RTN-11", client, _KhaosWithoutTheReturn())
    assert len(shopify.refund_calls()) == 1  # the customer is paid ...
    (missing,) = _open(app.rt, "credit_note_missing")  # ... and finance is told what to do
    assert missing.owner == "finance" and "does not exist" in missing.message
    assert _row_state(app.rt, "ZZ-RTN-11")[0] == "credit_confirmed"
