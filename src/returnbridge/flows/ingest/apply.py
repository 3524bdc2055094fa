"""Normalise + decide (ARCHITECTURE 5.2): apply one stored event, in one transaction.

Idempotent: an event that is no longer ``received`` is left alone, so a retried or
duplicated run changes nothing. The source adapter turns the event into an
:class:`Interpretation`; a snapshot is merged monotonically, evidence is folded in, and the
return is re-evaluated by the posting policy. Evidence about a return we have not seen yet
is *deferred* and applied as soon as the return arrives (webhook or backstop).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.evidence import Evidence, Interpretation, apply_evidence
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.merge import merge, same_content
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import decide
from returnbridge.flows.decide import facts
from returnbridge.flows.decide.evaluate import evaluate, open_follow_up
from returnbridge.flows.decide.money import check_after_handover
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.pushes import reapply_event
from returnbridge.flows.refunds.gate import record_external_refund, record_refund_request
from returnbridge.metrics import EVENTS_APPLIED
from returnbridge.store import returns_repo
from returnbridge.store.events import DataError, StatementError
from returnbridge.store.models import InboundEvent, ReturnRow, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | unhandled | invalid | skipped | deferred
    associated_ref: str = ""
    khaos_status: str = ""
    note: str = ""


def apply_event(rt: Runtime, event_id: int) -> Outcome:
    try:
        with rt.unit_of_work() as uow:
            event = uow.events.get(event_id, for_update=True)
            if event is None:
                return Outcome("skipped", note=f"event {event_id} does not exist")
            if event.status != "received":
                return Outcome("skipped", note=f"event {event_id} already {event.status}")
            uow.events.count_attempt(event)
            return apply_locked(rt, uow, event)
    except Exception as exc:
        note_failed_attempt(rt, event_id, exc)
        raise


def apply_locked(rt: Runtime, uow: UnitOfWork, event: InboundEvent) -> Outcome:
    """Apply ``event`` (status ``received``, locked by the caller) in ``uow``: the one
    processing path, for the workflow step and for ``events replay``."""
    if event.source == "khaos":  # a push whose mirror update did not commit: redo it

        return Outcome(reapply_event(uow, event).status)
    outcome = _apply_and_mark(rt, uow, event)
    EVENTS_APPLIED.labels(event.source, outcome.status).inc()
    return outcome


def apply_in_batch(rt: Runtime, uow: UnitOfWork, event: InboundEvent) -> Outcome:
    """The event worker's path (flows/ingest/worker.py): ``event`` is ``received`` and
    locked, and the caller holds one savepoint around this call. The try is counted with
    the outcome, in one UPDATE; if this raises, the caller rolls the savepoint back, counts
    the try, and hands a :class:`PayloadInvalid` (or a value the database refused) to
    :func:`record_invalid`. One savepoint per event instead of two: a batch applies many."""
    if event.source == "khaos":
        uow.events.count_attempt(event)
        return Outcome(reapply_event(uow, event).status)
    outcome = _apply(rt, uow, event)
    uow.events.mark(event.id, outcome.status,
                    "" if outcome.status == "processed" else outcome.note, attempted=True)
    EVENTS_APPLIED.labels(event.source, outcome.status).inc()
    return outcome


def invalid_in_batch(uow: UnitOfWork, event: InboundEvent, exc: PayloadInvalid) -> Outcome:
    """The worker's end for an event that can never be applied (its savepoint rolled
    back): ``invalid`` with its exception, counted in the metrics like any outcome."""
    outcome = record_invalid(uow, event, exc)
    EVENTS_APPLIED.labels(event.source, outcome.status).inc()
    return outcome


def unreadable(exc: Exception) -> PayloadInvalid | None:
    """``exc`` as the reason an event can never be applied, or None (worth retrying)."""
    if isinstance(exc, PayloadInvalid):
        return exc
    if isinstance(exc, DataError):  # a value the database cannot hold
        return PayloadInvalid("a value in the event cannot be stored "
                              f"({str(exc.orig or exc).splitlines()[0][:200]})")
    return None


def error_text(exc: BaseException) -> str:
    """What went wrong, for the event's error and the exception message. For a database
    error only the database's own words: the statement and its parameters (customer data)
    stay out of it."""
    orig = getattr(exc, "orig", None) if isinstance(exc, StatementError) else None
    words = " ".join(str(orig if orig is not None else exc).split())
    return f"{type(exc).__name__}: {words}"[:4000]


def note_failed_attempt(rt: Runtime, event_id: int, exc: BaseException) -> None:
    """Count a try that raised and keep its error on the event (status unchanged, so the
    retry runs); never raises itself."""
    try:
        with rt.unit_of_work() as uow:
            uow.events.note_error(event_id, error_text(exc), count_attempt=True)
    except Exception:  # the database itself may be what failed; the retry will tell
        return


def _apply_and_mark(rt: Runtime, uow: UnitOfWork, event: InboundEvent) -> Outcome:
    try:
        with uow.savepoint():
            outcome = _apply(rt, uow, event)
    except (PayloadInvalid, DataError) as exc:  # retrying never helps
        invalid = unreadable(exc)
        assert invalid is not None
        return record_invalid(uow, event, invalid)
    uow.events.mark(event.id, outcome.status,
                    "" if outcome.status == "processed" else outcome.note)
    return outcome


def record_invalid(uow: UnitOfWork, event: InboundEvent, exc: PayloadInvalid) -> Outcome:
    """The event can never be applied: ``invalid``, with a ``payload_invalid`` exception."""
    uow.events.mark(event.id, "invalid", str(exc))
    row = uow.exceptions.raise_problem(Problem(
        type="payload_invalid",
        message=f"{event.source} event {event.id} ({event.topic or 'no topic'}) "
        f"could not be read: {exc}",
        dedupe_key=f"event:{event.id}",
        details={"event_id": str(event.id), "error": str(exc)},
    ))
    # Name this event, so the command can be copied as it is.
    uow.exceptions.set_next_action(
        row, row.next_action.replace("events show ID", f"events show {event.id}"))
    log.warning("event payload invalid; kept with a payload_invalid exception",
                event_id=event.id, source=event.source, error=str(exc)[:300])
    return Outcome("invalid", note=str(exc))


def interpret(rt: Runtime, event: InboundEvent) -> Interpretation:
    """Hand the raw event to its returns platform."""
    platform = rt.platforms.get(event.source)
    if platform is None:
        return Interpretation(handled=False, note=f"no processor for source {event.source!r}")
    return platform.interpret(platform.settings(rt.settings), event.body, event.topic,
                              event.trigger)


def _apply(rt: Runtime, uow: UnitOfWork, event: InboundEvent) -> Outcome:
    try:
        found = interpret(rt, event)
    except ValueError as exc:  # not UTF-8, not JSON, a number too long to convert
        raise PayloadInvalid(f"the body is not JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise PayloadInvalid("the body is nested too deeply to read") from None
    if not found.handled:
        return Outcome("unhandled", note=found.note or f"topic {event.topic or '?'}/"
                       f"{event.trigger or '?'} stored, not used by this version")
    evidence = {"event_id": event.id, "topic": event.topic, "trigger": event.trigger,
                "channel": event.channel}
    key = f"{event.source}:{event.id}"
    row: ReturnRow | None = None
    outcome = Outcome("processed", note=found.note)
    if found.snapshot is not None:
        row, outcome = _merge_snapshot(rt, uow, found.snapshot, event, key, evidence)
    elif found.evidence is not None and found.source_return_id:
        row = uow.returns.find_for_update(event.source, found.source_return_id)
        fallback = found.fallback_snapshot
        if row is None and fallback is not None:
            # The platform's event carries enough to open the return itself.
            row, _ = _merge_snapshot(rt, uow, fallback, event, key + ":opened", evidence)
        if row is None:
            return Outcome("deferred", note=f"evidence for return {found.source_return_id}, "
                           "which has not arrived yet; applied when it does")
        outcome = _fold_evidence(rt, uow, row, found.evidence, key, evidence)
    elif found.source_return_id:
        row = uow.returns.find_for_update(event.source, found.source_return_id)
    for problem in found.problems:
        ref = row.associated_ref if row is not None else _ref_or_blank(rt, event.source,
                                                                        found.source_return_id)
        exc_row = uow.exceptions.raise_problem(
            problem, return_id=row.id if row is not None else None,
            associated_ref=ref)
        if row is not None:
            uow.returns.add_timeline(row, "exception",
                                      f"{exc_row.type}: {problem.message}", evidence)
    external = found.external_refund  # made by the platform itself
    if external is not None:
        record_external_refund(uow, associated_ref=external.associated_ref,
                               provider=event.source,
                         event_id=external.event_id, amount=external.amount,
                         currency=external.currency, reference=external.reference,
                         order_ref=external.order_ref)
    request = found.refund_request  # the platform's refund decision
    if request is not None and row is not None:
        record_refund_request(uow, row, amount=request.amount, method=request.method,
                              currency=request.currency or row.currency,
                              event_id=request.event_id or key,
                              at=request.occurred_at.isoformat() if request.occurred_at else "")
    if found.problems and row is None and not found.snapshot and not found.evidence:
        return Outcome("processed", _ref_or_blank(rt, event.source, found.source_return_id),
                       note=found.note or "problem recorded")
    if row is not None and found.snapshot is not None:
        _apply_deferred(rt, uow, row)
    return outcome


def _ref_or_blank(rt: Runtime, source: str, source_return_id: str) -> str:
    if not source_return_id:
        return ""
    try:
        return associated_ref(rt.prefix(source), source_return_id)
    except IdentityError:
        return ""


def _apply_deferred(rt: Runtime, uow: UnitOfWork, row: ReturnRow) -> None:
    """Evidence that arrived before its return: apply it now, oldest first."""
    waiting = uow.events.deferred_for_update(row.source, row.source_return_id)
    for event in waiting:
        uow.events.release_deferred(event)
        _apply_and_mark(rt, uow, event)
    if waiting:
        for gone in uow.exceptions.resolve_by_key(
                "status_drift", waiting_key(row.source, row.source_return_id),
                by="returnbridge", how="the return arrived; its earlier events were applied"):
            uow.exceptions.link_to_return(gone, row.id, row.associated_ref)


def waiting_key(source: str, source_return_id: str) -> str:
    return f"{source}:{source_return_id}:evidence-without-return"


WAITING_EVIDENCE_AFTER = timedelta(hours=1)


def report_waiting_evidence(rt: Runtime, older_than: timedelta = WAITING_EVIDENCE_AFTER) -> int:
    """Events about returns we have never received, waiting longer than ``older_than``:
    a webhook gap the backstop should close. One ``status_drift`` per return, for ops."""
    cutoff = utcnow() - older_than
    with rt.unit_of_work() as uow:
        rows = uow.events.deferred_before(cutoff)
        for source, ref, count, first in rows:
            platform = rt.platforms.get(source)
            check = (platform.missing_returns_hint() if platform is not None
                     else f"the {source} webhook subscriptions")
            uow.exceptions.raise_problem(Problem(
                type="status_drift",
                message=f"{source} sent {count} event(s) about return {ref or '?'} (first at "
                f"{first:%Y-%m-%d %H:%M} UTC) but returnbridge has never received the return "
                f"itself. They are kept and applied as soon as it arrives. Check {check}.",
                dedupe_key=waiting_key(source, ref),
                details={"source": source, "source_return_id": ref, "events": str(count)},
            ), associated_ref=_ref_or_blank(rt, source, ref))
        return len(rows)


def _merge_snapshot(rt: Runtime, uow: UnitOfWork, incoming: ReturnCase, event: InboundEvent,
                    key: str, evidence: dict[str, Any]) -> tuple[ReturnRow, Outcome]:
    row = uow.returns.find_for_update(incoming.source, incoming.source_return_id)
    current = returns_repo.case_of(row) if row is not None else None
    result = merge(current, incoming, key)
    new_return = row is None
    if row is None:
        row = uow.returns.save_case(None, result.case, lines_decided_next=True)
        uow.returns.note_first_seen_via(
            row, "backstop" if event.channel == "backstop" else "webhook")
    elif KhaosStatus(row.khaos_status) in DELIVERED and current is not None:
        return row, _after_delivery(rt, uow, row, current, result.case,
                                    result.content_applied,
                                    event, evidence, result.note)
    else:
        uow.returns.save_case(row, result.case, lines_decided_next=True)
    uow.returns.add_timeline(row, "event",
                              f"{event.trigger or event.topic or 'event'}: {result.note}",
                              evidence)
    status = evaluate(rt, uow, row, result.case, evidence,
                      cause=f"{event.source} event {event.id}", lines_pending=True,
                      new_return=new_return)
    return row, Outcome("processed", row.associated_ref, status, result.note)


def _fold_evidence(rt: Runtime, uow: UnitOfWork, row: ReturnRow, found: Evidence, key: str,
                   evidence: dict[str, Any]) -> Outcome:
    current = returns_repo.case_of(row)
    updated = apply_evidence(current, found, key)
    summary = found.summary or "evidence recorded"
    if KhaosStatus(row.khaos_status) in DELIVERED:
        uow.returns.save_case(row, updated, keep_lines=True)
        uow.returns.add_timeline(row, "evidence", f"{summary} (after handover to "
                                  "Khaos; the Khaos document is unchanged)", evidence)
        check_after_handover(rt, uow, row, updated, evidence,
                             cause=f"{row.source} evidence event {evidence['event_id']}")
        child = open_follow_up(rt, uow, row, updated, evidence)
        if child is not None:
            return Outcome("processed", child.associated_ref, child.khaos_status, summary)
        return Outcome("processed", row.associated_ref, row.khaos_status, summary)
    uow.returns.save_case(row, updated, lines_decided_next=True)
    uow.returns.add_timeline(row, "evidence", summary, evidence)
    status = evaluate(rt, uow, row, updated, evidence,
                      cause=f"{row.source} evidence event {evidence['event_id']}",
                      lines_pending=True)
    return Outcome("processed", row.associated_ref, status, summary)


def _document_summary(rt: Runtime, uow: UnitOfWork, case: ReturnCase) -> tuple[str, ...]:
    """What Khaos would be sent for ``case`` today: lines with reason and price, exchanges."""
    found = decide(case, rt.policy_config(uow.mapping_rules), rt.source_policy(case.source),
                   facts.gather(rt, uow, case))
    if found.wait_reason:
        return (f"nothing ({found.wait_reason})",)
    lines = sorted(f"{d.line.quantity} x {d.line.sku} @ {d.line.unit_gross} reason "
                   f"{d.khaos_reason_id}" for d in (*found.document, *found.split_off))
    swaps = sorted(f"exchange {e.quantity} x {e.sku}" for e in case.exchanges)
    return (*lines, *swaps)


def _after_delivery(rt: Runtime, uow: UnitOfWork, row: ReturnRow, current: ReturnCase,
                    merged: ReturnCase, content_applied: bool, event: InboundEvent,
                    evidence: dict[str, Any], note: str) -> Outcome:
    """Already handed to Khaos: never re-send the same AssociatedRef (ARCHITECTURE 6.1).

    The newer version is kept (money and evidence stay current for reconciliation) but the
    served document lines are not touched. If the change would alter the Khaos document
    (lines, quantities, prices, reasons, exchanges, or the return was cancelled), that is
    ``status_drift`` for operations, saying what differs."""
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    if content_applied and (not same_content(current, merged) or merged.state != current.state):
        before = _document_summary(rt, uow, current)
        after = _document_summary(rt, uow, merged)
    uow.returns.save_case(row, merged if content_applied else current,
                           keep_lines=True)
    uow.returns.add_timeline(row, "event",
                              f"{event.trigger or 'event'}: {note}", evidence)
    # Money news after handover is checked against what Khaos was served (ARCHITECTURE 11).
    check_after_handover(rt, uow, row, merged if content_applied else current, evidence,
                         cause=f"{event.source} event {event.id}")
    if before != after:
        uow.exceptions.raise_problem(Problem(
                type="status_drift",
                message=f"{row.associated_ref} changed at {row.source} after it was handed "
                f"to Khaos; the Khaos document was not changed. Sent: "
                f"{'; '.join(before) or 'nothing'}. Now: {'; '.join(after) or 'nothing'}. "
                "Adjust the return or credit note in Khaos by hand "
                "if needed.",
                dedupe_key=f"{row.associated_ref}:changed-after-serve",
                details={"event_id": str(event.id), "sent": "; ".join(before),
                         "now": "; ".join(after)},
            ),
            return_id=row.id, associated_ref=row.associated_ref,
        )
    return Outcome("processed", row.associated_ref, row.khaos_status, note)
