"""The SOAP sweep: desktop ``ExportOrderStatusEx`` for returns served and not yet confirmed."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from returnbridge.erp.khaos.soap import OrderStatusRecord
from returnbridge.erp.khaos.soap_faults import SoapError, SoapTransportError
from returnbridge.flows.confirm.sightings import (
    AWAITING,
    SYSTEM_ACTOR,
    Channel,
    OrderStatusSource,
    Outcome,
    Sighting,
    SweepResult,
    UnknownReturn,
    record_sighting,
)
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success

log = structlog.get_logger(__name__)


# --- (a) SOAP sweep -------------------------------------------------------------------------


def awaiting_refs(rt: Runtime, limit: int | None = None) -> list[str]:
    """AssociatedRefs served or imported but not yet credit-confirmed, oldest first."""
    with rt.unit_of_work() as uow:
        return uow.returns.refs_in_status(AWAITING, limit)


def _soap_sighting(rt: Runtime, rec: OrderStatusRecord) -> Sighting:
    gross = rt.settings.khaos.unit_price == "Gross"
    value = rec.items_total if gross else (rec.items_total_net or rec.items_total)
    invoice = next((i for i in rec.invoices if i.code == rec.credit_note_code), None)
    return Sighting(Channel.SOAP, SYSTEM_ACTOR, "ExportOrderStatusEx", rec.credit_note_code,
                    value if rec.credit_note_code else None, rec.order_code,
                    stage_id=invoice.stage_id if invoice else "",
                    stage_desc=invoice.stage_desc if invoice else "")


def apply_order_statuses(rt: Runtime, refs: Sequence[str],
                         records: Sequence[OrderStatusRecord], result: SweepResult) -> None:
    """Apply what ExportOrderStatusEx said about ``refs``."""
    by_ref: dict[str, OrderStatusRecord] = {}
    for rec in records:
        if not rec.is_credit_note or rec.cancelled or rec.associated_ref not in refs:
            continue
        best = by_ref.get(rec.associated_ref)
        if best is None or (rec.credit_note_code and not best.credit_note_code):
            by_ref[rec.associated_ref] = rec
    for ref in refs:
        found = by_ref.get(ref)
        if found is None:
            result.not_found.append(ref)
            continue
        try:
            outcome = record_sighting(rt, ref, _soap_sighting(rt, found)).outcome
        except UnknownReturn:
            continue
        if outcome is Outcome.CONFIRMED:
            result.confirmed += 1
        elif outcome is Outcome.IMPORTED:
            result.imported += 1


def sweep_unconfirmed(rt: Runtime, soap_client: OrderStatusSource, *,
                      limit: int | None = None) -> SweepResult:
    """Ask Khaos (ExportOrderStatusEx, MappingType 4) about every served or imported return,
    ``[khaos].soap_refs_per_call`` refs per call. A failed call is reported, not raised."""
    result = SweepResult()
    refs = awaiting_refs(rt, limit)
    result.checked = len(refs)
    size = rt.settings.khaos.soap_refs_per_call
    for start in range(0, len(refs), size):
        batch = refs[start:start + size]
        result.calls += 1
        try:
            records = soap_client.export_order_status_by_ref(batch)
        except SoapError as exc:
            result.errors.append(str(exc))
            log.warning("credit note sweep call failed", error=str(exc), refs=len(batch))
            if isinstance(exc, SoapTransportError):
                record_failure(rt, "khaos_soap", str(exc))
            continue
        record_success(rt, "khaos_soap")
        apply_order_statuses(rt, batch, records, result)
    return result
