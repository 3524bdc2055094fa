"""The refund gate as a DBOS workflow (``refund:{associated_ref}``): each part is a step,
so a crash resumes where it stopped and a second process can never pay twice."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from returnbridge.flows import refund_gate
from returnbridge.flows.refund_gate import Action, Plan
from returnbridge.flows.runtime import Runtime

log = structlog.get_logger(__name__)

REFUNDS_QUEUE = "refunds"


def _runtime() -> Runtime:
    from returnbridge.flows.durable import runtime

    return runtime()


def provider(rt: Runtime) -> refund_gate.RefundsProvider:
    from returnbridge.payments.shopify.client import ShopifyClient

    return ShopifyClient(rt.settings.shopify)


def khaos_recorder(rt: Runtime) -> refund_gate.KhaosRecorder | None:
    if not rt.settings.khaos.soap_url:
        return None
    from returnbridge.erp.khaos.soap import KhaosSoapClient

    return KhaosSoapClient(rt.settings.khaos.soap_url,
                           timeout=float(getattr(rt.settings.khaos, "soap_timeout_seconds", 30)))


def _plan_json(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["amount"] = str(plan.amount)
    data["action"] = plan.action.value
    return data


def _plan(data: dict[str, Any]) -> Plan:
    return Plan(**{**data, "amount": Decimal(data["amount"]), "action": Action(data["action"])})


@DBOS.step()
def refund_plan_step(associated_ref: str) -> dict[str, Any]:
    rt = _runtime()
    client = provider(rt)
    try:
        return _plan_json(refund_gate.plan_refund(rt, associated_ref, client))
    finally:
        _close(client)


@DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=2.0, backoff_rate=2.0)
def refund_pay_step(plan: dict[str, Any]) -> str:
    """Transient failures are retried with the same idempotency key; a refusal by the
    provider (over-refund, ...) is not: it holds the return for finance instead."""
    rt = _runtime()
    client = provider(rt)
    try:
        return refund_gate.pay(rt, _plan(plan), client)
    finally:
        _close(client)


def _close(client: object) -> None:
    close = getattr(client, "close", None)
    if callable(close):
        close()


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=2.0, backoff_rate=2.0)
def refund_record_step(plan: dict[str, Any]) -> str:
    rt = _runtime()
    recorder = khaos_recorder(rt)
    try:
        return refund_gate.record_in_khaos(rt, _plan(plan), recorder)
    finally:
        _close(recorder)


@DBOS.step()
def refund_finish_step(associated_ref: str, why: str) -> str:
    return refund_gate.finish(_runtime(), associated_ref, why)


@DBOS.workflow()
def refund_workflow(associated_ref: str) -> str:
    plan = refund_plan_step(associated_ref)
    action = Action(plan["action"])
    if action is Action.PAY:
        refund_pay_step(plan)
    if action in (Action.PAY, Action.RECONCILED, Action.ALREADY_PAID):
        refund_record_step(plan)
        refund_finish_step(associated_ref, "refund reconciled and recorded"
                           if action is Action.RECONCILED else "refund made and recorded")
    log.info("refund gate", ref=associated_ref, action=action.value, note=plan["note"])
    return action.value


def enqueue_due_refunds(rt: Runtime) -> int:
    """Start the gate for every due return (the workflow id makes repeats harmless)."""
    started = 0
    for ref in refund_gate.due_refs(rt):
        wid = refund_gate.workflow_id(rt, ref)
        if wid is None:
            continue
        with SetWorkflowID(wid):
            DBOS.enqueue_workflow(REFUNDS_QUEUE, refund_workflow, ref)
        started += 1
    return started
