"""Khaos pushes over real HTTP: StockUpload, StockStatusUpload, OrderStatusUpload in JSON and
XML; idempotent; malformed bodies kept with payload_invalid; 500 when nothing was stored."""

import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos import pushes as khaos_push
from returnbridge.store import catalogue
from returnbridge.store.models import (
    ExceptionRow,
    InboundEvent,
    KhaosOrderStatus,
    StockBarcode,
    StockItem,
    StockLevel,
)
from tests.conftest import KHAOS_FIXTURES, LiveApp, start_live_app

STOCK_XML = b"""<?xml version="1.0" encoding="utf-8"?>
<StockItems>
  <Items>
    <StockItem>
      <StockID>6027</StockID>
      <StockCode>DRC1.JUSTINWBK115-R</StockCode>
      <ShortDescription>Dr Comfort Justin Shoes Wide / Black / 11.01UK</ShortDescription>
      <OtherRef>JUSTIN-115</OtherRef>
      <BuyPrice><Net>0</Net></BuyPrice>
      <TaxRate Code="1" ID="1">Standard</TaxRate>
      <StockType1 ID="18">Footwear</StockType1>
      <Options>
        <PublishOnWeb>False</PublishOnWeb><Discontinued>True</Discontinued>
        <StockControlled>True</StockControlled><FreeText>False</FreeText>
      </Options>
      <Barcodes>
        <StockBarcode><Barcode>5012345678900</Barcode><Type ID="1" /></StockBarcode>
        <StockBarcode><Barcode>0712345678911</Barcode><Type ID="2" /></StockBarcode>
      </Barcodes>
      <Images />
    </StockItem>
    <StockItem>
      <StockID>7001</StockID>
      <StockCode>MUG1</StockCode>
      <ShortDescription>Mug</ShortDescription>
      <Options><PublishOnWeb>True</PublishOnWeb><Discontinued>False</Discontinued>
        <StockControlled>True</StockControlled></Options>
    </StockItem>
  </Items>
  <Deleted />
</StockItems>"""

STOCK_STATUS_XML = b"""<?xml version="1.0"?>
<StockStatuses xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
               xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <Statuses>
    <StockStatus><StockCode>BOO</StockCode><StockID>112</StockID><SiteID>16</SiteID>
      <Levels><Available>5</Available><OnOrder>2.5</OnOrder></Levels></StockStatus>
    <StockStatus><StockCode>KIT</StockCode><StockID>900</StockID><SiteID>1</SiteID>
      <RelationshipPotential><FromChildren>4</FromChildren><FromParents>0</FromParents>
      </RelationshipPotential></StockStatus>
  </Statuses>
</StockStatuses>"""

ORDER_STATUS_XML = b"""<OrderStatuses><Statuses><SalesOrderStatus>
  <OrderCode>SO02076</OrderCode><OrderID>2076</OrderID><Status>Complete</Status>
  <AssociatedRef>web_order_2</AssociatedRef><ChannelID>21</ChannelID>
  <Shipments><Shipment><ID>S1</ID><Code>INV107</Code><Status>Archived</Status>
    <Items><ShipmentItem><OrderItemID>A</OrderItemID><ShipmentItemID>B</ShipmentItemID>
      <SKU>MUG1</SKU><Quantity>2</Quantity></ShipmentItem></Items>
    <Packages><ShipmentPackage><Courier Code="24H" ID="76">Metapack 24Hr</Courier>
    </ShipmentPackage></Packages></Shipment></Shipments>
</SalesOrderStatus></Statuses></OrderStatuses>"""


def fixture_bytes(name: str) -> bytes:
    return (KHAOS_FIXTURES / name).read_bytes()


@pytest.fixture
def app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory)
    yield live
    live.stop()


def post(app: LiveApp, path: str, body: bytes, content_type: str = "application/json"
         ) -> Any:
    with app.khaos() as khaos:
        return khaos.post(path, content=body, headers={"Content-Type": content_type})


def snapshot(rt: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every mirror row with every column, for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with rt.sessions() as s:
        for model in (StockItem, StockBarcode, StockLevel, KhaosOrderStatus):
            cols = list(model.__table__.columns)
            rows = s.execute(select(*cols).order_by(*model.__table__.primary_key.columns))
            out[model.__tablename__] = [tuple(r) for r in rows]
    return out


def test_stock_upload_json_then_xml_keeps_stockid_as_the_key(app: LiveApp) -> None:
    first = post(app, "/khaos/stock", fixture_bytes("stock_items.json"))
    assert first.status_code == 200
    assert first.json() | {"event_id": 0} == {
        "status": "processed", "event_id": 0, "inserted": 1, "updated": 0, "unchanged": 0,
        "deleted": 0, "problems": []}
    # The StockCode changes in Khaos; the item is the same (StockID 6027).
    second = post(app, "/khaos/stock", STOCK_XML, "application/xml")
    assert second.status_code == 200 and second.json()["updated"] == 1
    with app.rt.sessions() as s:
        item = s.get(StockItem, "6027")
        assert item is not None
        assert (item.stock_code, item.other_ref, item.publish_on_web, item.discontinued,
                item.stock_controlled, item.deleted) == (
            "DRC1.JUSTINWBK115-R", "JUSTIN-115", False, True, True, False)
        assert item.barcodes == ["5012345678900", "0712345678911"]
        assert catalogue.Catalogue(s).find_item("DRC1.JUSTINWBK115") is None  # the old code is gone
        assert catalogue.Catalogue(s).find_item("DRC1.JUSTINWBK115-R") is item
        assert catalogue.Catalogue(s).find_item("JUSTIN-115", "OtherRef") is item
        assert catalogue.Catalogue(s).find_item("0712345678911", "Barcode") is item
        assert catalogue.Catalogue(s).find_item("0712345678911", "StockCode") is None
        assert s.scalar(select(func.count()).select_from(StockItem)) == 2
    deleted = post(app, "/khaos/stock", json.dumps(
        {"Items": [], "Deleted": [{"StockID": "7001"}]}).encode())
    assert deleted.json()["deleted"] == 1
    with app.rt.sessions() as s:
        mug = s.get(StockItem, "7001")
        assert mug is not None and mug.deleted
        assert catalogue.Catalogue(s).find_item("MUG1") is None
        events = s.execute(select(InboundEvent.source, InboundEvent.channel, InboundEvent.topic,
                                  InboundEvent.status, InboundEvent.trigger)
                           .order_by(InboundEvent.id)).all()
    assert [tuple(e) for e in events] == [("khaos", "push", "stock", "processed", "JSON"),
                                          ("khaos", "push", "stock", "processed", "XML"),
                                          ("khaos", "push", "stock", "processed", "JSON")]


@pytest.mark.parametrize(("path", "body", "content_type"), [
    ("/khaos/stock", fixture_bytes("stock_items.json"), "application/json"),
    ("/khaos/stock", STOCK_XML, "text/xml"),
    ("/khaos/stock-status", fixture_bytes("stock_statuses.json"), "application/json"),
    ("/khaos/stock-status", STOCK_STATUS_XML, "application/xml"),
    ("/khaos/order-status", fixture_bytes("order_statuses.json"), "application/json"),
    ("/khaos/order-status", ORDER_STATUS_XML, "application/xml"),
])
def test_the_same_push_twice_changes_nothing(app: LiveApp, path: str, body: bytes,
                                             content_type: str) -> None:
    first = post(app, path, body, content_type)
    before = snapshot(app.rt)
    second = post(app, path, body, content_type)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["inserted"] > 0
    assert second.json()["inserted"] == second.json()["updated"] == 0
    assert snapshot(app.rt) == before  # same rows, same values, same updated_at
    with app.rt.sessions() as s:
        [event] = s.scalars(select(InboundEvent)).all()
    assert event.duplicates == 1 and event.body == body


def test_stock_levels_per_site_and_from_children(app: LiveApp) -> None:
    assert post(app, "/khaos/stock-status", fixture_bytes("stock_statuses.json")
                ).status_code == 200
    assert post(app, "/khaos/stock-status", STOCK_STATUS_XML, "application/xml"
                ).status_code == 200
    with app.rt.sessions() as s:
        boo1 = catalogue.Catalogue(s).level("112", 1)
        boo16 = catalogue.Catalogue(s).level("112", "16")
        kit = catalogue.Catalogue(s).level("900", 1)
        assert catalogue.Catalogue(s).level("112", 2) is None
    assert boo1 is not None and (boo1.available, boo1.on_order) == (Decimal(77), Decimal(84))
    assert boo16 is not None and (boo16.available, boo16.on_order) == (Decimal(5),
                                                                       Decimal("2.5"))
    assert kit is not None and kit.from_children and kit.available == Decimal(4)
    assert boo16.stock_code == "BOO" and not boo16.is_stale(boo16.age + boo16.age + _minute())
    # A change of level moves updated_at; the other site is untouched.
    changed = json.dumps({"Statuses": [{"StockCode": "BOO", "StockID": "112", "SiteID": 16,
                                        "Levels": {"Available": 4.0, "OnOrder": 2.5}}]})
    assert post(app, "/khaos/stock-status", changed.encode()).json()["updated"] == 1
    with app.rt.sessions() as s:
        mirror = catalogue.Catalogue(s)
        after16, after1 = mirror.level("112", 16), mirror.level("112", 1)
    assert after16 is not None and after16.available == Decimal(4)
    assert after16.updated_at > boo16.updated_at
    assert after1 is not None and after1.updated_at == boo1.updated_at


def _minute() -> Any:
    from datetime import timedelta
    return timedelta(minutes=1)


def test_order_statuses_by_order_id_in_both_formats(app: LiveApp) -> None:
    assert post(app, "/khaos/order-status", fixture_bytes("order_statuses.json")
                ).status_code == 200
    assert post(app, "/khaos/order-status", ORDER_STATUS_XML, "application/xml"
                ).status_code == 200
    with app.rt.sessions() as s:
        rows = {r.order_id: r for r in s.scalars(select(KhaosOrderStatus))}
    assert set(rows) == {"2075", "2076"}
    first, second = rows["2075"], rows["2076"]
    assert (first.order_code, first.associated_ref, first.invoice_code, first.stage) == (
        "SO02075", "web_order_1516288492", "INV106", "Staging")
    assert (second.order_code, second.associated_ref, second.invoice_code, second.stage) == (
        "SO02076", "web_order_2", "INV107", "Archived")
    assert second.raw["Shipments"][0]["Packages"][0]["Courier"] == {
        "Code": "24H", "ID": "76", "Name": "Metapack 24Hr"}


@pytest.mark.parametrize(("path", "body"), [
    ("/khaos/stock", b"{not json"),
    ("/khaos/stock-status", b"<StockItems><Items/></StockItems>"),  # wrong document
    ("/khaos/order-status", b"<OrderStatuses><Statuses>"),  # not well-formed
    ("/khaos/stock-status", b'{"Statuses": null}'),
    ("/khaos/stock", b""),
])
def test_a_malformed_push_is_stored_answered_200_and_raises_payload_invalid(
        app: LiveApp, path: str, body: bytes) -> None:
    response = post(app, path, body)
    assert response.status_code == 200 and response.json()["status"] == "invalid"
    with app.rt.sessions() as s:
        [event] = s.scalars(select(InboundEvent)).all()
        [problem] = s.scalars(select(ExceptionRow)).all()
    assert event.body == body and event.status == "invalid" and event.error
    assert problem.type == "payload_invalid" and problem.details["event_id"] == str(event.id)
    assert snapshot(app.rt) == {"khaos_stock_items": [], "khaos_stock_barcodes": [],
                                "khaos_stock_levels": [], "khaos_order_statuses": []}


def test_one_bad_entry_does_not_block_the_rest(app: LiveApp) -> None:
    body = json.dumps({"Statuses": [
        {"StockCode": "A", "StockID": "1", "SiteID": 1, "Levels": {"Available": 3, "OnOrder": 0}},
        {"StockCode": "B", "SiteID": 1, "Levels": {"Available": 3, "OnOrder": 0}},
        {"StockCode": "C", "StockID": "3", "SiteID": 1, "Levels": {"Available": "lots"}},
    ]}).encode()
    response = post(app, "/khaos/stock-status", body)
    assert response.status_code == 200
    assert response.json()["status"] == "partial" and response.json()["inserted"] == 1
    assert len(response.json()["problems"]) == 2
    with app.rt.sessions() as s:
        [problem] = s.scalars(select(ExceptionRow)).all()
    assert problem.type == "payload_invalid" and "StockID is missing" in problem.message
    assert "lots" in problem.message


def test_nothing_persisted_means_500_so_that_khaos_sends_it_again(app: LiveApp) -> None:
    with app.rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE khaos_stock_levels"))
    response = post(app, "/khaos/stock-status", fixture_bytes("stock_statuses.json"))
    assert response.status_code == 500
    with app.rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE inbound_events"))
    response = post(app, "/khaos/stock", fixture_bytes("stock_items.json"))
    assert response.status_code == 500


def test_pushes_need_basic_auth(app: LiveApp) -> None:
    with app.client() as c:
        for path in ("/khaos/stock", "/khaos/stock-status", "/khaos/order-status"):
            assert c.post(path, content=b"{}").status_code == 401
            assert c.post(path, content=b"{}", auth=("khaos", "nope")).status_code == 401
    with app.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundEvent)) == 0


def test_a_body_over_the_limit_is_refused(runtime_factory: Callable[..., Runtime]) -> None:
    live = start_live_app(runtime_factory, khaos={"max_push_bytes": 2048})
    try:
        response = post(live, "/khaos/stock", b'{"Items": [], "Deleted": []' + b" " * 4096
                        + b"}")
    finally:
        live.stop()
    assert response.status_code == 413 and "max_push_bytes" in response.json()["error"]


def test_hooks_run_after_the_mirror_changed_and_cannot_break_the_push(
        app: LiveApp, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Decimal | None]] = []
    done = threading.Event()

    def failing(_rt: Runtime, _kind: str) -> None:
        raise RuntimeError("boom")

    def recording(rt: Runtime, kind: str) -> None:
        with rt.sessions() as s:  # committed data is visible to the hook
            reading = catalogue.Catalogue(s).level("505", 1)
        seen.append((kind, reading.available if reading else None))
        done.set()

    monkeypatch.setattr(khaos_push, "AFTER_MIRROR_CHANGE", [failing, recording])
    response = post(app, "/khaos/stock-status", fixture_bytes("stock_statuses.json"))
    assert response.status_code == 200
    assert done.wait(10)
    assert seen == [("stock-status", Decimal(110))]
    done.clear()
    post(app, "/khaos/stock-status", fixture_bytes("stock_statuses.json"))  # no change
    assert not done.wait(1)


def test_a_push_stored_but_not_applied_can_be_applied_later(runtime: Runtime) -> None:
    # As after a crash between storing the body and updating the mirror.
    from returnbridge.store.events import store_event

    stored = store_event(runtime.sessions, source="khaos", body=STOCK_STATUS_XML, headers={},
                         topic="stock-status", channel="push", trigger="XML")
    with runtime.unit_of_work() as uow:
        event = uow.events.get(stored.event_id)
        assert event is not None
        outcome = khaos_push.reapply_event(uow, event)
    assert outcome.status == "processed" and outcome.change.inserted == 2
    with runtime.sessions() as s:
        event = s.get(InboundEvent, stored.event_id)
        assert event is not None and event.status == "processed"
        assert catalogue.Catalogue(s).level("112", 16) is not None
