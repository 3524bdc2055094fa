"""The refund gate (ARCHITECTURE 5.5, 11): credit note first, then exactly what the platform
decided, exactly once.

For sources whose refunds returnbridge owns (``refund_owner = "returnbridge"``):

1. only a return whose credit note is confirmed *and cleared* (``credit_confirmed``) is
   settled;
2. the platform's decision is followed (:func:`decide`): the amount it asked for
   (the platform's refund request), never more than the credit note (an over-ask is capped
   and opens ``amount_mismatch`` once); its method: original payment -> Shopify
   ``refundCreate``; store credit / gift card -> the platform's store-credit setting
   (Shopify store credit, a Shopify gift card, or a ``finance_task``), never a card
   refund; an unknown method -> a ``finance_task``, nothing paid. No request -> nothing
   paid, the return shows "waiting for the platform's refund decision" (for a platform
   whose refund rules need a request);
3. the order's refunds in Shopify are checked first: a refund we did not make and do not
   know about (a goodwill refund by hand) opens ``duplicate_refund_suspected`` for
   finance and nothing is paid; a refund the platform already reported as made
   is reconciled instead of repeated;
4. the payment is made with an idempotency key derived from the AssociatedRef, its note
   carrying the credit note code, and stored (a crash between the call and the store
   repeats the call with the same key, and Shopify answers with the same result);
5. it is recorded in Khaos: ``ProcessReturn(ReturnCode, ManualAuthCode)`` over desktop SOAP
   when the return is still unprocessed there, else a ``finance_task`` naming the payment
   id, amount and credit note (ARCHITECTURE 11: stock never waits on money, so platform-
   graded returns go to Khaos processed and their refund record follows);
6. the return is ``done``.

The sequence is written once (:func:`run_sequence`); ``run_refund_gate`` runs it with plain
functions (tests, CLI) and the DBOS workflow in ``flows/refunds/workflow.py`` with steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.money import ZERO, quantize
from returnbridge.flows.confirm.queue import fault_outcome
from returnbridge.flows.confirm.sightings import PROCESSED_STAGES
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success
from returnbridge.payments.provider import (
    PaymentOutcomeUnknown,
    PaymentRefused,
    PaymentsProvider,
    PaymentUnavailable,
    ProviderPayment,
    RefundsProvider,
)
from returnbridge.returns_platform import RefundRules
from returnbridge.store.models import ExceptionRow, ReturnRow
from returnbridge.store.refunds_repo import RefundAlreadyStored
from returnbridge.store.unit_of_work import UnitOfWork

WAITING_FOR_DECISION = "waiting for the platform's refund decision"
ORIGINAL_PAYMENT = "original_payment"
STORE_CREDIT_METHODS = frozenset({"store_credit", "gift_card"})


class KhaosRecorder(Protocol):
    def process_return(self, return_code: str, manual_auth_code: str) -> str: ...


class Action(StrEnum):
    PAY = "pay"  # money back to the original payment (refundCreate)
    CREDIT = "credit"  # store credit or a gift card through the payment provider
    FINANCE = "finance"  # a person in finance settles it (finance_task); nothing paid
    RECONCILED = "reconciled"  # the platform already refunded: record, do not repay
    ALREADY_PAID = "already_paid"  # our payment exists (a retry after a crash)
    HOLD = "hold"  # a suspected duplicate: finance decides
    WAIT = "wait"  # no refund request from the platform yet
    NOT_READY = "not_ready"


PAYING = (Action.PAY, Action.CREDIT)
RECORDING = (Action.PAY, Action.CREDIT, Action.RECONCILED, Action.ALREADY_PAID)


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
    # original_payment | shopify_store_credit | gift_card | finance_task
    method: str = ORIGINAL_PAYMENT
    customer: str = ""  # e-mail, for people reading a finance task
    customer_id: str = ""  # the payment provider's customer (store credit, gift cards)


# Called with the AssociatedRef after the payment call succeeded, before it is stored. Empty
# in production; the crash tests' launcher (tests/e2e/crash_hooks.py) kills the process
# there.
AFTER_PAYMENT_CALL: list[Callable[[str], None]] = []


def refund_key(associated_ref: str) -> str:
    return f"returnbridge-refund-{associated_ref}"


def refund_owner(rt: Runtime, source: str) -> str:
    return rt.platform_settings(source).refund_owner


def refund_rules(rt: Runtime, source: str) -> RefundRules:
    platform = rt.platforms[source]
    return platform.refund_rules(platform.settings(rt.settings))


def _needs_request(rt: Runtime, source: str) -> bool:
    """Whether this source must send its refund decision before anything is paid. A
    platform with no such event has its refund, when returnbridge owns it, be the credit
    note's value."""
    return refund_rules(rt, source).needs_request


def _waiting(uow: UnitOfWork, rt: Runtime, row: ReturnRow) -> bool:
    """No decision from the platform yet (and none needed to reconcile a reported refund)."""
    if row.refund_request or not _needs_request(rt, row.source):
        return False
    return not uow.refunds.has_external(row.id)


def mark_waiting(uow: UnitOfWork, row: ReturnRow) -> None:
    """Show, once, that the return waits for the platform to say what to refund."""
    if row.wait_reason == WAITING_FOR_DECISION:
        return
    uow.returns.mark_waiting(row, WAITING_FOR_DECISION)
    uow.returns.add_timeline(row, "refund",
        f"credit note {row.credit_note_code} is confirmed; nothing is paid until "
        f"{row.source} sends its refund request ({WAITING_FOR_DECISION})", {})


def workflow_id(rt: Runtime, associated_ref: str) -> str | None:
    """The refund workflow id for a due return; None while finance holds it or while the
    platform has not decided (that wait is written on the return)."""
    with rt.unit_of_work() as uow:
        found = uow.exceptions.find("duplicate_refund_suspected", f"{associated_ref}:refund")
        hold = found.status if found is not None else None
        if hold == "open":
            return None
        # Locked: a refund request being recorded right now (the event worker holds the row)
        # is waited for and seen. Read unlocked, a stale "no request yet" overwrote the
        # request's clearing of the wait and the return was never paid (chaos campaign).
        row = uow.returns.lock_by_ref(associated_ref)
        if row is None:
            return None
        if _waiting(uow, rt, row):
            mark_waiting(uow, row)
            return None
    return f"refund:{associated_ref}" + (":after-hold" if hold else "")


def due_refs(rt: Runtime, limit: int = 200) -> list[str]:
    """Credit-confirmed returns whose refund returnbridge owns and has not finished; not
    those already shown waiting for the platform's decision (the request clears the wait)
    or held for finance, so that they never crowd out the others."""
    sources = [s for s in rt.platforms.names() if refund_owner(rt, s) == "returnbridge"]
    if not sources:
        return []
    with rt.unit_of_work() as uow:
        return uow.returns.refs_due_for_refund(
            sources, (KhaosStatus.CREDIT_CONFIRMED.value, KhaosStatus.REFUND_RECORDED.value),
            not_waiting_for=WAITING_FOR_DECISION, held_by="duplicate_refund_suspected",
            limit=limit)


def _credit_value(row: ReturnRow) -> Decimal:
    if row.credit_note_value is not None:
        return quantize(row.credit_note_value)
    return quantize(sum((ln.unit_gross * ln.quantity for ln in row.lines), ZERO))


@dataclass(frozen=True)
class Decision:
    """What the platform decided, checked against the credit note."""

    action: Action  # PAY, CREDIT, FINANCE or WAIT
    amount: Decimal
    method: str  # see Plan.method
    asked: Decimal | None = None  # what the platform asked for, when it said
    why: str = ""  # for FINANCE: why a person must settle it


def decide(rt: Runtime, row: ReturnRow) -> Decision:
    """The platform's refund decision for a credit-confirmed return (no side effects)."""
    credit = _credit_value(row)
    request = row.refund_request
    if not request:
        if _needs_request(rt, row.source):
            return Decision(Action.WAIT, ZERO, ORIGINAL_PAYMENT)
        return Decision(Action.PAY, credit, ORIGINAL_PAYMENT)
    asked: Decimal | None = None
    try:
        asked = quantize(Decimal(str(request["amount"]))) if request.get("amount") else None
    except (InvalidOperation, ValueError):
        asked = None
    amount = credit if asked is None else min(asked, credit)
    method = str(request.get("method") or ORIGINAL_PAYMENT).strip().lower()
    if method == ORIGINAL_PAYMENT:
        return Decision(Action.PAY, amount, ORIGINAL_PAYMENT, asked)
    if method in STORE_CREDIT_METHODS:
        rules = refund_rules(rt, row.source)
        configured = rules.store_credit_action
        if configured == "finance_task":
            setting = rules.store_credit_setting or f"[{row.source}] store credit"
            return Decision(Action.FINANCE, amount, "finance_task", asked,
                            f"{row.source} asked for {method.replace('_', ' ')}; "
                            f"{setting} is finance_task")
        return Decision(Action.CREDIT, amount, configured, asked)
    return Decision(Action.FINANCE, amount, "finance_task", asked,
                    f"{row.source} asked for refund method {method!r}, which returnbridge "
                    "does not know, so it paid nothing")


def _title(rt: Runtime, source: str) -> str:
    platform = rt.platforms.get(source)
    return platform.title if platform is not None else source


def _over_ask(uow: UnitOfWork, rt: Runtime, row: ReturnRow, decision: Decision) -> None:
    """An over-ask is capped at the credit note and reported to finance, once."""
    if decision.asked is None or decision.asked - decision.amount <= rt.settings.policy.tolerance:
        return
    key = f"{row.associated_ref}:refund-request"
    if uow.exceptions.find("amount_mismatch", key) is not None:
        return
    cur = row.currency
    exc = uow.exceptions.raise_problem(Problem(
        type="amount_mismatch",
        message=f"{row.source} asked to refund {decision.asked} {cur} for "
        f"{row.associated_ref} but its Khaos credit note {row.credit_note_code} is "
        f"{decision.amount} {cur}; returnbridge pays {decision.amount} {cur}, never more than "
        f"the credit note. If the customer is owed the difference of "
        f"{decision.asked - decision.amount} {cur}, raise a further credit note in Khaos and "
        f"pay it by hand; otherwise ask {_title(rt, row.source)} to correct the request.",
        dedupe_key=key,
        details={"origin": "refund_request", "asked": str(decision.asked),
                 "paid": str(decision.amount), "credit_note_code": row.credit_note_code},
    ), return_id=row.id, associated_ref=row.associated_ref)
    uow.returns.add_timeline(row, "exception",
                             f"{exc.type}: {row.source} asked {decision.asked} {cur}; capped "
                             f"at credit note {row.credit_note_code} ({decision.amount} {cur})",
                             {})


def plan_refund(rt: Runtime, associated_ref: str, provider: RefundsProvider) -> Plan:
    """Decide what to do, opening ``duplicate_refund_suspected`` when in doubt."""
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        if row is None or row.khaos_status != KhaosStatus.CREDIT_CONFIRMED.value:
            status = row.khaos_status if row is not None else "unknown"
            return Plan(Action.NOT_READY, associated_ref, note=f"return is {status}")
        hold = uow.exceptions.find("duplicate_refund_suspected", f"{associated_ref}:refund")
        if hold is not None and hold.status == "open":
            return Plan(Action.HOLD, associated_ref, note="waiting for finance "
                        "(duplicate_refund_suspected is open)")
        amount = _credit_value(row)
        base = Plan(Action.PAY, associated_ref, order_ref=row.order_ref, amount=amount,
                    currency=row.currency, credit_note_code=row.credit_note_code,
                    customer=row.customer_email)
        if hold is not None:  # finance decided: the customer is settled; never pay twice
            return replace(base, action=Action.RECONCILED,
                           note=f"settled by finance ({hold.resolved_by}: "
                           f"{hold.resolution or hold.status})"[:200])
        ours = uow.refunds.by_key(refund_key(associated_ref))
        if ours is not None:
            return replace(base, action=Action.ALREADY_PAID, amount=ours.amount,
                           method=str((ours.details or {}).get("method", ORIGINAL_PAYMENT)),
                           note=f"payment {ours.provider_refund_id} already made by "
                           "returnbridge")
        external = uow.refunds.external(row.id)
        reported = sum((r.amount for r in external), ZERO)
        if external and abs(reported - amount) <= rt.settings.policy.tolerance:
            return replace(base, action=Action.RECONCILED,
                           note=f"{row.source} already refunded {reported} {row.currency}")
        if external:
            _suspect(uow, row, f"{row.source} reported refunds of {reported} "
                     f"{row.currency} but the credit note is {amount}")
            return replace(base, action=Action.HOLD,
                           note="reported refund differs from the credit note")
        decision = decide(rt, row)
        if decision.action is Action.WAIT:
            mark_waiting(uow, row)
            return replace(base, action=Action.WAIT, amount=ZERO, note=WAITING_FOR_DECISION)
        if row.wait_reason == WAITING_FOR_DECISION:
            uow.returns.clear_wait(row)
        _over_ask(uow, rt, row, decision)
        base = replace(base, action=decision.action, amount=decision.amount,
                       method=decision.method, note=decision.why)
        if decision.action is Action.FINANCE:
            return base
    order = provider.find_order(base.order_ref)
    # Refunds we made (or were told about) for any return of this order are not foreign:
    # a second return on the same order is normal.
    known = _known_provider_ids(rt, base.order_ref)
    foreign = [r for r in order.refunds
               if r.id not in known and "[returnbridge-refund-" not in (r.note or "")]
    if foreign:
        with rt.unit_of_work() as uow:
            row = uow.returns.by_ref(associated_ref)
            assert row is not None
            listed = ", ".join(f"{r.amount} ({(r.note or 'no note')[:40]})" for r in foreign)
            _suspect(uow, row, f"order {order.name} already has refund(s) not made by "
                     f"returnbridge: {listed}")
        return replace(base, action=Action.HOLD,
                       note="order already refunded outside returnbridge")
    customer_id = order.customer_id
    if base.action is Action.CREDIT and not customer_id:
        return replace(base, action=Action.FINANCE, method="finance_task",
                       note=f"the Shopify order {order.name} has no customer to give "
                       "store credit to")
    return replace(base, order_id=order.id, customer_id=customer_id)


def _known_provider_ids(rt: Runtime, order_ref: str) -> set[str]:
    with rt.unit_of_work() as uow:
        return uow.refunds.provider_ids_for_order(order_ref)


def _suspect(uow: UnitOfWork, row: ReturnRow, why: str) -> None:
    exc = uow.exceptions.raise_problem(Problem(type="duplicate_refund_suspected",
                message=f"{row.associated_ref}: not refunded by returnbridge because {why}. "
                "Check the order's refunds; if the customer was already paid, resolve this "
                "exception; if not, retry it.",
                dedupe_key=f"{row.associated_ref}:refund", details={"why": why}),
        return_id=row.id, associated_ref=row.associated_ref)
    uow.returns.add_timeline(row, "exception", f"{exc.type}: refund held for finance ({why})",
                             {})


def refund_note(plan: Plan) -> str:
    return (f"Credit note {plan.credit_note_code} for return {plan.associated_ref} "
            f"[{refund_key(plan.associated_ref)}]")


_PAID_AS = {ORIGINAL_PAYMENT: "refunded {amount} {cur} to the original payment in Shopify "
            "(refund {id})",
            "shopify_store_credit": "credited {amount} {cur} to the customer's Shopify store "
            "credit (transaction {id})",
            "gift_card": "issued a Shopify gift card of {amount} {cur} (gift card {id})"}


def pay(rt: Runtime, plan: Plan, provider: PaymentsProvider) -> str:
    """Pay as planned (idempotent by key) and store it; returns the provider's id, or ""
    when Shopify refused (or cannot say whether it paid): then finance holds the return."""
    key = refund_key(plan.associated_ref)
    note = refund_note(plan)
    result: ProviderPayment
    try:
        if plan.action is Action.CREDIT and plan.method == "gift_card":
            result = provider.create_gift_card(plan.customer_id, plan.amount, plan.currency,
                                               note, key)
        elif plan.action is Action.CREDIT:
            result = provider.credit_store_credit(plan.customer_id, plan.amount,
                                                  plan.currency, note, key)
        else:
            result = provider.create_refund(plan.order_id, plan.amount, plan.currency, note,
                                            key)
    except (PaymentUnavailable, OSError) as exc:
        record_failure(rt, "shopify", f"{type(exc).__name__}: {exc}")
        raise  # transient: the caller retries with the same key
    except (PaymentRefused, PaymentOutcomeUnknown) as exc:
        refused = isinstance(exc, PaymentRefused)
        with rt.unit_of_work() as uow:
            row = uow.returns.by_ref(plan.associated_ref)
            assert row is not None
            _suspect(uow, row, (f"Shopify refused the payment of {plan.amount} "
                                    f"{plan.currency} ({plan.method})" if refused else
                                    f"Shopify cannot say whether the payment of {plan.amount} "
                                    f"{plan.currency} ({plan.method}) was made")
                     + f": {exc}")
        return ""
    record_success(rt, "shopify")
    for hook in AFTER_PAYMENT_CALL:
        hook(plan.associated_ref)
    store_refund(rt, plan, str(result.id), result.amount)
    return str(result.id)


def store_refund(rt: Runtime, plan: Plan, provider_refund_id: str, amount: Decimal) -> None:
    try:
        with rt.unit_of_work() as uow:
            row = uow.returns.by_ref(plan.associated_ref)
            uow.refunds.add_payment(
                row=row, associated_ref=plan.associated_ref, provider="shopify",
                idempotency_key=refund_key(plan.associated_ref),
                provider_refund_id=provider_refund_id, order_ref=plan.order_ref,
                amount=amount, currency=plan.currency,
                status="created" if plan.method == ORIGINAL_PAYMENT else plan.method[:20],
                note=refund_note(plan), details={"method": plan.method},
            )
            if row is not None:
                what = _PAID_AS.get(plan.method, _PAID_AS[ORIGINAL_PAYMENT]).format(
                    amount=amount, cur=plan.currency, id=provider_refund_id)
                code = plan.credit_note_code or row.credit_note_code
                uow.returns.add_timeline(row, "refund",
                    f"{what}, tagged with credit note {code or '(no code: check Khaos)'}",
                    {"provider_refund_id": provider_refund_id, "method": plan.method,
                     "credit_note_code": code})
            uow.audit.record(actor="returnbridge", action="refund.created",
                             subject=plan.associated_ref,
                             details={"provider_refund_id": provider_refund_id,
                                      "amount": str(amount), "method": plan.method,
                                      "key": refund_key(plan.associated_ref)})
    except RefundAlreadyStored:
        pass  # stored by an earlier attempt with the same key (the unit of work rolled back)


def finance_task(uow: UnitOfWork, row: ReturnRow, *, key: str, message: str,
                 next_action: str, details: dict[str, str]) -> ExceptionRow:
    """Open a ``finance_task``: something a person in finance does by hand, written so
    they need nothing else (amount, customer, credit note, payment id)."""
    exc = uow.exceptions.raise_problem(Problem(
        type="finance_task", message=message, dedupe_key=key, details=details,
        next_action=next_action), return_id=row.id, associated_ref=row.associated_ref)
    uow.returns.add_timeline(row, "exception", f"{exc.type}: {next_action}", {})
    return exc


def hand_to_finance(rt: Runtime, plan: Plan) -> str:
    """Nothing is paid: finance settles what the platform asked for by hand. The credit
    note stays on the customer's account in Khaos (Khaos's own store credit)."""
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        assert row is not None
        who = row.customer_email or "the customer"
        finance_task(
            uow, row, key=f"{plan.associated_ref}:settle",
            message=f"{plan.associated_ref}: {plan.note}. Credit note "
            f"{plan.credit_note_code} ({plan.amount} {plan.currency}) is confirmed in Khaos "
            "and stays on the customer's account there until finance settles it.",
            next_action=f"Give {who} {plan.amount} {plan.currency} as {row.source} "
            f"decided (order {plan.order_ref}, credit note {plan.credit_note_code}), e.g. "
            "store credit or a gift card in Shopify, then resolve this task saying what "
            "you issued. Do not refund the card.",
            details={"amount": str(plan.amount), "currency": plan.currency,
                     "customer": who, "credit_note_code": plan.credit_note_code,
                     "order_ref": plan.order_ref})
        if row.khaos_status == KhaosStatus.CREDIT_CONFIRMED.value:
            uow.returns.set_khaos_status(row, KhaosStatus.DONE,
                f"settlement of {plan.amount} {plan.currency} handed to finance "
                f"(finance_task); credit note {plan.credit_note_code} stays on account", {})
        return row.khaos_status


@dataclass(frozen=True)
class RecordRequest:
    """How one payment is recorded in Khaos: ProcessReturn, or a task for finance."""

    return_code: str
    auth: str
    credit_note_code: str
    imported_unprocessed: bool  # served with ProcessReturn false and not known processed
    attempted_before: bool
    payment_id: str = ""


def still_unprocessed(rt: Runtime, row: ReturnRow) -> bool:
    """Whether the return may still be unprocessed in Khaos, so that ProcessReturn can
    record the payment: served with ProcessReturn false, and its credit note not reported
    at a stage that only a processed return reaches."""
    if row.process_return:
        return False
    stage = {p.casefold() for p in (row.credit_note_stage, *row.credit_note_stage.split(" ", 1))}
    return not (stage & PROCESSED_STAGES)


def prepare_record(rt: Runtime, plan: Plan, *, soap: bool) -> RecordRequest | None:
    """None unless the return waits for its payment to be recorded. With ``soap`` and a
    return still unprocessed in Khaos, the attempt is marked (durably) first."""
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        if row is None or row.khaos_status != KhaosStatus.CREDIT_CONFIRMED.value:
            return None
        code = row.khaos_order_code or row.credit_note_code
        ours = uow.refunds.provider_id(refund_key(plan.associated_ref))
        request = RecordRequest(
            return_code=code,
            auth=(plan.note if plan.action is Action.RECONCILED
                  else refund_key(plan.associated_ref))[:50],
            credit_note_code=row.credit_note_code,
            imported_unprocessed=still_unprocessed(rt, row),
            attempted_before=False,
            payment_id=ours or "",
        )
    if soap and request.imported_unprocessed:
        return replace(request, attempted_before=_mark_attempt(rt, plan.associated_ref, code))
    return request


def uses_process_return(req: RecordRequest, *, soap: bool) -> bool:
    return soap and req.imported_unprocessed


def apply_record(rt: Runtime, plan: Plan, req: RecordRequest, outcome: str | None,
                 detail: str = "") -> str:
    """Move to ``refund_recorded`` from ProcessReturn's outcome (one of
    flows.confirm.queue.PROCESS_RETURN_OUTCOMES), or with None (no ProcessReturn: the
    return is already processed, or there is no SOAP) after opening a finance task."""
    call = f"ProcessReturn({req.return_code}, {req.auth})"
    if outcome is None:
        how = _finance_records(rt, plan, req, "")
    elif outcome == "processed":
        how = f"recorded in Khaos with {call}"
    elif outcome == "already_processed" and (req.attempted_before or req.imported_unprocessed):
        how = (f"recorded in Khaos with {call} (Khaos reports the return processed: our call "
               "got through, its answer was lost)")
    elif outcome == "already_processed":
        how = _finance_records(rt, plan, req, f"Khaos had already processed return "
                               f"{req.return_code}, so ProcessReturn could not record it")
    else:
        _not_recorded(rt, plan, req.return_code,
                      detail or f"ProcessReturn answered {outcome.replace('_', ' ')}")
        return KhaosStatus.CREDIT_CONFIRMED.value
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        assert row is not None
        if row.khaos_status == KhaosStatus.CREDIT_CONFIRMED.value:
            uow.returns.set_khaos_status(row, KhaosStatus.REFUND_RECORDED, how, {})
        return row.khaos_status


def _finance_records(rt: Runtime, plan: Plan, req: RecordRequest, why: str) -> str:
    """The payment is recorded against the credit note by finance: a finance task."""
    if plan.action is Action.RECONCILED:
        paid = f"the refund already made ({plan.note})"
        payment = ""
    else:
        method = plan.method.replace("_", " ")
        payment = req.payment_id or refund_key(plan.associated_ref)
        paid = f"{plan.amount} {plan.currency} paid by returnbridge ({method}, id {payment})"
    why = why or ("the return is already processed in Khaos (platform-graded returns go in "
                  "processed so that stock never waits on money)"
                  if rt.settings.khaos.soap_url else "no Khaos SOAP is configured")
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        assert row is not None
        who = row.customer_email or "the customer"
        finance_task(
            uow, row, key=f"{plan.associated_ref}:record-refund",
            message=f"{plan.associated_ref}: {paid}; {why}, so returnbridge cannot record "
            "it in Khaos itself.",
            next_action=f"In Khaos, record {paid} for {who} against credit note "
            f"{req.credit_note_code} (return {req.return_code}) as a manual refund with auth "
            f"code {req.auth}, then resolve this task.",
            details={"amount": str(plan.amount), "currency": plan.currency, "customer": who,
                     "credit_note_code": req.credit_note_code, "payment_id": payment,
                     "auth_code": req.auth})
    return (f"finance records the refund against credit note {req.credit_note_code} in Khaos "
            f"(finance_task; {why})")


def record_in_khaos(rt: Runtime, plan: Plan, khaos: KhaosRecorder | None) -> str:
    """ProcessReturn in desktop Khaos when the return is still unprocessed (called
    directly), else a finance task; then ``refund_recorded``. The DBOS workflow does the
    same through the SOAP queue."""
    req = prepare_record(rt, plan, soap=khaos is not None)
    if req is None:
        with rt.unit_of_work() as uow:
            row = uow.returns.by_ref(plan.associated_ref)
            return row.khaos_status if row is not None else "unknown"
    outcome: str | None = None
    detail = ""
    if khaos is not None and uses_process_return(req, soap=True):
        try:
            khaos.process_return(req.return_code, req.auth)
            outcome = "processed"
        except Exception as exc:
            outcome = fault_outcome(exc)
            if outcome is None:
                raise  # transport trouble: the workflow step is retried
            detail = str(exc)
    return apply_record(rt, plan, req, outcome, detail)


def _not_recorded(rt: Runtime, plan: Plan, code: str, fault: str) -> None:
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        assert row is not None
        exc = uow.exceptions.raise_problem(Problem(type="credit_note_missing",
                    message=f"{plan.associated_ref} was refunded ({plan.amount} {plan.currency}, "
                    f"key {refund_key(plan.associated_ref)}) but Khaos refused to record it on "
                    f"return {code}: {fault}. Record the refund against the credit note in "
                    "Khaos by hand, then resolve this exception.",
                    dedupe_key=f"{plan.associated_ref}:process-return",
                    details={"return_code": code, "fault": fault}),
            return_id=row.id, associated_ref=row.associated_ref)
        uow.returns.add_timeline(row, "exception", f"{exc.type}: {fault}", {})


def _mark_attempt(rt: Runtime, associated_ref: str, code: str) -> bool:
    """Note (durably) that ProcessReturn is about to be called; True if it was before."""
    name = f"process-return:{associated_ref}"[:80]
    with rt.unit_of_work() as uow:
        return uow.watermarks.claim(name, code)


def finish(rt: Runtime, associated_ref: str, why: str) -> str:
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        if row is None:
            return "unknown"
        if row.khaos_status == KhaosStatus.REFUND_RECORDED.value:
            uow.returns.set_khaos_status(row, KhaosStatus.DONE, why, {})
        return row.khaos_status


@dataclass(frozen=True)
class Steps:
    """The side effects of the sequence; plain functions or DBOS steps."""

    pay: Callable[[Plan], str]  # the payment id, "" when nothing was paid
    hand_to_finance: Callable[[Plan], object]
    record: Callable[[Plan], object]
    finish: Callable[[str, str], object]


def run_sequence(plan: Plan, steps: Steps) -> Action:
    """The refund sequence after planning, written once: pay (or hand to finance), record
    in Khaos, finish."""
    if plan.action in PAYING:
        if not steps.pay(plan):
            return Action.HOLD  # refused or unknown: held for finance, nothing to record
    elif plan.action is Action.FINANCE:
        steps.hand_to_finance(plan)
    if plan.action in RECORDING:
        steps.record(plan)
        steps.finish(plan.associated_ref, "refund reconciled and recorded"
                     if plan.action is Action.RECONCILED else "refund made and recorded")
    return plan.action


def run_refund_gate(rt: Runtime, associated_ref: str, provider: PaymentsProvider,
                    khaos: KhaosRecorder | None) -> Plan:
    """The whole gate in one call (tests, and the CLI); DBOS runs the same parts as steps."""
    plan = plan_refund(rt, associated_ref, provider)
    run_sequence(plan, Steps(
        pay=lambda p: pay(rt, p, provider),
        hand_to_finance=lambda p: hand_to_finance(rt, p),
        record=lambda p: record_in_khaos(rt, p, khaos),
        finish=lambda ref, why: finish(rt, ref, why)))
    return plan


def record_refund_request(uow: UnitOfWork, row: ReturnRow, *, amount: Decimal | None,
                          method: str, currency: str, event_id: str, at: str) -> None:
    """The platform asks for a refund (its refund request): keep its decision for
    the gate. It goes to the first document of the return (the return itself, then its
    follow-up documents) that has no request yet; when all have one, it replaces the last
    one's if that is not paid yet; a request after returnbridge has paid everything is
    recorded on the timeline, never paid."""
    request: dict[str, Any] = {"amount": str(amount) if amount is not None else None,
                               "method": method or ORIGINAL_PAYMENT, "currency": currency,
                               "event_id": event_id, "at": at}
    documents = [row, *uow.returns.follow_ups(row)]
    if any((d.refund_request or {}).get("event_id") == event_id for d in documents):
        return  # the same event again
    shown = f"{amount} {currency}".strip() if amount is not None else "the credited amount"
    target = next((d for d in documents if not d.refund_request), None)
    replaces = False
    if target is None:
        last = documents[-1]
        paid = uow.refunds.is_stored(refund_key(last.associated_ref))
        if paid or KhaosStatus(last.khaos_status) is KhaosStatus.DONE:
            uow.returns.add_timeline(row, "refund",
                                     f"{row.source} asked again ({shown}, "
                                     f"{request['method']}) after returnbridge had settled "
                                     "the return; recorded, not paid again",
                                     {"event_id": event_id})
            return
        target, replaces = last, True
    uow.returns.set_refund_request(target, request)
    if target.wait_reason == WAITING_FOR_DECISION:
        uow.returns.clear_wait(target)
    uow.returns.add_timeline(target, "refund",
        f"{row.source} decided: refund {shown} to {request['method'].replace('_', ' ')}"
        + (" (replaces its earlier request)" if replaces else ""),
        {"event_id": event_id})


def record_external_refund(uow: UnitOfWork, *, associated_ref: str, provider: str,
                           event_id: str, amount: Decimal, currency: str, reference: str,
                           order_ref: str) -> None:
    """A refund made outside returnbridge (the platform reports it as made): store it, and
    open ``refund_before_credit`` when Khaos has no credit note for the return yet."""
    key = f"external-{provider}-{event_id or reference}"
    if uow.refunds.by_key(key) is not None:
        return
    row = uow.returns.by_ref(associated_ref)
    uow.refunds.add_external(
        row=row, associated_ref=associated_ref, provider=provider, idempotency_key=key,
        provider_refund_id=reference, order_ref=order_ref, amount=amount, currency=currency,
        status="reported", note=f"reported by {provider} event {event_id}")
    confirmed = row is not None and KhaosStatus(row.khaos_status) in (
        KhaosStatus.CREDIT_CONFIRMED, KhaosStatus.REFUND_RECORDED, KhaosStatus.DONE)
    if row is not None:
        uow.returns.add_timeline(row, "refund",
                                 f"{provider} reports a refund of {amount} {currency} made "
                                 "outside returnbridge; reconciled, not repeated", {})
    if not confirmed:
        uow.exceptions.raise_problem(Problem(type="refund_before_credit",
                    message=f"{provider} refunded {amount} {currency} for {associated_ref} "
                    "before Khaos has a credit note for it.",
                    dedupe_key=f"{associated_ref}:refund-before-credit",
                    details={"event_id": event_id, "amount": str(amount)}),
            return_id=row.id if row is not None else None, associated_ref=associated_ref)
