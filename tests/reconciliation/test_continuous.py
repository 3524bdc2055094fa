"""Continuous reconciliation raises each gap once, resolves it when the missing leg
arrives, and routes stuck returns to the team that owns the stage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from returnbridge.domain.reconciliation import Category
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import continuous
from returnbridge.sandbox.month import generate, load_legs
from returnbridge.store.models import ExceptionRow, ReconCreditNoteLeg, ReturnRow

NOW = datetime(2026, 10, 31, 12, tzinfo=UTC)


def _open(rt: Runtime, kind: str) -> list[ExceptionRow]:
    with rt.sessions() as s:
        return list(s.scalars(sa.select(ExceptionRow).where(
            ExceptionRow.type == kind, ExceptionRow.status == "open")))


def test_gaps_raised_once_and_resolved_when_the_leg_arrives(runtime: Runtime) -> None:
    month = generate("2026-10", 200, seed=21)
    # every return is settled well within the clearing window (no ageing noise)
    for p in month.platform:
        p["outcome_at"] = NOW - timedelta(days=2)
    for c in month.credit_notes:
        c["raised_at"] = NOW - timedelta(days=3)
    for pay in month.payments:
        pay["created_at"] = NOW - timedelta(days=1)
    with runtime.engine.begin() as conn:
        load_legs(conn, month)
    first = continuous.run(runtime, NOW)
    assert len(first.raised) == len(month.planted)
    gaps = _open(runtime, "reconciliation_gap")
    assert {(g.details["category"]) for g in gaps} == {p.category.value for p in month.planted}
    assert all(g.owner == "finance" and g.next_action.startswith("[") for g in gaps)

    second = continuous.run(runtime, NOW)
    assert second.raised == [] and second.resolved == []
    assert all(g.count == 1 for g in _open(runtime, "reconciliation_gap"))

    # the missing credit note arrives for one return whose refund had none
    missing = next(p for p in month.planted if p.kind == "credit_note_missing")
    plat = next(p for p in month.platform if p["associated_ref"] == missing.key)
    value = plat["goods"] + plat["shipping"] - plat["handling_fee"] + plat["bonus"] \
        + plat["upsell"]
    with runtime.engine.begin() as conn:
        conn.execute(sa.insert(ReconCreditNoteLeg.__table__), [{
            "associated_ref": missing.key, "code": "CN-LATE", "value": value,
            "tax": plat["tax"], "shipping_line": 0, "fee_line": 0, "stage": "Processed",
            "cleared": True, "raised_at": NOW}])
    third = continuous.run(runtime, NOW)
    assert third.resolved == [f"{missing.key}:recon:{Category.REFUND_WITHOUT_CREDIT_NOTE}"]
    assert third.raised == []
    with runtime.sessions() as s:
        row = s.scalars(sa.select(ExceptionRow).where(
            ExceptionRow.dedupe_key == third.resolved[0])).one()
        assert row.status == "resolved" and "missing leg arrived" in row.resolution


def test_not_cleared_and_stuck_returns_routed_to_their_owner(runtime: Runtime) -> None:
    month = generate("2026-10", 30, seed=2, discrepancy_share=0)
    for p in month.platform:
        p["outcome_at"] = NOW - timedelta(days=1)
    month.platform[0]["outcome_at"] = NOW - timedelta(days=10)
    month.credit_notes[0]["cleared"] = False
    month.credit_notes[0]["stage"] = "Awaiting"
    with runtime.engine.begin() as conn:
        load_legs(conn, month)
    with runtime.sessions() as s, s.begin():
        for ref, status, field, hours in (("LR-STUCK-1", "imported", "imported_at", 400),
                                          ("LR-STUCK-2", "ready", "ready_at", 10),
                                          ("ZZ-FRESH-1", "ready", "ready_at", 1),
                                          ("ZZ-STUCK-3", "credit_confirmed",
                                           "credit_confirmed_at", 60)):
            row = ReturnRow(associated_ref=ref, source="loop", source_return_id=ref,
                            state="received", khaos_status=status)
            setattr(row, field, NOW - timedelta(hours=hours))
            s.add(row)
    outcome = continuous.run(runtime, NOW)
    not_cleared = _open(runtime, "credit_note_not_cleared")
    assert [e.associated_ref for e in not_cleared] == [month.platform[0]["associated_ref"]]
    assert not_cleared[0].owner == "finance"
    stuck = {e.associated_ref: (e.owner, e.details["stage"])
             for e in _open(runtime, "return_stuck")}
    assert stuck == {"LR-STUCK-1": ("warehouse", "imported"), "LR-STUCK-2": ("ops", "ready"),
                     "ZZ-STUCK-3": ("finance", "refund_held")}
    assert len(outcome.raised) == 4
    # the return moves on: its stuck exception resolves itself
    with runtime.sessions() as s, s.begin():
        row = s.scalars(sa.select(ReturnRow).where(
            ReturnRow.associated_ref == "LR-STUCK-2")).one()
        row.khaos_status = "served"
        row.served_at = NOW - timedelta(hours=1)
    later = continuous.run(runtime, NOW)
    assert later.resolved == ["LR-STUCK-2:recon:stuck:ready"]
