"""An operator confirms a credit note by hand (``POST /api/v1/returns/{ref}/confirm-credit``)."""

from __future__ import annotations

from decimal import Decimal

import structlog

from returnbridge.flows.confirm.sightings import (
    Channel,
    ConfirmRefused,
    ConfirmResult,
    Outcome,
    Sighting,
    record_sighting,
)
from returnbridge.flows.engine.runtime import Runtime

log = structlog.get_logger(__name__)


# --- (c) operator ---------------------------------------------------------------------------


def confirm_credit(rt: Runtime, associated_ref: str, code: str, value: Decimal | None,
                   actor: str, reason: str) -> ConfirmResult:
    """An operator says Khaos holds credit note ``code`` (worth ``value``) for this return.
    Raises :class:`UnknownReturn`, or :class:`ConfirmRefused` when the return was never
    handed to Khaos or already has a different credit note. A repeat is a no-op."""
    if not code.strip():
        raise ValueError("a credit note code is required")
    if not actor.strip() or not reason.strip():
        raise ValueError("say who confirms and why")
    result = record_sighting(rt, associated_ref, Sighting(
        Channel.OPERATOR, actor.strip(), reason.strip(), code.strip(), value))
    if result.outcome is Outcome.CONFLICT:
        raise ConfirmRefused(result.outcome, f"{associated_ref} is already confirmed with "
                             f"credit note {result.credit_note_code}, not {code.strip()}")
    if result.outcome is Outcome.NOT_DELIVERED:
        raise ConfirmRefused(result.outcome, f"{associated_ref} has not been handed to Khaos "
                             f"(Khaos status {result.khaos_status}); nothing to confirm")
    return result
