"""Normalise + decide (ARCHITECTURE 5.2): apply one stored event, in one transaction.

Idempotent: an event that is no longer ``received`` is left alone, so a retried or
duplicated run changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.merge import merge, same_content
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import decide
from returnbridge.flows.runtime import Runtime
from returnbridge.sources.errors import PayloadInvalid
from returnbridge.sources.loop.parser import envelope, parse_return
from returnbridge.store import exceptions_repo, returns_repo
from returnbridge.store.events import mark_event
from returnbridge.store.models import InboundEvent, ReturnRow


@dataclass(frozen=True)
class Outcome:
    status: str  # processed | unhandled | invalid | skipped
    associated_ref: str = ""
    khaos_status: str = ""
    note: str = ""


def apply_event(rt: Runtime, event_id: int) -> Outcome:
    with rt.sessions() as session, session.begin():
        event = session.get(InboundEvent, event_id, with_for_update=True)
        if event is None:
            return Outcome("skipped", note=f"event {event_id} does not exist")
        if event.status != "received":
            return Outcome("skipped", note=f"event {event_id} already {event.status}")
        try:
            outcome = _apply(rt, session, event)
        except PayloadInvalid as exc:
            mark_event(session, event.id, "invalid", str(exc))
            exceptions_repo.raise_problem(
                session,
                Problem(
                    type="payload_invalid",
                    message=f"{event.source} event {event.id} ({event.topic or 'no topic'}) "
                    f"could not be read: {exc}",
                    dedupe_key=f"event:{event.id}",
                    details={"event_id": str(event.id), "error": str(exc)},
                ),
            )
            return Outcome("invalid", note=str(exc))
        mark_event(session, event.id, outcome.status, "" if outcome.status == "processed"
                   else outcome.note)
        return outcome


def _apply(rt: Runtime, session: Session, event: InboundEvent) -> Outcome:
    try:
        payload = json.loads(event.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadInvalid(f"the body is not JSON ({exc})") from None
    if event.source != "loop":
        return Outcome("unhandled", note=f"no processor for source {event.source!r} yet")
    topic, trigger, _ = envelope(payload)
    if topic != "return":
        return Outcome("unhandled", note=f"topic {topic or '?'}/{trigger or '?'} stored, "
                       "not used by this version")
    incoming = parse_return(payload, prefix=rt.prefix("loop"))
    return _merge_and_decide(rt, session, incoming, evidence_event=event)


def _merge_and_decide(rt: Runtime, session: Session, incoming: ReturnCase,
                      evidence_event: InboundEvent) -> Outcome:
    row = returns_repo.find_for_update(session, incoming.source.value, incoming.source_return_id)
    current = returns_repo.case_of(row) if row is not None else None
    event_key = f"{evidence_event.source}:{evidence_event.id}"
    evidence = {"event_id": evidence_event.id, "topic": evidence_event.topic,
                "trigger": evidence_event.trigger}
    result = merge(current, incoming, event_key)
    delivered = row is not None and KhaosStatus(row.khaos_status) in DELIVERED

    if delivered and row is not None and current is not None:
        # Already handed to Khaos: never re-send the same AssociatedRef (ARCHITECTURE 6.1).
        frozen = current if not result.content_applied else result.case
        kept = frozen if same_content(current, frozen) else current
        final = replace(kept, state=result.case.state, events=result.case.events)
        returns_repo.save_case(session, row, final)
        returns_repo.add_timeline(session, row, "event",
                                  f"{evidence_event.trigger or 'event'}: {result.note}", evidence)
        if result.content_applied and not same_content(current, result.case):
            exceptions_repo.raise_problem(
                session,
                Problem(
                    type="status_drift",
                    message=f"{row.associated_ref} changed at {incoming.source.value} after "
                    "it was handed to Khaos; the Khaos document was not changed.",
                    dedupe_key=f"{row.associated_ref}:changed-after-serve",
                    details={"event_id": str(evidence_event.id)},
                ),
                return_id=row.id, associated_ref=row.associated_ref,
            )
        return Outcome("processed", row.associated_ref, row.khaos_status, result.note)

    row = returns_repo.save_case(session, row, result.case)
    returns_repo.add_timeline(session, row, "event",
                              f"{evidence_event.trigger or 'event'}: {result.note}", evidence)
    decision = decide(result.case, rt.settings.mapping.rules(),
                      rt.source_policy(incoming.source.value))
    returns_repo.apply_decision(row, decision)
    for problem in decision.problems:
        exceptions_repo.raise_problem(session, problem, return_id=row.id,
                                      associated_ref=row.associated_ref)
    resolved = exceptions_repo.resolve_missing(
        session, row.id, decision.problems, by="returnbridge",
        how=f"re-evaluated after {evidence_event.source} event {evidence_event.id}: "
        "the problem is gone",
    )
    for exc_row in resolved:
        returns_repo.add_timeline(session, row, "exception_resolved",
                                  f"{exc_row.type} resolved: {exc_row.resolution}", evidence)
    _move_status(session, row, decision.release, decision.blocked, decision.wait_reason,
                 [p.type for p in decision.problems], evidence)
    return Outcome("processed", row.associated_ref, row.khaos_status, result.note)


def _move_status(session: Session, row: ReturnRow, release: bool, blocked: bool, wait: str,
                 problem_types: list[str], evidence: dict[str, object]) -> None:
    if release:
        returns_repo.set_khaos_status(session, row, KhaosStatus.READY,
                                      "validated; waiting for Khaos to fetch it", evidence)
    elif blocked:
        returns_repo.set_khaos_status(session, row, KhaosStatus.HELD,
                                      "held until fixed: " + ", ".join(problem_types), evidence)
    else:
        returns_repo.set_khaos_status(session, row, KhaosStatus.PENDING,
                                      f"not released yet: {wait}", evidence)
