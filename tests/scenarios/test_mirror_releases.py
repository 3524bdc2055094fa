"""Held returns release themselves when Khaos master data is fixed, pushed or looked up
from the Khaos sandbox over real HTTP and SOAP, and the exception says how."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.flows.decide.customers import load_customers_csv, lookup_unknown_customers
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.store.models import ExceptionRow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.conftest import KHAOS_PASSWORD, KHAOS_USER, LiveApp, start_live_app
from tests.khaos_sandbox._support import send_returns
from tests.scenarios.test_posting_scenarios import MAPPING, loop_return, unit


def _state(rt: Runtime, ref: str) -> tuple[str, list[tuple[str, str, str]]]:
    with rt.sessions() as s:
        row = ReturnsRepository(s).by_ref(ref)
        assert row is not None
        excs = s.query(ExceptionRow).filter(ExceptionRow.return_id == row.id).all()
        return row.khaos_status, [(e.type, e.status, e.resolution) for e in excs]


def _wait(rt: Runtime, ref: str, status: str, timeout: float = 20) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        got, excs = _state(rt, ref)
        if got == status or time.monotonic() > deadline:
            assert got == status, excs
            return excs
        time.sleep(0.1)


def _sandbox(app: LiveApp) -> KhaosSandbox:
    return KhaosSandbox(f"{app.base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                        reasons={"6": "restock", "7": "write_off"})


def test_sku_added_in_khaos_and_pushed_releases_the_held_return(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, mapping=MAPPING)
    khaos = _sandbox(app)
    try:
        khaos.add_item("TEE-BLK-M")
        assert khaos.push_stock_items().items == 1
        send_returns(app, [loop_return(601, [unit("SCARF-GRY", 1)])])
        _wait(app.rt, "LR-601", "held")
        khaos.add_item("SCARF-GRY")  # master data fixed in Khaos ...
        khaos.push_stock_items()  # ... and Khaos pushes its catalogue: no manual retry
        excs = _wait(app.rt, "LR-601", "ready")
        assert ("sku_mismatch", "resolved",
                "re-evaluated after Khaos stock update (returnbridge): the problem is gone"
                ) in excs
        assert khaos.poll_once() == 1 and not khaos.failures
    finally:
        khaos.close()
        app.stop()


def test_customer_found_over_soap_releases_unknown_customer_returns(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, mapping=MAPPING, loop={"fallback_customer_urn": ""})
    khaos = _sandbox(app)
    try:
        send_returns(app, [loop_return(602, [unit("TEE-BLK-M", 1)], email="ann@example.com")])
        _wait(app.rt, "LR-602", "held")
        khaos.add_customer("C-ANN", "ann@example.com", "Ann Lee")
        with KhaosSoapClient(khaos.serve_soap()) as soap:
            result = lookup_unknown_customers(app.rt, soap)
        assert result.inserted == 1 and result.reevaluated is not None
        assert result.reevaluated.released == 1
        excs = _wait(app.rt, "LR-602", "ready")
        assert [(t, s) for t, s, _ in excs] == [("unknown_customer", "resolved")]
        with app.rt.sessions() as s:
            row = ReturnsRepository(s).by_ref("LR-602")
            assert row is not None and row.khaos_urn == "C-ANN"
    finally:
        khaos.close()
        app.stop()


def test_customer_export_file_fills_the_mirror(runtime_factory: Callable[..., Runtime],
                                                tmp_path: Path) -> None:
    app = start_live_app(runtime_factory, mapping=MAPPING, loop={"fallback_customer_urn": ""})
    try:
        send_returns(app, [loop_return(603, [unit("TEE-BLK-M", 1)], email="Bo@Example.com")])
        _wait(app.rt, "LR-603", "held")
        export = tmp_path / "customers.csv"
        export.write_text("URN,Company Name,Email\nC-BO,Bo Smith,bo@example.com\n"
                          "C-X,No mail,\n")
        result = load_customers_csv(app.rt, export, actor="ops@shop")
        assert (result.rows, result.inserted, len(result.skipped)) == (2, 1, 1)
        _wait(app.rt, "LR-603", "ready")
    finally:
        app.stop()


def test_customer_of_the_original_order_is_found_first(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, mapping=MAPPING, loop={"fallback_customer_urn": ""},
                         khaos={"source_order_ref_format": "web_{order_ref}"})
    khaos = _sandbox(app)
    try:
        send_returns(app, [loop_return(604, [unit("TEE-BLK-M", 1)], order="1604",
                                       email="guest@example.com")])
        _wait(app.rt, "LR-604", "held")
        khaos.add_sales_order("web_1604", "C-GUEST")  # a guest checkout: no email on file
        with KhaosSoapClient(khaos.serve_soap()) as soap:
            result = lookup_unknown_customers(app.rt, soap)
        assert result.inserted == 1 and not result.skipped
        _wait(app.rt, "LR-604", "ready")
        with app.rt.sessions() as s:
            row = ReturnsRepository(s).by_ref("LR-604")
            assert row is not None and row.khaos_urn == "C-GUEST"
    finally:
        khaos.close()
        app.stop()


def test_re_evaluating_a_held_return_does_not_count_the_problem_again(
        runtime_factory: Callable[..., Runtime]) -> None:
    from returnbridge.flows.decide.reevaluate import reevaluate_open
    from returnbridge.store.models import ExceptionRow

    app = start_live_app(runtime_factory, mapping=MAPPING, loop={"fallback_customer_urn": ""})
    try:
        send_returns(app, [loop_return(605, [unit("TEE-BLK-M", 1)])])
        _wait(app.rt, "LR-605", "held")

        def seen() -> tuple[int, object]:
            with app.rt.sessions() as s:
                row = s.query(ExceptionRow).filter(ExceptionRow.type == "unknown_customer").one()
                return row.count, row.last_seen_at

        count, first_seen = seen()
        for _ in range(3):  # e.g. three stock pushes that do not fix it
            result = reevaluate_open(app.rt, by="returnbridge", why="Khaos stock update",
                                     held_only=True)
            assert (result.examined, result.released, result.still_held) == (1, 0, 1)
        again, last_seen = seen()
        assert again == count == 1 and last_seen != first_seen
    finally:
        app.stop()
