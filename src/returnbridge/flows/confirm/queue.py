"""Durable execution of confirmation: the rate-limited SOAP queue, ProcessReturn, and the
scheduled cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from dbos import DBOS, SetWorkflowID

from returnbridge.config import Settings
from returnbridge.erp.khaos.soap_faults import (
    ReturnAlreadyProcessed,
    ReturnCodeOrAuthMissing,
    ReturnNotFound,
    ReturnPartiallyProcessed,
    SoapError,
    SoapTransportError,
)
from returnbridge.flows.confirm.order_statuses import confirm_from_order_statuses
from returnbridge.flows.confirm.sightings import SOAP_QUEUE_NAME, SweepResult
from returnbridge.flows.confirm.sla import check_sla
from returnbridge.flows.confirm.soap_sweep import apply_order_statuses, awaiting_refs
from returnbridge.flows.engine.current import runtime
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success
from returnbridge.store.models import utcnow

log = structlog.get_logger(__name__)


# --- durable execution: the SOAP queue and the schedule -------------------------------------


def register_soap_queue(settings: Settings) -> None:
    """Register the rate-limited SOAP queue; call after ``DBOS.launch()`` in every process
    (as flows/engine/durable.py does for the events queue)."""
    k = settings.khaos
    DBOS.register_queue(SOAP_QUEUE_NAME, limiter={"limit": k.soap_calls_per_minute,
                                                  "period": 60.0},
                        global_concurrency=k.soap_concurrency,
                        polling_interval_sec=settings.server.queue_poll_seconds,
                        on_conflict="always_update")




@DBOS.step(retries_allowed=True, max_attempts=4, interval_seconds=5.0, backoff_rate=2.0)
def soap_confirm_batch_step(refs: list[str]) -> dict[str, int]:
    """One ExportOrderStatusEx call for ``refs`` and what it proved."""
    rt = runtime()
    result = SweepResult(checked=len(refs), calls=1)
    try:
        with rt.khaos_soap_client() as client:
            records = client.export_order_status_by_ref(refs)
    except SoapTransportError as exc:
        record_failure(rt, "khaos_soap", str(exc))
        raise
    record_success(rt, "khaos_soap")
    apply_order_statuses(rt, refs, records, result)
    return {"confirmed": result.confirmed, "imported": result.imported,
            "not_found": len(result.not_found)}


@DBOS.workflow()
def confirm_batch_workflow(refs: list[str]) -> dict[str, int]:
    """Runs on the SOAP queue: ask Khaos about one batch of refs."""
    return soap_confirm_batch_step(refs)


PROCESS_RETURN_OUTCOMES = ("processed", "already_processed", "not_found",
                           "partially_processed", "code_or_auth_missing")
# ProcessReturn's documented faults are answers, not failures: each is an outcome.
PROCESS_RETURN_FAULTS: tuple[tuple[type[SoapError], str], ...] = (
    (ReturnAlreadyProcessed, "already_processed"),
    (ReturnNotFound, "not_found"),
    (ReturnPartiallyProcessed, "partially_processed"),
    (ReturnCodeOrAuthMissing, "code_or_auth_missing"),
)


def fault_outcome(exc: BaseException) -> str | None:
    """The outcome a documented ProcessReturn fault means; None for any other error."""
    for fault, outcome in PROCESS_RETURN_FAULTS:
        if isinstance(exc, fault):
            return outcome
    return None


@DBOS.step(retries_allowed=True, max_attempts=5, interval_seconds=5.0, backoff_rate=2.0)
def process_return_step(return_code: str, manual_auth_code: str) -> str:
    """ProcessReturn over SOAP. Documented faults are answers (returned as an outcome from
    ``PROCESS_RETURN_OUTCOMES``, never retried); transport failures raise and are retried.
    ``already_processed`` after a retry means our earlier call got through."""

    rt = runtime()
    try:
        with rt.khaos_soap_client() as client:
            client.process_return(return_code, manual_auth_code)
    except SoapTransportError as exc:
        record_failure(rt, "khaos_soap", str(exc))
        raise  # the step is retried
    except SoapError as exc:
        outcome = fault_outcome(exc)
        if outcome is None:
            raise
        return outcome
    record_success(rt, "khaos_soap")
    return "processed"


@DBOS.workflow()
def process_return_workflow(return_code: str, manual_auth_code: str) -> str:
    """Runs on the SOAP queue: record a refund in desktop Khaos with ProcessReturn."""
    return process_return_step(return_code, manual_auth_code)


def enqueue_process_return(associated_ref: str, return_code: str,
                           manual_auth_code: str) -> Any:
    """Queue ProcessReturn for one return on the rate-limited SOAP queue, at most once per
    AssociatedRef (workflow id ``process-return:{associated_ref}``). Returns the DBOS
    workflow handle; ``handle.get_result()`` is one of ``PROCESS_RETURN_OUTCOMES``. The
    return code is ``returns.khaos_order_code``, stored when the import was confirmed."""
    with SetWorkflowID(f"process-return:{associated_ref}"):
        return DBOS.enqueue_workflow(SOAP_QUEUE_NAME, process_return_workflow, return_code,
                                     manual_auth_code)


def enqueue_confirm_sweep(rt: Runtime, now: datetime | None = None) -> int:
    """Enqueue one SOAP batch workflow per ``soap_refs_per_call`` awaiting refs on the
    rate-limited queue; the workflow id is keyed by the refs and the sweep window, so a
    second process enqueueing the same sweep adds nothing. Returns batches enqueued."""
    if not rt.settings.khaos.soap_url:
        return 0
    now = now or utcnow()
    window = int(now.timestamp() // (rt.settings.khaos.confirm_sweep_minutes * 60))
    refs = awaiting_refs(rt)
    size = rt.settings.khaos.soap_refs_per_call
    batches = 0
    for start in range(0, len(refs), size):
        batch = refs[start:start + size]
        with SetWorkflowID(f"confirm:{window}:{batch[0]}:{len(batch)}"):
            DBOS.enqueue_workflow(SOAP_QUEUE_NAME, confirm_batch_workflow, batch)
        batches += 1
    return batches


@dataclass
class CycleResult:
    pushed: int = 0
    soap_batches: int = 0
    late: int = 0

    def __str__(self) -> str:
        """As the Health page and the job log show it."""
        return (f"{self.pushed} return(s) confirmed from Khaos order statuses, "
                f"{self.soap_batches} SOAP check(s) queued, "
                f"{self.late} past the import deadline")


def run_confirm_cycle(rt: Runtime, *, durable: bool) -> CycleResult:
    """One scheduled pass: order-status pushes, SOAP sweep (queued when ``durable``), SLA."""
    result = CycleResult(pushed=confirm_from_order_statuses(rt))
    if rt.settings.khaos.soap_url and durable:
        result.soap_batches = enqueue_confirm_sweep(rt)
    result.late = check_sla(rt)
    return result
