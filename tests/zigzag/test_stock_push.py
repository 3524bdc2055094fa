"""Stock push from the Khaos mirror to the ZigZag sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select

from returnbridge.flows.runtime import Runtime
from returnbridge.flows.stock_push import push_stock
from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox
from returnbridge.sources.zigzag.client import ZigZagClient
from returnbridge.store.models import ReturnLineRow, ReturnRow, StockLevel

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
