"""Suggestions for open exceptions, from the database (domain/suggest.py does the ranking).

- ``mapping_suggestions``: for each open ``unmapped_return_reason``, the Khaos reason that
  lines with a similar reason and the same disposition went to, learned from returns already
  handed to Khaos (lines mapped after a person resolved such an exception count double).
- ``sku_suggestions``: catalogue items for a ``sku_mismatch`` (barcode, shop variant
  history, code and title similarity).
- ``customer_suggestions``: Khaos customers for an ``unknown_customer`` (e-mail variants,
  name and postcode against the customer mirror).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from returnbridge.domain.khaos_status import DELIVERED
from returnbridge.domain.suggest import (
    Candidate,
    CatalogueEntry,
    CustomerQuery,
    MirrorCustomer,
    ReasonEvidence,
    ReasonSuggestion,
    SkuQuery,
    suggest_customers,
    suggest_reason,
    suggest_skus,
)
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.codec import case_from_json
from returnbridge.store.models import ExceptionRow, ReturnRow
from returnbridge.store.unit_of_work import UnitOfWork

HISTORY_RETURNS = 2000  # most recent delivered returns read for shop variant history


@dataclass(frozen=True)
class MappingGap:
    source: str
    reason: str
    condition: str
    disposition: str
    exceptions: int  # open exceptions with this gap
    suggestion: ReasonSuggestion | None


def reason_evidence(uow: UnitOfWork) -> list[ReasonEvidence]:
    resolved_returns = uow.suggestions.returns_with_resolved_unmapped_reason()
    rows = uow.suggestions.mapped_lines([s.value for s in DELIVERED])
    return [ReasonEvidence(reason, disposition, reason_id, processing,
                           after_exception=return_id in resolved_returns)
            for return_id, reason, disposition, reason_id, processing in rows]


def mapping_suggestions(rt: Runtime) -> list[MappingGap]:
    with rt.unit_of_work() as uow:
        evidence = reason_evidence(uow)
        gaps: Counter[tuple[str, str, str, str]] = Counter()
        for row, source in uow.suggestions.open_unmapped_reasons():
            d = row.details or {}
            gaps[(source or "*", str(d.get("reason", "")), str(d.get("condition", "")),
                  str(d.get("disposition", "unknown")))] += 1
    out = []
    for (source, reason, condition, disposition), n in sorted(gaps.items()):
        out.append(MappingGap(source, reason, condition, disposition, n,
                              suggest_reason(reason, disposition, evidence)))
    return out


def _exception(uow: UnitOfWork, exception_id: int, type_: str) -> tuple[ExceptionRow,
                                                                       ReturnRow | None]:
    row = uow.exceptions.get(exception_id)
    if row is None or row.type != type_:
        raise LookupError(f"exception {exception_id} is not an open {type_}")
    ret = uow.returns.get(row.return_id) if row.return_id is not None else None
    return row, ret


def sku_suggestions(rt: Runtime, exception_id: int) -> tuple[str, list[Candidate]]:
    """(the SKU, candidates) for a ``sku_mismatch`` exception."""
    with rt.unit_of_work() as uow:
        row, ret = _exception(uow, exception_id, "sku_mismatch")
        sku = str((row.details or {}).get("sku", ""))
        query = SkuQuery(sku)
        if ret is not None and ret.case_json:
            for line in case_from_json(ret.case_json).lines:
                if line.sku == sku:
                    query = SkuQuery(sku, line.barcode, line.variant_id, line.title)
                    break
        catalogue = [CatalogueEntry(i.stock_id, i.stock_code, i.other_ref, i.description,
                                    tuple(i.barcodes or ()))
                     for i in uow.suggestions.live_catalogue()]
        history = _variant_history(uow, {i.stock_code for i in catalogue})
    return sku, suggest_skus(query, catalogue, history)


def _variant_history(uow: UnitOfWork, codes: set[str]) -> dict[str, Counter[str]]:
    """Shop variant id -> Khaos stock codes it went to, from recent delivered returns."""
    history: dict[str, Counter[str]] = {}
    for case_json in uow.suggestions.recent_cases([s.value for s in DELIVERED],
                                                  HISTORY_RETURNS):
        for line in case_from_json(case_json).lines:
            if line.variant_id and line.sku in codes:
                history.setdefault(line.variant_id, Counter())[line.sku] += 1
    return history


def customer_suggestions(rt: Runtime, exception_id: int) -> tuple[dict[str, Any],
                                                                  list[Candidate]]:
    """(who the return names, candidate URNs) for an ``unknown_customer`` exception."""
    with rt.unit_of_work() as uow:
        row, ret = _exception(uow, exception_id, "unknown_customer")
        email = str((row.details or {}).get("email", "")) or (ret.customer_email if ret else "")
        query = CustomerQuery(email)
        if ret is not None and ret.case_json:
            customer = case_from_json(ret.case_json).customer
            query = CustomerQuery(email or customer.email, customer.first_name,
                                  customer.last_name,
                                  customer.address.postcode if customer.address else "")
        mirror = [MirrorCustomer(c.email, c.urn, c.name, c.postcode)
                  for c in uow.suggestions.mirror_customers()]
    who = {"email": query.email, "name": f"{query.first_name} {query.last_name}".strip(),
           "postcode": query.postcode}
    return who, suggest_customers(query, mirror)
