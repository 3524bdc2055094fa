"""A ZigZag return from start to finish over real HTTP, in both credit-note modes of the
Khaos sandbox (credit note raised at import, or only when the return is processed):

graded at ZigZag -> served and imported by the Khaos sandbox *processed* (stock moves at
import: it never waits on money) with the reason its grade decides -> credit note confirmed
by the SOAP sweep -> ZigZag's refund request paid once in Shopify, its note carrying the
credit note code -> recorded against the credit note by finance (the return is already
processed, so ProcessReturn cannot) -> done, every step on the return's timeline.

And the same return when a goodwill refund was made by hand on the order: the refund is
held for finance, while the resellable unit is back in Khaos stock all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.gate import Action, refund_key, run_refund_gate
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.service import free_port
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, journey
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from tests.conftest import KHAOS_PASSWORD, KHAOS_USER, LiveApp, start_live_app

ZZ = {"webhook_secret": "zz-e2e", "fallback_customer_urn": "ZZWEB", "retailer_code": "GL123"}
POLICY = {"fallback_address_line1": "Unit 4, Hub Park", "fallback_address_town": "Grantham",
          "fallback_address_postcode": "NG31 7FZ"}
MAPPING = {"reasons": [
    {"source": "zigzag", "disposition": "restock", "khaos_reason_id": "6",
     "processing": "restock"},
    {"source": "zigzag", "disposition": "write_off", "khaos_reason_id": "7",
     "processing": "write_off"},
]}
ITEMS = [SampleItem("30D24LRED", unit_price="44.99", unit_tax="7.50", disposition="Resellable"),
         SampleItem("30D24LBLU", unit_price="49.99", unit_tax="8.33", disposition="Damaged")]
ORDER = "100085875"


@dataclass
class World:
    app: LiveApp
    khaos: KhaosSandbox
    shopify: ShopifySandbox
    soap_url: str


@contextmanager
def world(runtime_factory: Callable[..., Runtime], credit_note_at: str) -> Iterator[World]:
    shopify = ShopifySandbox().start()
    shopify.add_order(ORDER, "94.98")
    port = free_port()
    khaos = KhaosSandbox(f"http://127.0.0.1:{port}/khaos/config.json", KHAOS_USER,
                         KHAOS_PASSWORD, reasons={"6": "restock", "7": "write_off"},
                         credit_note_at=credit_note_at)
    soap_url = khaos.serve_soap()
    app = start_live_app(runtime_factory, zigzag=ZZ, mapping=MAPPING, policy=POLICY,
                         shopify=shopify.settings(), khaos={"soap_url": soap_url},
                         server={"port": port, "public_base_url": f"http://127.0.0.1:{port}"})
    try:
        khaos.add_item("30D24LRED", levels={1: 5})
        khaos.add_item("30D24LBLU", levels={1: 5})
        khaos.add_customer("ZZWEB", "zigzag@example.com", "ZigZag customers")
        yield World(app, khaos, shopify, soap_url)
    finally:
        khaos.close()
        app.stop()
        shopify.stop()


def _deliver(w: World, ref: str) -> None:
    sender = ZigZagSender.for_settings(f"{w.app.base_url}/webhooks/zigzag",
                                       w.app.rt.settings.zigzag)
    try:
        assert all(r.status_code == 200
                   for r in sender.deliver(journey(ref, ITEMS, refund_requested=True)))
    finally:
        sender.close()


def _gate(w: World, assoc: str) -> Action:
    with KhaosSoapClient(w.soap_url) as soap:
        sweep = sweep_unconfirmed(w.app.rt, soap)
        assert sweep.confirmed == 1
        with ShopifyClient(w.app.rt.settings.shopify) as client:
            return run_refund_gate(w.app.rt, assoc, client, soap).action


def test_graded_zigzag_return_to_refund_and_done(runtime_factory: Callable[..., Runtime],
                                                 credit_note_at: str) -> None:
    with world(runtime_factory, credit_note_at) as w:
        _deliver(w, "RTN-77")
        with w.app.api() as api:
            assert api.get("/api/v1/returns/ZZ-RTN-77").json()["khaos_status"] == "ready"
        assert w.khaos.poll_once() == 1 and not w.khaos.failures
        imported = w.khaos.imported["ZZ-RTN-77"]
        # Graded by the platform: processed on import, so the good unit is sellable now.
        assert imported.processed and imported.credit_note_code
        assert w.khaos.level("30D24LRED") == Decimal(6)
        assert w.khaos.level("30D24LBLU") == Decimal(5)  # damaged: written off
        assert [(ln.sku, ln.reason_id) for ln in imported.lines] == [
            ("30D24LRED", "6"), ("30D24LBLU", "7")]

        assert _gate(w, "ZZ-RTN-77") is Action.PAY
        code = imported.credit_note_code
        (refund,) = w.shopify.order(f"#{ORDER}").refunds
        assert code in refund.note and refund.amount == Decimal("94.98")
        assert len(w.shopify.refund_calls(refund_key("ZZ-RTN-77"))) == 1
        assert "ProcessReturn" not in w.khaos.soap_calls  # already processed in Khaos

        with w.app.api() as api:
            view = api.get("/api/v1/returns/ZZ-RTN-77").json()
    assert view["khaos_status"] == "done"
    assert view["credit_note"]["stage"] == "16 Issue invoices"
    steps = [t["message"] for t in view["timeline"] if t["kind"] == "khaos_status"]
    assert [s.split(":")[0] for s in steps] == [
        "pending -> ready", "ready -> served", "served -> imported",
        "imported -> credit_confirmed",
        "credit_confirmed -> refund_recorded", "refund_recorded -> done"]
    assert any(f"tagged with credit note {code}" in t["message"] for t in view["timeline"])
    [task] = view["open_exceptions"]
    assert task["type"] == "finance_task" and refund.id in task["next_action"]
    assert code in task["next_action"] and "94.98 GBP" in task["next_action"]


def test_stock_moves_even_when_the_refund_is_held_for_finance(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with world(runtime_factory, credit_note_at) as w:
        w.shopify.add_manual_refund(ORDER, "94.98", "Goodwill - customer called")
        _deliver(w, "RTN-78")
        assert w.khaos.poll_once() == 1
        assert _gate(w, "ZZ-RTN-78") is Action.HOLD
        assert w.shopify.refund_calls() == []
        # Held for finance, and the resellable unit is back in Khaos stock all the same.
        assert w.khaos.level("30D24LRED") == Decimal(6)
        record = w.khaos.return_for("ZZ-RTN-78")
        assert record is not None and record.stock_moved
        with w.app.api() as api:
            view = api.get("/api/v1/returns/ZZ-RTN-78").json()
    assert view["khaos_status"] == "credit_confirmed"
    assert [e["type"] for e in view["open_exceptions"]] == ["duplicate_refund_suspected"]
    assert "Goodwill" in view["open_exceptions"][0]["message"]
