"""The exception queue: one row per problem (deduplicated), with counts and resolution."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import CATALOGUE, Problem
from returnbridge.store.models import ExceptionRow, utcnow


def raise_problem(session: Session, problem: Problem, *, return_id: int | None = None,
                  associated_ref: str = "", times: int = 1) -> ExceptionRow:
    """Open (or re-open, or count again) the exception for ``problem``."""
    kind = CATALOGUE[problem.type]
    row = session.scalars(
        select(ExceptionRow).where(
            ExceptionRow.type == problem.type, ExceptionRow.dedupe_key == problem.dedupe_key
        )
    ).first()
    now = utcnow()
    if row is None:
        row = ExceptionRow(
            type=problem.type, owner=kind.owner.value, severity=kind.severity.value,
            status="open", return_id=return_id, associated_ref=associated_ref,
            dedupe_key=problem.dedupe_key, message=problem.message,
            next_action=kind.next_action, details=dict(problem.details), count=times,
            first_seen_at=now, last_seen_at=now,
        )
        session.add(row)
    else:
        row.count += times
        row.last_seen_at = now
        row.message = problem.message
        if row.status == "resolved":
            row.status = "open"
            row.resolved_at = None
            row.resolution = ""
            row.resolved_by = ""
    session.flush()
    return row


def open_for_return(session: Session, return_id: int) -> list[ExceptionRow]:
    return list(session.scalars(
        select(ExceptionRow)
        .where(ExceptionRow.return_id == return_id, ExceptionRow.status == "open")
        .order_by(ExceptionRow.id)
    ))


def resolve_missing(session: Session, return_id: int, still_present: Iterable[Problem],
                    *, by: str, how: str) -> list[ExceptionRow]:
    """Resolve this return's open exceptions that re-evaluation no longer finds."""
    present = {(p.type, p.dedupe_key) for p in still_present}
    resolved = []
    for row in open_for_return(session, return_id):
        if (row.type, row.dedupe_key) not in present and _re_evaluable(row.type):
            row.status = "resolved"
            row.resolved_at = utcnow()
            row.resolved_by = by
            row.resolution = how
            resolved.append(row)
    session.flush()
    return resolved


def _re_evaluable(exception_type: str) -> bool:
    # Only problems that the policy re-checks on every evaluation can disappear by
    # themselves; the rest need a person.
    return exception_type in {"unmapped_return_reason", "unknown_customer", "sku_mismatch",
                              "exchange_unknown_sku", "exchange_not_web_enabled",
                              "exchange_out_of_stock", "non_return_outcome_unmapped"}
