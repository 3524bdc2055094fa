"""Stock push from the Khaos mirror to the ZigZag sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox
from returnbridge.sources.zigzag.client import ZigZagClient
from returnbridge.sources.zigzag.stock_push import push_stock
from returnbridge.store.models import ExceptionRow, ReturnLineRow, ReturnRow, StockLevel

KNOWN = {f"SKU-{n:03d}" for n in range(60)}


@pytest.fixture
def zz() -> Iterator[ZigZagApiSandbox]:
    sandbox = ZigZagApiSandbox(known_skus=set(KNOWN), dc_codes={"GB0064", "GB0099"}).start()
    yield sandbox
    sandbox.stop()


def _runtime(factory: Callable[..., Runtime], zz: ZigZagApiSandbox, **zigzag: object
             ) -> Runtime:
    return factory(zigzag={"base_url": zz.base_url, "username": zz.username,
                           "password": zz.password, "retailer_code": zz.retailer_code,
                           "warehouse_dc_codes": {"1": "GB0064", "2": "GB0099"}, **zigzag})


def _set_levels(rt: Runtime, levels: dict[tuple[str, str], str]) -> None:
    with rt.sessions() as session, session.begin():
        for (sku, site), available in levels.items():
            row = session.get(StockLevel, (sku, site))
            if row is None:
                session.add(StockLevel(stock_id=sku, site_id=site, stock_code=sku,
                                       available=Decimal(available), on_order=Decimal(0)))
            else:
                row.available = Decimal(available)


def _pushed(rt: Runtime) -> dict[tuple[str, str], Decimal | None]:
    with rt.sessions() as session:
        return {(r.stock_id, r.site_id): r.pushed_available
                for r in session.scalars(select(StockLevel))}


def test_changed_levels_go_once_in_batches_and_only_for_known_skus(
        runtime_factory: Callable[..., Runtime], zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz, stock_push_skus=sorted(KNOWN))
    levels = {(f"SKU-{n:03d}", "1"): str(n) for n in range(50)}
    levels[("SKU-001", "2")] = "7.5"  # fractional units are floored
    levels[("SKU-002", "3")] = "9"  # site 3 has no DC code: not pushed
    levels[("OTHER-1", "1")] = "4"  # not a SKU ZigZag knows
    levels[("SKU-003", "1")] = "-2"  # negative available is sent as 0
    _set_levels(rt, levels)
    with ZigZagClient(rt.settings.zigzag) as client:
        first = push_stock(rt, client)
        second = push_stock(rt, client)
    assert (first.pushed, first.batches, first.skipped_unknown, first.ok) == (51, 2, 1, True)
    assert [c.items for c in zz.puts()] == [40, 11]  # at most 40 per call
    assert zz.stock[("SKU-010", "GB0064")] == 10
    assert zz.stock[("SKU-001", "GB0099")] == 7
    assert zz.stock[("SKU-003", "GB0064")] == 0
    assert ("SKU-002", "GB0099") not in zz.stock
    assert (second.pushed, second.batches) == (0, 0)  # nothing changed since
    assert len(zz.puts()) == 2
    _set_levels(rt, {("SKU-010", "1"): "3"})
    with ZigZagClient(rt.settings.zigzag) as client:
        third = push_stock(rt, client)
    assert third.pushed == 1 and zz.stock[("SKU-010", "GB0064")] == 3
    assert _pushed(rt)[("SKU-010", "1")] == Decimal("3")


def test_a_failed_put_marks_nothing_and_the_next_run_repeats_it(
        runtime_factory: Callable[..., Runtime], zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz, stock_push_skus=["SKU-001", "SKU-002"], max_attempts=2)
    _set_levels(rt, {("SKU-001", "1"): "5", ("SKU-002", "1"): "6"})
    zz.fail_next(500, times=2, retry_after="0")
    with ZigZagClient(rt.settings.zigzag, sleep=lambda _s: None) as client:
        failed = push_stock(rt, client)
        assert not failed.ok and failed.pushed == 0 and failed.remaining == 2
        assert set(_pushed(rt).values()) == {None}
        retried = push_stock(rt, client)
    assert retried.pushed == 2 and zz.stock == {("SKU-001", "GB0064"): 5,
                                                ("SKU-002", "GB0064"): 6}


def test_without_a_configured_set_the_skus_of_zigzag_returns_are_pushed(
        runtime_factory: Callable[..., Runtime], zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz)
    with rt.sessions() as session, session.begin():
        for source, ref, sku in (("zigzag", "ZZ-1", "SKU-005"), ("loop", "LR-1", "SKU-006")):
            row = ReturnRow(associated_ref=ref, source=source, source_return_id=ref[3:],
                            state="requested")
            row.lines.append(ReturnLineRow(position=0, sku=sku, quantity=1,
                                           unit_net=Decimal("1"), unit_tax=Decimal("0"),
                                           unit_gross=Decimal("1"), discount=Decimal("0")))
            session.add(row)
    _set_levels(rt, {("SKU-005", "1"): "2", ("SKU-006", "1"): "3"})
    with ZigZagClient(rt.settings.zigzag) as client:
        result = push_stock(rt, client)
    assert (result.pushed, result.skipped_unknown) == (1, 1)
    assert zz.stock == {("SKU-005", "GB0064"): 2}


def test_no_dc_map_means_no_push(runtime_factory: Callable[..., Runtime],
                                 zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz, warehouse_dc_codes={})
    _set_levels(rt, {("SKU-001", "1"): "5"})
    with ZigZagClient(rt.settings.zigzag) as client:
        assert push_stock(rt, client).pushed == 0
    assert zz.requests == []


def _exceptions(rt: Runtime, type_: str) -> list[ExceptionRow]:
    with rt.sessions() as session:
        return list(session.scalars(select(ExceptionRow).where(ExceptionRow.type == type_)))


def test_a_refused_sku_opens_an_exception_and_the_rest_of_its_batch_goes_through(
        runtime_factory: Callable[..., Runtime], zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz, stock_push_skus=sorted(KNOWN | {"GHOST-1"}))
    levels = {(f"SKU-{n:03d}", "1"): str(n + 1) for n in range(30)}
    levels[("GHOST-1", "1")] = "4"  # not in ZigZag's catalogue: ZigZag refuses the batch
    _set_levels(rt, levels)
    zz.refuse_sku("SKU-007", "is blocked for live exchanges")
    with ZigZagClient(rt.settings.zigzag) as client:
        result = push_stock(rt, client)
    assert result.pushed == 29 and sorted(result.rejected) == ["GHOST-1", "SKU-007"]
    assert all(zz.stock[(f"SKU-{n:03d}", "GB0064")] == n + 1 for n in range(30) if n != 7)
    assert ("SKU-007", "GB0064") not in zz.stock and ("GHOST-1", "GB0064") not in zz.stock
    pushed = _pushed(rt)
    assert pushed[("SKU-007", "1")] is None and pushed[("GHOST-1", "1")] is None
    assert pushed[("SKU-008", "1")] == Decimal("9")

    rows = {r.details["sku"]: r for r in _exceptions(rt, "stock_push_rejected")}
    assert set(rows) == {"GHOST-1", "SKU-007"}
    assert rows["SKU-007"].owner == "warehouse" and rows["SKU-007"].status == "open"
    assert "is blocked for live exchanges" in rows["SKU-007"].message
    assert "SKU-007" in rows["SKU-007"].message and "GB0064" in rows["SKU-007"].message
    assert "does not exist" in rows["GHOST-1"].details["error"]

    # Next run: the refused SKUs go alone and do not hold anything back.
    _set_levels(rt, {("SKU-001", "1"): "50"})
    calls_before = len(zz.puts())
    with ZigZagClient(rt.settings.zigzag) as client:
        again = push_stock(rt, client)
    assert again.pushed == 1 and sorted(again.rejected) == ["GHOST-1", "SKU-007"]
    assert len(zz.puts()) - calls_before == 3  # the good batch, then one per refused SKU
    assert zz.stock[("SKU-001", "GB0064")] == 50

    # Fixed at ZigZag: accepted, exception resolved by itself.
    zz.accept_sku("SKU-007")
    with ZigZagClient(rt.settings.zigzag) as client:
        fixed = push_stock(rt, client)
    assert fixed.rejected == ("GHOST-1",) and zz.stock[("SKU-007", "GB0064")] == 8
    rows = {r.details["sku"]: r for r in _exceptions(rt, "stock_push_rejected")}
    assert rows["SKU-007"].status == "resolved" and rows["GHOST-1"].status == "open"


def test_zigzag_down_past_the_threshold_is_a_connection_exception_until_it_answers(
        runtime_factory: Callable[..., Runtime], zz: ZigZagApiSandbox) -> None:
    rt = _runtime(runtime_factory, zz, stock_push_skus=["SKU-001"], max_attempts=1)
    rt.settings.alerts.connection_failure_threshold = 2
    _set_levels(rt, {("SKU-001", "1"): "5"})
    with ZigZagClient(rt.settings.zigzag, sleep=lambda _s: None) as client:
        zz.fail_next(503, times=1)
        push_stock(rt, client)
        assert _exceptions(rt, "connection_failing") == []  # one failure is not a pattern
        zz.fail_next(503, times=1)
        push_stock(rt, client)
        [failing] = _exceptions(rt, "connection_failing")
        assert failing.status == "open" and failing.owner == "ops"
        assert failing.details["system"] == "zigzag" and "503" in failing.details["last_error"]
        ok = push_stock(rt, client)
    assert ok.pushed == 1
    [failing] = _exceptions(rt, "connection_failing")
    assert failing.status == "resolved"
