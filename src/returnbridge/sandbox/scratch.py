"""A throwaway PostgreSQL database for a harness run (the chaos campaign, the benches)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(admin_url: str, *, prefix: str = "rb_scratch",
                     keep: bool = False) -> Iterator[str]:
    """A fresh database created on the server ``admin_url`` points at; yields its
    SQLAlchemy URL and drops it afterwards (unless ``keep``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_url(admin_url).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        if not keep:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
