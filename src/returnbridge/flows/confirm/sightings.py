"""What was seen in Khaos about a return (a *sighting*: by SOAP, a push, finance's file or
an operator), and the one place where a sighting changes the return."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

import structlog

from returnbridge.config import Settings
from returnbridge.domain.exceptions import Problem
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.money import quantize
from returnbridge.erp.khaos.soap import OrderStatusRecord
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import ReturnRow, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


SOAP_QUEUE_NAME = "khaos_soap"
SYSTEM_ACTOR = "returnbridge"
UNCONFIRMED = "khaos_import_unconfirmed"
AWAITING = (KhaosStatus.SERVED.value, KhaosStatus.IMPORTED.value)
CONFIRMED = (KhaosStatus.CREDIT_CONFIRMED.value, KhaosStatus.REFUND_RECORDED.value,
             KhaosStatus.DONE.value)
CREDIT_NOTE_TYPES = {"2", "credit note", "creditnote", "credit_note"}
# Stages only a processed return's credit note reaches (issue and issued; reference §2.3).
PROCESSED_STAGES = frozenset({"16", "70", "71", "72", "73", "issue", "issue invoices", "issued",
                              "issued - current", "issued - archived", "archived", "complete"})


class Channel(StrEnum):
    SOAP = "soap"
    FILE = "file"
    OPERATOR = "operator"
    PUSH = "push"


class Outcome(StrEnum):
    CONFIRMED = "confirmed"  # credit_confirmed now
    IMPORTED = "imported"  # seen in Khaos, no credit note yet
    ALREADY = "already"  # nothing new (a second confirmation: no-op)
    CONFLICT = "conflict"  # confirmed earlier with a different credit note code
    NOT_DELIVERED = "not_delivered"  # never handed to Khaos: nothing to confirm


class UnknownReturn(LookupError):
    """No return has this AssociatedRef."""


class ConfirmRefused(ValueError):
    """The confirmation contradicts what is known (see ``outcome``)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Sighting:
    """What one source says about a return in Khaos."""

    channel: Channel
    actor: str
    reason: str
    credit_note_code: str = ""  # "" = imported, no credit note yet
    value: Decimal | None = None
    return_code: str = ""  # Khaos return code (for ProcessReturn)
    details: dict[str, str] = field(default_factory=dict)
    stage_id: str = ""  # the credit note's stage ("" = not reported: counts as cleared)
    stage_desc: str = ""

    @property
    def stage(self) -> str:
        return " ".join(p for p in (self.stage_id, self.stage_desc) if p)


@dataclass(frozen=True)
class ConfirmResult:
    associated_ref: str
    outcome: Outcome
    khaos_status: str
    credit_note_code: str
    credit_note_value: Decimal | None
    amount_mismatch: bool = False


@dataclass
class SweepResult:
    checked: int = 0
    calls: int = 0
    imported: int = 0
    confirmed: int = 0
    not_found: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    rows: int = 0
    confirmed: int = 0
    already: int = 0
    mismatches: int = 0
    unknown_refs: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, problem)


class OrderStatusSource(Protocol):
    """What the sweep needs from the SOAP client (``KhaosSoapClient`` satisfies it)."""

    def export_order_status_by_ref(self, associated_refs: str | Iterable[str], *,
                                   include_cancelled: bool = True) -> list[OrderStatusRecord]:
        ...


# --- the one place where evidence changes a return ------------------------------------------


def served_value(settings: Settings, row: ReturnRow) -> Decimal:
    """What we handed to Khaos: sum of quantity x UnitPrice (Gross or Net, as served)."""
    gross = settings.khaos.unit_price == "Gross"
    return quantize(sum((Decimal(ln.quantity) * (ln.unit_gross if gross else ln.unit_net)
                         for ln in row.lines), Decimal(0)))


def _resolve_unconfirmed(uow: UnitOfWork, row: ReturnRow, by: str, how: str) -> int:
    return uow.exceptions.resolve_for_return(row.id, UNCONFIRMED, by=by, how=how)


def is_cleared(settings: Settings, stage_id: str, stage_desc: str) -> bool:
    """Whether a credit note at this stage counts as cleared
    (``[khaos].cleared_credit_note_stages``, matched on the ID or the description). A
    stage nobody reported (operator, credit-note file) counts as cleared."""
    if not stage_id.strip() and not stage_desc.strip():
        return True
    cleared = {s.strip().casefold() for s in settings.khaos.cleared_credit_note_stages}
    return stage_id.strip().casefold() in cleared or stage_desc.strip().casefold() in cleared


def _sighting_json(ev: Sighting) -> dict[str, Any]:
    out: dict[str, Any] = {"source": ev.channel.value, "actor": ev.actor, "reason": ev.reason}
    if ev.credit_note_code:
        out["credit_note_code"] = ev.credit_note_code
    if ev.value is not None:
        out["value"] = str(ev.value)
    if ev.return_code:
        out["khaos_return_code"] = ev.return_code
    if ev.stage:
        out["credit_note_stage"] = ev.stage
    out.update(ev.details)
    return out


def apply_sighting(uow: UnitOfWork, rt: Runtime, row: ReturnRow, ev: Sighting) -> Outcome:
    """Apply ``ev`` to ``row`` (locked by the caller) inside the caller's transaction."""
    status = row.khaos_status
    code = ev.credit_note_code.strip()
    if status in CONFIRMED:
        if code and row.credit_note_code and code != row.credit_note_code:
            return Outcome.CONFLICT
        if code and ev.stage and ev.stage[:40] != row.credit_note_stage:
            uow.returns.note_credit_note_stage(row, ev.stage)  # e.g. issued since
        return Outcome.ALREADY
    if status not in AWAITING:
        return Outcome.NOT_DELIVERED
    evidence = _sighting_json(ev)
    now = utcnow()
    outcome = Outcome.ALREADY
    if ev.return_code and not row.khaos_order_code:
        uow.returns.note_khaos_return_code(row, ev.return_code)
    if status == KhaosStatus.SERVED.value:
        uow.returns.set_khaos_status(row, KhaosStatus.IMPORTED,
                                     f"seen in Khaos ({ev.channel.value}: {ev.reason})",
                                     evidence)
        uow.returns.mark_imported(row, now)
        outcome = Outcome.IMPORTED
        uow.audit.record(actor=ev.actor, action="khaos.return_imported",
                         subject=row.associated_ref, details=evidence)
    if code and not is_cleared(rt.settings, ev.stage_id, ev.stage_desc):
        if (code[:50], ev.stage[:40]) != (row.credit_note_code, row.credit_note_stage):
            uow.returns.note_credit_note(row, code, ev.value, ev.stage)
            uow.returns.add_timeline(row, "credit_note",
                f"credit note {code} seen at stage {ev.stage}, which does not count as "
                f"cleared ([khaos].cleared_credit_note_stages); waiting for it to clear "
                f"({ev.channel.value}: {ev.reason})", evidence)
            outcome = Outcome.IMPORTED if outcome is Outcome.ALREADY else outcome
        code = ""
    if code:
        uow.returns.confirm_credit_note(row, code, ev.value, ev.stage, at=now,
                                        seen_by=ev.channel.value)
        what = (f"credit note {code}" + (f" for {ev.value}" if ev.value is not None else "")
                + (f", stage {ev.stage}" if ev.stage else ""))
        uow.returns.set_khaos_status(row, KhaosStatus.CREDIT_CONFIRMED,
                                     f"{what} ({ev.channel.value}: {ev.reason})", evidence)
        uow.audit.record(actor=ev.actor, action="khaos.credit_confirmed",
                         subject=row.associated_ref, details=evidence)
        outcome = Outcome.CONFIRMED
        _check_amount(uow, rt, row, ev)
        uow.exceptions.resolve_by_key("credit_note_missing", f"{row.associated_ref}:credit-note",
                                      by=ev.actor[:120],
                                      how=f"credit note {code} cleared ({ev.channel.value})")
    if outcome is not Outcome.ALREADY:
        _resolve_unconfirmed(uow, row, ev.actor,
                             f"Khaos import confirmed ({ev.channel.value}: {ev.reason})")
    return outcome


def _check_amount(uow: UnitOfWork, rt: Runtime, row: ReturnRow, ev: Sighting) -> None:
    if ev.value is None:
        return
    expected = served_value(rt.settings, row)
    gap = quantize(ev.value) - expected
    if abs(gap) <= rt.settings.policy.tolerance:
        return
    cur = row.currency or ""
    uow.exceptions.raise_problem(Problem(
        type="amount_mismatch",
        message=f"Khaos credit note {row.credit_note_code} for {row.associated_ref} is "
        f"{quantize(ev.value)} {cur} but returnbridge served {expected} {cur} "
        f"(difference {gap}).",
        dedupe_key=f"{row.associated_ref}:credit_note",
        details={"origin": "credit_note", "credit_note_code": row.credit_note_code,
                 "credit_note_value": str(ev.value), "served_value": str(expected),
                 "difference": str(gap), "source": ev.channel.value},
    ), return_id=row.id, associated_ref=row.associated_ref)


def record_sighting(rt: Runtime, associated_ref: str, ev: Sighting) -> ConfirmResult:
    """Apply one piece of evidence in its own transaction."""
    with rt.unit_of_work() as uow:
        row = uow.returns.lock_by_ref(associated_ref, with_lines=True)
        if row is None:
            raise UnknownReturn(f"no return with AssociatedRef {associated_ref!r}")
        outcome = apply_sighting(uow, rt, row, ev)
        mismatch = uow.exceptions.has_open_for_return(row.id, "amount_mismatch")
        return ConfirmResult(row.associated_ref, outcome, row.khaos_status,
                             row.credit_note_code, row.credit_note_value, mismatch)
