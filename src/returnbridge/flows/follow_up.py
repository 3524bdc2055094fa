"""Follow-up documents (ARCHITECTURE 6.1): units that arrive after the first document.

When the returns platform owns goods-in, a partial return is credited for what arrived
and the rest stays open. If the rest arrives (and is graded) after Khaos already has the
first document, re-sending the same AssociatedRef is never allowed; instead the new units
become a follow-up return with a suffixed AssociatedRef (``ZZ-RTN-1-2``), which goes
through the same policy, validation, serving, confirmation and refund gate on its own.
Only additions are safe this way; any other change after handover is ``status_drift``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.identity import associated_ref
from returnbridge.domain.model import ReturnCase, ReturnLine, Settlement, SourceTotals
from returnbridge.domain.policy import DocumentLine, GoodsInOwner, decide
from returnbridge.flows import facts
from returnbridge.flows.decide import evaluate
from returnbridge.flows.runtime import Runtime
from returnbridge.store import returns_repo
from returnbridge.store.models import ReturnRow


def _documented(session: Session, row: ReturnRow) -> tuple[Counter[tuple[str, str]], int]:
    """Units already on the parent's document and its follow-ups, by (SKU, disposition)."""
    counts: Counter[tuple[str, str]] = Counter()
    children = session.scalars(select(ReturnRow).where(ReturnRow.parent_id == row.id)).all()
    for doc in (row, *children):
        for line in doc.lines:
            counts[(line.sku, line.disposition)] += line.quantity
    return counts, len(children)


def new_units(rt: Runtime, session: Session, row: ReturnRow,
              case: ReturnCase) -> tuple[ReturnLine, ...]:
    """Received (and graded) units the documents sent so far do not cover."""
    policy = rt.source_policy(case.source.value)
    if policy.goods_in_owner is not GoodsInOwner.RETURNS_PLATFORM:
        return ()
    decision = decide(case, rt.policy_config(), policy, facts.gather(rt, session, case))
    documented, _ = _documented(session, row)
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


def open_follow_up(rt: Runtime, session: Session, row: ReturnRow, case: ReturnCase,
                   evidence: dict[str, Any]) -> ReturnRow | None:
    """Create the follow-up return for newly arrived units, if there are any."""
    lines = new_units(rt, session, row, case)
    if not lines:
        return None
    _, existing = _documented(session, row)
    number = existing + 2  # the parent is document 1
    follow = replace(
        case,
        source_return_id=f"{case.source_return_id}#{number}",
        associated_ref=associated_ref(rt.prefix(case.source.value), case.source_return_id,
                                      follow_up=number),
        lines=lines, exchanges=(), receipts=(), settlement=Settlement(),
        totals=SourceTotals(), events=(),
    )
    child = returns_repo.save_case(session, None, follow)
    child.parent_id = row.id
    child.first_seen_via = row.first_seen_via
    units = sum(ln.quantity for ln in lines)
    returns_repo.add_timeline(session, child, "follow_up",
                              f"follow-up to {row.associated_ref}: {units} unit(s) that "
                              "arrived after the first document was handed to Khaos", evidence)
    returns_repo.add_timeline(session, row, "follow_up",
                              f"{units} more unit(s) arrived after handover; sent as follow-up "
                              f"{child.associated_ref}", evidence)
    evaluate(rt, session, child, follow, evidence,
             cause=f"follow-up of {row.associated_ref}")
    return child


def open_split(rt: Runtime, session: Session, row: ReturnRow, case: ReturnCase,
               kept: tuple[DocumentLine, ...], evidence: dict[str, Any]) -> ReturnRow | None:
    """The kept (no-parcel) lines of a mixed return as their own document, processed on
    import. Created once; later evaluations of the parent find it and do nothing."""
    marker = f"{case.source_return_id}#keep"
    existing = session.scalars(select(ReturnRow).where(
        ReturnRow.source == row.source, ReturnRow.source_return_id == marker)).first()
    if existing is not None:
        return None
    _, children = _documented(session, row)
    number = children + 2
    lines = tuple(d.line for d in kept)
    split = replace(
        case, source_return_id=marker,
        associated_ref=associated_ref(rt.prefix(case.source.value), case.source_return_id,
                                      follow_up=number),
        lines=lines, exchanges=(), receipts=(), settlement=Settlement(),
        totals=SourceTotals(), events=(),
    )
    child = returns_repo.save_case(session, None, split)
    child.parent_id = row.id
    child.first_seen_via = row.first_seen_via
    units = sum(ln.quantity for ln in lines)
    returns_repo.add_timeline(session, child, "follow_up",
                              f"the {units} kept unit(s) of {row.associated_ref}, sent on their "
                              "own and processed on import (no parcel will come back)",
                              evidence)
    returns_repo.add_timeline(session, row, "follow_up",
                              f"{units} kept unit(s) sent separately as {child.associated_ref}",
                              evidence)
    evaluate(rt, session, child, split, evidence, cause=f"split from {row.associated_ref}")
    return child
