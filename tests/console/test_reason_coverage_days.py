"""The Mapping page's ``?days=N`` coverage comes from per-day pre-grouped rows kept current by
database triggers (migration 0012). Whatever writes the returns, the page must show exactly
what grouping every line of the period live shows: checked on SQLite and PostgreSQL after
new returns, a return seen again on another day, a line's reason changed, a line and a
return deleted, and for rows stored before the migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from returnbridge.flows.console import views as console_views
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from returnbridge.store.models import (
    ReasonCoverageDay,
    ReasonCoverageDirty,
    ReturnLineRow,
    ReturnRow,
    utcnow,
)
from tests.conftest import make_settings

REASONS = ["Too small", "Arrived damaged", "Changed my mind", "Lost in post"]


def live(session: Session, config: Any, days: int) -> dict[str, Any]:
    """The oracle: every line of the period grouped live (the page before 0012)."""
    from returnbridge.flows.exceptions.coverage import map_line

    cutoff = utcnow() - timedelta(days=days)
    rows = session.execute(
        select(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
               ReturnLineRow.disposition, ReturnLineRow.physical_return_expected,
               func.count(func.distinct(ReturnRow.id)), func.count(),
               func.sum(ReturnLineRow.quantity), func.max(ReturnRow.last_event_at),
               func.max(ReturnRow.associated_ref))
        .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
        .where(ReturnRow.last_event_at >= cutoff)
        .group_by(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                  ReturnLineRow.disposition, ReturnLineRow.physical_return_expected)).all()
    groups = sorted(
        (s, r, c, d, not p, int(n), int(lines), int(u or 0), last.isoformat(), str(ex),
         map_line(config, s, r, c, d, not p)[0]) for s, r, c, d, p, n, lines, u, last, ex
        in rows)
    seen = session.scalar(select(func.count()).select_from(ReturnRow)
                          .where(ReturnRow.last_event_at >= cutoff))
    return {"groups": groups, "seen": seen}


def page(rt: Runtime, days: int) -> dict[str, Any]:
    report = console_views.reason_coverage(rt, days)
    groups = sorted((g.source, g.reason, g.condition, g.disposition, g.keep_item, g.returns,
                     g.lines, g.units, g.last_seen, g.example_ref, g.status)
                    for g in report["reasons"])
    return {"groups": groups, "seen": report["returns_seen"]}


def same(rt: Runtime, days: int = 10) -> dict[str, Any]:
    shown = page(rt, days)
    with rt.sessions() as session:
        expected = live(session, rt.policy_config(), days)
        assert session.scalar(select(func.count()).select_from(ReasonCoverageDirty)) == 0
    assert shown == expected
    return shown


def add_returns(session: Session, first: int, n: int, now: datetime) -> None:
    for i in range(first, first + n):
        seen = now - timedelta(hours=7 * i)  # spread over ~2 weeks, across the cut-off
        session.execute(insert(ReturnRow).values(
            id=i, associated_ref=f"LR-{i}", source="loop" if i % 3 else "zigzag",
            source_return_id=str(i), state="closed", khaos_status="done",
            first_seen_at=seen, last_event_at=seen, case_json={}))
        for pos in range(1 + i % 3):
            session.execute(insert(ReturnLineRow).values(
                return_id=i, position=pos, sku=f"SKU-{i}", quantity=1 + pos,
                unit_net=Decimal("10"), unit_tax=Decimal("2"), unit_gross=Decimal("12"),
                discount=Decimal(0), reason=REASONS[(i + pos) % len(REASONS)],
                disposition="restock" if pos != 2 else "write_off",
                physical_return_expected=i % 7 != 0, source_unit_ids=[]))


def test_the_period_shows_what_grouping_it_live_shows_after_every_kind_of_write(
        runtime: Runtime) -> None:
    rt = runtime
    now = utcnow()
    with rt.sessions() as s, s.begin():
        add_returns(s, 1, 60, now)
    first = same(rt)
    assert first["seen"] > 20 and len(first["groups"]) > 4
    with rt.sessions() as s:  # the read rebuilt the days and cleared the marks
        assert s.scalar(select(func.count()).select_from(ReasonCoverageDay)) > 10

    with rt.sessions() as s, s.begin():  # an old return seen again today (an event)
        s.execute(update(ReturnRow).where(ReturnRow.id == 55).values(last_event_at=now))
        s.execute(update(ReturnLineRow).where(ReturnLineRow.return_id == 12)
                  .values(reason="Wrong colour"))
    second = same(rt)
    assert any(g[1] == "Wrong colour" for g in second["groups"])
    assert second != first

    with rt.sessions() as s, s.begin():  # a return's lines replaced, as save_case does
        row = s.get(ReturnRow, 3)
        assert row is not None
        row.last_event_at = now - timedelta(days=1)
        row.lines = [ReturnLineRow(position=0, sku="X", quantity=4, unit_net=Decimal(1),
                                   unit_tax=Decimal(0), unit_gross=Decimal(1),
                                   discount=Decimal(0), reason="Late", disposition="restock",
                                   source_unit_ids=[])]
    assert any(g[1] == "Late" and g[7] == 4 for g in same(rt)["groups"])

    with rt.sessions() as s, s.begin():
        s.execute(delete(ReturnLineRow).where(ReturnLineRow.return_id == 4,
                                              ReturnLineRow.position == 1))
        s.execute(delete(ReturnRow).where(ReturnRow.id == 5))
        add_returns(s, 61, 5, now)
    same(rt)
    same(rt, days=3)  # another cut-off day, from the same stored days
    same(rt, days=400)




def test_returns_stored_before_the_migration_are_grouped_by_it(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine, "0011")
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        add_returns(s, 1, 30, now)
    upgrade(engine)
    engine.dispose()
    rt = Runtime.from_settings(make_settings(empty_db_url))
    try:
        with rt.sessions() as s:
            assert s.scalar(select(func.count()).select_from(ReasonCoverageDirty)) == 0
            assert s.scalar(select(func.count()).select_from(ReasonCoverageDay)) > 10
        same(rt)
    finally:
        rt.close()
