"""The refund gate as a DBOS workflow (``refund:{associated_ref}``): each part is a step,
so a crash resumes where it stopped and a second process can never pay twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from returnbridge.flows.confirm.queue import enqueue_process_return
from returnbridge.flows.engine.current import runtime
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds import gate as refund_gate
from returnbridge.flows.refunds.gate import Action, Plan
from returnbridge.payments.provider import PaymentsProvider

log = structlog.get_logger(__name__)

REFUNDS_QUEUE = "refunds"




def provider(rt: Runtime) -> PaymentsProvider:
    """Paced with every other Shopify call of every process (``[shopify] calls_per_minute``)."""
    return rt.shopify_client()


def _plan_json(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["amount"] = str(plan.amount)
    data["action"] = plan.action.value
    return data


def _plan(data: dict[str, Any]) -> Plan:
    return Plan(**{**data, "amount": Decimal(data["amount"]), "action": Action(data["action"])})


# Planning only reads (the return, the order's refunds in Shopify): safe to retry.
@DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=2.0, backoff_rate=2.0)
def refund_plan_step(associated_ref: str) -> dict[str, Any]:
    rt = runtime()
    client = provider(rt)
    try:
        return _plan_json(refund_gate.plan_refund(rt, associated_ref, client))
    finally:
        _close(client)


@DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=2.0, backoff_rate=2.0)
def refund_pay_step(plan: dict[str, Any]) -> str:
    """Transient failures are retried with the same idempotency key; a refusal by the
    provider (over-refund, ...) is not: it holds the return for finance instead."""
    rt = runtime()
    client = provider(rt)
    try:
        return refund_gate.pay(rt, _plan(plan), client)
    finally:
        _close(client)


def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


@DBOS.step()
def refund_hand_to_finance_step(plan: dict[str, Any]) -> str:
    return refund_gate.hand_to_finance(runtime(), _plan(plan))


@DBOS.step()
def refund_prepare_record_step(plan: dict[str, Any]) -> dict[str, Any] | None:
    rt = runtime()
    req = refund_gate.prepare_record(rt, _plan(plan), soap=bool(rt.settings.khaos.soap_url))
    return asdict(req) if req is not None else None


@DBOS.step()
def refund_apply_record_step(plan: dict[str, Any], req: dict[str, Any],
                             outcome: str | None) -> str:
    return refund_gate.apply_record(runtime(), _plan(plan), refund_gate.RecordRequest(**req),
                                    outcome)


def _record(plan: dict[str, Any]) -> None:
    """ProcessReturn goes through the rate-limited SOAP queue (at most once per return),
    when the return is still unprocessed in Khaos; otherwise finance records it."""
    req = refund_prepare_record_step(plan)
    if req is None:
        return
    outcome: str | None = None
    soap = bool(runtime().settings.khaos.soap_url)
    if refund_gate.uses_process_return(refund_gate.RecordRequest(**req), soap=soap):
        handle = enqueue_process_return(plan["associated_ref"], req["return_code"],
                                        req["auth"])
        outcome = str(handle.get_result())
    refund_apply_record_step(plan, req, outcome)


@DBOS.step()
def refund_finish_step(associated_ref: str, why: str) -> str:
    return refund_gate.finish(runtime(), associated_ref, why)


@DBOS.workflow()
def refund_workflow(associated_ref: str) -> str:
    data = refund_plan_step(associated_ref)
    action = refund_gate.run_sequence(_plan(data), refund_gate.Steps(
        pay=lambda p: refund_pay_step(_plan_json(p)),
        hand_to_finance=lambda p: refund_hand_to_finance_step(_plan_json(p)),
        record=lambda p: _record(_plan_json(p)),
        finish=refund_finish_step))
    log.info("refund gate", ref=associated_ref, action=action.value, note=data["note"])
    return action.value


MAX_ATTEMPTS = 50
# DBOS statuses of a workflow that will not run again by itself (CANCELLED is a person's
# decision and is left alone).
FAILED = frozenset({"ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


def attempt_id(wid: str, status_of: Callable[[str], str | None]) -> str | None:
    """The workflow id to start for a due return: ``wid`` itself, or, when the workflows
    started under it ended in ERROR (a step's retries ran out, e.g. Shopify timing out
    for minutes), the first ``wid:attempt-N`` that has not. Every payment is keyed by the
    return, so a new attempt can never pay twice; without one the refund would wait for
    ever. None when attempts ran out (the continuous reconciliation reports it stuck)."""
    candidate = wid
    for n in range(2, MAX_ATTEMPTS + 2):
        if status_of(candidate) not in FAILED:
            return candidate
        candidate = f"{wid}:attempt-{n}"
    return None


def _status(wid: str) -> str | None:
    found = DBOS.get_workflow_status(wid)
    return found.status if found is not None else None


def enqueue_due_refunds(rt: Runtime) -> int:
    """Start the gate for every due return (the workflow id makes repeats harmless)."""
    started = 0
    for ref in refund_gate.due_refs(rt):
        due = refund_gate.workflow_id(rt, ref)
        wid = attempt_id(due, _status) if due is not None else None
        if wid is None:
            continue
        if wid != due:
            log.warning("refund workflow ended in error; starting a new attempt", ref=ref,
                        workflow_id=wid)
        with SetWorkflowID(wid):
            DBOS.enqueue_workflow(REFUNDS_QUEUE, refund_workflow, ref)
        started += 1
    return started
