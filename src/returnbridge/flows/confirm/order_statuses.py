"""Order-status pushes: credit notes Khaos pushed (``khaos_order_statuses``) confirm returns."""

from __future__ import annotations

import structlog

from returnbridge.flows.confirm.sightings import (
    AWAITING,
    CREDIT_NOTE_TYPES,
    SYSTEM_ACTOR,
    Channel,
    Outcome,
    Sighting,
    UnknownReturn,
    record_sighting,
)
from returnbridge.flows.engine.runtime import Runtime

log = structlog.get_logger(__name__)


# --- (d) order-status pushes ----------------------------------------------------------------


def confirm_from_order_statuses(rt: Runtime) -> int:
    """Confirm awaiting returns from pushed ``khaos_order_statuses`` rows with ORDER_TYPE 2
    and our AssociatedRef. Returns how many returns moved."""
    with rt.unit_of_work() as uow:
        found = uow.khaos.pushed_statuses_of(AWAITING)
    moved = 0
    for order_code, invoice_code, order_type, total, order_id, stage, ref in found:
        if (order_type or "").strip().lower() not in CREDIT_NOTE_TYPES:
            continue
        # The credit note is the document's invoice (shipment) code; without one Khaos has
        # raised none yet (the return is only imported), whatever the order code is.
        code = invoice_code
        ev = Sighting(Channel.PUSH, SYSTEM_ACTOR, f"OrderStatusUpload order {order_id}", code,
                      total if code else None, order_code, {"order_id": order_id},
                      stage_desc=stage if code else "")
        try:
            outcome = record_sighting(rt, ref, ev).outcome
        except UnknownReturn:
            continue
        moved += outcome in (Outcome.CONFIRMED, Outcome.IMPORTED)
    return moved
