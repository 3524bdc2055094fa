"""The confirmation SLA: served returns Khaos has not confirmed in time, and credit notes
that have not cleared."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.flows.confirm.sightings import UNCONFIRMED
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import ExceptionRow, ReturnRow, utcnow
from returnbridge.store.returns_repo import ReturnsRepository

log = structlog.get_logger(__name__)


# --- SLA ------------------------------------------------------------------------------------


def check_sla(rt: Runtime, now: datetime | None = None) -> int:
    """Open (or count again) ``khaos_import_unconfirmed`` for every return served longer
    than ``credit_confirm_sla_hours`` ago without evidence of the import. Returns how many
    returns are past the SLA."""
    now = now or utcnow()
    hours = rt.settings.khaos.credit_confirm_sla_hours
    cutoff = now - timedelta(hours=hours)
    with rt.sessions() as session, session.begin():
        late = session.scalars(select(ReturnRow).where(
            ReturnRow.khaos_status == KhaosStatus.SERVED.value,
            ReturnRow.served_at.is_not(None), ReturnRow.served_at < cutoff)).all()
        for row in late:
            served_at = row.served_at.isoformat() if row.served_at else ""
            existing = session.scalars(select(ExceptionRow).where(
                ExceptionRow.type == UNCONFIRMED, ExceptionRow.dedupe_key == row.associated_ref,
                ExceptionRow.status == "open")).first()
            if existing is not None:
                continue  # already open: one row per return, not one per sweep
            ExceptionsRepository(session).raise_problem(Problem(
                type=UNCONFIRMED,
                message=f"Khaos fetched {row.associated_ref} at {served_at[:19]} UTC but no "
                f"import has been confirmed within {hours:g} hours.",
                dedupe_key=row.associated_ref,
                details={"served_at": served_at, "sla_hours": f"{hours:g}"},
            ), return_id=row.id, associated_ref=row.associated_ref)
            ReturnsRepository(session).add_timeline(row, "exception",
                                      f"{UNCONFIRMED}: not confirmed within {hours:g} hours",
                                      {"served_at": served_at})
        return len(late) + _check_credit_note_sla(session, rt, now)


def _check_credit_note_sla(session: Session, rt: Runtime, now: datetime) -> int:
    """``credit_note_missing`` for every return imported longer than
    ``credit_note_sla_hours`` ago without a cleared credit note: in Khaos the credit note
    exists only once the return is processed, so an unprocessed return would otherwise
    wait for ever (and its refund with it)."""
    hours = rt.settings.khaos.credit_note_sla_hours
    cutoff = now - timedelta(hours=hours)
    late = session.scalars(select(ReturnRow).where(
        ReturnRow.khaos_status == KhaosStatus.IMPORTED.value,
        ReturnRow.imported_at.is_not(None), ReturnRow.imported_at < cutoff)).all()
    for row in late:
        key = f"{row.associated_ref}:credit-note"
        if session.scalars(select(ExceptionRow.id).where(
                ExceptionRow.type == "credit_note_missing", ExceptionRow.dedupe_key == key,
                ExceptionRow.status == "open")).first() is not None:
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
        exc = ExceptionsRepository(session).raise_problem(Problem(
            type="credit_note_missing",
            message=f"{row.associated_ref} was imported into Khaos at {imported} UTC but "
            f"after {hours:g} hours {why}. Nothing that waits for the credit note (refund, "
            f"reconciliation) can happen until then. {action}",
            dedupe_key=key,
            details={"imported_at": imported, "sla_hours": f"{hours:g}",
                     "credit_note_code": row.credit_note_code,
                     "credit_note_stage": row.credit_note_stage},
        ), return_id=row.id, associated_ref=row.associated_ref)
        ReturnsRepository(session).add_timeline(row, "exception",
                                  f"{exc.type}: no cleared credit note within {hours:g} hours "
                                  f"of the import ({why})", {})
    return len(late)
