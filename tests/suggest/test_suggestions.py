"""Suggestions that say why: the bench figures on the labelled sets, and the commands over a
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from returnbridge.cli import app
from returnbridge.config import ReasonMappingEntry
from returnbridge.domain.model import (
    Address,
    Customer,
    Disposition,
    ReturnCase,
    ReturnLine,
    ReturnState,
)
from returnbridge.domain.suggest import ReasonEvidence, suggest_reason
from returnbridge.flows.decide.customers import load_customers_csv
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.codec import case_to_json
from returnbridge.store.models import StockItem
from tests.exceptions._seed import add_problem, add_return

BENCH = Path(__file__).resolve().parents[2] / "bench" / "suggest.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_suggest", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the module look themselves up there
    spec.loader.exec_module(module)
    return module


def test_precision_at_1_on_the_labelled_sets() -> None:
    bench = _bench()
    scores = {s.name: s for s in (bench.reasons(), bench.skus(), bench.customers())}
    # Floors under the figures measured when the sets were written (make bench prints them);
    # a change that makes a suggester worse on its set fails here.
    assert scores["reasons"].precision_at_1 >= 0.9 and scores["reasons"].coverage >= 0.6
    assert scores["skus"].precision_at_1 >= 0.9 and scores["skus"].coverage >= 0.85
    assert scores["customers"].precision_at_1 >= 0.85 and scores["customers"].coverage >= 0.85
    assert all(s.cases >= 15 for s in scores.values())


def test_a_reason_is_never_suggested_across_dispositions() -> None:
    evidence = [ReasonEvidence("Item was too big", "restock", "6", "restock")] * 5
    assert suggest_reason("Too big", "write_off", evidence) is None
    s = suggest_reason("Too big", "restock", evidence)
    assert s is not None and s.khaos_reason_id == "6" and s.evidence == 5


def _case(ref: str, *, reason: str = "", disposition: str = "restock", sku: str = "SKU-1",
          barcode: str = "", title: str = "", first: str = "", last: str = "",
          postcode: str = "") -> ReturnCase:
    return ReturnCase(
        source="loop", source_return_id=ref[3:], associated_ref=ref, order_ref="#1",
        customer=Customer(email=f"{ref.lower()}@example.com", first_name=first, last_name=last,
                          address=Address(postcode=postcode) if postcode else None),
        currency="GBP", state=ReturnState.REQUESTED, source_state="open", created_at=None,
        updated_at=None,
        lines=(ReturnLine(sku=sku, quantity=1, unit_net=Decimal("10"), unit_tax=Decimal("2"),
                          unit_gross=Decimal("12"), reason=reason,
                          disposition=Disposition(disposition), barcode=barcode,
                          title=title),))


def test_mapping_suggest_prints_a_valid_toml_entry_with_its_evidence(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = runtime_factory()
    with rt.sessions() as session, session.begin():
        for i, text in enumerate(["Item was too big", "Item was too big", "Item was too small"]):
            ret = add_return(session, f"LR-{100 + i}", [("SKU-1", text, "", "restock")],
                             khaos_status="served")
            ret.lines[0].khaos_reason_id, ret.lines[0].processing = "6", "restock"
        ret = add_return(session, "LR-200", [("SKU-1", "Damaged", "", "write_off")],
                         khaos_status="served")
        ret.lines[0].khaos_reason_id, ret.lines[0].processing = "7", "write_off"
        held = add_return(session, "LR-300", [("SKU-1", "Too big", "", "restock")])
        add_problem(session, "unmapped_return_reason", "reason:too big::restock", ret=held,
                    reason="Too big", condition="", disposition="restock")
        odd = add_return(session, "LR-301", [("SKU-1", "Gift", "", "donate")])
        add_problem(session, "unmapped_return_reason", "reason:gift::donate", ret=odd,
                    reason="Gift", condition="", disposition="donate")
    result = CliRunner().invoke(app, ["mapping", "suggest"],
                                env={"RB_DATABASE__URL": rt.settings.database.url})
    assert result.exit_code == 0, result.output
    parsed = tomllib.loads(result.stdout)
    [entry] = parsed["mapping"]["reasons"]
    ReasonMappingEntry(**entry)  # a valid configuration entry as printed
    assert (entry["reason"], entry["disposition"], entry["khaos_reason_id"]) == (
        "Too big", "restock", "6")
    assert "evidence 3 line(s)" in result.stdout and "# confidence" in result.stdout
    assert "'Gift'" in result.stdout and "no suggestion" in result.stdout


def test_suggest_names_the_customer_and_the_sku_with_reasons(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    rt = runtime_factory()
    export = tmp_path / "customers.csv"
    export.write_text("Email,URN,Name,Postcode\n"
                      "jane.doe@gmail.com,C0001,Jane Doe,SW1A 1AA\n"
                      "other@example.com,C0002,Other Person,M1 1AE\n")
    load_customers_csv(rt, export, actor="test")
    with rt.sessions() as session, session.begin():
        session.add(StockItem(stock_id="S1", stock_code="TEE-BLK-M", other_ref="",
                              description="Classic Tee Black Medium",
                              barcodes=["5012345000028"],
                              updated_at=datetime.now(UTC), raw={}))
        ret = add_return(session, "LR-500", [("X-1", "too big", "", "restock")])
        ret.case_json = case_to_json(_case("LR-500", sku="X-1", barcode="5012345000028",
                                           first="Jane", last="Doe", postcode="sw1a1aa"))
        sku = add_problem(session, "sku_mismatch", "sku:X-1", ret=ret, sku="X-1")
        who = add_problem(session, "unknown_customer", "customer", ret=ret,
                          email="janedoe+shop@gmail.com")
        ids = (sku.id, who.id)
    env = {"RB_DATABASE__URL": rt.settings.database.url}
    runner = CliRunner()
    skus = json.loads(runner.invoke(app, ["suggest", str(ids[0]), "--json"], env=env).stdout)
    assert skus["candidates"][0]["candidate"] == "TEE-BLK-M"
    assert "barcode 5012345000028" in skus["candidates"][0]["why"]
    people = json.loads(runner.invoke(app, ["suggest", str(ids[1]), "--json"], env=env).stdout)
    top = people["candidates"][0]
    assert top["candidate"] == "C0001" and "postcode SW1A 1AA" in top["why"]
    assert [c["candidate"] for c in people["candidates"]] == ["C0001"]


@pytest.mark.parametrize("kind", ["tax_drift"])
def test_suggest_refuses_other_types(runtime_factory: Callable[..., Runtime],
                                     kind: str) -> None:
    rt = runtime_factory()
    with rt.sessions() as session, session.begin():
        row = add_problem(session, kind, "k")
        exc_id = row.id
    result = CliRunner().invoke(app, ["suggest", str(exc_id)],
                                env={"RB_DATABASE__URL": rt.settings.database.url})
    assert result.exit_code == 1
