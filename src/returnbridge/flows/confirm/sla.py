"""The confirmation SLA: served returns Khaos has not confirmed in time, and credit notes
that have not cleared."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.confirm.sightings import UNCONFIRMED
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


# --- SLA ------------------------------------------------------------------------------------


def check_sla(rt: Runtime, now: datetime | None = None) -> int:
    """Open (or count again) ``khaos_import_unconfirmed`` for every return served longer
    than ``credit_confirm_sla_hours`` ago without evidence of the import. Returns how many
    returns are past the SLA."""
    now = now or utcnow()
    hours = rt.settings.khaos.credit_confirm_sla_hours
    cutoff = now - timedelta(hours=hours)
    with rt.unit_of_work() as uow:
        late = uow.returns.served_before(cutoff)
        for row in late:
            served_at = row.served_at.isoformat() if row.served_at else ""
            if uow.exceptions.is_open(UNCONFIRMED, row.associated_ref):
                continue  # already open: one row per return, not one per sweep
            uow.exceptions.raise_problem(Problem(
                type=UNCONFIRMED,
                message=f"Khaos fetched {row.associated_ref} at {served_at[:19]} UTC but no "
                f"import has been confirmed within {hours:g} hours.",
                dedupe_key=row.associated_ref,
                details={"served_at": served_at, "sla_hours": f"{hours:g}"},
            ), return_id=row.id, associated_ref=row.associated_ref)
            uow.returns.add_timeline(row, "exception",
                                     f"{UNCONFIRMED}: not confirmed within {hours:g} hours",
                                     {"served_at": served_at})
        return len(late) + _check_credit_note_sla(uow, rt, now)


def _check_credit_note_sla(uow: UnitOfWork, rt: Runtime, now: datetime) -> int:
    """``credit_note_missing`` for every return imported longer than
    ``credit_note_sla_hours`` ago without a cleared credit note: in Khaos the credit note
    exists only once the return is processed, so an unprocessed return would otherwise
    wait for ever (and its refund with it)."""
    hours = rt.settings.khaos.credit_note_sla_hours
    cutoff = now - timedelta(hours=hours)
    late = uow.returns.imported_before(cutoff)
    for row in late:
        key = f"{row.associated_ref}:credit-note"
        if uow.exceptions.is_open("credit_note_missing", key):
            continue
        imported = row.imported_at.isoformat()[:19] if row.imported_at else "?"
        code = f" (Khaos return {row.khaos_order_code})" if row.khaos_order_code else ""
        if row.credit_note_code:
            why = (f"its credit note {row.credit_note_code} is still at stage "
                   f"{row.credit_note_stage or '?'}, which does not count as cleared")
            action = (f"Move credit note {row.credit_note_code} on in Khaos (process and "
                      f"issue return {row.associated_ref}{code}), or add the stage to "
                      "[khaos].cleared_credit_note_stages if it should count as cleared.")
        else:
            why = "Khaos has raised no credit note: the return has not been processed"
            action = (f"Process return {row.associated_ref}{code} in Khaos once its goods "
                      "are booked in (that raises the credit note); if the goods never "
                      "arrived, cancel the return in Khaos and at the returns platform.")
        exc = uow.exceptions.raise_problem(Problem(
            type="credit_note_missing",
            message=f"{row.associated_ref} was imported into Khaos at {imported} UTC but "
            f"after {hours:g} hours {why}. Nothing that waits for the credit note (refund, "
            f"reconciliation) can happen until then. {action}",
            dedupe_key=key,
            details={"imported_at": imported, "sla_hours": f"{hours:g}",
                     "credit_note_code": row.credit_note_code,
                     "credit_note_stage": row.credit_note_stage},
        ), return_id=row.id, associated_ref=row.associated_ref)
        uow.returns.add_timeline(row, "exception",
                                 f"{exc.type}: no cleared credit note within {hours:g} hours "
                                 f"of the import ({why})", {})
    return len(late)
