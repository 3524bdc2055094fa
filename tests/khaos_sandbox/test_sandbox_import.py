"""The sandbox imports like Khaos: each bad return fails alone, good ones import anyway."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.state import KhaosState, Processing
from returnbridge.sandbox.khaos.xmldoc import xml_to_document
from tests.conftest import KHAOS_FIXTURES
from tests.khaos_sandbox._support import (
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
)


def fixture_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((KHAOS_FIXTURES / "customer_return_import.json").read_text())
    return doc


def khaos_state() -> KhaosState:
    state = KhaosState()
    state.add_item("B0714PRW7R", other_ref="AMZ-1", barcodes=("5012345678900",),
                   levels={1: 5})
    state.add_item("B0714PRW7R-10", levels={1: 5})
    state.add_customer("TOMA", "email@test.com")
    state.add_reason("6", "Changed mind", Processing.RESTOCK)
    return state


def variant(ref: str, **changes: Any) -> dict[str, Any]:
    ret = copy.deepcopy(fixture_doc()["Returns"][0])
    ret["AssociatedRef"] = ref
    for key, value in changes.items():
        if key == "sku":
            ret["ReturnedItems"][0]["SKU"] = value
        elif key == "reason":
            ret["ReturnedItems"][0]["ReturnReason"] = {"ID": value}
        elif key == "mapping":
            ret["ReturnedItems"][0]["Mapping"] = [{"Mapping": value}]
        else:
            ret[key] = value
    return ret


def test_per_return_failures_do_not_stop_good_returns() -> None:
    state = khaos_state()
    state.import_document({"Returns": [variant("DUP-1")], "ApiVersion": 1000})
    doc = {"ApiVersion": 1000, "Returns": [
        variant("GOOD-1"),
        variant("BAD-SKU", sku="NOT-IN-KHAOS"),
        variant("BAD-URN", URN="NOBODY"),
        variant("BAD-REASON", reason="99"),
        variant("DUP-1"),
        variant("GOOD-2", sku="AMZ-1", mapping="OtherRef"),
        variant("GOOD-3", sku="5012345678900", mapping="Barcode"),
    ]}
    assert state.import_document(doc) == 3
    assert sorted(state.returns) == ["DUP-1", "GOOD-1", "GOOD-2", "GOOD-3"]
    reasons = {f.associated_ref: f.reason for f in state.failures}
    assert reasons == {
        "BAD-SKU": "unknown SKU 'NOT-IN-KHAOS' under mapping StockCode",
        "BAD-URN": "unknown customer URN 'NOBODY'",
        "BAD-REASON": "unknown return reason '99'",
        "DUP-1": "duplicate AssociatedRef DUP-1",
    }
    # The same code under a mapping that does not name it is unknown too.
    assert state.import_document({"ApiVersion": 1000, "Returns": [
        variant("BAD-MAP", sku="AMZ-1", mapping="StockCode")]}) == 0


def test_a_document_without_api_version_1000_fails_as_a_whole() -> None:
    state = khaos_state()
    with pytest.raises(ValueError, match="ApiVersion"):
        state.import_document({"Returns": [variant("X")], "ApiVersion": 10000})
    assert not state.returns


def test_process_return_true_processes_on_import_and_restocks() -> None:
    state = khaos_state()
    state.import_document({"ApiVersion": 1000, "Returns": [variant("P-1", ProcessReturn=True)]})
    record = state.returns["P-1"]
    assert record.processed and record.stock_moved
    assert state.level("B0714PRW7R") == Decimal(5 + 3)
    assert record.exchange is not None  # the fixture has exchange items
    assert state.level("B0714PRW7R-10") == Decimal(5 - 1)


def test_xml_customer_return_import_reads_like_json() -> None:
    xml = b"""<?xml version="1.0"?>
<CustomerReturnImport><Returns><CustomerReturn>
  <AssociatedRef>XML-1</AssociatedRef><CreatedDate>2018-06-28T15:14:56</CreatedDate>
  <URN>TOMA</URN>
  <InvoiceAddress><Line1>1 - 3 Priest Court</Line1><Town>Grantham</Town>
    <Postcode>NG31 7FZ</Postcode><Country Code="GB" /></InvoiceAddress>
  <InvoiceContact><Forename>Test</Forename></InvoiceContact>
  <ReturnedItems><ReturnedItem><SKU>B0714PRW7R</SKU>
    <Mapping><ItemMapping><Mapping>StockCode</Mapping></ItemMapping></Mapping>
    <Quantity>2</Quantity><ReturnReason ID="6"/><ExtendedDescription />
    <UnitPrice><Gross>12.5</Gross></UnitPrice>
  </ReturnedItem></ReturnedItems>
  <ProcessReturn>True</ProcessReturn>
</CustomerReturn></Returns><ApiVersion>1000</ApiVersion>
<Config><MatchAddressOn>Address1</MatchAddressOn><MatchAddressOn>Postcode</MatchAddressOn>
<MatchContactOn>Surname</MatchContactOn></Config></CustomerReturnImport>"""
    doc = xml_to_document(xml)
    assert doc["Config"]["MatchAddressOn"] == ["Address1", "Postcode"]
    state = khaos_state()
    assert state.import_document(doc) == 1, state.failures
    record = state.returns["XML-1"]
    assert record.processed and record.credit_value == Decimal("25.00")
    assert [(ln.sku, ln.quantity, ln.reason_id) for ln in record.lines] == [
        ("B0714PRW7R", Decimal(2), "6")]


def test_bad_returns_served_over_http_fail_alone(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        good = return_id_with_reason(900, damaged=False)
        damaged = return_id_with_reason(good + 1, damaged=True)
        unknown_sku = return_id_with_reason(damaged + 1, damaged=False)
        dup = return_id_with_reason(unknown_sku + 1, damaged=False)
        refs = send_returns(app, [refund(good, "SCARF-GRY"), refund(damaged, "SCARF-GRY"),
                                  refund(unknown_sku, "BOOT-TAN-9"), refund(dup, "TEE-BLK-L")])
        # This Khaos has no BOOT-TAN-9, does not know reason 7, and already has the last ref.
        khaos = make_sandbox(app, skip_skus=("BOOT-TAN-9",), reasons={"6": "restock"})
        khaos.state.import_document({"ApiVersion": 1000, "Returns": [
            {**variant(refs[3]), "URN": "LOOPWEB",
             "ReturnedItems": [{"SKU": "TEE-BLK-L", "Quantity": 1, "ReturnReason": {"ID": "6"}}],
             "ExchangeItems": []}]})
        try:
            assert khaos.poll_once() == 1
        finally:
            khaos.close()
    assert refs[0] in khaos.imported
    failures = {f.associated_ref: f.reason for f in khaos.failures}
    assert failures == {refs[1]: "unknown return reason '7'",
                        refs[2]: "unknown SKU 'BOOT-TAN-9' under mapping StockCode",
                        refs[3]: f"duplicate AssociatedRef {refs[3]}"}


def test_xml_served_by_returnbridge_imports(runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory, khaos={"format": "XML"}) as app:
        refs = send_returns(app, [refund(return_id_with_reason(950, damaged=False),
                                         "SCARF-GRY"),
                                  refund(return_id_with_reason(951, damaged=True), "TEE-BLK-M")])
        khaos = make_sandbox(app)
        try:
            assert khaos.fetch_config()["CReturnDownload"]["Format"] == "XML"
            assert khaos.poll_once() == 2, khaos.failures
        finally:
            khaos.close()
    assert sorted(khaos.imported) == sorted(refs)
    damaged = khaos.return_for(refs[1])
    assert damaged is not None and [ln.reason_id for ln in damaged.lines] == ["7"]
    good = khaos.return_for(refs[0])
    assert good is not None and good.credit_value == Decimal("39.50")


def test_config_file_in_xml_reads_like_json(runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        as_json = make_sandbox(app).fetch_config()
        xml_sandbox = make_sandbox(app)
        xml_sandbox.config_url = f"{app.base_url}/khaos/config.xml"
        as_xml = xml_sandbox.fetch_config()
    assert as_xml["CReturnDownload"]["URL"] == as_json["CReturnDownload"]["URL"]
    assert float(as_xml["CReturnDownload"]["Frequency"]) == as_json["CReturnDownload"][
        "Frequency"]
    assert as_xml["StockStatusUpload"]["URL"].endswith("/khaos/stock-status")
