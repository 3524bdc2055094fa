"""The exception queue: one row per problem (deduplicated), with counts and resolution."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import CATALOGUE, Problem
from returnbridge.store.models import ExceptionRow, utcnow
from returnbridge.store.reads import reading

STATUSES = ("open", "resolved", "ignored")


def _re_evaluable(row: ExceptionRow) -> bool:
    # Only problems that the policy re-checks on every evaluation can disappear by
    # themselves; the rest need a person (or the flow that raised them).
    if row.type in {"unmapped_return_reason", "unknown_customer", "sku_mismatch",
                    "exchange_unknown_sku", "exchange_not_web_enabled",
                    "exchange_out_of_stock", "non_return_outcome_unmapped",
                    "currency_mismatch"}:
        return True
    return row.type in {"tax_drift", "amount_mismatch"} and (
        (row.details or {}).get("origin") == "policy")


class ExceptionsRepository:
    """The exception queue in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def raise_problem(self, problem: Problem, *, return_id: int | None = None,
                      associated_ref: str = "", times: int = 1) -> ExceptionRow:
        """Open (or re-open, or count again) the exception for ``problem``.

        A *resolved* exception whose cause is found again is re-opened (a manual resolve does
        not make the cause go away). An *ignored* one stays ignored: a person decided it needs
        no action, but its count and last-seen time still move so the decision can be revisited.
        """
        kind = CATALOGUE[problem.type]
        problem = _storable(problem)
        associated_ref = _no_nul(associated_ref)
        row = self._session.scalars(
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
                next_action=problem.next_action or kind.next_action, details=dict(problem.details),
                count=max(times, 1),
                first_seen_at=now, last_seen_at=now,
            )
            self._session.add(row)
        else:
            row.count += times
            row.last_seen_at = now
            row.message = problem.message
            # the same gap re-evaluated: its current figures, not the first ones
            row.details = {**(row.details or {}), **problem.details}
            row.next_action = problem.next_action or kind.next_action
            if row.status == "resolved":
                row.status = "open"
                row.resolved_at = None
                row.resolution = ""
                row.resolved_by = ""
        self._session.flush()
        return row

    def open_for_return(self, return_id: int) -> list[ExceptionRow]:
        with reading(self._session, ExceptionRow):
            return list(self._session.scalars(
                select(ExceptionRow)
                .where(ExceptionRow.return_id == return_id, ExceptionRow.status == "open")
                .order_by(ExceptionRow.id)
            ))

    def resolve_missing(self, return_id: int, still_present: Iterable[Problem],
                        *, by: str, how: str) -> list[ExceptionRow]:
        """Resolve this return's open exceptions that re-evaluation no longer finds."""
        present = {(p.type, p.dedupe_key) for p in still_present}
        resolved = []
        for row in self.open_for_return(return_id):
            if (row.type, row.dedupe_key) not in present and _re_evaluable(row):
                row.status = "resolved"
                row.resolved_at = utcnow()
                row.resolved_by = by
                row.resolution = how
                resolved.append(row)
        if resolved:  # else the session's other changes are written together later
            self._session.flush()
        return resolved

    def resolve_by_key(self, exception_type: str, dedupe_key: str, *, by: str,
                       how: str) -> list[ExceptionRow]:
        """Resolve the open exception with this type and dedupe key, if there is one."""
        rows = list(self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == exception_type, ExceptionRow.dedupe_key == dedupe_key,
            ExceptionRow.status == "open")))
        for row in rows:
            row.status = "resolved"
            row.resolved_at = utcnow()
            row.resolved_by = by
            row.resolution = how
        self._session.flush()
        return rows

    def get(self, exception_id: int, *, for_update: bool = False) -> ExceptionRow | None:
        stmt = select(ExceptionRow).where(ExceptionRow.id == exception_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self._session.scalars(stmt).first()

    def search(self, *, status: str | None = "open", owner: str | None = None,
               type: str | None = None, ref: str | None = None, limit: int = 100,
               offset: int = 0) -> tuple[list[ExceptionRow], int]:
        """One page of exceptions, most recently seen first, and how many match in total.

        ``status=None`` (or ``"all"``) means every status; ``ref`` matches the AssociatedRef
        exactly, case-insensitively.
        """
        conditions: list[ColumnElement[bool]] = []
        if status and status != "all":
            conditions.append(ExceptionRow.status == status)
        if owner:
            conditions.append(ExceptionRow.owner == owner)
        if type:
            conditions.append(ExceptionRow.type == type)
        if ref:
            conditions.append(func.upper(ExceptionRow.associated_ref) == ref.strip().upper())
        total = self._session.scalar(
            select(func.count()).select_from(ExceptionRow).where(*conditions))
        rows = self._session.scalars(
            select(ExceptionRow).where(*conditions)
            .order_by(ExceptionRow.last_seen_at.desc(), ExceptionRow.id.desc())
            .limit(limit).offset(offset)
        ).all()
        return list(rows), int(total or 0)

    def close(self, row: ExceptionRow, status: str, *, by: str, how: str) -> None:
        """Mark ``row`` resolved or ignored by a person (or a flow), saying how."""
        if status not in ("resolved", "ignored"):
            raise ValueError(f"cannot close an exception as {status!r}")
        row.status = status
        row.resolved_at = utcnow()
        row.resolved_by = by[:120]
        row.resolution = how

    # --- refunds, confirm ---

    # --- ingest, decide ---

    def find(self, exception_type: str, dedupe_key: str) -> ExceptionRow | None:
        """The exception with this type and dedupe key, in any status."""
        return self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == exception_type, ExceptionRow.dedupe_key == dedupe_key)
        ).first()

    def is_open(self, exception_type: str, dedupe_key: str) -> bool:
        """Whether the exception with this type and dedupe key is open."""
        return self._session.scalars(select(ExceptionRow.id).where(
            ExceptionRow.type == exception_type, ExceptionRow.dedupe_key == dedupe_key,
            ExceptionRow.status == "open")).first() is not None

    def has_open_for_return(self, return_id: int, exception_type: str) -> bool:
        """Whether this return has an open exception of this type."""
        return self._session.scalars(select(ExceptionRow.id).where(
            ExceptionRow.return_id == return_id, ExceptionRow.type == exception_type,
            ExceptionRow.status == "open")).first() is not None

    def resolve_for_return(self, return_id: int, exception_type: str, *, by: str,
                           how: str) -> int:
        """Resolve this return's open exceptions of this type; how many there were."""
        rows = self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.return_id == return_id, ExceptionRow.type == exception_type,
            ExceptionRow.status == "open")).all()
        for row in rows:
            row.status = "resolved"
            row.resolved_at = utcnow()
            row.resolved_by = by[:120]
            row.resolution = how
        return len(rows)

    # --- exceptions, console, reconcile ---

    def credit_resolution(self, row: ExceptionRow, *, by: str, how: str) -> None:
        """Say who (and how) closed ``row``, keeping its status and time."""
        row.resolved_by = by[:120]
        row.resolution = how

    def open_rows(self) -> list[ExceptionRow]:
        """Every open exception, oldest first."""
        return list(self._session.scalars(
            select(ExceptionRow).where(ExceptionRow.status == "open").order_by(ExceptionRow.id)))

    def not_resolved_exists(self, exception_type: str, dedupe_key: str) -> bool:
        """True when this exception exists and is open or ignored."""
        return self._session.scalar(select(ExceptionRow.id).where(
            ExceptionRow.type == exception_type, ExceptionRow.dedupe_key == dedupe_key,
            ExceptionRow.status != "resolved")) is not None

    def refresh_seen(self, row: ExceptionRow, problem: Problem) -> None:
        """The same problem seen again: its current figures and message, not counted again."""
        row.details = {**(row.details or {}), **problem.details}
        row.message = problem.message
        row.last_seen_at = utcnow()

    def assign_owner(self, row: ExceptionRow, owner: str) -> None:
        row.owner = owner

    def open_of_type(self, exception_type: str) -> list[ExceptionRow]:
        return list(self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == exception_type, ExceptionRow.status == "open")))

    def with_key(self, dedupe_key: str) -> list[ExceptionRow]:
        """Every exception (any type and status) with this dedupe key, oldest first."""
        return list(self._session.scalars(select(ExceptionRow).where(
            ExceptionRow.dedupe_key == dedupe_key).order_by(ExceptionRow.id)))

    def set_next_action(self, row: ExceptionRow, text: str) -> None:
        row.next_action = text

    def link_to_return(self, row: ExceptionRow, return_id: int, associated_ref: str) -> None:
        """The exception is about this return (known only now)."""
        row.return_id = return_id
        row.associated_ref = associated_ref

    def flush(self) -> None:
        self._session.flush()

    def open_keys(self, exception_type: str) -> set[str]:
        """The dedupe keys of the open exceptions of this type."""
        return set(self._session.scalars(select(ExceptionRow.dedupe_key).where(
            ExceptionRow.type == exception_type, ExceptionRow.status == "open")))


def _no_nul(value: Any) -> Any:
    """``value`` with NUL characters taken out of every text in it (keys too):
    PostgreSQL refuses them in text and JSON, and a problem often quotes what a source
    sent, which may hold one (a push answered 500 for it would be sent again forever)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nul(v) for v in value]
    return value


def _storable(problem: Problem) -> Problem:
    return replace(problem, message=_no_nul(problem.message),
                   dedupe_key=_no_nul(problem.dedupe_key),
                   next_action=_no_nul(problem.next_action),
                   details=_no_nul(dict(problem.details)))
