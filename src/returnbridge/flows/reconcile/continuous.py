"""Continuous reconciliation (issue #13): run on a schedule (``[reconciliation]
interval_hours``, daily by default) and on demand.

Each difference the engine finds becomes one ``reconciliation_gap`` exception (keyed by
return and category: raised once, its figures kept current, never counted again on every
run) for finance; it is resolved when the missing leg arrives or the figures agree.
Returns the platform closed whose credit note is not cleared after N days become
``credit_note_not_cleared``; returns stuck in a stage past its age become ``return_stuck``,
routed to the stage's owning team.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.reconciliation import (
    AGEING_INFO,
    INFO,
    STAGE_OWNERS,
    AgeingCategory,
    Category,
    from_minor,
    period_bounds,
)
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.engine import Scope
from returnbridge.store.models import ReturnRow
from returnbridge.store.unit_of_work import UnitOfWork

GAP, NOT_CLEARED, STUCK = "reconciliation_gap", "credit_note_not_cleared", "return_stuck"
BY = "returnbridge reconciliation"


@dataclass
class Outcome:
    raised: list[str] = field(default_factory=list)
    updated: int = 0
    resolved: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{len(self.raised)} gap(s) raised, {self.updated} still open, "
                f"{len(self.resolved)} resolved")


def periods(now: datetime, months: int) -> list[str]:
    out, y, m = [], now.year, now.month
    for _ in range(months):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


def _gap_problem(d: dict[str, Any], period: str) -> Problem:
    cat = Category(d["category"])
    subject = d["associated_ref"] or f"order {d['order_ref']} refund {d['provider_ref']}"
    key_ref = d["associated_ref"] or f"{d['order_ref']}:{d['provider_ref']}"
    return Problem(
        type=GAP, dedupe_key=f"{key_ref}:recon:{cat.value}",
        message=f"{subject}: {cat.value} {d['amount']} {d['currency']}".rstrip()
        + f" — {INFO[cat].meaning}",
        details={"category": cat.value, "amount": str(d["amount"]), "period": period,
                 "currency": str(d["currency"] or ""),
                 "order_ref": str(d["order_ref"]), "credit_note": str(d["credit_note_code"]),
                 "provider_ref": str(d["provider_ref"])},
        next_action=f"[{cat.value}] {INFO[cat].next_action}")


def _raise(uow: UnitOfWork, problem: Problem, ref: str, owner: str | None,
           out: Outcome) -> None:
    row = uow.exceptions.find(problem.type, problem.dedupe_key)
    if row is not None and row.status in ("open", "ignored"):
        uow.exceptions.refresh_seen(row, problem)
        out.updated += 1
        return
    ret = uow.returns.by_ref(ref) if ref else None
    exc = uow.exceptions.raise_problem(problem, return_id=ret.id if ret else None,
                                       associated_ref=ref)
    if owner:
        uow.exceptions.assign_owner(exc, owner)
    if ret is not None:
        uow.returns.add_timeline(ret, "exception", f"{exc.type}: {exc.message}", {})
    out.raised.append(problem.dedupe_key)


def _resolve_absent(uow: UnitOfWork, kind: str, present: set[str], periods_: list[str] | None,
                    how: str, out: Outcome) -> None:
    for row in uow.exceptions.open_of_type(kind):
        if row.dedupe_key in present:
            continue
        if periods_ is not None and (row.details or {}).get("period") not in periods_:
            continue
        uow.exceptions.close(row, "resolved", by=BY, how=how)
        out.resolved.append(row.dedupe_key)


def run(rt: Runtime, now: datetime | None = None) -> Outcome:
    """One continuous pass over the legs as they are now (refresh them first)."""
    now = now or datetime.now(UTC)
    settings = rt.settings.reconciliation
    out = Outcome()
    checked = periods(now, settings.months_checked)
    ignore = set(settings.ignore_categories)
    with rt.unit_of_work() as uow:
        present: set[str] = set()
        for period in checked:
            result = pack.build(uow, Scope(period), None)
            for d in result.differences:
                if d["category"] in ignore:
                    continue
                problem = _gap_problem(d, period)
                present.add(problem.dedupe_key)
                _raise(uow, problem, d["associated_ref"], None, out)
        _resolve_absent(uow, GAP, present, checked,
                        "the missing leg arrived or the figures now agree", out)
        present = set()
        for problem, ref in _not_cleared(uow, now, settings.credit_note_clear_days):
            present.add(problem.dedupe_key)
            _raise(uow, problem, ref, None, out)
        _resolve_absent(uow, NOT_CLEARED, present, None,
                        "Khaos reports the credit note cleared", out)
        present = set()
        for problem, ref, owner in _stuck(uow, now, settings.stage_age_hours):
            present.add(problem.dedupe_key)
            _raise(uow, problem, ref, owner, out)
        _resolve_absent(uow, STUCK, present, None, "the return moved on", out)
    return out


def _not_cleared(uow: UnitOfWork, now: datetime, days: int) -> list[tuple[Problem, str]]:
    limit = now - timedelta(days=days)
    info = AGEING_INFO[AgeingCategory.CREDIT_NOTE_NOT_CLEARED]
    out = []
    for r in uow.reconciliation.settled_not_cleared(limit):
        what = (f"credit note {r['code']} at stage {r['stage'] or 'unknown'}" if r["code"]
                else "no credit note")
        out.append((Problem(
            type=NOT_CLEARED, dedupe_key=f"{r['associated_ref']}:recon:not_cleared",
            message=f"{r['associated_ref']} was {r['state']} in the platform on "
            f"{r['outcome_at']:%Y-%m-%d}; {what} after {days} day(s).",
            details={"credit_note": r["code"] or "", "stage": r["stage"] or "",
                     "value": str(from_minor(int(r["value"] or 0))),
                     "platform_state": r["state"]},
            next_action=info.next_action), r["associated_ref"]))
    return out


_STAGE_SINCE = {
    "pending": ((("pending", "held")), ReturnRow.first_seen_at),
    "ready": (("ready",), ReturnRow.ready_at),
    "served": (("served",), ReturnRow.served_at),
    "imported": (("imported",), ReturnRow.imported_at),
    "refund_held": (("credit_confirmed",), ReturnRow.credit_confirmed_at),
}
_ENDED = ("cancelled", "expired")


def _stuck(uow: UnitOfWork, now: datetime,
           ages: dict[str, float]) -> list[tuple[Problem, str, str]]:
    found: list[tuple[str, str, datetime | None]] = []
    for stage, (statuses, since) in _STAGE_SINCE.items():
        hours = ages.get(stage, 0)
        if hours <= 0:
            continue
        limit = now - timedelta(hours=hours)
        found.extend((stage, ref, at) for ref, at in uow.reconciliation.in_status_since(
            statuses, since, limit, _ENDED))
    hours = ages.get("received_not_graded", 0)
    if hours > 0:
        limit = now - timedelta(hours=hours)
        found.extend(("received_not_graded", ref, at)
                     for ref, at in uow.reconciliation.received_not_graded(limit, _ENDED))
    info = AGEING_INFO[AgeingCategory.STUCK]
    out = []
    for stage, ref, seen in found:
        if seen is None:
            continue
        at = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
        age_h = (now - at).total_seconds() / 3600
        owner = STAGE_OWNERS[stage].value
        out.append((Problem(
            type=STUCK, dedupe_key=f"{ref}:recon:stuck:{stage}",
            message=f"{ref} has been {stage.replace('_', ' ')} for {age_h:.0f} hours "
            f"(limit {ages[stage]:g}); owner: {owner}.",
            details={"stage": stage, "since": at.isoformat(), "age_hours": f"{age_h:.1f}",
                     "owner": owner},
            next_action=f"[{stage}] {info.next_action}"), ref, owner))
    return out


def period_of(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


def bounds(period: str) -> tuple[datetime, datetime]:
    return period_bounds(period)
