import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store import audit
from returnbridge.store.events import store_event
from returnbridge.store.models import AuditEntry
from tests.conftest import API_TOKEN, LiveApp, start_live_app
from tests.exceptions._seed import add_problem, add_return


@pytest.fixture
def app(runtime_factory: Any) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory)
    with live.rt.sessions() as s, s.begin():
        held = add_return(s, "LR-7", [("TEE-BLK-M", "Too small", "", "restock")])
        add_problem(s, "unknown_customer", "LR-7:customer", ret=held)
        add_problem(s, "sku_mismatch", "LR-7:sku", ret=held, candidates="TEE-BLK-M1, TEE-BLK")
        add_problem(s, "tax_drift", "LR-7:tax", ret=held)
    yield live
    live.stop()


def _id(live: LiveApp, type_: str) -> int:
    with live.api() as api:
        [row] = api.get("/api/v1/exceptions", params={"type": type_}).json()["exceptions"]
    return int(row["id"])


def test_list_and_filters_over_http(app: LiveApp) -> None:
    with app.api() as api:
        body = api.get("/api/v1/exceptions").json()
        cx = api.get("/api/v1/exceptions", params={"owner": "cx"}).json()
        by_ref = api.get("/api/v1/exceptions", params={"ref": "LR-7", "limit": 1}).json()
        bad = api.get("/api/v1/exceptions", params={"status": "closed"})
    assert body["status"] == "open" and body["total"] == 3 and body["count"] == 3
    assert {e["type"] for e in body["exceptions"]} == {"unknown_customer", "sku_mismatch",
                                                     "tax_drift"}
    assert all("age" in e and e["next_action"] for e in body["exceptions"])
    assert [e["type"] for e in cx["exceptions"]] == ["unknown_customer"]
    assert by_ref["total"] == 3 and by_ref["count"] == 1
    assert bad.status_code == 400 and "use one of" in bad.json()["detail"]


def test_show_and_404_over_http(app: LiveApp) -> None:
    sku = _id(app, "sku_mismatch")
    with app.api() as api:
        view = api.get(f"/api/v1/exceptions/{sku}").json()
        missing = api.get("/api/v1/exceptions/424242")
        missing_action = api.post("/api/v1/exceptions/424242/resolve",
                                  json={"by": "a", "why": "b"})
    assert view["candidates"] == ["TEE-BLK-M1", "TEE-BLK"]
    assert view["return"]["associated_ref"] == "LR-7"
    assert missing.status_code == 404 and "424242" in missing.json()["detail"]
    assert missing_action.status_code == 404


def test_resolve_and_ignore_over_http_are_audited(app: LiveApp) -> None:
    tax, customer = _id(app, "tax_drift"), _id(app, "unknown_customer")
    with app.api() as api:
        resolved = api.post(f"/api/v1/exceptions/{tax}/resolve",
                            json={"by": "carol", "why": "credit note adjusted"})
        again = api.post(f"/api/v1/exceptions/{tax}/resolve",
                         json={"by": "carol", "why": "credit note adjusted"})
        ignored = api.post(f"/api/v1/exceptions/{customer}/ignore",
                           json={"why": "account created by hand"})
        no_why = api.post(f"/api/v1/exceptions/{_id(app, 'sku_mismatch')}/ignore",
                          json={"by": "carol"})
        open_now = api.get("/api/v1/exceptions").json()
    fingerprint = "api-token:" + hashlib.sha256(API_TOKEN.encode()).hexdigest()[:8]
    assert resolved.status_code == 200 and resolved.json()["outcome"] == "resolved"
    # The authenticated identity is the actor; what the caller typed is kept beside it.
    assert resolved.json()["exception"]["resolved_by"] == f"{fingerprint} (carol)"
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"
    assert no_why.status_code == 422 and "needs a reason" in no_why.json()["detail"]
    assert [e["type"] for e in open_now["exceptions"]] == ["sku_mismatch"]
    with app.rt.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert audit.verify_chain(s) == []
    assert [(e.actor, e.action, e.details["why"]) for e in entries] == [
        (f"{fingerprint} (carol)", "exception.resolve", "credit note adjusted"),
        (fingerprint, "exception.ignore", "account created by hand")]
    assert API_TOKEN not in str([e.actor for e in entries])


def test_retry_of_an_exception_without_a_return_is_409(app: LiveApp) -> None:
    with app.rt.sessions() as s, s.begin():
        sig = add_problem(s, "signature_invalid", "loop").id
    with app.api() as api:
        r = api.post(f"/api/v1/exceptions/{sig}/retry", json={"by": "dave"})
    assert r.status_code == 409 and "does not concern one return" in r.json()["detail"]


def test_actions_need_the_bearer_token(app: LiveApp) -> None:
    tax = _id(app, "tax_drift")
    with app.client() as anonymous:
        listing = anonymous.get("/api/v1/exceptions")
        action = anonymous.post(f"/api/v1/exceptions/{tax}/resolve", json={"why": "x"})
        no_body = anonymous.post(f"/api/v1/exceptions/{tax}/resolve")
    assert [listing.status_code, action.status_code, no_body.status_code] == [401, 401, 401]


def test_retry_over_http_re_evaluates_the_held_return(runtime_factory: Any) -> None:
    live = start_live_app(runtime_factory, mapping={"reasons": [
        {"reason": "Too big", "khaos_reason_id": "6", "processing": "restock"}]})
    try:
        payload = return_payload(12, Scenario("refund", ("TEE-BLK-M",)))  # "Too small"
        stored = store_event(live.rt.sessions, source="loop",
                             body=json.dumps(payload).encode(), headers={})
        apply_event(live.rt, stored.event_id)
        with live.api() as api:
            [exc] = api.get("/api/v1/exceptions", params={"ref": "LR-12"}).json()["exceptions"]
            r = api.post(f"/api/v1/exceptions/{exc['id']}/retry", json={"by": "dave"})
        assert r.status_code == 200
        assert (r.json()["outcome"], r.json()["khaos_status"]) == ("still_open", "held")
        assert "Too small" in r.json()["message"]
    finally:
        live.stop()
