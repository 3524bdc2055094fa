"""The customer mirror (ARCHITECTURE 6.5): email -> Khaos URN, loaded from Khaos.

Two ways in: a customer export file from Khaos (CSV with Email and URN columns), or the
desktop SOAP ``ExportCompany`` looked up for the customers of returns held as
``unknown_customer``. Either way, held returns are re-evaluated afterwards, so a customer
that now resolves releases its returns without a manual retry.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from returnbridge.flows.decide.reevaluate import ReevaluationResult, reevaluate_open
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.catalogue import CustomerRecord


@dataclass(frozen=True)
class CustomerLoad:
    rows: int
    inserted: int
    updated: int
    skipped: tuple[str, ...]
    reevaluated: ReevaluationResult | None


_EMAIL = ("email", "e-mail", "email address", "emailaddress")
_URN = ("urn", "company code", "companycode", "company_code", "customer urn")
_NAME = ("name", "company name", "companyname", "company_name")
_POSTCODE = ("postcode", "post code", "postal code", "zip", "invoice postcode")


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    wanted = [h.strip().casefold() for h in header]
    for name in names:
        if name in wanted:
            return wanted.index(name)
    return None


def load_customers_csv(rt: Runtime, path: Path, *, actor: str) -> CustomerLoad:
    """Load a Khaos customer export (columns Email and URN; Name and Postcode optional)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    email_at, urn_at, name_at = (_column(header, _EMAIL), _column(header, _URN),
                                 _column(header, _NAME))
    if email_at is None or urn_at is None:
        raise ValueError(f"{path} needs an Email and a URN column; it has {header}")
    postcode_at = _column(header, _POSTCODE)
    records: list[CustomerRecord] = []
    skipped: list[str] = []
    for number, row in enumerate(body, start=2):
        email = row[email_at].strip() if email_at < len(row) else ""
        urn = row[urn_at].strip() if urn_at < len(row) else ""
        if not email or not urn or "@" not in email:
            skipped.append(f"line {number}: needs an email address and a URN")
            continue
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        postcode = (row[postcode_at].strip()
                    if postcode_at is not None and postcode_at < len(row) else "")
        records.append(CustomerRecord(email=email, urn=urn, name=name, postcode=postcode))
    with rt.unit_of_work() as uow:
        change = uow.catalogue.upsert_customers(records, origin="khaos")
    again = _released(rt, actor) if change.changed else None
    return CustomerLoad(len(body), change.inserted, change.updated, tuple(skipped), again)


def _released(rt: Runtime, actor: str) -> ReevaluationResult:
    return reevaluate_open(rt, by=actor, why="customer mirror update", held_only=True)


class _Company(Protocol):
    @property
    def urn(self) -> str: ...
    @property
    def name(self) -> str: ...


class _OrderStatus(Protocol):
    @property
    def order_type(self) -> int: ...
    @property
    def company_code(self) -> str: ...


class CompanyLookup(Protocol):
    def export_company_by_email(self, email: str) -> Sequence[_Company]: ...

    def export_order_status_by_ref(self, associated_refs: str | Iterable[str]
                                   ) -> Sequence[_OrderStatus]: ...


def _order_customer(soap: CompanyLookup, order_ref: str, ref_format: str) -> str:
    """The URN on the original sales order in Khaos (ExportOrderStatusEx by AssociatedRef)."""
    if not order_ref or not ref_format:
        return ""
    ref = ref_format.format(order_ref=order_ref)[:50]
    urns = {o.company_code for o in soap.export_order_status_by_ref(ref)
            if o.order_type == 1 and o.company_code}
    return urns.pop() if len(urns) == 1 else ""


def lookup_unknown_customers(rt: Runtime, soap: CompanyLookup, *,
                             actor: str = "returnbridge") -> CustomerLoad:
    """Ask desktop Khaos for the customers of returns held as unknown: first the customer
    of the original sales order (ExportOrderStatusEx by the order's AssociatedRef, built
    with ``[khaos].source_order_ref_format``), then a customer with that email address
    (ExportCompany)."""
    with rt.unit_of_work() as uow:
        held = uow.returns.customers_held_unknown()
    orders = {email: order for email, order in held if email}
    emails = sorted(orders)
    records: list[CustomerRecord] = []
    skipped: list[str] = []
    ref_format = rt.settings.khaos.source_order_ref_format
    for email in emails:
        urn = _order_customer(soap, orders[email], ref_format)
        if urn:
            records.append(CustomerRecord(email=email, urn=urn, name=""))
            continue
        found = soap.export_company_by_email(email)
        urns = sorted({c.urn for c in found} - {""})
        if len(urns) == 1:
            name = found[0].name
            records.append(CustomerRecord(email=email, urn=urns[0], name=name))
        else:
            skipped.append(f"{email}: {'no' if not urns else len(urns)} Khaos customer(s)")
    with rt.unit_of_work() as uow:
        change = uow.catalogue.upsert_customers(records, origin="soap")
    again = _released(rt, actor) if change.changed else None
    return CustomerLoad(len(emails), change.inserted, change.updated, tuple(skipped), again)
