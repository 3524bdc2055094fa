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

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.scoping import scope
from returnbridge.store.models import ReconciliationReport, ReconLegsVersion, utcnow

# differences values that are Decimal in pack.build's records (stored as exact text)
_MONEY_KEYS = ("amount", "credit_value", "money_paid")


def legs_version(conn: Connection) -> int | None:
    """The change count of the legs; None if its row is missing (then nothing is kept)."""
    n = conn.scalar(select(ReconLegsVersion.n).where(ReconLegsVersion.id == 1))
    return None if n is None else int(n)


def _dump(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in d.items()}


def _load(d: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(v) if k in _MONEY_KEYS and isinstance(v, str) else v
            for k, v in d.items()}


def report(rt: Runtime, period: str, source: str = "all") -> pack.PackResult:
    """The month's summary and differences as ``service.report`` gives them, read back when
    the legs have not changed since they were computed."""
    sc = scope(rt, period, source)
    t = ReconciliationReport
    with rt.engine.connect() as conn:
        version = legs_version(conn)
        row = conn.execute(select(t.summary, t.differences).where(
            t.period == period, t.source == source, t.legs_version == version)).first()
        if row is not None:
            return pack.PackResult(period, dict(row[0]), [_load(d) for d in row[1]], [])
        result = pack.build(conn, sc, None)
        conn.rollback()
    if version is None:
        return result
    try:
        with rt.engine.begin() as conn:
            conn.execute(delete(t).where(t.period == period, t.source == source))
            conn.execute(insert(t).values(
                period=period, source=source, legs_version=version, computed_at=utcnow(),
                summary=result.summary, differences=[_dump(d) for d in result.differences]))
    except IntegrityError:  # another view stored it at the same moment: theirs will do
        pass
    return result


def warm(rt: Runtime, periods: Iterable[str]) -> None:
    for period in periods:
        report(rt, period)
