"""How the reconciliation engine reads a month (issue #13: a million returns in 20 s).

The statement (``reconciliation_repo.statement``) is read from the driver's cursor in
batches of plain tuples. PostgreSQL: with settings for a whole-month read, one batch ahead
on a thread. SQLite, a large month in a file database: in slices by AssociatedRef, each on
a read-only connection and thread of its own, pipelined two at a time.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from returnbridge.adapters.prefetch import Prefetch
from returnbridge.store.db import READ_ONLY
from returnbridge.store.models import ReconLegsVersion, ReconPlatformLeg, table_of

P = table_of(ReconPlatformLeg)
# The engine's statement for the month's references in [refs_from, refs_to) (None, None:
# all of them)
Build = Callable[[str | None, str | None], sa.Select[Any]]
Read = tuple[list[str], Iterator[list[Sequence[Any]]]]  # column names, batches of rows


@contextmanager
def read_month(conn: Connection, bounds: tuple[datetime, datetime], build: Build,
               size: int = 5000, *, may_slice: bool = True) -> Iterator[Read]:
    """The rows of ``build(None, None)`` (the engine's statement for the month ``bounds``)
    as (column names, batches of plain tuples). The driver's cursor is read directly: a
    month is a million rows, and a result row object per row costs more than the matching.
    Values are what the driver returns (booleans are 0/1 on SQLite)."""
    slices = _slices(conn, bounds) if may_slice else []
    if slices:
        with _sliced(conn, build, slices, size) as read:
            yield read
        return
    tuned = _tune_for_a_month(conn)
    result = conn.execute(build(None, None).execution_options(stream_results=True,
                                                             yield_per=size))
    # SQLAlchemy's streamed result has read the first row ahead (into its own buffer):
    # take it from there, then read the driver's cursor for the rest.
    cursor = result.cursor
    first = result.fetchone()
    head: list[Sequence[Any]] = [tuple(first)] if first is not None else []
    # PostgreSQL: read one batch ahead on a thread (waiting on the socket lets go of the
    # GIL, so the server works out the next batch while this one is written). SQLite
    # works out the whole sorted month in the first step; a thread would only contend
    # for the GIL on every row after that.
    reader = (Prefetch(_plain_batches(cursor, size), ahead=4, name="recon-prefetch")
              if first is not None and conn.dialect.name == "postgresql" else None)
    try:
        rest = (iter(reader) if reader else _plain_batches(cursor, size)
                if first is not None else iter(()))
        yield list(result.keys()), itertools.chain([head] if head else [], rest)
    finally:
        if reader is not None:
            reader.stop()
        result.close()
        _untune(conn, tuned)



def _tune_for_a_month(conn: Connection) -> list[str]:
    """Settings for one read of a whole month; returns the statements that undo them."""
    if conn.dialect.name == "postgresql":
        # SET LOCAL ends with the transaction. A server-side cursor is planned for its
        # first rows (cursor_tuple_fraction 0.1: nested loops) and the pack reads every
        # row; the union of a month's references is hashed and sorted in memory, not on
        # disk; JIT compiling costs more than it saves on this plan.
        for setting in ("cursor_tuple_fraction = 1.0", "work_mem = '256MB'", "jit = off"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
        return []
    if conn.dialect.name == "sqlite":
        # a page cache the size of a month's legs (256 MB at most, given back after)
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        conn.exec_driver_sql("PRAGMA cache_size = -262144")
        return [f"PRAGMA cache_size = {int(before)}"]
    return []


def _plain_batches(cursor: Any, size: int) -> Iterator[list[Sequence[Any]]]:
    while batch := cursor.fetchmany(size):
        yield batch


# A month this large on SQLite is read in slices by AssociatedRef, one connection and one
# thread each: SQLite works out each slice's sorted rows in C without the GIL, so the
# slices share the cores; the pack then reads them in order.
SLICE_FROM_RETURNS = 100_000


def _slices(conn: Connection,
            bounds: tuple[datetime, datetime]) -> list[tuple[str | None, str | None]]:
    """The month's slices by AssociatedRef (none: read it whole)."""
    cores = min(4, os.cpu_count() or 1)
    pieces = 4 * cores  # pipelined two at a time (``_sliced``)
    database = conn.engine.url.database or ""
    if (conn.dialect.name != "sqlite" or cores < 2 or database in ("", ":memory:")
            or database.startswith("file:")):
        return []
    start, end = bounds
    in_month = sa.and_(P.c.outcome_at >= start, P.c.outcome_at < end)
    n = conn.execute(sa.select(sa.func.count()).where(in_month)).scalar_one()
    if n < SLICE_FROM_RETURNS:
        return []
    # boundaries from a sample of the month's references (they balance the slices; every
    # reference falls in one slice whatever they are)
    sample = sorted(conn.execute(sa.select(P.c.associated_ref).where(
        in_month, sa.func.abs(sa.func.random() % 64) == 0)).scalars())
    cuts = sorted({sample[len(sample) * i // pieces] for i in range(1, pieces)} - {""})
    if not cuts:
        return []
    edges: list[str | None] = [None, *cuts, None]
    return list(itertools.pairwise(edges))


class _Slice:
    """One slice of the month, opened on a thread of its own: a read-only connection (a
    snapshot, no write lock), the statement executed (SQLite sorts the slice in its first
    step, without the GIL) and its first row read."""

    def __init__(self, engine: sa.Engine, refs: tuple[str | None, str | None], build: Build,
                 size: int) -> None:
        self._engine, self._refs, self._build, self._size = engine, refs, build, size
        self._conn: Connection | None = None
        self._result: Any = None
        self.keys: list[str] = []
        self.version: int | None = None
        self._first: Sequence[Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="recon-slice", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            conn = self._conn = self._engine.connect().execution_options(**{READ_ONLY: True})
            conn.exec_driver_sql("PRAGMA cache_size = -65536")
            self.version = conn.scalar(sa.select(ReconLegsVersion.n).where(
                ReconLegsVersion.id == 1))
            self._result = conn.execute(self._build(*self._refs).execution_options(
                stream_results=True, yield_per=self._size))
            self.keys = list(self._result.keys())
            first = self._result.fetchone()
            self._first = None if first is None else tuple(first)
        except BaseException as exc:  # raised in the reading thread
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def batches(self) -> Iterator[list[Sequence[Any]]]:
        self.wait()
        if self._first is None:
            return
        cursor = self._result.cursor  # read ahead by one row (``fetchone`` above)
        yield [self._first]
        yield from _plain_batches(cursor, self._size)

    def close(self) -> None:
        self._thread.join()
        if self._result is not None:
            self._result.close()
            self._result = None
        if self._conn is not None:
            self._conn.exec_driver_sql("PRAGMA cache_size = -2000")
            self._conn.close()
            self._conn = None


class LegsChangedWhileReading(RuntimeError):
    """A slice of the month saw other legs than the first (cannot happen while the unit of
    work holds SQLite's write lock; a guard)."""


@contextmanager
def _sliced(conn: Connection, build: Build,
            slices: list[tuple[str | None, str | None]], size: int) -> Iterator[Read]:
    """The month read in ``slices``, pipelined: two slices are worked out at once, and
    while the pack writes one slice's rows the database works out the one after next.
    ``conn``'s transaction holds SQLite's write lock, so no leg changes meanwhile."""
    version = conn.scalar(sa.select(ReconLegsVersion.n).where(ReconLegsVersion.id == 1))
    parts: list[_Slice] = []

    def start(i: int) -> None:
        if i < len(slices):
            parts.append(_Slice(conn.engine, slices[i], build, size))

    start(0)
    start(1)
    try:
        parts[0].wait()

        def read() -> Iterator[list[Sequence[Any]]]:
            for i in range(len(slices)):
                part = parts[i]
                part.wait()
                if part.version != version:
                    raise LegsChangedWhileReading(f"slice {i + 1} of {len(slices)}")
                start(i + 2)
                yield from part.batches()
                part.close()

        yield parts[0].keys, read()
    finally:
        for part in parts:
            part.close()


def _untune(conn: Connection, undo: list[str]) -> None:
    for stmt in undo:
        conn.exec_driver_sql(stmt)
