"""Must-show (issue #10), over real HTTP on SQLite and PostgreSQL:

* a Loop return with a blank SKU (Shopify variant without a SKU) is kept, visible through the
  API, held with a SKU exception naming the variant, and released once the variant is mapped
  (``[[mapping.skus]]`` at start-up, or a Khaos stock push carrying the barcode);
* a return read from Loop's list API (backstop) gets its customer from Loop's return details,
  and is never served without a contact name: with no name anywhere it is held.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from returnbridge.flows.decide.reevaluate import reevaluate_if_mapping_changed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.backstop import run_backstop
from tests.conftest import LOOP_SECRET, LiveApp, make_settings, start_live_app
from tests.khaos_channel._schema import assert_json_valid

from ._support import LOOP_KEY, apply_pending, client_for, loop_section

BARCODE = "5012345678900"


def _blank_sku_return(rid: int) -> dict[str, Any]:
    payload = return_payload(rid, Scenario("refund", ("TEE-BLK-M",)), order=2000 + rid)
    unit = payload["line_items"][0]
    unit["sku"] = ""
    unit["barcode"] = BARCODE
    unit["variant_id"] = 880000 + rid
    return payload


def _send(app: LiveApp, payload: dict[str, Any]) -> None:
    sender = LoopSender(f"{app.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        assert sender.send(payload).status_code == 200
    finally:
        sender.close()


def _view(app: LiveApp, ref: str) -> dict[str, Any]:
    with app.api() as api:
        response = api.get(f"/api/v1/returns/{ref}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _served(app: LiveApp) -> dict[str, dict[str, Any]]:
    with app.khaos() as khaos:
        response = khaos.get("/khaos/returns")
    assert response.status_code == 200
    doc = response.json()
    assert_json_valid(doc, "customer_return_import")
    return {r["AssociatedRef"]: r for r in doc["Returns"]}


def _wait(app: LiveApp, ref: str, status: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = _view(app, ref)
        if view["khaos_status"] == status or time.monotonic() > deadline:
            assert view["khaos_status"] == status, view["open_exceptions"]
            return view


def test_a_blank_sku_is_held_visible_and_released_once_mapped_in_the_config(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory)
    try:
        reevaluate_if_mapping_changed(app.rt)  # the first start records the mapping
        payload = _blank_sku_return(7101)
        _send(app, payload)
        view = _view(app, "LR-7101")  # kept: a return row, not payload_invalid
        assert view["khaos_status"] == "held"
        assert [ln["sku"] for ln in view["lines"]] == [""]
        (exc,) = view["open_exceptions"]
        assert exc["type"] == "sku_mismatch" and exc["associated_ref"] == "LR-7101"
        assert exc["details"]["variant_id"] == "887101"
        assert exc["details"]["barcode"] == BARCODE
        assert exc["details"]["title"] == "Organic Tee - Black / M"
        assert "887101" in exc["message"] and "[[mapping.skus]]" in exc["next_action"]
        assert "LR-7101" not in _served(app)

        # The operator maps the variant and restarts: released without a retry by hand.
        settings = make_settings(app.rt.settings.database.url, mapping={
            **app.rt.settings.mapping.model_dump(mode="json"),
            "skus": [{"variant_id": "887101", "stock_code": "TEE-BLK-M"}]})
        restarted = Runtime(settings, app.rt.engine, app.rt.sessions)
        result = reevaluate_if_mapping_changed(restarted)
        assert result is not None and result.released == 1
        view = _view(app, "LR-7101")
        assert view["khaos_status"] == "ready" and not view["open_exceptions"]
        assert [ln["sku"] for ln in view["lines"]] == ["TEE-BLK-M"]
        served = _served(app)["LR-7101"]
        assert [i["SKU"] for i in served["ReturnedItems"]] == ["TEE-BLK-M"]
    finally:
        app.stop()


def _stock_item(stock_id: str, code: str, barcodes: list[str]) -> dict[str, Any]:
    return {"StockID": stock_id, "StockCode": code, "ShortDescription": code,
            "Barcodes": [{"Barcode": b} for b in barcodes],
            "Options": {"PublishOnWeb": True, "Discontinued": False, "StockControlled": True}}


def _push_stock(app: LiveApp, items: list[dict[str, Any]]) -> None:
    with app.khaos() as client:
        response = client.post("/khaos/stock", content=json.dumps(
            {"Items": items, "Deleted": []}), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


def test_a_blank_sku_is_released_when_khaos_pushes_an_item_with_its_barcode(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory)
    try:
        _push_stock(app, [_stock_item("1", "SCARF-GRY", [])])  # a catalogue is known
        _send(app, _blank_sku_return(7102))
        view = _wait(app, "LR-7102", "held")
        assert [e["type"] for e in view["open_exceptions"]] == ["sku_mismatch"]
        with app.api() as api:  # the SKU queue shows it too
            listed = api.get("/api/v1/exceptions", params={"type": "sku_mismatch"}).json()
        assert [e["associated_ref"] for e in listed["exceptions"]] == ["LR-7102"]

        _push_stock(app, [_stock_item("2", "TEE-BLK-M", [BARCODE])])
        _wait(app, "LR-7102", "ready")
        served = _served(app)["LR-7102"]
        assert [i["SKU"] for i in served["ReturnedItems"]] == ["TEE-BLK-M"]
    finally:
        app.stop()


def test_a_list_api_return_gets_its_customer_from_the_details_call(
        runtime_factory: Callable[..., Runtime]) -> None:
    world = LoopWorld(dispatcher=WebhookDispatcher(drop_rate=1.0, seed=1))  # no webhooks
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory, loop=loop_section(loop.base_url))
        try:
            rid = world.create(Scenario("refund", ("TEE-BLK-M",)))
            listed = world.list_view(world.get(rid))
            assert "address" not in listed and "customer_detail" not in listed
            with client_for(app.rt.settings.loop) as client:
                result = run_backstop(app.rt, client=client)
                # one list call per state, and one details call for the nameless return
                assert client.stats.requests == len(app.rt.settings.loop.list_states) + 1
            assert result.gaps == 1
            apply_pending(app.rt)
            ref = f"LR-{rid}"
            view = _view(app, ref)
            assert view["khaos_status"] == "ready", view["open_exceptions"]
            assert view["customer"]["last_name"] == f"Tester{rid}"
            served = _served(app)[ref]
            assert served["InvoiceContact"]["Surname"] == f"Tester{rid}"
            assert served["InvoiceAddress"]["Line1"]
        finally:
            app.stop()


def test_a_list_api_return_without_any_name_is_held_never_served_nameless(
        runtime_factory: Callable[..., Runtime]) -> None:
    world = LoopWorld(dispatcher=WebhookDispatcher(drop_rate=1.0, seed=1))
    rid = world.create(Scenario("refund", ("TEE-BLK-M",)))
    nameless = copy.deepcopy(world.list_view(world.get(rid)))
    world.returns.clear()
    world.import_listed(nameless)  # Loop's details have no name for it either
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory, loop=loop_section(loop.base_url),
                             policy={"fallback_address_line1": "1 Web Way",
                                     "fallback_address_town": "Leeds",
                                     "fallback_address_postcode": "LS1 1AA"})
        try:
            with client_for(app.rt.settings.loop) as client:
                run_backstop(app.rt, client=client)
            apply_pending(app.rt)
            ref = f"LR-{rid}"
            view = _view(app, ref)
            assert view["khaos_status"] == "held"
            (exc,) = view["open_exceptions"]
            assert exc["type"] == "unknown_customer" and "gave no name" in exc["message"]
            assert "fallback_contact_surname" in exc["next_action"]
            assert "fallback_customer_urn" not in exc["next_action"]  # it is set: LOOPWEB
            assert ref not in _served(app)

            # A configured fallback contact releases it, and Khaos gets that name.
            settings = make_settings(app.rt.settings.database.url, loop=loop_section(
                loop.base_url), policy={**app.rt.settings.policy.model_dump(mode="json"),
                                        "fallback_contact_surname": "Web Returns"})
            restarted = Runtime(settings, app.rt.engine, app.rt.sessions)
            reevaluate_if_mapping_changed(restarted)
            assert _view(app, ref)["khaos_status"] == "ready"
            # What Khaos gets from the restarted configuration (same database).
            doc = json.loads(serve_page(restarted).document)
            (entry,) = [r for r in doc["Returns"] if r["AssociatedRef"] == ref]
            assert entry["InvoiceContact"]["Surname"] == "Web Returns"
            assert_json_valid(doc, "customer_return_import")
        finally:
            app.stop()


def test_webhook_name_survives_a_later_nameless_list_element(
        runtime_factory: Callable[..., Runtime]) -> None:
    """The list view of a return we already know by webhook must not erase its name."""
    world = LoopWorld(dispatcher=WebhookDispatcher(drop_rate=1.0, seed=1))
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory, loop=loop_section(loop.base_url))
        try:
            rid = world.create(Scenario("refund", ("TEE-BLK-M",)))
            _send(app, world.webhook_view(world.get(rid), "return.created"))
            world.close(rid)
            with client_for(app.rt.settings.loop) as client:
                run_backstop(app.rt, client=client)
                assert client.stats.requests == len(app.rt.settings.loop.list_states)
            apply_pending(app.rt)
            view = _view(app, f"LR-{rid}")
            assert view["state"] == "closed"
            assert view["customer"]["last_name"] == f"Tester{rid}"
        finally:
            app.stop()


def test_returns_past_the_details_budget_are_completed_by_a_later_pass(
        runtime_factory: Callable[..., Runtime]) -> None:
    world = LoopWorld(dispatcher=WebhookDispatcher(drop_rate=1.0, seed=1))
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory,
                             loop=loop_section(loop.base_url, details_calls_per_pass=1))
        try:
            first, second = (world.create(Scenario("refund", ("TEE-BLK-M",)))
                             for _ in range(2))
            with client_for(app.rt.settings.loop) as client:
                run_backstop(app.rt, client=client)
            apply_pending(app.rt)
            statuses = {_view(app, f"LR-{r}")["khaos_status"] for r in (first, second)}
            assert statuses == {"ready", "held"}  # one details call this pass
            with client_for(app.rt.settings.loop) as client:
                result = run_backstop(app.rt, client=client)  # nothing changed at Loop
            assert len(result.new_event_ids) == 1  # the held one's details
            apply_pending(app.rt)
            for rid in (first, second):
                view = _view(app, f"LR-{rid}")
                assert view["khaos_status"] == "ready", view["open_exceptions"]
                assert view["customer"]["last_name"] == f"Tester{rid}"
        finally:
            app.stop()
