"""The console's Reconciliation page reads a month's report computed once per state of the
legs, not on every view (issue #14: every page within 300 ms with 100,000 returns).

A month's report (summary and differences) depends only on the three leg tables and the
scope. Database triggers (migration 0012) add one to ``recon_legs_version`` whenever a leg
row is inserted, changed or deleted, whoever writes it. The report is kept in
``reconciliation_reports`` with the version it was computed at; a view whose version
matches reads it back (one row), any other recomputes and stores it. The version is read
*before* computing, so a change committed meanwhile can only make the stored report newer
than its label, never older: the next view recomputes.

The scheduled continuous reconciliation warms the months it checks right after refreshing
the legs (``warm``), so a person opening the page after the nightly run does not wait."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.scoping import scope
from returnbridge.store.reconciliation_repo import ReportStoredMeanwhile
from returnbridge.store.unit_of_work import UnitOfWork

# differences values that are Decimal in pack.build's records (stored as exact text)
_MONEY_KEYS = ("amount", "credit_value", "money_paid")


def legs_version(uow: UnitOfWork) -> int | None:
    """The change count of the legs; None if its row is missing (then nothing is kept)."""
    return uow.reconciliation.legs_version()


def _dump(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in d.items()}


def _load(d: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(v) if k in _MONEY_KEYS and isinstance(v, str) else v
            for k, v in d.items()}


def report(rt: Runtime, period: str, source: str = "all") -> pack.PackResult:
    """The month's summary and differences as ``service.report`` gives them, read back when
    the legs have not changed since they were computed."""
    sc = scope(rt, period, source)
    with rt.unit_of_work() as uow:
        version = legs_version(uow)
        stored = uow.reconciliation.stored_report(period, source, version)
        if stored is not None:
            summary, differences = stored
            return pack.PackResult(period, summary, [_load(d) for d in differences], [])
        result = pack.build(uow, sc, None)
    if version is None:
        return result
    try:
        with rt.unit_of_work() as uow:
            uow.reconciliation.store_report(period, source, version, result.summary,
                                            [_dump(d) for d in result.differences])
    except ReportStoredMeanwhile:  # another view stored it at the same moment: theirs will do
        pass
    return result


def warm(rt: Runtime, periods: Iterable[str]) -> None:
    for period in periods:
        report(rt, period)
