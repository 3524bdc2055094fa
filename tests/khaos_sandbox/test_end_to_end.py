"""A return goes all the way: Loop -> returnbridge -> Khaos sandbox (real HTTP) -> credit
note confirmed over desktop SOAP, with stock moving only for restock reasons."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.confirm.soap_sweep import sweep_unconfirmed
from returnbridge.flows.engine.runtime import Runtime
from tests.khaos_sandbox._support import (
    OTHER_SITE,
    RETURNS_SITE,
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
    warehouse_process,
)


def test_loop_journey_credit_note_confirmed_once_the_warehouse_processes_the_return(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    """Loop -> served -> imported unprocessed (ProcessReturn false) -> the warehouse books
    the goods in and processes it -> the sweep confirms the cleared credit note. Whether
    Khaos raised the credit note at import (stage Processing) or only on processing, the
    return is never credit-confirmed before it is processed."""
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(500, damaged=False),
                                          "SCARF-GRY")])
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            assert khaos.poll_once() == 1 and not khaos.failures
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                first = sweep_unconfirmed(app.rt, soap)
                warehouse_process(khaos, ref)
                result = sweep_unconfirmed(app.rt, soap)
            record = khaos.return_for(ref)
            assert record is not None and record.credit_note_code.startswith("CN")
            with app.api() as api:
                view = api.get(f"/api/v1/returns/{ref}").json()
        finally:
            khaos.close()
    assert (first.checked, first.imported, first.confirmed) == (1, 1, 0)
    assert (result.checked, result.confirmed, result.calls) == (1, 1, 1)
    assert view["khaos_status"] == "credit_confirmed"
    assert view["credit_note"]["code"] == record.credit_note_code
    assert view["credit_note"]["stage"] == "16 Issue invoices"
    assert Decimal(view["credit_note"]["value"]) == Decimal("39.50")
    moves = [t["message"] for t in view["timeline"] if t["kind"] == "khaos_status"]
    assert moves[-2].startswith("served -> imported") and "soap" in moves[-2]
    assert moves[-1].startswith(f"imported -> credit_confirmed: credit note "
                                f"{record.credit_note_code}")
    evidence = view["timeline"][-1]["evidence"]
    assert evidence["khaos_return_code"] == record.return_code
    assert not view["open_exceptions"]


def test_stock_moves_at_the_returns_site_only_for_restock_reasons_and_only_when_processed(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        restock_id = return_id_with_reason(600, damaged=False)
        damaged_id = return_id_with_reason(restock_id + 1, damaged=True)
        restock, damaged = send_returns(app, [refund(restock_id, "TEE-BLK-M", "TEE-BLK-M"),
                                              refund(damaged_id, "BOOT-TAN-9")])
        khaos = make_sandbox(app)
        try:
            assert khaos.poll_once() == 2
            # Loop returns are released with ProcessReturn false: nothing moves on import.
            assert khaos.level("TEE-BLK-M") == khaos.level("BOOT-TAN-9") == Decimal(10)
            restock_record = khaos.return_for(restock)
            damaged_record = khaos.return_for(damaged)
            assert restock_record is not None and damaged_record is not None
            assert [ln.processing.value for ln in damaged_record.lines] == ["write_off"]

            khaos.process(restock_record.return_code)  # the warehouse books the goods in
            khaos.process(damaged_record.return_code)
        finally:
            khaos.close()
    tee_units = sum(ln.quantity for ln in restock_record.lines)
    assert khaos.level("TEE-BLK-M", RETURNS_SITE) == 10 + tee_units
    assert khaos.level("TEE-BLK-M", OTHER_SITE) == 10
    assert khaos.level("BOOT-TAN-9", RETURNS_SITE) == 10  # written off: nothing back


def test_move_stock_on_issue_waits_for_the_issue(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(700, damaged=False),
                                          "JEAN-IND-32")])
        khaos = make_sandbox(app, move_stock_on_process=False)
        try:
            khaos.poll_once()
            record = khaos.return_for(ref)
            assert record is not None
            khaos.process(record.return_code)
            assert khaos.level("JEAN-IND-32") == 10
            khaos.issue(record.return_code)
            assert khaos.level("JEAN-IND-32") == 11
        finally:
            khaos.close()


def test_exchange_creates_an_exchange_order_and_reserves_its_stock(
        runtime_factory: Callable[..., Runtime], credit_note_at: str) -> None:
    from returnbridge.sandbox.loop.samples import Scenario, return_payload

    with live(runtime_factory) as app:
        [ref] = send_returns(app, [return_payload(800, Scenario("exchange", ("JEAN-IND-32",)))])
        khaos = make_sandbox(app, credit_note_at=credit_note_at)
        try:
            assert khaos.poll_once() == 1, khaos.failures
            record = khaos.return_for(ref)
            assert record is not None
            # Khaos raises the exchange order with the credit note: at import, or when the
            # warehouse processes the return.
            assert (record.exchange is not None) is (credit_note_at == "import")
            khaos.serve_soap()
            warehouse_process(khaos, ref)
            assert record.exchange is not None
            assert record.exchange.order_code.startswith("SO")
            [(sku, _, qty)] = record.exchange.items
            assert khaos.level(sku) == 10 - qty
            with KhaosSoapClient(khaos.serve_soap(), timeout=5) as soap:
                statuses = soap.export_order_status_by_ref(ref)
        finally:
            khaos.close()
    assert sorted(s.order_type for s in statuses) == [1, 2]
    [credit] = [s for s in statuses if s.is_credit_note]
    assert credit.credit_note_code == record.credit_note_code
    assert credit.order_code == record.return_code
