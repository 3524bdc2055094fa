"""GET /khaos/returns and /khaos/config over real HTTP, in JSON and in XML, validated against
schemas of the documented shapes (tests/khaos_channel/schemas)."""

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.store.models import KhaosDelivery
from tests.conftest import KHAOS_FIXTURES, LOOP_SECRET, LiveApp, start_live_app
from tests.khaos_channel._schema import assert_json_valid, assert_xml_valid, errors, json_schema

KHAOS_SECTION = {"brand_id": "3", "sales_source_id": "12",
                 "source_order_ref_format": "{order_ref}SPY"}


def _send_returns(app: LiveApp, ids: list[int], outcome: str = "exchange") -> None:
    sender = LoopSender(f"{app.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        for i in ids:
            payload = return_payload(i, Scenario(outcome, ("JEAN-IND-32",)), order=1000 + i)
            assert sender.send(payload).status_code == 200
    finally:
        sender.close()


@pytest.fixture
def json_app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    app = start_live_app(runtime_factory, khaos={**KHAOS_SECTION, "unit_price": "Net"})
    yield app
    app.stop()


@pytest.fixture
def xml_app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    app = start_live_app(runtime_factory, khaos={**KHAOS_SECTION, "format": "XML"})
    yield app
    app.stop()


def test_the_schemas_accept_the_vendor_example_and_refuse_null() -> None:
    fixture = json.loads((KHAOS_FIXTURES / "customer_return_import.json").read_text())
    assert_json_valid(fixture, "customer_return_import")
    broken = copy.deepcopy(fixture)
    broken["Returns"][0]["ReturnedItems"][0]["UnitPrice"] = {"Gross": None}
    assert any("null" in e for e in errors(broken, json_schema("customer_return_import")))
    two_keys = copy.deepcopy(fixture)  # SourceOrder is OneOf
    two_keys["Returns"][0]["ReturnedItems"][0]["SourceReturnReference"]["SourceOrder"] = {
        "SOrderID": "2075", "SOrderCode": "SO2075"}
    assert errors(two_keys, json_schema("customer_return_import"))


def test_json_returns_carry_every_documented_field_the_data_supports(json_app: LiveApp) -> None:
    _send_returns(json_app, [501, 502])
    with json_app.khaos() as khaos:
        response = khaos.get("/khaos/returns",
                             headers={"Sirion-Continuation": "2019-12-31 12:00:00Z"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert b"null" not in response.content
    doc = response.json()
    assert_json_valid(doc, "customer_return_import")
    assert doc["ApiVersion"] == 1000 and "Sirion-Continuation" not in response.headers
    first = doc["Returns"][0]
    assert [r["AssociatedRef"] for r in doc["Returns"]] == ["LR-501", "LR-502"]
    assert first["URN"] == "LOOPWEB" and first["ProcessReturn"] is False
    assert first["Brand"] == {"ID": "3"} and first["SalesSource"] == {"ID": "12"}
    assert first["InvoiceAddress"]["Country"] == {"Code": "GB"}
    assert first["DeliveryAddress"]["Line1"] and first["InvoiceContact"]
    assert "LR-501" not in first["Notes"] and "1501" in first["Notes"]
    [item] = first["ReturnedItems"]
    assert item["SKU"] == "JEAN-IND-32" and item["Quantity"] == 1
    assert item["Mapping"] == [{"Mapping": "StockCode"}] and item["ReturnReason"] == {"ID": "6"}
    assert item["SourceReturnReference"] == {"SourceOrder": {"AssociatedRef": "#1501SPY"}}
    assert list(item["UnitPrice"]) == ["Net"]  # [khaos].unit_price = "Net"
    assert first["ExchangeItems"][0]["SKU"] == "JEAN-IND-34"
    with json_app.rt.sessions() as s:
        [delivery] = s.scalars(select(KhaosDelivery)).all()
    assert (delivery.format, delivery.return_count, delivery.document) == (
        "JSON", 2, response.content)


def test_xml_returns_validate_against_the_xsd(xml_app: LiveApp) -> None:
    _send_returns(xml_app, [601, 602])
    with xml_app.khaos() as khaos:
        response = khaos.get("/khaos/returns")
        again = khaos.get("/khaos/returns", headers={"SpecificIDs": '"LR-602"'})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = assert_xml_valid(response.content, "customer_return_import")
    returns = root.findall("Returns/CustomerReturn")
    assert [r.findtext("AssociatedRef") for r in returns] == ["LR-601", "LR-602"]
    first = returns[0]
    assert root.findtext("ApiVersion") == "1000"
    assert first.find("InvoiceAddress/Country").get("Code") == "GB"
    assert first.find("Brand").get("ID") == "3" and first.find("SalesSource").get("ID") == "12"
    assert first.findtext("ProcessReturn") == "false"
    item = first.find("ReturnedItems/ReturnedItem")
    assert item.findtext("SKU") == "JEAN-IND-32"
    assert item.findtext("Mapping/ItemMapping/Mapping") == "StockCode"
    assert item.find("ReturnReason").get("ID") == "6"
    assert item.findtext("SourceReturnReference/SourceOrder/AssociatedRef") == "#1601SPY"
    assert float(item.findtext("UnitPrice/Gross")) == 79.0
    assert first.findtext("ExchangeItems/ExchangeItem/SKU") == "JEAN-IND-34"
    assert [e.text for e in root.findall("Config/MatchAddressOn")] == ["Address1", "Postcode"]
    created = first.findtext("CreatedDate")
    assert len(created) == 19 and "+" not in created and not created.endswith("Z")
    # SpecificIDs: exactly the refs asked for, even though already served.
    again_root = assert_xml_valid(again.content, "customer_return_import")
    assert [r.findtext("AssociatedRef") for r in again_root.iter("CustomerReturn")] == [
        "LR-602"]
    with xml_app.rt.sessions() as s:
        formats = s.scalars(select(KhaosDelivery.format)).all()
    assert formats == ["XML", "XML"]


def test_an_empty_poll_is_a_valid_document_in_both_formats(json_app: LiveApp) -> None:
    with json_app.khaos() as khaos:
        body = khaos.get("/khaos/returns").json()
    assert body["Returns"] == [] and body["ApiVersion"] == 1000
    assert_json_valid(body, "customer_return_import")


def test_empty_xml_poll_still_has_api_version(xml_app: LiveApp) -> None:
    with xml_app.khaos() as khaos:
        body = khaos.get("/khaos/returns").content
    root = assert_xml_valid(body, "customer_return_import")
    assert root.findtext("ApiVersion") == "1000" and root.find("Returns") is not None


@pytest.mark.parametrize("fmt", ["JSON", "XML"])
def test_config_file_in_both_formats(runtime_factory: Callable[..., Runtime], fmt: str) -> None:
    app = start_live_app(runtime_factory, khaos={"format": fmt, "poll_frequency_minutes": 5})
    try:
        with app.khaos() as khaos:
            as_json = khaos.get("/khaos/config.json")
            as_xml = khaos.get("/khaos/config.xml")
            default = khaos.get("/khaos/config")
    finally:
        app.stop()
    base = app.base_url
    doc: dict[str, Any] = as_json.json()
    assert_json_valid(doc, "endpoint_config")
    config = doc["EndpointConfig"]
    assert config["CReturnDownload"] == {"URL": f"{base}/khaos/returns", "Format": fmt,
                                         "Frequency": 5}
    assert {k: v["URL"] for k, v in config.items()} == {
        "CReturnDownload": f"{base}/khaos/returns", "StockUpload": f"{base}/khaos/stock",
        "StockStatusUpload": f"{base}/khaos/stock-status",
        "OrderStatusUpload": f"{base}/khaos/order-status"}
    root = assert_xml_valid(as_xml.content, "endpoint_config")
    assert root.findtext("CReturnDownload/Frequency") == "5"
    assert root.findtext("StockUpload/Format") == fmt
    expected_type = "application/xml" if fmt == "XML" else "application/json"
    assert default.headers["content-type"].startswith(expected_type)
    if fmt == "XML":
        assert etree.fromstring(default.content).tag == "EndpointConfig"


def test_the_xml_rendition_of_the_vendor_example_validates_and_reads_back() -> None:
    from returnbridge.erp.khaos.xml import customer_return_import_xml, parse_document

    fixture = json.loads((KHAOS_FIXTURES / "customer_return_import.json").read_text())
    fixture["Returns"][0]["ProcessReturn"] = True
    body = customer_return_import_xml(fixture)
    assert_xml_valid(body, "customer_return_import")
    root, content = parse_document(body)
    assert root == "CustomerReturnImport"
    [ret] = content["Returns"]
    assert ret["ReturnedItems"][0]["ReturnReason"] == {"ID": "6"}
    assert ret["ReturnedItems"][0]["Mapping"] == [{"Mapping": "StockCode"}]
    assert ret["ReturnedItems"][0]["SourceReturnReference"] == {
        "SourceOrder": {"SOrderCode": "SO2075"}}
    assert ret["ProcessReturn"] == "true" and content["ApiVersion"] == "1000"
    with pytest.raises(ValueError, match="null"):
        customer_return_import_xml({**fixture, "ApiVersion": None})
