"""On a sandbox month every planted discrepancy is found with the right category and amount,
nothing else is flagged, and the residual is zero — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from returnbridge.domain.reconciliation import Category
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import pack, service
from returnbridge.flows.reconcile.engine import Scope
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.sandbox.month import PLANTS, found_keys, generate, load_legs, planted_keys
from returnbridge.sandbox.month_system import fill_system, policy_settings
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.unit_of_work import UnitOfWork

PERIOD = "2026-10"


def _check(result: pack.PackResult, month_keys: set[tuple[str, str, Decimal]]) -> None:
    found = found_keys(result.differences)
    assert found - month_keys == set(), "flagged but not planted"
    assert month_keys - found == set(), "planted but not found"
    assert result.summary["residual_unexplained"] == "0.00"
    assert result.summary["identity_breaks"] == 0


def test_planted_discrepancies_found_exactly_from_the_legs(db_url: str, tmp_path: Path) -> None:
    month = generate(PERIOD, 700, seed=5)
    assert {p.kind for p in month.planted} == set(PLANTS)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        load_legs(conn, month)
    with UnitOfWork(session_factory(engine)) as uow:
        result = pack.build(uow, Scope(PERIOD), tmp_path)
    engine.dispose()
    _check(result, planted_keys(month))
    assert result.summary["returns"] == 700
    cats = result.summary["categories"]
    assert cats["duplicate_refund"]["count"] == sum(
        1 for p in month.planted if p.category is Category.DUPLICATE_REFUND)
    data = (tmp_path / f"reconciliation-{PERIOD}.json").read_text()
    assert '"residual_unexplained": "0.00"' in data


def test_source_filter_keeps_one_platform(db_url: str) -> None:
    month = generate(PERIOD, 300, seed=7)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        load_legs(conn, month)
    with UnitOfWork(session_factory(engine)) as uow:
        result = pack.build(uow, Scope(PERIOD, "zigzag", ("ZZ-",)), None)
    engine.dispose()
    refs = {d["associated_ref"] for d in result.differences if d["associated_ref"]}
    assert refs and all(r.startswith("ZZ-") for r in refs)
    assert result.summary["returns"] == sum(1 for p in month.platform
                                            if p["source"] == "zigzag")


def test_month_collected_from_returns_refunds_and_shopify_orders(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    """The production path: legs read from the returns / refunds tables and each order's
    refunds read over HTTP from the Shopify sandbox (refunds made by hand included)."""
    sandbox = ShopifySandbox().start()
    try:
        rt = runtime_factory(policy=policy_settings(), shopify=sandbox.settings(),
                             reconciliation={"out_dir": str(tmp_path)})
        month = generate(PERIOD, 160, seed=11)
        with rt.sessions() as session, session.begin():
            fill_system(session, sandbox, month)
        with ShopifyClient(rt.settings.shopify) as client:
            assert client.find_order(month.platform[0]["order_ref"]).refunds is not None
        result = service.month_end(rt, PERIOD, out_dir=tmp_path, formats=["json"])
    finally:
        sandbox.stop()
    _check(result, planted_keys(month))
    by_hand = [d for d in result.differences if not d["associated_ref"]]
    assert by_hand and all(d["provider_ref"].startswith("gid://shopify/Refund/")
                           for d in by_hand)
