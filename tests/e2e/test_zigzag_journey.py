"""A ZigZag return from start to finish over real HTTP (issue #6's main journey):

graded at ZigZag -> served and imported by the Khaos sandbox with the reason its grade
decides (processed on import) -> credit note confirmed by the SOAP sweep -> one Shopify
refund whose note carries the credit note code -> ProcessReturn in the Khaos sandbox ->
done, every step on the return's timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.khaos_confirm import sweep_unconfirmed
from returnbridge.flows.refund_gate import Action, refund_key, run_refund_gate
from returnbridge.flows.runtime import Runtime
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.service import free_port
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import SampleItem, journey
from returnbridge.sandbox.zigzag.sender import ZigZagSender
from tests.conftest import KHAOS_PASSWORD, KHAOS_USER, start_live_app

ZZ = {"webhook_secret": "zz-e2e", "fallback_customer_urn": "ZZWEB", "retailer_code": "GL123"}
POLICY = {"fallback_address_line1": "Unit 4, Hub Park", "fallback_address_town": "Grantham",
          "fallback_address_postcode": "NG31 7FZ"}
MAPPING = {"reasons": [
    {"source": "zigzag", "disposition": "restock", "khaos_reason_id": "6",
     "processing": "restock"},
    {"source": "zigzag", "disposition": "write_off", "khaos_reason_id": "7",
     "processing": "write_off"},
]}


def test_graded_zigzag_return_to_refund_and_done(runtime_factory: Callable[..., Runtime]) -> None:
    shopify = ShopifySandbox().start()
    shopify.add_order("100085875", "94.98")
    port = free_port()
    khaos = KhaosSandbox(f"http://127.0.0.1:{port}/khaos/config.json", KHAOS_USER,
                         KHAOS_PASSWORD, reasons={"6": "restock", "7": "write_off"})
    soap_url = khaos.serve_soap()
    # Desktop Khaos with SOAP: the refund gate's ProcessReturn processes the return and
    # records the refund, so it is imported unprocessed.
    app = start_live_app(runtime_factory, zigzag=ZZ, mapping=MAPPING, policy=POLICY,
                         shopify=shopify.settings(), khaos={"soap_url": soap_url},
                         server={"port": port, "public_base_url": f"http://127.0.0.1:{port}"})
    try:
        khaos.add_item("30D24LRED", levels={1: 5})
        khaos.add_item("30D24LBLU", levels={1: 5})
        khaos.add_customer("ZZWEB", "zigzag@example.com", "ZigZag customers")
        items = [SampleItem("30D24LRED", unit_price="44.99", unit_tax="7.50",
                            disposition="Resellable"),
                 SampleItem("30D24LBLU", unit_price="49.99", unit_tax="8.33",
                            disposition="Damaged")]
        sender = ZigZagSender.for_settings(f"{app.base_url}/webhooks/zigzag",
                                           app.rt.settings.zigzag)
        assert all(r.status_code == 200 for r in sender.deliver(journey("RTN-77", items)))
        sender.close()

        with app.api() as api:
            before = api.get("/api/v1/returns/ZZ-RTN-77").json()
        assert before["khaos_status"] == "ready", before
        polled = khaos.poll_once()
        assert polled == 1, (polled, khaos.failures, khaos.imported, khaos.polls)
        imported = khaos.imported["ZZ-RTN-77"]
        assert not imported.processed and khaos.level("30D24LRED") == Decimal(5)
        assert [(ln.sku, ln.reason_id) for ln in imported.lines] == [
            ("30D24LRED", "6"), ("30D24LBLU", "7")]
        assert not khaos.failures

        with KhaosSoapClient(soap_url) as soap:
            sweep = sweep_unconfirmed(app.rt, soap)
            assert sweep.confirmed == 1
            with ShopifyClient(app.rt.settings.shopify) as client:
                plan = run_refund_gate(app.rt, "ZZ-RTN-77", client, soap)
        assert plan.action is Action.PAY
        code = imported.credit_note_code
        (refund,) = shopify.order("#100085875").refunds
        assert code in refund.note and refund.amount == Decimal("94.98")
        assert len(shopify.refund_calls(refund_key("ZZ-RTN-77"))) == 1
        done = khaos.return_for("ZZ-RTN-77")
        assert done.processed and done.manual_auth_code == refund_key("ZZ-RTN-77")
        assert khaos.level("30D24LRED") == Decimal(6)  # the resellable unit is back
        assert khaos.level("30D24LBLU") == Decimal(5)  # the damaged one is written off

        with app.api() as api:
            view = api.get("/api/v1/returns/ZZ-RTN-77").json()
        assert view["khaos_status"] == "done"
        steps = [t["message"] for t in view["timeline"] if t["kind"] == "khaos_status"]
        assert [s.split(":")[0] for s in steps] == [
            "pending -> ready", "ready -> served", "served -> imported",
            "imported -> credit_confirmed",
            "credit_confirmed -> refund_recorded", "refund_recorded -> done"]
        assert any(code in m for m in (t["message"] for t in view["timeline"]))
    finally:
        khaos.close()
        app.stop()
        shopify.stop()
