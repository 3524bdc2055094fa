"""A platform's own refund, recorded against the Khaos credit note (ARCHITECTURE 5.5, 11).

When the returns platform pays the customer itself (``refund_owner = "platform"``), Khaos
never hears of the refund, so every such credit note looks like unspent credit on the
customer's account. With desktop Khaos SOAP configured and the platform's refund rules
asking for it (``record_platform_refunds_in_khaos``), each return whose credit note is
confirmed and whose platform refund is known (a gateway refund with its provider refund id)
gets:

1. its refund stored once in ``refunds`` (provider: the platform, origin ``external``, key
   ``platform-refund-{AssociatedRef}``);
2. ``ProcessReturn(ReturnCode, ManualAuthCode=<refund id>)`` through the rate-limited SOAP
   queue, as workflow ``process-return:{AssociatedRef}`` (the same id the refund gate
   uses, so a retry, a second process or both flows can never record it twice);
3. ``refund_recorded`` when Khaos answers processed. A return the warehouse books in is
   only processed this way once its goods are reported arrived (ProcessReturn moves stock).
   When Khaos has already processed the
   return (normal when the warehouse processed it on arrival), or refuses it for another
   documented reason, the refund cannot be attached by the web service: an open finance
   task (reconciliation item ``refund_record``) names the refund id, the amount and the
   credit note to record it against by hand.

The refund gate's own functions (flows/refunds/gate.py) are reused for the fault mapping;
this module does not change them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from dbos import DBOS, SetWorkflowID

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.money import quantize
from returnbridge.domain.policy import GoodsInOwner
from returnbridge.flows.confirm.queue import enqueue_process_return, fault_outcome
from returnbridge.flows.engine.current import runtime
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.workflow import REFUNDS_QUEUE
from returnbridge.store import returns_repo
from returnbridge.store.models import RefundRow, ReturnRow
from returnbridge.store.unit_of_work import UnitOfWork

REFUND_RECORD = "refund_record"  # reconciliation_items.category of the finance task
_DONE = ("recorded", "finance_task")
_WHY = {
    "already_processed": "Khaos had already processed return {code} (the warehouse processed "
    "it), so ProcessReturn cannot attach the refund to it",
    "not_found": "Khaos does not know return {code} (deleted?)",
    "partially_processed": "return {code} is partially processed in Khaos, which "
    "ProcessReturn refuses",
    "code_or_auth_missing": "Khaos refused ProcessReturn for return {code}: return code or "
    "auth code missing",
    "goods_not_arrived": "the goods are not reported arrived, and ProcessReturn would "
    "process return {code} in Khaos (moving its stock) before the warehouse has them",
    "no_return_code": "the Khaos return code of this credit note is not known (it was "
    "confirmed without one), so ProcessReturn cannot be called",
}


@dataclass(frozen=True)
class RecordPlan:
    associated_ref: str
    return_code: str
    auth: str  # ManualAuthCode: the platform's refund id(s), at most 50 characters
    refund_ids: str
    amount: Decimal
    currency: str
    credit_note_code: str


def record_key(associated_ref: str) -> str:
    return f"platform-refund-{associated_ref}"


def _sources(rt: Runtime) -> list[str]:
    out = []
    for platform in rt.platforms:
        section = platform.settings(rt.settings)
        if (platform.common(rt.settings).refund_owner == "platform"
                and platform.refund_rules(section).record_platform_refunds_in_khaos):
            out.append(platform.name)
    return out


def refund_ids(case: ReturnCase) -> tuple[str, ...]:
    """The platform's refund ids (one per gateway refund), in order, without repeats."""
    return tuple(dict.fromkeys(
        g.provider_refund_id for g in case.settlement.gateway_refunds if g.provider_refund_id))


def due_refs(rt: Runtime, limit: int = 200) -> list[str]:
    """Credit-confirmed returns whose platform refund is known and not yet recorded."""
    sources = _sources(rt)
    if not sources or not rt.settings.khaos.soap_url:
        return []
    with rt.unit_of_work() as uow:
        rows = uow.returns.credit_confirmed_of(sources, limit)
        done = uow.refunds.refs_with_status([record_key(r.associated_ref) for r in rows], _DONE)
        return [r.associated_ref for r in rows
                if r.associated_ref not in done and refund_ids(returns_repo.case_of(r))]


def plan_record(rt: Runtime, associated_ref: str) -> RecordPlan | None:
    """Store the platform refund once and say what ProcessReturn to call; None when there
    is nothing to record (not confirmed, refund unknown, already recorded or handed to
    finance). A credit note without a known return code goes to finance at once."""
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        if row is None or row.khaos_status != KhaosStatus.CREDIT_CONFIRMED.value:
            return None
        case = returns_repo.case_of(row)
        ids = refund_ids(case)
        if not ids:
            return None
        refund = _refund_row(uow, row, case, ids)
        if refund.status in _DONE:
            return None
        plan = RecordPlan(
            associated_ref=row.associated_ref, return_code=row.khaos_order_code,
            auth=",".join(ids)[:50], refund_ids=", ".join(ids),
            amount=quantize(case.settlement.refund_to_original), currency=row.currency,
            credit_note_code=row.credit_note_code)
        if not plan.return_code:
            _finance_task(uow, row, refund, plan, "no_return_code")
            return None
        if not _may_process(rt, row, case):
            _finance_task(uow, row, refund, plan, "goods_not_arrived")
            return None
        return plan


def _may_process(rt: Runtime, row: ReturnRow, case: ReturnCase) -> bool:
    """ProcessReturn processes a return that is still unprocessed, which moves its stock.
    A return the warehouse books in (imported unprocessed, goods coming back) is only
    processed by us once the goods are reported arrived (label delivered, or units
    received); stock never moves on a refund alone (ARCHITECTURE 6.3)."""
    if row.process_return:
        return True  # processed on import: Khaos will answer "already processed"
    if rt.source_policy(row.source).goods_in_owner is not GoodsInOwner.KHAOS:
        return True
    if not any(ln.physical_return_expected for ln in case.lines):
        return True
    return case.parcel.delivered_at is not None or bool(case.receipts)


def _refund_row(uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
                ids: tuple[str, ...]) -> RefundRow:
    key = record_key(row.associated_ref)
    found = uow.refunds.by_key(key)
    if found is not None:
        return found
    return uow.refunds.add_external(
        row=row, associated_ref=row.associated_ref, provider=row.source,
        idempotency_key=key, provider_refund_id=", ".join(ids)[:120],
        order_ref=row.order_ref, amount=quantize(case.settlement.refund_to_original),
        currency=row.currency, status="reported",
        note=f"refunded by {row.source}; to be recorded against credit note "
        f"{row.credit_note_code}", details={"refund_ids": list(ids)}, flush=True)


def apply_outcome(rt: Runtime, plan: RecordPlan, outcome: str) -> str:
    """What ProcessReturn answered (one of confirm.queue.PROCESS_RETURN_OUTCOMES)."""
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(plan.associated_ref)
        if row is None:
            return "unknown"
        refund = uow.refunds.by_key(record_key(plan.associated_ref))
        if refund is None or refund.status in _DONE:
            return row.khaos_status
        if outcome == "processed":
            uow.refunds.mark_recorded(refund)
            how = (f"{row.source} refund {plan.refund_ids} ({plan.amount} {plan.currency}) "
                   f"recorded in Khaos with ProcessReturn({plan.return_code}, {plan.auth}) "
                   f"against credit note {plan.credit_note_code}")
            uow.returns.add_timeline(row, "refund", how, {"refund_ids": plan.refund_ids})
            if row.khaos_status == KhaosStatus.CREDIT_CONFIRMED.value:
                uow.returns.set_khaos_status(row, KhaosStatus.REFUND_RECORDED, how,
                                             {"refund_ids": plan.refund_ids})
            uow.audit.record(actor="returnbridge", action="refund.recorded_in_khaos",
                             subject=plan.associated_ref,
                             details={"return_code": plan.return_code, "auth": plan.auth,
                                      "amount": str(plan.amount)})
        else:
            _finance_task(uow, row, refund, plan, outcome)
        return row.khaos_status


def _finance_task(uow: UnitOfWork, row: ReturnRow, refund: RefundRow, plan: RecordPlan,
                  why: str) -> None:
    reason = _WHY.get(why, "Khaos answered {code}: " + why.replace("_", " ")).format(
        code=plan.return_code or "?")
    note = (f"{row.source} refunded {plan.amount} {plan.currency} (refund {plan.refund_ids}) "
            f"but {reason}. Record the refund in Khaos against credit note "
            f"{plan.credit_note_code or '?'} by hand (Refunds dialog or the customer "
            f"statement, manual auth code {plan.auth}), then close this item.")
    uow.refunds.mark_finance_task(refund)
    uow.refunds.open_record_task(row, category=REFUND_RECORD, amount=plan.amount,
                                 currency=plan.currency, reference=plan.refund_ids[:120],
                                 note=note)
    uow.returns.add_timeline(row, "finance_task", note,
                             {"refund_ids": plan.refund_ids, "outcome": why})
    uow.audit.record(actor="returnbridge", action="refund.finance_task",
                     subject=row.associated_ref,
                     details={"refund_ids": plan.refund_ids, "why": why})


def record_now(rt: Runtime, associated_ref: str, khaos: Any) -> str:
    """The whole step without DBOS (tests, one-off use): plan, ProcessReturn, outcome."""
    plan = plan_record(rt, associated_ref)
    if plan is None:
        with rt.unit_of_work() as uow:
            row = uow.returns.by_ref(associated_ref)
            return row.khaos_status if row is not None else "unknown"
    try:
        khaos.process_return(plan.return_code, plan.auth)
        outcome = "processed"
    except Exception as exc:
        mapped = fault_outcome(exc)
        if mapped is None:
            raise  # transport trouble: nothing was stored as done; the next run retries
        outcome = mapped
    return apply_outcome(rt, plan, outcome)


# --- durable execution -------------------------------------------------------------------




def _plan_json(plan: RecordPlan) -> dict[str, Any]:
    return {**asdict(plan), "amount": str(plan.amount)}


def _plan(data: dict[str, Any]) -> RecordPlan:
    return RecordPlan(**{**data, "amount": Decimal(data["amount"])})


@DBOS.step()
def platform_refund_plan_step(associated_ref: str) -> dict[str, Any] | None:
    plan = plan_record(runtime(), associated_ref)
    return _plan_json(plan) if plan is not None else None


@DBOS.step()
def platform_refund_apply_step(plan: dict[str, Any], outcome: str) -> str:
    return apply_outcome(runtime(), _plan(plan), outcome)


@DBOS.workflow()
def platform_refund_workflow(associated_ref: str) -> str:
    """Record one platform refund in Khaos through the rate-limited SOAP queue."""
    plan = platform_refund_plan_step(associated_ref)
    if plan is None:
        return "nothing to record"
    handle = enqueue_process_return(associated_ref, plan["return_code"], plan["auth"])
    return platform_refund_apply_step(plan, str(handle.get_result()))


def enqueue_due(rt: Runtime) -> int:
    """Start the recording for every due return (workflow ids make repeats harmless)."""
    started = 0
    for ref in due_refs(rt):
        with SetWorkflowID(f"platform-refund:{ref}"):
            DBOS.enqueue_workflow(REFUNDS_QUEUE, platform_refund_workflow, ref)
        started += 1
    return started
