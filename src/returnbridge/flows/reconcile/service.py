"""What the CLI, the API and the schedule call: refresh the legs, then reconcile."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from returnbridge.domain.reconciliation import period_bounds
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import continuous, legs, pack, report_cache
from returnbridge.flows.reconcile.scoping import scope

log = structlog.get_logger(__name__)

def _orders(rt: Runtime) -> Any:
    s = rt.settings.shopify
    if not rt.settings.reconciliation.read_shopify_orders or not (
            s.shop_domain or s.base_url):
        return None
    return rt.shopify_client()


def refresh_legs(rt: Runtime, since: datetime) -> dict[str, int]:
    orders = _orders(rt)
    try:
        return legs.refresh(rt, since, orders=orders)
    finally:
        if orders is not None:
            with suppress(Exception):
                orders.close()


def month_end(rt: Runtime, period: str, *, source: str = "all", out_dir: Path | None = None,
              formats: Iterable[str] = pack.FORMATS, refresh: bool = True,
              progress: pack.Progress | None = None) -> pack.PackResult:
    sc = scope(rt, period, source)
    if refresh:
        refresh_legs(rt, legs.default_since(sc.bounds[0]))
    out = out_dir if out_dir is not None else Path(rt.settings.reconciliation.out_dir)
    with rt.unit_of_work() as uow:
        return pack.build(uow, sc, out, formats, progress)


def report(rt: Runtime, period: str, source: str = "all") -> pack.PackResult:
    """The month's summary and differences from the legs as stored; writes no file."""
    sc = scope(rt, period, source)
    with rt.unit_of_work() as uow:
        return pack.build(uow, sc, None)


def count(rt: Runtime, period: str, source: str = "all") -> int:
    sc = scope(rt, period, source)
    with rt.unit_of_work() as uow:
        return uow.reconciliation.count(sc)


def run_continuous(rt: Runtime, now: datetime | None = None) -> continuous.Outcome:
    now = now or datetime.now(UTC)
    first = continuous.periods(now, rt.settings.reconciliation.months_checked)[-1]
    refresh_legs(rt, legs.default_since(period_bounds(first)[0]))
    outcome = continuous.run(rt, now)

    report_cache.warm(rt, continuous.periods(now, rt.settings.reconciliation.months_checked))
    log.info("continuous reconciliation ran", summary=str(outcome))
    return outcome
