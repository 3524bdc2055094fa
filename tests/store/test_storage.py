from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import StatementError

from returnbridge.store import audit
from returnbridge.store.audit import AuditLog
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.events import store_event
from returnbridge.store.migrate import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)
from returnbridge.store.models import AuditEntry, InboundEvent, ReturnLineRow, ReturnRow

TABLES = {"inbound_events", "returns", "return_lines", "exchange_lines", "exceptions",
          "khaos_deliveries", "khaos_delivery_items", "audit_log", "watermarks", "timeline"}


def test_migrations_create_every_table_and_are_repeatable(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    with pytest.raises(SchemaNotCurrent, match="returnbridge migrate"):
        require_current(engine)
    before, after = upgrade(engine)
    assert (before, after) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())
    require_current(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = {r[0] for r in conn.execute(text(
                "select name from sqlite_master where type='table'"))}
            assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        else:
            names = {r[0] for r in conn.execute(text(
                "select tablename from pg_tables where schemaname='public'"))}
    assert names >= TABLES
    engine.dispose()


def test_schema_behind_head_is_refused_with_instructions(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("update alembic_version set version_num='0000'"))
    with pytest.raises(SchemaNotCurrent, match="0000 but this version needs"):
        require_current(engine)
    assert current_revision(engine) == "0000"
    engine.dispose()


def test_raw_bytes_are_kept_and_duplicates_counted(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    body = b'{"topic":"return","id":"1","url":"https:\\/\\/x"}\n'
    first = store_event(factory, source="loop", body=body, headers={"x": "1"})
    second = store_event(factory, source="loop", body=body, headers={"x": "1"})
    other_source = store_event(factory, source="zigzag", body=body, headers={})
    assert not first.duplicate and second.duplicate and second.event_id == first.event_id
    assert not other_source.duplicate
    with factory() as s:
        row = s.get(InboundEvent, first.event_id)
        assert row is not None and row.body == body and row.duplicates == 1
        assert row.received_at.tzinfo is not None
    engine.dispose()


def test_money_is_stored_exactly(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    with factory() as s, s.begin():
        ret = ReturnRow(associated_ref="LR-1", source="loop", source_return_id="1",
                        state="requested", case_json={})
        ret.lines = [ReturnLineRow(position=0, sku="A", quantity=3,
                                   unit_net=Decimal("0.1"), unit_tax=Decimal("0.2"),
                                   unit_gross=Decimal("0.3"), discount=Decimal("119.88"))]
        s.add(ret)
    with factory() as s:
        line = s.scalars(select(ReturnLineRow)).one()
        assert line.unit_net + line.unit_tax == line.unit_gross  # no float drift
        assert line.discount == Decimal("119.88")
    with pytest.raises(StatementError, match="money must be Decimal"), factory() as s, \
            s.begin():
        s.add(ReturnRow(associated_ref="LR-2", source="loop", source_return_id="2",
                        state="requested", case_json={}, credit_note_value=1.5))
    engine.dispose()


def test_audit_log_is_a_hash_chain_that_shows_edits(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = session_factory(engine)
    for i in range(3):
        with factory() as s, s.begin():
            AuditLog(s).record(actor="ops@shop", action="exception.resolve", subject=f"EX-{i}",
                         details={"why": "fixed in Khaos"})
    with factory() as s:
        assert audit.verify_chain(s) == []
    with factory() as s, s.begin():
        s.execute(update(AuditEntry).where(AuditEntry.subject == "EX-1")
                  .values(actor="someone-else"))
    with factory() as s:
        assert len(audit.verify_chain(s)) == 1
    engine.dispose()
