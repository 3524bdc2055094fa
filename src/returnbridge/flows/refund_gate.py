"""The refund gate (ARCHITECTURE 5.5): credit note first, then the refund, exactly once.

For sources whose refunds returnbridge owns (ZigZag by default):

1. only a return whose credit note is confirmed (``credit_confirmed``) is refunded;
2. the order's refunds in Shopify are checked first: a refund we did not make and do not
   know about (a goodwill refund by hand) opens ``duplicate_refund_suspected`` for
   finance and nothing is paid; a refund the platform already reported (``RefundIssued``)
   is reconciled instead of repeated;
3. the refund is created with an idempotency key derived from the AssociatedRef, its note
   carrying the credit note code, and stored (a crash between the call and the store
   repeats the call with the same key, and Shopify answers with the same refund);
4. it is recorded in Khaos with ``ProcessReturn(ReturnCode, ManualAuthCode)`` when SOAP is
   available, else left for finance with a timeline note;
5. the return is ``done``.

Each step is a plain function over the database so that the DBOS workflow in
``flows/durable.py`` can run them as steps and tests can drive them directly.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.money import ZERO, quantize
from returnbridge.flows.health import record_failure, record_success
from returnbridge.flows.runtime import Runtime
from returnbridge.store import audit, exceptions_repo, returns_repo
from returnbridge.store.models import ExceptionRow, RefundRow, ReturnRow, Watermark, utcnow


class RefundsProvider(Protocol):
    """What the gate needs from a payment provider (payments/shopify/client.py)."""

    def find_order(self, name: str) -> _Order: ...

    def create_refund(self, order_id: str, amount: Decimal, currency: str, note: str,
                      idempotency_key: str) -> _Refund: ...


class _Refund(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def note(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


class _Order(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def refunds(self) -> tuple[_Refund, ...]: ...


class KhaosRecorder(Protocol):
    def process_return(self, return_code: str, manual_auth_code: str) -> str: ...


class Action(StrEnum):
    PAY = "pay"
    RECONCILED = "reconciled"  # the platform already refunded: record, do not repay
    ALREADY_PAID = "already_paid"  # our refund exists (a retry after a crash)
    HOLD = "hold"  # a suspected duplicate: finance decides
    NOT_READY = "not_ready"


@dataclass(frozen=True)
class Plan:
    action: Action
    associated_ref: str
    order_ref: str = ""
    order_id: str = ""
    amount: Decimal = ZERO
    currency: str = ""
    credit_note_code: str = ""
    note: str = ""


def refund_key(associated_ref: str) -> str:
    return f"returnbridge-refund-{associated_ref}"


def refund_owner(rt: Runtime, source: str) -> str:
    section = rt.settings.loop if source == "loop" else rt.settings.zigzag
    return str(getattr(section, "refund_owner", "returnbridge" if source == "zigzag"
                       else "platform"))


def workflow_id(rt: Runtime, associated_ref: str) -> str | None:
    """The refund workflow id for a due return (None while finance holds it)."""
    with rt.sessions() as session:
        hold = session.scalars(select(ExceptionRow.status).where(
            ExceptionRow.type == "duplicate_refund_suspected",
            ExceptionRow.dedupe_key == f"{associated_ref}:refund")).first()
    if hold == "open":
        return None
    return f"refund:{associated_ref}" + (":after-hold" if hold else "")


def due_refs(rt: Runtime, limit: int = 200) -> list[str]:
    """Credit-confirmed returns whose refund returnbridge owns and has not finished."""
    sources = [s for s in ("loop", "zigzag") if refund_owner(rt, s) == "returnbridge"]
    if not sources:
        return []
    with rt.sessions() as session:
        return list(session.scalars(
            select(ReturnRow.associated_ref)
            .where(ReturnRow.source.in_(sources),
                   ReturnRow.khaos_status.in_((KhaosStatus.CREDIT_CONFIRMED.value,
                                               KhaosStatus.REFUND_RECORDED.value)))
            .order_by(ReturnRow.credit_confirmed_at, ReturnRow.id).limit(limit)
        ))


def _credit_value(row: ReturnRow) -> Decimal:
    if row.credit_note_value is not None:
        return quantize(row.credit_note_value)
    return quantize(sum((ln.unit_gross * ln.quantity for ln in row.lines), ZERO))


def plan_refund(rt: Runtime, associated_ref: str, provider: RefundsProvider) -> Plan:
    """Decide what to do, opening ``duplicate_refund_suspected`` when in doubt."""
    with rt.sessions() as session, session.begin():
        row = returns_repo.by_ref(session, associated_ref)
        if row is None or row.khaos_status != KhaosStatus.CREDIT_CONFIRMED.value:
            status = row.khaos_status if row is not None else "unknown"
            return Plan(Action.NOT_READY, associated_ref, note=f"return is {status}")
        amount = _credit_value(row)
        hold = session.scalars(select(ExceptionRow).where(
            ExceptionRow.type == "duplicate_refund_suspected",
            ExceptionRow.dedupe_key == f"{associated_ref}:refund")).first()
        if hold is not None and hold.status == "open":
            return Plan(Action.HOLD, associated_ref, note="waiting for finance "
                        "(duplicate_refund_suspected is open)")
        if hold is not None:  # finance decided: the customer is settled; never pay twice
            return Plan(Action.RECONCILED, associated_ref, order_ref=row.order_ref,
                        amount=amount, currency=row.currency,
                        credit_note_code=row.credit_note_code,
                        note=f"settled by finance ({hold.resolved_by}: "
                        f"{hold.resolution or hold.status})"[:200])
        base = Plan(Action.PAY, associated_ref, order_ref=row.order_ref, amount=amount,
                    currency=row.currency, credit_note_code=row.credit_note_code)
        ours = session.scalars(select(RefundRow).where(
            RefundRow.idempotency_key == refund_key(associated_ref))).first()
        if ours is not None:
            return _replace(base, Action.ALREADY_PAID, f"refund {ours.provider_refund_id} "
                            "already made by returnbridge")
        external = session.scalars(select(RefundRow).where(
            RefundRow.return_id == row.id, RefundRow.origin == "external")).all()
        reported = sum((r.amount for r in external), ZERO)
        if external and abs(reported - amount) <= rt.settings.policy.tolerance:
            return _replace(base, Action.RECONCILED,
                            f"{row.source} already refunded {reported} {row.currency}")
        if external:
            _suspect(session, row, f"{row.source} reported refunds of {reported} "
                     f"{row.currency} but the credit note is {amount}")
            return _replace(base, Action.HOLD, "reported refund differs from the credit note")
    order = provider.find_order(base.order_ref)
    # Refunds we made (or were told about) for any return of this order are not foreign:
    # a second return on the same order is normal.
    known = _known_provider_ids(rt, base.order_ref)
    foreign = [r for r in order.refunds
               if r.id not in known and "[returnbridge-refund-" not in (r.note or "")]
    if foreign:
        with rt.sessions() as session, session.begin():
            row = returns_repo.by_ref(session, associated_ref)
            assert row is not None
            listed = ", ".join(f"{r.amount} ({(r.note or 'no note')[:40]})" for r in foreign)
            _suspect(session, row, f"order {order.name} already has refund(s) not made by "
                     f"returnbridge: {listed}")
        return _replace(base, Action.HOLD, "order already refunded outside returnbridge")
    return Plan(Action.PAY, associated_ref, order_ref=base.order_ref, order_id=order.id,
                amount=amount, currency=base.currency,
                credit_note_code=base.credit_note_code)


def _replace(plan: Plan, action: Action, note: str) -> Plan:
    return Plan(action, plan.associated_ref, plan.order_ref, plan.order_id, plan.amount,
                plan.currency, plan.credit_note_code, note)


def _known_provider_ids(rt: Runtime, order_ref: str) -> set[str]:
    with rt.sessions() as session:
        return {i for i in session.scalars(select(RefundRow.provider_refund_id).where(
            RefundRow.order_ref == order_ref)) if i}


def _suspect(session: object, row: ReturnRow, why: str) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    exc = exceptions_repo.raise_problem(
        session,
        Problem(type="duplicate_refund_suspected",
                message=f"{row.associated_ref}: not refunded by returnbridge because {why}. "
                "Check the order's refunds; if the customer was already paid, resolve this "
                "exception; if not, retry it.",
                dedupe_key=f"{row.associated_ref}:refund", details={"why": why}),
        return_id=row.id, associated_ref=row.associated_ref)
    returns_repo.add_timeline(session, row, "exception",
                              f"{exc.type}: refund held for finance ({why})", {})


def refund_note(plan: Plan) -> str:
    return (f"Credit note {plan.credit_note_code} for return {plan.associated_ref} "
            f"[{refund_key(plan.associated_ref)}]")


def pay(rt: Runtime, plan: Plan, provider: RefundsProvider) -> str:
    """Create the refund (idempotent by key) and store it; returns the provider refund id."""
    try:
        refund = provider.create_refund(plan.order_id, plan.amount, plan.currency,
                                        refund_note(plan), refund_key(plan.associated_ref))
    except Exception as exc:
        if type(exc).__name__ != "ShopifyUserError":
            if type(exc).__name__ in ("ShopifyUnavailable", "ShopifyAuthError") or isinstance(
                    exc, OSError):
                record_failure(rt, "shopify", f"{type(exc).__name__}: {exc}")
            raise  # transient: the caller retries with the same key
        with rt.sessions() as session, session.begin():
            row = returns_repo.by_ref(session, plan.associated_ref)
            assert row is not None
            _suspect(session, row, f"Shopify refused the refund of {plan.amount} "
                     f"{plan.currency}: {exc}")
        return ""
    record_success(rt, "shopify")
    if os.environ.get("RB_FAULT_KILL_AFTER_REFUND_CALL") == "1":  # crash-safety tests only
        os.kill(os.getpid(), signal.SIGKILL)
    store_refund(rt, plan, refund.id, refund.amount)
    return refund.id


def store_refund(rt: Runtime, plan: Plan, provider_refund_id: str, amount: Decimal) -> None:
    try:
        with rt.sessions() as session, session.begin():
            row = returns_repo.by_ref(session, plan.associated_ref)
            session.add(RefundRow(
                return_id=row.id if row is not None else None,
                associated_ref=plan.associated_ref, provider="shopify", origin="returnbridge",
                idempotency_key=refund_key(plan.associated_ref),
                provider_refund_id=provider_refund_id, order_ref=plan.order_ref,
                amount=amount, currency=plan.currency, status="created",
                note=refund_note(plan), created_at=utcnow(),
            ))
            if row is not None:
                returns_repo.add_timeline(
                    session, row, "refund",
                    f"refunded {amount} {plan.currency} in Shopify (refund {provider_refund_id}"
                    f"), tagged with credit note {plan.credit_note_code}",
                    {"provider_refund_id": provider_refund_id})
            audit.record(session, actor="returnbridge", action="refund.created",
                         subject=plan.associated_ref,
                         details={"provider_refund_id": provider_refund_id,
                                  "amount": str(amount), "key": refund_key(plan.associated_ref)})
    except IntegrityError:
        pass  # stored by an earlier attempt with the same key


@dataclass(frozen=True)
class RecordRequest:
    """What ProcessReturn needs for one refunded return."""

    return_code: str
    auth: str
    credit_note_code: str
    imported_unprocessed: bool  # so nobody but our ProcessReturn should process it
    attempted_before: bool


_FAULT_OUTCOMES = {"ReturnAlreadyProcessed": "already_processed", "ReturnNotFound": "not_found",
                   "ReturnPartiallyProcessed": "partially_processed",
                   "ReturnCodeOrAuthMissing": "code_or_auth_missing"}


def prepare_record(rt: Runtime, plan: Plan, *, soap: bool) -> RecordRequest | None:
    """None unless the return waits for its refund to be recorded."""
    with rt.sessions() as session, session.begin():
        row = returns_repo.by_ref(session, plan.associated_ref)
        if row is None or row.khaos_status != KhaosStatus.CREDIT_CONFIRMED.value:
            return None
        code = row.khaos_order_code or row.credit_note_code
        request = RecordRequest(
            return_code=code,
            auth=(plan.note if plan.action is Action.RECONCILED
                  else refund_key(plan.associated_ref))[:50],
            credit_note_code=row.credit_note_code,
            imported_unprocessed=not row.process_return,
            attempted_before=False,
        )
    if soap:
        return replace(request, attempted_before=_mark_attempt(rt, plan.associated_ref, code))
    return request


def apply_record(rt: Runtime, plan: Plan, req: RecordRequest, outcome: str | None,
                 detail: str = "") -> str:
    """Move to ``refund_recorded`` (or open ``credit_note_missing``) from ProcessReturn's
    outcome: one of flows.khaos_confirm.PROCESS_RETURN_OUTCOMES, or None without SOAP."""
    call = f"ProcessReturn({req.return_code}, {req.auth})"
    if outcome is None:
        how = ("no Khaos SOAP configured: finance records the refund against credit note "
               f"{req.credit_note_code} in Khaos")
    elif outcome == "processed":
        how = f"recorded in Khaos with {call}"
    elif outcome == "already_processed" and (req.attempted_before or req.imported_unprocessed):
        how = (f"recorded in Khaos with {call} (Khaos reports the return processed: our call "
               "got through, its answer was lost)")
    elif outcome == "already_processed":
        how = (f"Khaos had already processed return {req.return_code}, so ProcessReturn could "
               f"not record the refund: finance records it against credit note "
               f"{req.credit_note_code} by hand (auth code {req.auth})")
    else:
        _not_recorded(rt, plan, req.return_code,
                      detail or f"ProcessReturn answered {outcome.replace('_', ' ')}")
        return KhaosStatus.CREDIT_CONFIRMED.value
    with rt.sessions() as session, session.begin():
        row = returns_repo.by_ref(session, plan.associated_ref)
        assert row is not None
        if row.khaos_status == KhaosStatus.CREDIT_CONFIRMED.value:
            returns_repo.set_khaos_status(session, row, KhaosStatus.REFUND_RECORDED, how, {})
        return row.khaos_status


def record_in_khaos(rt: Runtime, plan: Plan, khaos: KhaosRecorder | None) -> str:
    """ProcessReturn in desktop Khaos when available (called directly); then
    ``refund_recorded``. The DBOS workflow does the same through the SOAP queue."""
    req = prepare_record(rt, plan, soap=khaos is not None)
    if req is None:
        with rt.sessions() as session:
            row = returns_repo.by_ref(session, plan.associated_ref)
            return row.khaos_status if row is not None else "unknown"
    outcome: str | None = None
    detail = ""
    if khaos is not None:
        try:
            khaos.process_return(req.return_code, req.auth)
            outcome = "processed"
        except Exception as exc:
            outcome = _FAULT_OUTCOMES.get(type(exc).__name__)
            if outcome is None:
                raise  # transport trouble: the workflow step is retried
            detail = str(exc)
    return apply_record(rt, plan, req, outcome, detail)


def _not_recorded(rt: Runtime, plan: Plan, code: str, fault: str) -> None:
    with rt.sessions() as session, session.begin():
        row = returns_repo.by_ref(session, plan.associated_ref)
        assert row is not None
        exc = exceptions_repo.raise_problem(
            session,
            Problem(type="credit_note_missing",
                    message=f"{plan.associated_ref} was refunded ({plan.amount} {plan.currency}, "
                    f"key {refund_key(plan.associated_ref)}) but Khaos refused to record it on "
                    f"return {code}: {fault}. Record the refund against the credit note in "
                    "Khaos by hand, then resolve this exception.",
                    dedupe_key=f"{plan.associated_ref}:process-return",
                    details={"return_code": code, "fault": fault}),
            return_id=row.id, associated_ref=row.associated_ref)
        returns_repo.add_timeline(session, row, "exception", f"{exc.type}: {fault}", {})


def _mark_attempt(rt: Runtime, associated_ref: str, code: str) -> bool:
    """Note (durably) that ProcessReturn is about to be called; True if it was before."""
    name = f"process-return:{associated_ref}"[:80]
    with rt.sessions() as session, session.begin():
        mark = session.get(Watermark, name, with_for_update=True)
        if mark is not None:
            return True
        session.add(Watermark(name=name, value=code[:255], updated_at=utcnow()))
        return False


def finish(rt: Runtime, associated_ref: str, why: str) -> str:
    with rt.sessions() as session, session.begin():
        row = returns_repo.by_ref(session, associated_ref)
        if row is None:
            return "unknown"
        if row.khaos_status == KhaosStatus.REFUND_RECORDED.value:
            returns_repo.set_khaos_status(session, row, KhaosStatus.DONE, why, {})
        return row.khaos_status


def run_refund_gate(rt: Runtime, associated_ref: str, provider: RefundsProvider,
                    khaos: KhaosRecorder | None) -> Plan:
    """The whole gate in one call (tests, and the CLI); DBOS runs the same parts as steps."""
    plan = plan_refund(rt, associated_ref, provider)
    if plan.action is Action.PAY:
        pay(rt, plan, provider)
    if plan.action in (Action.PAY, Action.RECONCILED, Action.ALREADY_PAID):
        record_in_khaos(rt, plan, khaos)
        finish(rt, associated_ref, "refund made and recorded"
               if plan.action is not Action.RECONCILED else "refund reconciled and recorded")
    return plan


def record_external_refund(rt: Runtime, *, associated_ref: str, provider: str, event_id: str,
                           amount: Decimal, currency: str, reference: str,
                           order_ref: str) -> None:
    """A refund made outside returnbridge (e.g. ZigZag ``RefundIssued``): store it, and open
    ``refund_before_credit`` when Khaos has no credit note for the return yet."""
    with rt.sessions() as session, session.begin():
        _record_external(session, associated_ref=associated_ref, provider=provider,
                         event_id=event_id, amount=amount, currency=currency,
                         reference=reference, order_ref=order_ref)


def _record_external(session: object, *, associated_ref: str, provider: str, event_id: str,
                     amount: Decimal, currency: str, reference: str, order_ref: str) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    key = f"external-{provider}-{event_id or reference}"
    if session.scalars(select(RefundRow).where(RefundRow.idempotency_key == key)).first():
        return
    row = returns_repo.by_ref(session, associated_ref)
    session.add(RefundRow(
        return_id=row.id if row is not None else None, associated_ref=associated_ref,
        provider=provider, origin="external", idempotency_key=key,
        provider_refund_id=reference, order_ref=order_ref, amount=amount, currency=currency,
        status="reported", note=f"reported by {provider} event {event_id}",
        created_at=utcnow(),
    ))
    confirmed = row is not None and KhaosStatus(row.khaos_status) in (
        KhaosStatus.CREDIT_CONFIRMED, KhaosStatus.REFUND_RECORDED, KhaosStatus.DONE)
    if row is not None:
        returns_repo.add_timeline(session, row, "refund",
                                  f"{provider} reports a refund of {amount} {currency} made "
                                  "outside returnbridge; reconciled, not repeated", {})
    if not confirmed:
        exceptions_repo.raise_problem(
            session,
            Problem(type="refund_before_credit",
                    message=f"{provider} refunded {amount} {currency} for {associated_ref} "
                    "before Khaos has a credit note for it.",
                    dedupe_key=f"{associated_ref}:refund-before-credit",
                    details={"event_id": event_id, "amount": str(amount)}),
            return_id=row.id if row is not None else None, associated_ref=associated_ref)
