"""Run the posting policy for one (not yet delivered) return and store what it decided.

Used by event processing, by re-evaluation when a cause changes (stock mirror, mapping,
customer mirror) and by the operator's retry. Opens the problems found, resolves the ones
that went away (saying by what), and moves the Khaos status.

Follow-up documents (ARCHITECTURE 6.1) are decided here too, because deciding and
following up call each other: when the returns platform owns goods-in, a partial return is
credited for what arrived and the rest stays open. If the rest arrives (and is graded)
after Khaos already has the first document, re-sending the same AssociatedRef is never
allowed; instead the new units become a follow-up return with a suffixed AssociatedRef
(``ZZ-RTN-1-2``), which goes through the same policy, validation, serving, confirmation and
refund gate on its own. Only additions are safe this way; any other change after handover
is ``status_drift``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from returnbridge.domain.identity import associated_ref
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.model import ReturnCase, ReturnLine, Settlement, SourceTotals
from returnbridge.domain.policy import Decision, DocumentLine, GoodsInOwner, decide
from returnbridge.flows.decide import facts
from returnbridge.flows.decide.money import sync_off_note
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import ReturnRow
from returnbridge.store.unit_of_work import UnitOfWork


def evaluate(rt: Runtime, uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
             evidence: dict[str, Any], *, cause: str, recount: bool = True,
             lines_pending: bool = False, new_return: bool = False) -> str:
    """Decide and persist; returns the new Khaos status. No-op for delivered returns.

    ``recount`` False (a re-evaluation with no new news from the source) refreshes the
    exceptions' last-seen time without counting the same problem again. ``lines_pending``:
    ``case`` was just saved with ``lines_decided_next``; its lines are written here.
    ``new_return``: the row was created in this same step, so no exception or
    reconciliation item of it can be open but the ones this call opens (the queries for
    them are skipped). A new row left
    unwritten by ``save_case`` is written before its id is first needed, at the latest
    before this returns."""
    if KhaosStatus(row.khaos_status) in DELIVERED:
        if lines_pending:
            raise ValueError(f"{row.associated_ref}: lines left for a delivered return")
        return row.khaos_status
    saved = case
    case = uow.sku_aliases.apply(case)  # SKU candidates a person chose in the console
    known = facts.gather(rt, uow, case)
    decision = decide(case, rt.policy_config(uow.mapping_rules),
                      rt.source_policy(case.source), known)
    problems = tuple(
        replace(p, details={**p.details, "origin": "policy"}) for p in decision.problems
    )
    uow.returns.apply_decision(row, decision, effective=saved if lines_pending else None)
    sync_off_note(uow, row, case, decision.off_note, evidence, new_return=new_return)
    if problems:
        uow.returns.write_new(row)  # the exceptions name it
    for problem in problems:
        uow.exceptions.raise_problem(problem, return_id=row.id,
                                      associated_ref=row.associated_ref,
                                      times=1 if recount else 0)
    for gone in () if new_return else uow.exceptions.resolve_missing(
        row.id, problems, by="returnbridge",
        how=f"re-evaluated after {cause}: the problem is gone",
    ):
        uow.returns.add_timeline(row, "exception_resolved",
                                  f"{gone.type} resolved: {gone.resolution}", evidence)
    _move_status(uow, row, decision, evidence)
    # A new return is written here, once, with its decision and status (save_case left it
    # unwritten): one INSERT instead of an INSERT and two UPDATEs.
    uow.returns.write_new(row)
    if decision.release and decision.split_off:
        open_split(rt, uow, row, case, decision.split_off, evidence)
    return row.khaos_status


def _move_status(uow: UnitOfWork, row: ReturnRow, decision: Decision,
                 evidence: dict[str, Any]) -> None:
    if decision.release:
        why = "validated; waiting for Khaos to fetch it"
        if decision.notes:
            why += " (" + "; ".join(decision.notes) + ")"
        uow.returns.set_khaos_status(row, KhaosStatus.READY, why, evidence)
    elif decision.blocked:
        types = sorted({p.type for p in decision.problems if p.blocking})
        uow.returns.set_khaos_status(row, KhaosStatus.HELD,
                                      "held until fixed: " + (", ".join(types)
                                                              or "a blocking problem"),
                                      evidence)
    else:
        uow.returns.set_khaos_status(row, KhaosStatus.PENDING,
            f"not released yet: {decision.wait_reason or 'waiting for the returns platform'}",
            evidence)


# --- follow-up documents -----------------------------------------------------------------


def _documented(uow: UnitOfWork, row: ReturnRow) -> tuple[Counter[tuple[str, str]], int]:
    """Units already on the parent's document and its follow-ups, by (SKU, disposition)."""
    counts: Counter[tuple[str, str]] = Counter()
    children = uow.returns.children(row)
    for doc in (row, *children):
        for line in doc.lines:
            counts[(line.sku, line.disposition)] += line.quantity
    return counts, len(children)


def new_units(rt: Runtime, uow: UnitOfWork, row: ReturnRow,
              case: ReturnCase) -> tuple[ReturnLine, ...]:
    """Received (and graded) units the documents sent so far do not cover."""
    policy = rt.source_policy(case.source)
    if policy.goods_in_owner is not GoodsInOwner.RETURNS_PLATFORM:
        return ()
    decision = decide(case, rt.policy_config(uow.mapping_rules), policy,
                      facts.gather(rt, uow, case))
    documented, _ = _documented(uow, row)
    extra: list[ReturnLine] = []
    for doc in decision.document:
        line = doc.line
        if not line.physical_return_expected:
            continue
        key = (line.sku, line.disposition.value)
        covered = min(documented[key], line.quantity)
        documented[key] -= covered
        if line.quantity > covered:
            extra.append(replace(line, quantity=line.quantity - covered,
                                 source_unit_ids=line.source_unit_ids[covered:]))
    return tuple(extra)


def _open_child(rt: Runtime, uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
                lines: tuple[ReturnLine, ...], source_return_id: str, *, child_note: str,
                parent_note: str, cause: str, evidence: dict[str, Any]) -> ReturnRow:
    """A further document of ``row``'s return: its own suffixed AssociatedRef, only
    ``lines``, no money header (the parent's checks covered it), evaluated at once."""
    _, existing = _documented(uow, row)
    number = existing + 2  # the parent is document 1
    doc = replace(
        case, source_return_id=source_return_id,
        associated_ref=associated_ref(rt.prefix(case.source), case.source_return_id,
                                      follow_up=number),
        lines=lines, exchanges=(), receipts=(), settlement=Settlement(),
        totals=SourceTotals(), events=(),
    )
    child = uow.returns.save_case(None, doc, lines_decided_next=True)
    uow.returns.link_follow_up(child, row)
    units = sum(ln.quantity for ln in lines)
    uow.returns.add_timeline(child, "follow_up",
                              child_note.format(units=units, parent=row.associated_ref),
                              evidence)
    uow.returns.add_timeline(row, "follow_up",
                              parent_note.format(units=units, child=child.associated_ref),
                              evidence)
    evaluate(rt, uow, child, doc, evidence, cause=f"{cause} {row.associated_ref}",
             lines_pending=True, new_return=True)
    return child


def open_follow_up(rt: Runtime, uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
                   evidence: dict[str, Any]) -> ReturnRow | None:
    """Create the follow-up return for newly arrived units, if there are any."""
    lines = new_units(rt, uow, row, case)
    if not lines:
        return None
    _, existing = _documented(uow, row)
    return _open_child(
        rt, uow, row, case, lines, f"{case.source_return_id}#{existing + 2}",
        child_note="follow-up to {parent}: {units} unit(s) that arrived after the first "
        "document was handed to Khaos",
        parent_note="{units} more unit(s) arrived after handover; sent as follow-up {child}",
        cause="follow-up of", evidence=evidence)


def open_split(rt: Runtime, uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
               kept: tuple[DocumentLine, ...], evidence: dict[str, Any]) -> ReturnRow | None:
    """The kept (no-parcel) lines of a mixed return as their own document, processed on
    import. Created once; later evaluations of the parent find it and do nothing."""
    marker = f"{case.source_return_id}#keep"
    existing = uow.returns.by_source_id(row.source, marker)
    if existing is not None:
        return None
    return _open_child(
        rt, uow, row, case, tuple(d.line for d in kept), marker,
        child_note="the {units} kept unit(s) of {parent}, sent on their own and processed "
        "on import (no parcel will come back)",
        parent_note="{units} kept unit(s) sent separately as {child}",
        cause="split from", evidence=evidence)
