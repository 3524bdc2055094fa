"""A large month on SQLite is read in slices by return reference, on threads of their own
(``reconciliation_read._sliced``): the pack it writes is the one the whole read writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from returnbridge.flows.reconcile import pack
from returnbridge.flows.reconcile.engine import Scope
from returnbridge.sandbox.month import generate, load_legs
from returnbridge.store import reconciliation_read
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.migrate import upgrade
from returnbridge.store.unit_of_work import UnitOfWork

PERIOD = "2026-10"


def _build(url: str, out: Path) -> pack.PackResult:
    engine = make_engine(url)
    try:
        with UnitOfWork(session_factory(engine)) as uow:
            return pack.build(uow, Scope(PERIOD), out)
    finally:
        engine.dispose()


def test_sliced_month_writes_the_same_pack(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'month.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        load_legs(conn, generate(PERIOD, 900, seed=11))
    engine.dispose()

    whole = _build(url, tmp_path / "whole")

    monkeypatch.setattr(reconciliation_read, "SLICE_FROM_RETURNS", 100)
    monkeypatch.setattr(reconciliation_read.os, "cpu_count", lambda: 2)
    seen: list[int] = []
    slices = reconciliation_read._slices

    def spy(conn: object, scope: Scope) -> list[tuple[str | None, str | None]]:
        found = slices(conn, scope)  # type: ignore[arg-type]
        seen.append(len(found))
        return found

    monkeypatch.setattr(reconciliation_read, "_slices", spy)
    sliced = _build(url, tmp_path / "sliced")

    assert seen and seen[0] >= 3, "the month was read in slices"
    assert sliced.summary == whole.summary
    assert sliced.differences == whole.differences
    assert whole.summary["returns"] == 900
    for name in ("matched-returns", "differences", "exchanges", "tax-drift",
                 "store-credit-liability"):
        csv_name = f"reconciliation-{PERIOD}-{name}.csv"
        assert (tmp_path / "sliced" / csv_name).read_bytes() == (
            tmp_path / "whole" / csv_name).read_bytes(), name
