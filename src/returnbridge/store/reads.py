"""Reads that flush only what they read.

SQLAlchemy's autoflush writes every pending change before any query. In the event worker a
return's new row, its lines, its timeline and its decision are built up over several reads
of other tables (the catalogue, the customer mirror, its reconciliation items, its
exceptions), and each read used to flush what was pending so far: four flushes of a few
rows each per return instead of one. A read through :func:`reading` flushes only when the
session holds unsaved changes to the tables it reads, so it still sees them, and leaves the
rest to be written together.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from itertools import chain
from typing import Any

from sqlalchemy.orm import Session


def reading(session: Session, *models: type[Any]) -> AbstractContextManager[None]:
    """``with reading(session, Model):`` around a query of ``Model``'s table alone."""
    if any(isinstance(obj, models)
           for obj in chain(session.new, session.dirty, session.deleted)):
        session.flush()
    return session.no_autoflush  # type: ignore[return-value]
