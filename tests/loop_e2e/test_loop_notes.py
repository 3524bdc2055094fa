"""Write-back to Loop: a held Loop return gets one note in the Loop sandbox (read back over
its API), never repeated for the same cause, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.client import LoopClient
from returnbridge.sources.loop.notes import held_note, write_back
from returnbridge.sources.loop.notes_table import LoopNote
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import ReturnRow, utcnow
from tests.exceptions._seed import add_problem, add_return

LOOP_KEY = "sandbox-loop-key"


@pytest.fixture
def loop() -> Iterator[LoopSandboxServer]:
    with LoopSandboxServer(LoopWorld(), api_key=LOOP_KEY) as server:
        yield server


def _rt(factory: Callable[..., Runtime], loop: LoopSandboxServer, **extra: Any) -> Runtime:
    return factory(loop={"api_key": LOOP_KEY, "base_url": loop.base_url, **extra})


def _held_return(rt: Runtime, loop: LoopSandboxServer, type_: str = "unknown_customer",
                 key: str = "") -> tuple[int, str]:
    rid = loop.world.create(notify=False)
    ref = f"LR-{rid}"
    with rt.sessions() as session, session.begin():
        ret = add_return(session, ref, [("TEE-BLK-M", "too small", "", "restock")])
        ret.source_return_id = str(rid)
        add_problem(session, type_, key or ref, ret=ret, email="someone@example.com")
    return rid, ref


def _notes(loop: LoopSandboxServer, rid: int) -> list[str]:
    with LoopClient(_settings(loop)) as client:
        return client.notes(rid)


def _settings(loop: LoopSandboxServer) -> Any:
    from returnbridge.sources.loop.settings import LoopSettings

    return LoopSettings(api_key=LOOP_KEY, base_url=loop.base_url)


def _set_status(rt: Runtime, ref: str, status: str) -> None:
    with rt.sessions() as session, session.begin():
        row = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == ref)).one()
        row.khaos_status = status


def test_a_held_loop_return_gets_one_note_never_repeated_for_the_same_cause(
        runtime_factory: Callable[..., Runtime], loop: LoopSandboxServer) -> None:
    rt = _rt(runtime_factory, loop)
    rid, ref = _held_return(rt, loop)
    assert _notes(loop, rid) == []  # Loop answers 422 when there are none

    first = write_back(rt)
    assert first.notes_sent == 1
    [note] = _notes(loop, rid)
    assert ref in note and "customer was not found in Khaos" in note
    assert "customer service is fixing it" in note and len(note) < 255

    write_back(rt)  # again: nothing new
    # Released (the customer was found), then held again for the same cause.
    with rt.sessions() as session, session.begin():
        ExceptionsRepository(session).resolve_by_key("unknown_customer", ref, by="t", how="found")
    _set_status(rt, ref, "ready")
    write_back(rt)
    _set_status(rt, ref, "held")
    with rt.sessions() as session, session.begin():
        ret = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == ref)).one()
        add_problem(session, "unknown_customer", ref, ret=ret)  # re-opens the same exception
    write_back(rt)
    assert _notes(loop, rid) == [note]

    # A different cause is news: one more note, about it alone.
    with rt.sessions() as session, session.begin():
        ret = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == ref)).one()
        add_problem(session, "sku_mismatch", f"{ref}:TEE", ret=ret, sku="TEE-BLK-M")
    write_back(rt)
    notes = _notes(loop, rid)
    assert len(notes) == 2 and "TEE-BLK-M" in notes[1] and "customer" not in notes[1]
    assert "the returnbridge admin is fixing it" in notes[1]


def test_write_back_can_be_switched_off_and_flags_and_credit_notes_are_optional(
        runtime_factory: Callable[..., Runtime], loop: LoopSandboxServer) -> None:
    off = _rt(runtime_factory, loop, write_back_notes=False)
    rid, _ = _held_return(off, loop)
    assert write_back(off).notes_sent == 0 and _notes(loop, rid) == []

    rt = _rt(runtime_factory, loop, write_back_flag=True, write_back_credit_note=True)
    result = write_back(rt)
    assert (result.notes_sent, result.flags_sent) == (1, 1)
    assert loop.world.get(rid).state == "review"  # flagged in Loop
    rid2, ref2 = _held_return(rt, loop, key="other")
    with rt.sessions() as session, session.begin():
        row = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == ref2)).one()
        for exc in ExceptionsRepository(session).open_for_return(row.id):
            ExceptionsRepository(session).close(exc, "resolved", by="t", how="fixed")
        row.khaos_status = "credit_confirmed"
        row.credit_note_code = "CN-000123"
        row.credit_confirmed_at = utcnow() - timedelta(hours=1)
    write_back(rt)
    write_back(rt)
    assert [n for n in _notes(loop, rid2) if "CN-000123" in n] == [
        f"returnbridge: Khaos credit note CN-000123 raised for {ref2}."]


def test_a_note_interrupted_after_posting_is_not_posted_again(
        runtime_factory: Callable[..., Runtime], loop: LoopSandboxServer) -> None:
    rt = _rt(runtime_factory, loop)
    rid, _ref = _held_return(rt, loop)
    write_back(rt)
    # Simulate a crash between the POST and recording it: the row says 'sending'.
    with rt.sessions() as session, session.begin():
        row = session.scalars(select(LoopNote)).one()
        row.status = "sending"
    write_back(rt)
    assert len(_notes(loop, rid)) == 1
    with rt.sessions() as session:
        assert session.scalars(select(LoopNote)).one().status == "sent"


def test_notes_stay_under_255_characters() -> None:
    causes = [("sku_mismatch", "ops", "X" * 40)] * 8
    assert len(held_note("LR-123456", causes)) <= 254
