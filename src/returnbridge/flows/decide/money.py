"""Money checked whenever money news arrives, before or after handover (ARCHITECTURE 11).

Before handover the posting policy runs the settlement identity on the document it would
send (flows/decide/evaluate.py). After handover the document is fixed, so a later
settlement (the platform closing the return with its refund, a gift card) is checked here
against what Khaos
was actually served: the stored document lines of the return and of its further documents.
Each gap is one exception (``domain/settlement.py``); a gap found again updates the same
row, a gap that closed is resolved, saying by what.

Shipping refunds and handling fees that are not on the credit note (no non-stock SKU
configured, or reported after handover) become open ``reconciliation_items`` rows, shown on
the return, for the reconciliation report.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.money import ZERO, quantize
from returnbridge.domain.settlement import (
    CreditBasis,
    MoneyCategory,
    OffNote,
    Stage,
    money_key_prefix,
    money_problems,
    off_note,
)
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import (
    ExceptionRow,
    ReturnLineRow,
    ReturnRow,
)
from returnbridge.store.returns_repo import ReturnsRepository
from returnbridge.store.unit_of_work import UnitOfWork

# Categories this module owns in reconciliation_items (others, e.g. refund_record, are
# written by their own flows and never withdrawn here).
_OFF_NOTE_CATEGORIES = (MoneyCategory.SHIPPING.value, MoneyCategory.HANDLING_FEE.value)


def served_basis(rt: Runtime, returns: ReturnsRepository, row: ReturnRow) -> CreditBasis:
    """What Khaos was served for this return: its stored document lines and those of its
    further documents (split-off kept items, follow-ups). ``returns``: ``uow.returns``."""
    policy = rt.settings.policy
    docs = [row, *returns.children(row)]
    net = tax = ZERO
    shipping: Decimal | None = None
    fee: Decimal | None = None
    units = 0
    for doc in docs:
        for ln in doc.lines:
            kind = _non_stock_kind(ln, policy.shipping_refund_sku, policy.handling_fee_sku,
                                   policy.non_stock_reason_id)
            if kind == "shipping":
                shipping = (shipping or ZERO) + ln.unit_gross * ln.quantity
            elif kind == "fee":
                fee = (fee or ZERO) - ln.unit_gross * ln.quantity  # sent with a negative price
            else:
                net += ln.unit_net * ln.quantity
                tax += ln.unit_tax * ln.quantity
                units += ln.quantity
    return CreditBasis(goods_net=quantize(net), goods_tax=quantize(tax),
                       shipping_line=shipping, fee_line=fee, stage=Stage.AFTER_HANDOVER,
                       units=units)


def _non_stock_kind(ln: ReturnLineRow, shipping_sku: str, fee_sku: str, reason: str) -> str:
    if not reason or ln.khaos_reason_id != reason or ln.physical_return_expected:
        return ""
    if shipping_sku and ln.sku == shipping_sku:
        return "shipping"
    if fee_sku and ln.sku == fee_sku:
        return "fee"
    return ""


def check_after_handover(rt: Runtime, uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
                         evidence: dict[str, Any], *, cause: str) -> list[ExceptionRow]:
    """Run the settlement identity against the served document; open, update or resolve
    this return's money gaps. Returns the open money exceptions."""
    basis = served_basis(rt, uow.returns, row)
    if basis.units < case.units:
        # Units still expected go on a follow-up document: the served part cannot match
        # the whole settlement yet. Checked again when they are served.
        return []
    delivery = uow.returns.last_delivery_id(row.id)
    served = {"served_in_delivery": str(delivery)} if delivery is not None else {}
    problems = tuple(
        replace(p, details={**p.details, **served, "origin": "policy", "cause": cause[:120]})
        for p in money_problems(case, basis, rt.settings.policy.tolerance)
    )
    opened = []
    for problem in problems:
        if _settled_by_a_person(uow, problem):
            continue
        exc = uow.exceptions.raise_problem(problem, return_id=row.id,
                                            associated_ref=row.associated_ref)
        if exc.count == 1:
            uow.returns.add_timeline(row, "exception",
                                      f"{exc.type}: {problem.message}", evidence)
        opened.append(exc)
    for gone in resolve_closed_gaps(uow, row, problems, by="returnbridge",
                                    how=f"money re-checked after {cause}: the gap is closed"):
        uow.returns.add_timeline(row, "exception_resolved",
                                  f"{gone.type} resolved: {gone.resolution}", evidence)
    sync_off_note(uow, row, case, off_note(case, basis), evidence)
    return opened


def _settled_by_a_person(uow: UnitOfWork, problem: Problem) -> bool:
    """After handover the served document never changes, so a gap a person resolved or
    ignored (having amended Khaos by hand) would be found again on every later event. It
    stays closed unless its figures change."""
    row = uow.exceptions.find(problem.type, problem.dedupe_key)
    return (row is not None and row.status in ("resolved", "ignored")
            and row.resolved_by != "returnbridge"
            and (row.details or {}).get("gap") == problem.details.get("gap"))


def resolve_closed_gaps(uow: UnitOfWork, row: ReturnRow, present: tuple[Problem, ...], *,
                        by: str, how: str) -> list[ExceptionRow]:
    """Resolve this return's open money gaps (keys under ``{ref}:money:``) not in
    ``present``. Other checks' exceptions (e.g. a per-line VAT rate check) are untouched."""
    keep = {(p.type, p.dedupe_key) for p in present}
    prefix = money_key_prefix(row.associated_ref)
    gone = []
    for exc in uow.exceptions.open_for_return(row.id):
        if exc.dedupe_key.startswith(prefix) and (exc.type, exc.dedupe_key) not in keep:
            uow.exceptions.close(exc, "resolved", by=by, how=how)
            gone.append(exc)
    uow.exceptions.flush()
    return gone


def sync_off_note(uow: UnitOfWork, row: ReturnRow, case: ReturnCase,
                  items: tuple[OffNote, ...], evidence: dict[str, Any] | None = None, *,
                  new_return: bool = False) -> None:
    """Keep one open reconciliation item per off-note component; withdraw those the
    source no longer reports. Idempotent. ``new_return``: ``row`` was created in this
    step, so it has no items yet (the query is skipped)."""
    repo = uow.reconciliation_items
    current = {} if new_return else repo.by_category(row.associated_ref,
                                                     _OFF_NOTE_CATEGORIES)
    wanted = {i.category.value: i for i in items}
    cur = case.currency
    changed = False
    for category, item in wanted.items():
        label = category.replace("_", " ")
        note = (f"{label} {item.amount} {cur} is not on the Khaos credit note; account for it "
                f"under the {category} reconciliation category").replace("  ", " ")
        found = current.get(category)
        if found is None:
            repo.open_item(row, category, item.amount, cur, note)
            uow.returns.add_timeline(row, "reconciliation", note, evidence)
            changed = True
        elif found.status == "done":
            continue  # finance booked it; a person re-opens if the figure changed
        elif found.amount != item.amount or found.status != "open":
            repo.reopen(found, item.amount, note)
            uow.returns.add_timeline(row, "reconciliation", note, evidence)
            changed = True
    for category, found in current.items():
        if category not in wanted and found.status == "open":
            repo.withdraw(found, f"{row.source} no longer reports it")
            uow.returns.add_timeline(row, "reconciliation",
                                      f"{category} reconciliation item withdrawn: "
                                      f"{row.source} no longer reports it", evidence)
            changed = True
    if changed:  # else what is pending (the return's own changes) is written together later
        repo.flush()
