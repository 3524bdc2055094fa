"""Money news through the real ingest path (SQLite and PostgreSQL): store credit after
handover, a gap a person settled stays settled, store credit marked on the Khaos document."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import ExceptionRow
from tests.scenarios.test_after_handover import _ingest
from tests.scenarios.test_posting_scenarios import MAPPING, loop_return, unit


def _money(rt: Runtime) -> list[ExceptionRow]:
    with rt.sessions() as s:
        rows = list(s.scalars(select(ExceptionRow).where(
            ExceptionRow.type.in_(("amount_mismatch", "tax_drift"))).order_by(ExceptionRow.id)))
        s.expunge_all()
        return rows


def test_store_credit_after_handover_is_checked_and_a_settled_gap_stays_settled(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(mapping=MAPPING)
    _ingest(rt, loop_return(801, [unit("TEE-BLK-M", 1)], refund="0.00"))
    assert serve_page(rt).refs == ("LR-801",)
    closed = loop_return(801, [unit("TEE-BLK-M", 1)], state="closed", refund="0.00",
                         gift_card="30.00", trigger="return.closed",
                         updated_at="2026-11-22 09:30:00")
    _ingest(rt, closed)
    (gap,) = _money(rt)
    assert (gap.type, gap.status, gap.details["category"], gap.details["gap"]) == (
        "amount_mismatch", "open", "store_credit", "5.00")
    assert gap.dedupe_key == "LR-801:money:settlement:store_credit"
    assert "[store_credit]" in gap.next_action and "already in Khaos" in gap.next_action
    with rt.sessions() as s, s.begin():
        row = ExceptionsRepository(s).get(gap.id, for_update=True)
        assert row is not None
        ExceptionsRepository(s).close(row, "resolved", by="jo@finance", how="gift card corrected")
    # later news about the same return does not re-open what finance settled ...
    _ingest(rt, {**closed, "updated_at": "2026-11-22 10:00:00"})
    (gap,) = _money(rt)
    assert gap.status == "resolved" and gap.resolved_by == "jo@finance"
    # ... unless the figures change
    _ingest(rt, {**closed, "gift_card": "31.00", "updated_at": "2026-11-22 11:00:00"})
    (gap,) = _money(rt)
    assert (gap.status, gap.details["gap"]) == ("open", "6.00")


def test_store_credit_is_marked_in_the_notes_of_the_khaos_document(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory(mapping=MAPPING)
    _ingest(rt, loop_return(802, [unit("TEE-BLK-M", 1)], state="closed", refund="0.00",
                            gift_card="25.00", trigger="return.closed"))
    _ingest(rt, loop_return(803, [unit("TEE-BLK-M", 1)], state="closed",
                            trigger="return.closed"))
    page = serve_page(rt)
    notes = {r["AssociatedRef"]: r["Notes"] for r in json.loads(page.document)["Returns"]}
    assert "STORE CREDIT 25.00 GBP" in notes["LR-802"]
    assert "do not refund" in notes["LR-802"]
    assert "STORE CREDIT" not in notes["LR-803"]
    assert _money(rt) == []


def test_returns_show_lists_the_reconciliation_items(
        runtime_factory: Callable[..., Runtime], db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console
    from typer.testing import CliRunner

    from returnbridge.cli import app as cli_app
    from returnbridge.cli import returns as cli_returns

    monkeypatch.setattr(cli_returns, "out", Console(width=250))
    rt = runtime_factory(mapping=MAPPING)
    _ingest(rt, loop_return(804, [unit("TEE-BLK-M", 1)], state="closed",
                            refund="28.95", refund_shipping_total="3.95",
                            handling_fee="0.00", trigger="return.closed"))
    config = tmp_path / "returnbridge.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["returns", "show", "LR-804", "--config",
                                          str(config)], env={"COLUMNS": "250", "RB_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert "reconciliation [open] shipping 3.95 GBP" in result.output
    assert "not on the Khaos credit note" in result.output
    assert _money(rt) == []
