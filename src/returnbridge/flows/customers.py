"""The customer mirror (ARCHITECTURE 6.5): email -> Khaos URN, loaded from Khaos.

Two ways in: a customer export file from Khaos (CSV with Email and URN columns), or the
desktop SOAP ``ExportCompany`` looked up for the customers of returns held as
``unknown_customer``. Either way, held returns are re-evaluated afterwards, so a customer
that now resolves releases its returns without a manual retry.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from returnbridge.flows.reevaluate import ReevaluationResult, reevaluate_open
from returnbridge.flows.runtime import Runtime
from returnbridge.store.catalogue import CustomerRecord, upsert_customers
from returnbridge.store.models import ExceptionRow, ReturnRow


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


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    wanted = [h.strip().casefold() for h in header]
    for name in names:
        if name in wanted:
            return wanted.index(name)
    return None


def load_customers_csv(rt: Runtime, path: Path, *, actor: str) -> CustomerLoad:
    """Load a Khaos customer export (columns Email and URN; Name optional)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path} is empty")
    header, body = rows[0], rows[1:]
    email_at, urn_at, name_at = (_column(header, _EMAIL), _column(header, _URN),
                                 _column(header, _NAME))
    if email_at is None or urn_at is None:
        raise ValueError(f"{path} needs an Email and a URN column; it has {header}")
    records: list[CustomerRecord] = []
    skipped: list[str] = []
    for number, row in enumerate(body, start=2):
        email = row[email_at].strip() if email_at < len(row) else ""
        urn = row[urn_at].strip() if urn_at < len(row) else ""
        if not email or not urn or "@" not in email:
            skipped.append(f"line {number}: needs an email address and a URN")
            continue
        name = row[name_at].strip() if name_at is not None and name_at < len(row) else ""
        records.append(CustomerRecord(email=email, urn=urn, name=name))
    with rt.sessions() as session, session.begin():
        change = upsert_customers(session, records, origin="khaos")
    again = reevaluate_open(rt, by=actor, why="customer mirror update") if change.changed \
        else None
    return CustomerLoad(len(body), change.inserted, change.updated, tuple(skipped), again)


class _Company(Protocol):
    @property
    def urn(self) -> str: ...
    @property
    def name(self) -> str: ...


class CompanyLookup(Protocol):
    def export_company_by_email(self, email: str) -> Sequence[_Company]: ...


def lookup_unknown_customers(rt: Runtime, soap: CompanyLookup, *,
                             actor: str = "returnbridge") -> CustomerLoad:
    """Ask desktop Khaos (ExportCompany) for the customers of returns held as unknown."""
    with rt.sessions() as session:
        emails = sorted({e for e in session.scalars(
            select(ReturnRow.customer_email).join(
                ExceptionRow, ExceptionRow.return_id == ReturnRow.id)
            .where(ExceptionRow.type == "unknown_customer", ExceptionRow.status == "open"))
            if e})
    records: list[CustomerRecord] = []
    skipped: list[str] = []
    for email in emails:
        found = soap.export_company_by_email(email)
        urns = sorted({c.urn for c in found} - {""})
        if len(urns) == 1:
            name = found[0].name
            records.append(CustomerRecord(email=email, urn=urns[0], name=name))
        else:
            skipped.append(f"{email}: {'no' if not urns else len(urns)} Khaos customer(s)")
    with rt.sessions() as session, session.begin():
        change = upsert_customers(session, records, origin="soap")
    again = reevaluate_open(rt, by=actor, why="customer mirror update") if change.changed \
        else None
    return CustomerLoad(len(emails), change.inserted, change.updated, tuple(skipped), again)
