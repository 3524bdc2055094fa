"""The exception queue's operator actions: list, show, retry, resolve, ignore.

Decisions (documented for operators in docs/exceptions.md):

- **retry** re-evaluates the return an *open* exception blocks (``reevaluate_return``). If the
  policy no longer finds the problem, the exception is resolved "by retry"; if it does, the
  exception stays open and the result says so. A return already handed to Khaos is never
  re-sent, so retry is refused for it.
- **resolve** is a person saying "dealt with". It does not make a cause go away: for a
  blocking exception the return is re-evaluated straight after, so it is released if
  nothing else blocks it, or the exception re-opens at once when the cause is still there
  (outcome ``reopened``). A later event finding the same problem also re-opens it.
- **ignore** takes the exception out of the open queue for good: when the same problem is
  found again (same dedupe key) it stays ignored, only its count and last-seen time move.
  Ignoring a blocking exception does not release its return (Khaos would refuse it); use it
  for returns handled outside returnbridge.

Every action is written to the hash-chained audit log with who and why, and to the
return's timeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from returnbridge.domain.exceptions import CATALOGUE, Owner, Severity
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.flows.decide.reevaluate import reevaluate_return
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import exceptions_repo
from returnbridge.store.models import ExceptionRow, ReturnRow, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

STATUS_FILTERS = (*exceptions_repo.STATUSES, "all")
RUNBOOK_DIR = "docs/runbooks"


class ExceptionNotFound(LookupError):
    """No exception has this id (HTTP 404)."""

    def __init__(self, exception_id: int) -> None:
        super().__init__(f"no exception with id {exception_id}")
        self.exception_id = exception_id


class ActionRefused(Exception):
    """The action does not apply to the exception in its current state (HTTP 409)."""


class MissingReason(ValueError):
    """resolve and ignore need a reason (HTTP 422)."""


class BadFilter(ValueError):
    """A list filter names a status, owner or type that does not exist (HTTP 400)."""


@dataclass(frozen=True)
class ExceptionListing:
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ActionResult:
    """What an action did. ``outcome``: resolved | ignored | still_open | reopened."""

    exception_id: int
    action: str
    outcome: str
    message: str
    khaos_status: str | None
    exception: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"exception_id": self.exception_id, "action": self.action,
                "outcome": self.outcome, "message": self.message,
                "khaos_status": self.khaos_status, "exception": self.exception}


# --- read side -------------------------------------------------------------------------


def age_text(hours: float) -> str:
    """``2d 3h``, ``5h``, ``12m``: short enough for a table column."""
    minutes = int(hours * 60)
    if minutes < 60:
        return f"{minutes}m"
    whole_hours = minutes // 60
    if whole_hours < 48:
        return f"{whole_hours}h"
    return f"{whole_hours // 24}d {whole_hours % 24}h"


def exception_view(row: ExceptionRow, now: datetime | None = None) -> dict[str, Any]:
    """The JSON shape of one exception (a superset of the original API fields)."""
    now = now or utcnow()
    until = row.resolved_at if row.status != "open" and row.resolved_at else now
    hours = max((until - row.first_seen_at).total_seconds(), 0.0) / 3600
    return {
        "id": row.id, "type": row.type, "owner": row.owner, "severity": row.severity,
        "status": row.status, "associated_ref": row.associated_ref,
        "return_id": row.return_id, "message": row.message, "next_action": row.next_action,
        "details": row.details, "count": row.count,
        "first_seen_at": row.first_seen_at.isoformat(),
        "last_seen_at": row.last_seen_at.isoformat(),
        "age_hours": round(hours, 1), "age_days": round(hours / 24, 1), "age": age_text(hours),
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "resolved_by": row.resolved_by, "resolution": row.resolution,
        "runbook": f"{RUNBOOK_DIR}/{row.type}.md",
    }


def _check_filters(status: str | None, owner: str | None, type: str | None) -> None:
    if status is not None and status not in STATUS_FILTERS:
        raise BadFilter(f"unknown status {status!r}; use one of {', '.join(STATUS_FILTERS)}")
    owners = [o.value for o in Owner]
    if owner is not None and owner not in owners:
        raise BadFilter(f"unknown owner {owner!r}; use one of {', '.join(owners)}")
    if type is not None and type not in CATALOGUE:
        raise BadFilter(f"unknown exception type {type!r}; known types: "
                        f"{', '.join(sorted(CATALOGUE))}")


def list_exceptions(uow: UnitOfWork, *, status: str | None = "open",
                    owner: str | None = None, type: str | None = None,
                    ref: str | None = None, limit: int = 100,
                    offset: int = 0) -> ExceptionListing:
    """Exceptions matching the filters, most recently seen first, with their age."""
    _check_filters(status, owner or None, type or None)
    if limit < 1 or offset < 0:
        raise BadFilter("limit must be at least 1 and offset at least 0")
    rows, total = uow.exceptions.search(status=status, owner=owner or None,
                                        type=type or None, ref=ref or None, limit=limit,
                                        offset=offset)
    now = utcnow()
    return ExceptionListing(total=total, limit=limit, offset=offset,
                            items=[exception_view(r, now) for r in rows])


def candidates_of(details: dict[str, Any]) -> list[Any]:
    """Nearest catalogue candidates recorded on a ``sku_mismatch`` (list, JSON or CSV text)."""
    raw = details.get("candidates")
    if raw is None or raw == "":
        return []
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            separator = ";" if ";" in raw else ","
            return [part.strip() for part in raw.split(separator) if part.strip()]
        return parsed if isinstance(parsed, list) else [parsed]
    return [raw]


def _return_summary(ret: ReturnRow) -> dict[str, Any]:
    return {
        "associated_ref": ret.associated_ref, "source": ret.source,
        "source_return_id": ret.source_return_id, "order_ref": ret.order_ref,
        "customer_email": ret.customer_email, "state": ret.state,
        "khaos_status": ret.khaos_status, "waiting_for": ret.wait_reason,
        "lines": [{"sku": ln.sku, "quantity": ln.quantity, "reason": ln.reason,
                   "condition": ln.condition, "disposition": ln.disposition,
                   "khaos_reason_id": ln.khaos_reason_id} for ln in ret.lines],
        "exchanges": [{"sku": ex.sku, "quantity": ex.quantity} for ex in ret.exchanges],
    }


def _history(uow: UnitOfWork, exception_id: int) -> list[dict[str, Any]]:
    entries = uow.audit.entries_about(_subject(exception_id))
    return [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
             "details": e.details} for e in entries]


def show_exception(uow: UnitOfWork, exception_id: int) -> dict[str, Any]:
    """One exception with its return, candidates, meaning, runbook and action history."""
    row = uow.exceptions.get(exception_id)
    if row is None:
        raise ExceptionNotFound(exception_id)
    view = exception_view(row)
    kind = CATALOGUE.get(row.type)
    view["meaning"] = kind.meaning if kind else ""
    view["candidates"] = candidates_of(row.details) if row.type == "sku_mismatch" else []
    ret = uow.returns.get(row.return_id) if row.return_id is not None else None
    view["return"] = _return_summary(ret) if ret is not None else None
    view["history"] = _history(uow, row.id)
    return view


# --- actions ---------------------------------------------------------------------------


def _subject(exception_id: int) -> str:
    return f"exception:{exception_id}"


def _require_why(why: str, action: str) -> str:
    text = " ".join(why.split())
    if not text:
        raise MissingReason(f"{action} needs a reason (--why / \"why\"): say what was done "
                            "so the next person understands")
    return text


def _get(uow: UnitOfWork, exception_id: int, *, for_update: bool = False) -> ExceptionRow:
    row = uow.exceptions.get(exception_id, for_update=for_update)
    if row is None:
        raise ExceptionNotFound(exception_id)
    return row


def _load(uow: UnitOfWork, exception_id: int) -> ExceptionRow:
    return _get(uow, exception_id, for_update=True)


def _note(uow: UnitOfWork, row: ExceptionRow, kind: str, message: str,
          actor: str, why: str) -> None:
    if row.return_id is None:
        return
    ret = uow.returns.get(row.return_id)
    if ret is not None:
        uow.returns.add_timeline(ret, kind, message,
                                 {"exception_id": row.id, "by": actor, "why": why})


def _record(uow: UnitOfWork, row: ExceptionRow, action: str, actor: str, why: str,
            **extra: Any) -> None:
    uow.audit.record(actor=actor, action=f"exception.{action}", subject=_subject(row.id),
                 details={"why": why, "type": row.type, "associated_ref": row.associated_ref,
                          "status": row.status, **extra})


def _khaos_status(uow: UnitOfWork, row: ExceptionRow) -> str | None:
    if row.return_id is None:
        return None
    ret = uow.returns.get(row.return_id)
    return ret.khaos_status if ret is not None else None


def resolve(rt: Runtime, exception_id: int, actor: str, why: str) -> ActionResult:
    """Close an exception by hand; a blocking one is re-evaluated straight after."""
    why = _require_why(why, "resolve")
    with rt.unit_of_work() as uow:
        row = _load(uow, exception_id)
        if row.status == "resolved":
            raise ActionRefused(f"exception {row.id} is already resolved by {row.resolved_by}: "
                                f"{row.resolution}")
        previous = row.status
        uow.exceptions.close(row, "resolved", by=actor, how=f"manual: {why}")
        _record(uow, row, "resolve", actor, why, previous_status=previous)
        _note(uow, row, "exception_resolved", f"{row.type} resolved by {actor} "
              f"(manual): {why}", actor, why)
        return_id = row.return_id
        status = _khaos_status(uow, row)
        blocking = row.severity == Severity.BLOCKING.value
    if (blocking and return_id is not None and status is not None
            and KhaosStatus(status) not in DELIVERED):
        status = reevaluate_return(rt, return_id, by=actor,
                                   why=f"manual resolve of exception {exception_id}")
    with rt.unit_of_work() as uow:
        row = _get(uow, exception_id)
        view = exception_view(row)
        if row.status == "open":
            uow.audit.record(actor="returnbridge", action="exception.reopen",
                         subject=_subject(row.id),
                         details={"why": "the cause is still present after a manual resolve",
                                  "type": row.type, "associated_ref": row.associated_ref,
                                  "status": row.status, "resolved_by": actor})
    if row.status == "open":
        return ActionResult(exception_id, "resolve", "reopened",
                            f"resolved, but re-evaluating {row.associated_ref} found the cause "
                            f"still present, so it is open again. Fix the cause first: "
                            f"{row.next_action}", status, view)
    tail = f"; {row.associated_ref} is now {status}" if status else ""
    return ActionResult(exception_id, "resolve", "resolved",
                        f"exception {exception_id} resolved by {actor}{tail}", status, view)


def ignore(rt: Runtime, exception_id: int, actor: str, why: str) -> ActionResult:
    """Take an exception out of the open queue for good (re-raises stay ignored)."""
    why = _require_why(why, "ignore")
    with rt.unit_of_work() as uow:
        row = _load(uow, exception_id)
        if row.status == "ignored":
            raise ActionRefused(f"exception {row.id} is already ignored by {row.resolved_by}: "
                                f"{row.resolution}")
        previous = row.status
        uow.exceptions.close(row, "ignored", by=actor, how=f"ignored: {why}")
        _record(uow, row, "ignore", actor, why, previous_status=previous)
        _note(uow, row, "exception_ignored", f"{row.type} ignored by {actor}: {why}",
              actor, why)
        status = _khaos_status(uow, row)
        message = f"exception {exception_id} ignored by {actor}"
        if row.severity == Severity.BLOCKING.value and status == KhaosStatus.HELD.value:
            message += (f"; {row.associated_ref} stays held (ignoring does not make Khaos "
                        "accept it)")
        return ActionResult(exception_id, "ignore", "ignored", message, status,
                            exception_view(row))


def retry(rt: Runtime, exception_id: int, actor: str, why: str = "") -> ActionResult:
    """Re-evaluate the return an open exception blocks; resolved "by retry" if it is gone."""
    why = " ".join(why.split()) or "manual retry"
    with rt.unit_of_work() as uow:
        row = _get(uow, exception_id)
        if row.status != "open":
            raise ActionRefused(
                f"exception {row.id} is {row.status}, only open exceptions are retried"
                + ("; use resolve to close it (a re-evaluation re-opens it if the cause is "
                   "still there)" if row.status == "ignored" else ""))
        if row.return_id is None:
            raise ActionRefused(f"{row.type} exception {row.id} does not concern one return, "
                                "so there is nothing to re-evaluate; fix the cause, then "
                                "resolve it with a note")
        status = _khaos_status(uow, row)
        if status is not None and KhaosStatus(status) in DELIVERED:
            raise ActionRefused(f"{row.associated_ref} was already handed to Khaos ({status}); "
                                "returnbridge never sends it again. Amend Khaos by hand, then "
                                "resolve this exception with a note")
        return_id = row.return_id
    new_status = reevaluate_return(rt, return_id, by=actor,
                                   why=f"operator retry of exception {exception_id}")
    with rt.unit_of_work() as uow:
        row = _load(uow, exception_id)
        if row.status == "resolved":
            uow.exceptions.credit_resolution(
                row, by=actor, how=f"by retry ({why}): re-evaluated, the problem is gone")
            outcome = "resolved"
            message = (f"the problem is gone: exception {exception_id} resolved by retry; "
                       f"{row.associated_ref} is now {new_status}")
        else:
            outcome = "still_open"
            message = (f"the cause is still present, so {row.associated_ref} stays "
                       f"{new_status}: {row.message} Next: {row.next_action}")
        _record(uow, row, "retry", actor, why, outcome=outcome, khaos_status=new_status)
        _note(uow, row, "exception_retry", f"{row.type} retried by {actor}: {outcome}",
              actor, why)
        return ActionResult(exception_id, "retry", outcome, message, new_status,
                            exception_view(row))
