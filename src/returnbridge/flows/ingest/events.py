"""Stored events for operators: ``events list|show|replay`` and ``/api/v1/events``.

- **list** filters the stored events (source, status, age, return, topic), newest first.
- **show** is one event: its raw bytes, the headers it arrived with (signatures and secrets
  redacted), dedupe key, status, attempts, last error, and what this version of returnbridge
  reads in it *now* (trigger, return, evidence, problems) without changing anything.
- **replay** puts a stored event through the normal processing path again
  (:func:`returnbridge.flows.ingest.apply.apply_locked`, the code the workflow step runs), in one
  transaction holding the event's row lock. Only events that did not apply (failed, invalid,
  deferred, unhandled, or still received) are re-applied; a processed event is left alone,
  so replaying twice changes nothing the second time. Applying is idempotent on its own too
  (an event already folded into a return is recognised by its key), so nothing is ever
  posted twice. Every replay, also one that changes nothing, is written to the audit log
  with who and why.

An event whose automatic retries are exhausted is ``failed`` and opens one ``event_failed``
exception (ops, one per event), linked to its return when the return is known; a replay
that succeeds resolves it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json import JSONDecodeError
from typing import Any

import structlog

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.actions import age_text
from returnbridge.flows.ingest.apply import apply_locked, error_text, interpret
from returnbridge.flows.khaos.pushes import run_after_mirror_change
from returnbridge.metrics import EVENTS_FAILED, EVENTS_FAILED_NOW
from returnbridge.store.events import STATUSES
from returnbridge.store.models import ExceptionRow, InboundEvent, ReturnRow, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

KHAOS_SOURCE = "khaos"  # Khaos pushes share the inbox
REPLAYABLE = frozenset({"received", "failed", "invalid", "deferred", "unhandled"})
FAILED_TYPE = "event_failed"
REDACTED = "[redacted]"
_SECRET_HEADER = re.compile(
    r"signature|secret|token|auth|passw|cookie|api[-_]?key|hmac|session|credential", re.I)
_DURATION = re.compile(r"(\d+)\s*(w|d|h|m|s)", re.I)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


class EventNotFound(LookupError):
    """No stored event has this id (HTTP 404)."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"no stored event with id {event_id}")
        self.event_id = event_id


class BadEventFilter(ValueError):
    """A filter names a source or status that does not exist, or an unreadable age (400)."""


# --- filters ------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``3d``, ``1w`` or combinations such as ``1d12h``."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or not parts or "".join(n + u for n, u in parts) != cleaned:
        raise BadEventFilter(f"{text!r} is not a duration; write e.g. 30m, 2h, 3d or 1w")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    return total


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A date or time (ISO 8601, UTC when no zone is given) or a duration back from now."""
    now = now or utcnow()
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        try:
            return now - parse_duration(cleaned)
        except BadEventFilter:
            raise BadEventFilter(f"{text!r} is neither a date/time (2026-11-30, "
                                 "2026-11-30T08:00) nor a duration (2h, 3d)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def event_sources(rt: Runtime) -> tuple[str, ...]:
    """Where stored events come from: the returns platforms, and Khaos."""
    return (*rt.platforms.names(), KHAOS_SOURCE)


def _split(values: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip().lower() for item in items for part in item.split(",") if part.strip()]


def _ref_of(rt: Runtime, source: str, source_ref: str) -> str:
    if source not in rt.platforms or not source_ref:
        return ""
    try:
        return associated_ref(rt.prefix(source), source_ref)
    except IdentityError:
        return ""


def _refs_for(rt: Runtime, uow: UnitOfWork, ref: str) -> list[tuple[str | None, str]]:
    """What an AssociatedRef (or a platform's own return id) matches on stored events."""
    wanted = ref.strip()
    found: list[tuple[str | None, str]] = [(None, wanted)]
    returns = uow.returns
    row = returns.by_ref(wanted) or returns.by_ref(wanted.upper())
    if row is not None:
        found.append((row.source, row.source_return_id))
    for source in rt.platforms.names():
        prefix = rt.prefix(source)
        if prefix and wanted.upper().startswith(prefix.upper()) and len(wanted) > len(prefix):
            found.append((source, wanted[len(prefix):]))
    return found


# --- views --------------------------------------------------------------------------------


def redact_headers(rt: Runtime, headers: dict[str, str]) -> dict[str, str]:
    """Headers as stored, with signatures, tokens and configured secrets replaced."""
    secrets = rt.settings.secret_values()
    shown: dict[str, str] = {}
    for key, value in sorted((headers or {}).items()):
        text = str(value)
        if _SECRET_HEADER.search(key):
            text = REDACTED
        else:
            for secret in secrets:
                text = text.replace(secret, REDACTED)
        shown[str(key)] = text
    return shown


def event_summary(rt: Runtime, row: InboundEvent, now: datetime | None = None
                  ) -> dict[str, Any]:
    now = now or utcnow()
    hours = max((now - row.received_at).total_seconds(), 0.0) / 3600
    return {
        "id": row.id, "source": row.source, "channel": row.channel, "topic": row.topic,
        "trigger": row.trigger, "status": row.status, "source_ref": row.source_ref,
        "associated_ref": _ref_of(rt, row.source, row.source_ref),
        "dedupe_key": row.dedupe_key,
        "received_at": row.received_at.isoformat(),
        "processed_at": row.processed_at.isoformat() if row.processed_at else None,
        "age_hours": round(hours, 1), "age": age_text(hours),
        "attempts": row.attempts or 0, "duplicates": row.duplicates, "error": row.error,
    }


@dataclass(frozen=True)
class EventListing:
    total: int
    limit: int
    offset: int
    items: list[dict[str, Any]] = field(default_factory=list)


def list_events(rt: Runtime, *, source: str | list[str] | None = None,
                status: str | list[str] | None = None, older_than: str | None = None,
                since: str | None = None, ref: str | None = None, topic: str | None = None,
                limit: int = 50, offset: int = 0) -> EventListing:
    """Stored events matching the filters, newest first. ``source`` and ``status`` take
    several values (lists or comma-separated); ``status=all`` (the default) is every one."""
    sources = _split(source)
    statuses = [s for s in _split(status) if s != "all"]
    known = event_sources(rt)
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise BadEventFilter(f"unknown source {unknown[0]!r}; use {', '.join(known)}")
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise BadEventFilter(f"unknown status {unknown[0]!r}; use {', '.join(STATUSES)} "
                             "or all")
    if limit < 1 or offset < 0:
        raise BadEventFilter("limit must be at least 1 and offset at least 0")
    now = utcnow()
    before = now - parse_duration(older_than) if older_than else None
    after = parse_since(since, now) if since else None
    with rt.unit_of_work() as uow:
        refs = _refs_for(rt, uow, ref) if ref and ref.strip() else []
        rows, total = uow.events.search(sources=sources, statuses=statuses,
                                        received_before=before, received_since=after,
                                        refs=refs, topic=topic or None, limit=limit,
                                        offset=offset)
        return EventListing(total, limit, offset, [event_summary(rt, r, now) for r in rows])


def _money(value: Any) -> str | None:
    return None if value is None else str(value)


def interpretation(rt: Runtime, event: InboundEvent) -> dict[str, Any]:
    """What this version reads in the stored bytes now; changes nothing."""
    if event.source == "khaos":
        return {"readable": True, "handled": True, "trigger": event.topic,
                "note": f"Khaos {event.topic} push ({event.trigger or 'unknown format'}); "
                "applied to the stock/order mirror", "problems": []}
    try:
        found = interpret(rt, event)
    except PayloadInvalid as exc:
        return {"readable": False, "error": str(exc)}
    except (UnicodeDecodeError, JSONDecodeError) as exc:
        return {"readable": False, "error": f"the body is not JSON ({exc})"}
    except Exception as exc:  # the view must show the event even when reading it crashes
        return {"readable": False, "error": error_text(exc)}
    view: dict[str, Any] = {
        "readable": True, "handled": found.handled, "note": found.note,
        "trigger": found.trigger or event.trigger,
        "event_type": found.event_type or event.topic,
        "source_return_id": found.source_return_id,
        "associated_ref": _ref_of(rt, event.source, found.source_return_id),
        "problems": [{"type": p.type, "message": p.message} for p in found.problems],
    }
    if found.snapshot is not None:
        case = found.snapshot
        view["snapshot"] = {
            "state": case.state.value, "source_state": case.source_state,
            "order_ref": case.order_ref, "customer_email": case.customer.email,
            "currency": case.currency, "units": case.units,
            "lines": [{"sku": ln.sku, "quantity": ln.quantity,
                       "unit_gross": _money(ln.unit_gross), "reason": ln.reason,
                       "disposition": ln.disposition.value} for ln in case.lines],
            "exchanges": [{"sku": ex.sku, "quantity": ex.quantity} for ex in case.exchanges],
        }
    if found.evidence is not None:
        ev = found.evidence
        view["evidence"] = {
            "summary": ev.summary, "state": ev.state.value if ev.state else None,
            "source_state": ev.source_state, "carrier": ev.carrier,
            "tracking_number": ev.tracking_number, "store_credit": _money(ev.store_credit),
            "receipts": [{"sku": r.sku, "quantity": r.quantity,
                          "disposition": r.disposition.value if r.disposition else None}
                         for r in ev.receipts],
        }
    refunds = {"external_refund": found.external_refund, "refund_request": found.refund_request}
    for name, refund in refunds.items():
        if refund is not None:
            view[name] = {"amount": _money(refund.amount), "currency": refund.currency,
                          "order_ref": refund.order_ref, "method": refund.method}
    return view


def _return_of(uow: UnitOfWork, event: InboundEvent) -> ReturnRow | None:
    if event.source == KHAOS_SOURCE or not event.source_ref:
        return None
    return uow.returns.by_source_id(event.source, event.source_ref)


def _exceptions_of(uow: UnitOfWork, event_id: int) -> list[dict[str, Any]]:
    rows = uow.exceptions.with_key(_subject(event_id))
    return [{"id": r.id, "type": r.type, "status": r.status, "message": r.message}
            for r in rows]


def _history(uow: UnitOfWork, event_id: int) -> list[dict[str, Any]]:
    rows = uow.audit.entries_for(_subject(event_id))
    return [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
             "details": e.details} for e in rows]


def show_event(rt: Runtime, event_id: int) -> dict[str, Any]:
    """One stored event with its raw bytes, redacted headers and interpretation."""
    with rt.unit_of_work() as uow:
        row = uow.events.get(event_id)
        if row is None:
            raise EventNotFound(event_id)
        view = event_summary(rt, row)
        body = bytes(row.body)
        ret = _return_of(uow, row)
        view.update({
            "headers": redact_headers(rt, row.headers),
            "body_sha256": row.body_sha256, "size": len(body),
            "body_text": body.decode("utf-8", errors="replace"),
            "body_base64": base64.b64encode(body).decode("ascii"),
            "interpretation": interpretation(rt, row),
            "return": None if ret is None else {
                "associated_ref": ret.associated_ref, "state": ret.state,
                "source_state": ret.source_state, "khaos_status": ret.khaos_status},
            "exceptions": _exceptions_of(uow, row.id),
            "history": _history(uow, row.id),
            "replayable": row.status in REPLAYABLE,
        })
        return view


def raw_body(rt: Runtime, event_id: int) -> bytes:
    with rt.unit_of_work() as uow:
        row = uow.events.get(event_id)
        if row is None:
            raise EventNotFound(event_id)
        return bytes(row.body)


# --- failure and replay ---------------------------------------------------------------------


def _subject(event_id: int) -> str:
    return f"event:{event_id}"


def _fail(rt: Runtime, uow: UnitOfWork, event: InboundEvent, error: str) -> ExceptionRow:
    """Mark ``event`` failed and open (or count again) its ``event_failed`` exception."""
    uow.events.mark(event.id, "failed", error)
    ret = _return_of(uow, event)
    ref = ret.associated_ref if ret is not None else _ref_of(rt, event.source, event.source_ref)
    attempts = event.attempts or 0
    what = f"{event.source} event {event.id} ({event.topic or event.trigger or 'no topic'})"
    about = f" about {ref}" if ref else (f" about return {event.source_ref}"
                                          if event.source_ref else "")
    row = uow.exceptions.raise_problem(Problem(
            type=FAILED_TYPE,
            message=f"{what}{about} could not be processed after {attempts} attempt(s): "
            f"{error or 'no error was recorded'}",
            dedupe_key=_subject(event.id),
            details={"event_id": str(event.id), "source": event.source,
                     "topic": event.topic, "attempts": str(attempts), "error": error[:2000]},
        ),
        return_id=ret.id if ret is not None else None, associated_ref=ref)
    uow.exceptions.set_next_action(row, (
        f"Read the error and the event: 'returnbridge events show {event.id}'. Fix the "
        "cause (database, configuration, a bug to report), then run 'returnbridge events "
        f"replay {event.id} --why \"what you fixed\"'. This exception resolves itself when "
        "the replay succeeds."))
    if ret is not None and row.return_id is None:
        uow.exceptions.link_to_return(row, ret.id, row.associated_ref)
    if ret is not None:
        uow.returns.add_timeline(ret, "event_failed",
                                  f"{what} failed after {attempts} attempt(s): "
                                  f"{error or 'no error was recorded'}",
                                  {"event_id": event.id, "exception_id": row.id})
    uow.flush()
    return row


def record_failure(rt: Runtime, event_id: int, error: str) -> int | None:
    """The workflow gave up on ``event_id``: mark it failed, open ``event_failed``, count it.
    Returns the exception id (None when the event does not exist)."""
    source = ""
    with rt.unit_of_work() as uow:
        event = uow.events.get(event_id, for_update=True)
        if event is None:
            return None
        if event.status != "received":  # applied meanwhile (e.g. replayed): not a failure
            return None
        source = event.source
        # The last try's own error (kept by process.note_failed_attempt) says more than
        # the workflow's "retries exceeded".
        exception_id = _fail(rt, uow, event, event.error or error).id
    EVENTS_FAILED.labels(source).inc()
    return exception_id


@dataclass(frozen=True)
class ReplayResult:
    """``outcome``: processed | unhandled | deferred | invalid | partial (Khaos pushes),
    failed (the replay raised; the event stays failed), or unchanged (nothing to replay)."""

    event_id: int
    outcome: str
    status_before: str
    status_after: str
    message: str
    associated_ref: str = ""
    khaos_status: str = ""
    resolved_exceptions: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "outcome": self.outcome,
                "status_before": self.status_before, "status_after": self.status_after,
                "message": self.message, "associated_ref": self.associated_ref,
                "khaos_status": self.khaos_status,
                "resolved_exceptions": list(self.resolved_exceptions)}

    @property
    def ok(self) -> bool:
        return self.outcome not in ("failed", "invalid")


def _audit(uow: UnitOfWork, event: InboundEvent, actor: str, why: str,
           result: ReplayResult) -> None:
    uow.audit.record(actor=actor, action="event.replay", subject=_subject(event.id),
                 details={"why": why, "source": event.source, "topic": event.topic,
                          "outcome": result.outcome, "status_before": result.status_before,
                          "status_after": result.status_after,
                          "associated_ref": result.associated_ref,
                          "resolved_exceptions": list(result.resolved_exceptions)})


def replay_event(rt: Runtime, event_id: int, actor: str, why: str = "") -> ReplayResult:
    """Re-apply a stored event through the normal processing path (see the module text)."""
    why = " ".join(why.split()) or "manual replay"
    actor = actor.strip()[:120] or "cli"
    failed_source = ""
    mirror_kind = ""
    with rt.unit_of_work() as uow:
        event = uow.events.get(event_id, for_update=True)
        if event is None:
            raise EventNotFound(event_id)
        before = event.status
        if before not in REPLAYABLE:
            when = f" at {event.processed_at:%Y-%m-%d %H:%M} UTC" if event.processed_at else ""
            result = ReplayResult(
                event_id, "unchanged", before, before,
                f"event {event_id} was already {before}{when}; replaying it would change "
                "nothing, so it was not re-applied. To re-check its return use "
                "'returnbridge returns show REF' or 'returnbridge exceptions retry ID'.",
                _ref_of(rt, event.source, event.source_ref))
            _audit(uow, event, actor, why, result)
            return result
        error = ""
        try:
            with uow.savepoint():
                uow.events.reopen(event)
                outcome = apply_locked(rt, uow, event)
        except Exception as exc:
            error = error_text(exc)
            log.warning("event replay failed", event_id=event_id, error=error)
        if error:
            uow.events.refresh(event)
            uow.events.count_attempt(event)
            exc_row = _fail(rt, uow, event, error)
            failed_source = event.source
            result = ReplayResult(
                event_id, "failed", before, "failed",
                f"the replay failed again: {error}. Exception {exc_row.id} stays open; fix "
                f"the cause and replay again.", exc_row.associated_ref)
            _audit(uow, event, actor, why, result)
        else:
            uow.events.refresh(event)
            resolved = uow.exceptions.resolve_by_key(
                FAILED_TYPE, _subject(event_id), by=actor,
                how=f"replayed by {actor} ({why}): {outcome.status}")
            if outcome.status != "invalid":
                resolved += uow.exceptions.resolve_by_key(
                    "payload_invalid", _subject(event_id), by=actor,
                    how=f"replayed by {actor} ({why}): the event could be read")
            ret = _return_of(uow, event)
            ref = ret.associated_ref if ret is not None else (
                outcome.associated_ref or _ref_of(rt, event.source, event.source_ref))
            tail = {
                "processed": "applied",
                "unhandled": "stored, not used by this version",
                "deferred": "waiting for its return, applied when it arrives",
                "invalid": "still cannot be read (see the payload_invalid exception)",
            }.get(outcome.status, outcome.status)
            result = ReplayResult(
                event_id, outcome.status, before, event.status,
                f"event {event_id} replayed by {actor}: {tail}"
                + (f" ({outcome.note})" if outcome.note else "")
                + (f"; resolved exception(s) {', '.join(str(r.id) for r in resolved)}"
                   if resolved else ""),
                ref, ret.khaos_status if ret is not None else outcome.khaos_status,
                tuple(r.id for r in resolved))
            if ret is not None:
                uow.returns.add_timeline(ret, "event_replay",
                                          f"event {event_id} replayed by {actor}: "
                                          f"{outcome.status} ({why})",
                                          {"event_id": event_id, "by": actor, "why": why})
            _audit(uow, event, actor, why, result)
            if event.source == "khaos" and outcome.status in ("processed", "partial"):
                mirror_kind = event.topic
    if failed_source:
        EVENTS_FAILED.labels(failed_source).inc()
    if mirror_kind:  # as after a push: held returns waiting for the mirror are re-checked

        run_after_mirror_change(rt, mirror_kind)
    return result


def refresh_failed_gauge(rt: Runtime) -> None:
    """Set ``returnbridge_failed_events{source}`` from the database (for /metrics)."""
    with rt.unit_of_work() as uow:
        counts = uow.events.failed_counts()
    for source in set(event_sources(rt)) | set(counts):
        EVENTS_FAILED_NOW.labels(source).set(counts.get(source, 0))
