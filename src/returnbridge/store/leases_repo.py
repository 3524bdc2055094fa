"""Leases across processes: a PostgreSQL session advisory lock held for a whole job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def advisory_lease(engine: Engine, key: int) -> Iterator[bool]:
    """Yields True when this process holds the lease ``key`` (until the block ends), False
    when another process holds it. Not PostgreSQL: always True (nothing to share)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        mine = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        conn.commit()
        try:
            yield mine
        finally:
            if mine:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
