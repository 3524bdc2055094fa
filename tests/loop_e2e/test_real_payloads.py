"""Every real published Loop payload (tests/fixtures/loop_real, provenance in its README)
through the whole path, over real HTTP, on SQLite and PostgreSQL.

Webhooks: the file's bytes are signed and POSTed to /webhooks/loop, stored, processed, then
either served to Khaos (GET /khaos/returns, checked against the Khaos schema) or held with
named exceptions, or (topics that carry no return) stored with a stated outcome. List
elements: served as they are by the Loop sandbox's list API and read by the backstop. Each
return payload runs twice: as a GBP Khaos account (the default) and as a USD one.
Never a crash, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.backstop import run_backstop
from returnbridge.sources.loop.signature import HEADER, sign
from returnbridge.store.models import ExceptionRow, InboundEvent
from tests.conftest import FIXTURES, LOOP_SECRET, LiveApp, start_live_app
from tests.khaos_channel._schema import assert_json_valid

from ._support import LOOP_KEY, apply_pending, client_for, loop_section

REAL = FIXTURES / "loop_real"


@dataclass(frozen=True)
class Hold:
    """Held, with at least these blocking exception types open."""

    types: frozenset[str]


SERVED = "served"


@dataclass(frozen=True)
class ReturnCase:
    ref: str
    gbp: Hold | str
    usd: Hold | str


CURRENCY = Hold(frozenset({"currency_mismatch"}))
NAMELESS = Hold(frozenset({"unknown_customer"}))

RETURN_WEBHOOKS = {
    "docs_return_created.json": ReturnCase("LR-1673", CURRENCY, SERVED),
    "aurate_return_created.json": ReturnCase("LR-6042537", CURRENCY, SERVED),
    "aurate_return_updated_closed.json": ReturnCase("LR-6042537", CURRENCY, SERVED),
}
# Topics that carry no return of their own: the event's processing status.
OTHER_WEBHOOKS = {
    "docs_label_created.json": "deferred",  # evidence about return 12345, not seen yet
    "docs_label_updated_legacy.json": "deferred",
    "docs_restock_requested.json": "deferred",
    "docs_restock_requested_legacy.json": "deferred",
    "docs_giftcard_requested.json": "deferred",
    "docs_giftcard_requested_legacy.json": "invalid",  # Loop's trailing comma: not JSON
    "docs_happy_returns_shipment.json": "unhandled",
}
LIST_ELEMENTS = {
    "docs_list_return_exchange.json": ["LR-12345678"],
    "public_list_2019_closed_returns.json": ["LR-1541084", "LR-1527992"],
}


def test_every_real_fixture_is_run_and_has_provenance() -> None:
    files = {p.name for p in REAL.glob("*.json")}
    assert files == set(RETURN_WEBHOOKS) | set(OTHER_WEBHOOKS) | set(LIST_ELEMENTS)
    readme = (REAL / "README.md").read_text(encoding="utf-8")
    for name in files:
        assert f"`{name}`" in readme, f"{name} has no provenance entry"


def _post_signed(app: LiveApp, body: bytes) -> int:
    with app.client() as client:
        response = client.post("/webhooks/loop", content=body,
                               headers={"Content-Type": "application/json",
                                        HEADER: sign(body, LOOP_SECRET)})
    assert response.status_code == 200, response.text
    event_id: int = response.json()["event_id"]
    return event_id


def _served(app: LiveApp) -> dict[str, dict[str, Any]]:
    with app.khaos() as khaos:
        response = khaos.get("/khaos/returns")
    assert response.status_code == 200
    assert b"null" not in response.content
    doc = response.json()
    assert_json_valid(doc, "customer_return_import")
    return {r["AssociatedRef"]: r for r in doc["Returns"]}


def _view(app: LiveApp, ref: str) -> dict[str, Any]:
    with app.api() as api:
        response = api.get(f"/api/v1/returns/{ref}")
    assert response.status_code == 200, f"{ref} is not visible: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def _check_return(app: LiveApp, ref: str, expected: Hold | str,
                  served: dict[str, dict[str, Any]]) -> None:
    view = _view(app, ref)
    blocking = {e["type"] for e in view["open_exceptions"] if e["severity"] == "blocking"}
    if expected == SERVED:
        assert view["khaos_status"] == "served", (view["khaos_status"], blocking)
        entry = served[ref]
        contact = entry["InvoiceContact"]
        assert contact.get("Forename") or contact.get("Surname")
        assert entry["ReturnedItems"] and all(i["SKU"] for i in entry["ReturnedItems"])
        assert entry["URN"] == "LOOPWEB"
    else:
        assert isinstance(expected, Hold)
        assert view["khaos_status"] == "held", (view["khaos_status"], blocking)
        assert expected.types <= blocking, blocking
        assert ref not in served
        for exc in view["open_exceptions"]:
            assert exc["message"] and exc["next_action"]


@pytest.mark.parametrize("currency", ["GBP", "USD"])
@pytest.mark.parametrize("name", sorted(RETURN_WEBHOOKS))
def test_real_return_webhook_becomes_a_khaos_document_or_a_named_hold(
        runtime_factory: Callable[..., Runtime], name: str, currency: str) -> None:
    case = RETURN_WEBHOOKS[name]
    app = start_live_app(runtime_factory, khaos={"currency": currency})
    try:
        event_id = _post_signed(app, (REAL / name).read_bytes())
        with app.rt.sessions() as session:
            event = session.get(InboundEvent, event_id)
            assert event is not None and event.status == "processed", event and event.error
        served = _served(app)
        _check_return(app, case.ref, case.gbp if currency == "GBP" else case.usd, served)
    finally:
        app.stop()


@pytest.mark.parametrize("name", sorted(OTHER_WEBHOOKS))
def test_real_non_return_webhook_is_stored_and_accounted_for(
        runtime_factory: Callable[..., Runtime], name: str) -> None:
    app = start_live_app(runtime_factory)
    try:
        event_id = _post_signed(app, (REAL / name).read_bytes())
        with app.rt.sessions() as session:
            event = session.get(InboundEvent, event_id)
            assert event is not None
            assert event.status == OTHER_WEBHOOKS[name], (event.status, event.error)
            exceptions = session.scalars(select(ExceptionRow)).all()
            if event.status == "invalid":  # kept, and an operator is told which event
                (exc,) = exceptions
                assert exc.type == "payload_invalid" and exc.dedupe_key == f"event:{event_id}"
            else:
                assert [e.type for e in exceptions if e.severity == "blocking"] == []
        assert _served(app) == {}
    finally:
        app.stop()


@pytest.mark.parametrize("currency", ["GBP", "USD"])
def test_real_list_elements_through_the_backstop(
        runtime_factory: Callable[..., Runtime], currency: str) -> None:
    """List elements carry no name; Loop's details for them have none either (they are
    served as published), so with no fallback contact they are held, never served
    nameless. As a USD account with a fallback contact they are served."""
    world = LoopWorld(dispatcher=WebhookDispatcher(drop_rate=1.0))
    for name in LIST_ELEMENTS:
        data = json.loads((REAL / name).read_bytes())
        for element in data if isinstance(data, list) else [data]:
            world.import_listed(element)
    policy = {"fallback_address_line1": "1 Web Way", "fallback_address_town": "Leeds",
              "fallback_address_postcode": "LS1 1AA"}
    if currency == "USD":
        policy["fallback_contact_surname"] = "Web Returns"
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory, loop=loop_section(loop.base_url),
                             khaos={"currency": currency}, policy=policy)
        try:
            with client_for(app.rt.settings.loop) as client:
                result = run_backstop(app.rt, client=client)
            assert result.returns_seen == 3
            apply_pending(app.rt)
            served = _served(app)
            for refs in LIST_ELEMENTS.values():
                for ref in refs:
                    if currency == "GBP":
                        _check_return(app, ref, Hold(CURRENCY.types | NAMELESS.types), served)
                    else:
                        _check_return(app, ref, SERVED, served)
                        assert served[ref]["InvoiceContact"]["Surname"] == "Web Returns"
        finally:
            app.stop()


def test_real_fixture_bytes_are_what_was_published() -> None:
    """The signed bytes are the file's bytes: a fixture re-formatted by an editor would
    still parse, so guard the two captures whose exact spelling matters."""
    legacy = (REAL / "docs_giftcard_requested_legacy.json").read_bytes()
    assert legacy.rstrip().endswith(b"1234,\n}")
    with pytest.raises(json.JSONDecodeError):
        json.loads(legacy)
    assert Path(REAL / "aurate_return_updated_closed.json").read_bytes() == (
        FIXTURES / "loop" / "return_updated_closed_refund.json").read_bytes()
