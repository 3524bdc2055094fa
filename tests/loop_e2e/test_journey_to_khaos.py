"""Loop returns through their whole life and on into the Khaos sandbox, in both credit-note
modes (raised at import at stage Processing, or only when the return is processed): a return
whose parcel comes back is credit-confirmed only once the warehouse has processed it; a
keep-item return, processed on import, is confirmed at once; stock comes back only for goods
that were processed."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.world import LoopWorld
from tests.conftest import LOOP_SECRET
from tests.khaos_sandbox._support import RESTOCK, WRITE_OFF, live, make_sandbox, warehouse_process

from ._support import apply_pending

NO_STOCK = "11"


def test_loop_returns_reach_a_cleared_credit_note_in_either_mode(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    with live(runtime_factory, policy={"keep_item_reason_id": NO_STOCK}) as app:
        dispatcher = WebhookDispatcher(f"{app.base_url}/webhooks/loop", LOOP_SECRET,
                                       immediate=True, concurrency=1)
        world = LoopWorld(dispatcher=dispatcher)
        refund = world.create(Scenario("refund", ("TEE-BLK-M", "TEE-BLK-M")))
        credit = world.create(Scenario("credit", ("BOOT-TAN-9",)))
        keep = world.create(Scenario("keep_item", ("SCARF-GRY",)))
        for rid in (refund, credit, keep):
            world.lifecycle(rid)
        assert dispatcher.stats.failed == 0
        apply_pending(app.rt)
        refs = {name: f"LR-{rid}" for name, rid in
                (("refund", refund), ("credit", credit), ("keep", keep))}

        khaos = make_sandbox(app, credit_note_at=credit_note_at,
                             reasons={RESTOCK: "restock", WRITE_OFF: "write_off",
                                      NO_STOCK: "no_stock"})
        try:
            assert khaos.poll_once() == 3, khaos.failures
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                sweep_unconfirmed(app.rt, soap)
                with app.api() as api:
                    before = {n: api.get(f"/api/v1/returns/{r}").json()["khaos_status"]
                              for n, r in refs.items()}
                tee_before = khaos.level("TEE-BLK-M")
                for name in ("refund", "credit"):  # the parcels arrive; the warehouse
                    warehouse_process(khaos, refs[name])  # books them in
                sweep_unconfirmed(app.rt, soap)
            with app.api() as api:
                after = {n: api.get(f"/api/v1/returns/{r}").json() for n, r in refs.items()}
            tee_after = khaos.level("TEE-BLK-M")
        finally:
            khaos.close()
    assert before == {"refund": "imported", "credit": "imported", "keep": "credit_confirmed"}
    assert {n: v["khaos_status"] for n, v in after.items()} == {
        "refund": "credit_confirmed", "credit": "credit_confirmed", "keep": "credit_confirmed"}
    for view in after.values():
        assert view["credit_note"]["code"].startswith("CN")
        assert view["credit_note"]["stage"] == "16 Issue invoices"
        assert not view["open_exceptions"], view["open_exceptions"]
    assert (tee_before, tee_after) == (Decimal(10), Decimal(12))  # moved when processed
