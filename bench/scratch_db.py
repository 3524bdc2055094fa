"""A throwaway database for a bench run: a temporary SQLite file, or a fresh PostgreSQL
database created from a server URL and dropped afterwards."""

from __future__ import annotations

import tempfile
import uuid

from sqlalchemy import create_engine, make_url, text


def database(pg: str | None) -> tuple[str, str | None]:
    """(URL, PostgreSQL database name to drop or None)."""
    if pg is None:
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    name = f"rbbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(pg).set(database=name).render_as_string(hide_password=False), name


def drop(pg: str, name: str) -> None:
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
