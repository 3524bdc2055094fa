"""The Loop sandbox keeps Loop's semantics (reference §4.1) and Loop's webhook habits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.signature import verify

KEY = "sandbox-test-key"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def loop() -> Iterator[LoopSandboxServer]:
    with LoopSandboxServer(LoopWorld(clock=lambda: NOW), api_key=KEY) as server:
        yield server


def get(server: LoopSandboxServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.base_url}{path}", params=params,
                     headers={"X-Authorization": KEY}, timeout=10)


def test_default_window_is_24_hours_and_default_states_skip_cancelled_and_review(
        loop: LoopSandboxServer) -> None:
    w = loop.world
    old = w.create(at=NOW - timedelta(hours=30), notify=False)
    fresh = w.create(at=NOW - timedelta(hours=2), notify=False)
    cancelled = w.create(at=NOW - timedelta(hours=2), notify=False)
    review = w.create(at=NOW - timedelta(hours=2), notify=False)
    w.cancel(cancelled)
    w.flag(review)
    listed = get(loop, "/warehouse/return/list").json()
    assert isinstance(listed, list)  # unpaginated: a bare array
    assert [r["id"] for r in listed] == [w.get(fresh).data["id"]]
    by_state = get(loop, "/warehouse/return/list", state="cancelled").json()
    assert [str(r["id"]) for r in by_state] == [str(cancelled)]
    wide = get(loop, "/warehouse/return/list", **{"from": "2026-11-01T00:00:00Z"}).json()
    assert str(old) in {str(r["id"]) for r in wide}


def test_validation_like_loop(loop: LoopSandboxServer) -> None:
    too_long = get(loop, "/warehouse/return/list", **{"from": "2026-01-01 00:00:00",
                                                      "to": "2026-06-01 00:00:00"})
    assert too_long.status_code == 422
    assert get(loop, "/warehouse/return/list", state="pending").status_code == 422
    assert get(loop, "/warehouse/return/list", pageSize="751",
               paginate="true").status_code == 422
    assert get(loop, "/warehouse/return/list", filter="edited_at").status_code == 422
    refused = httpx.get(f"{loop.base_url}/warehouse/return/list",
                        headers={"X-Authorization": "nope"})
    assert refused.status_code == 401
    assert refused.json()["error"]["http_code"] == "GEN-UNAUTHORIZED"


def test_cursor_pagination_with_next_page_url(loop: LoopSandboxServer) -> None:
    for i in range(7):
        loop.world.create(at=NOW - timedelta(minutes=10 + i), notify=False)
    page = get(loop, "/warehouse/return/list", paginate="true", pageSize="3").json()
    assert set(page) == {"returns", "nextPageUrl", "previousPageUrl"}
    seen = [r["id"] for r in page["returns"]]
    while page["nextPageUrl"]:
        page = httpx.get(page["nextPageUrl"], headers={"X-Authorization": KEY}).json()
        seen += [r["id"] for r in page["returns"]]
    assert len(seen) == 7 and len({str(s) for s in seen}) == 7


def test_updated_at_pages_follow_changes_made_between_pages() -> None:
    """Keyset paging by updated_at sees the world as it is at each page: a return changed
    after it was listed moves behind the cursor and is listed again; one changed before
    its turn is listed once, at its new place; the window's end still bounds the list."""
    clock = [NOW - timedelta(hours=5)]
    world = LoopWorld(clock=lambda: clock[0])
    with LoopSandboxServer(world, api_key=KEY) as loop:
        ids = [world.create(at=NOW - timedelta(hours=4, minutes=50 - i), notify=False)
               for i in range(6)]
        window = {"from": (NOW - timedelta(hours=6)).isoformat(),
                  "to": (NOW - timedelta(hours=1)).isoformat(),
                  "filter": "updated_at", "state": "open", "paginate": "true",
                  "pageSize": "2"}
        page = get(loop, "/warehouse/return/list", **window).json()
        seen = [int(r["id"]) for r in page["returns"]]
        assert seen == ids[:2]
        clock[0] = NOW - timedelta(hours=3)
        world.label(ids[0])  # listed already, changed after: moves past the cursor
        world.label(ids[3])  # not listed yet, changed before its turn
        clock[0] = NOW  # beyond the window's end: not listed again
        world.label(ids[4])  # changed after the window
        while page["nextPageUrl"]:
            page = httpx.get(page["nextPageUrl"], headers={"X-Authorization": KEY}).json()
            seen += [int(r["id"]) for r in page["returns"]]
    assert seen == [ids[0], ids[1], ids[2], ids[5], ids[0], ids[3]]


def test_rate_limit_answers_429() -> None:
    with LoopSandboxServer(LoopWorld(clock=lambda: NOW), api_key=KEY, rate_limit=3,
                           rate_period=60) as server:
        codes = [get(server, "/warehouse/return/list").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        assert server.stats.rate_limited == 2


def test_values_keep_loops_awkward_types(loop: LoopSandboxServer) -> None:
    w = loop.world
    rid = w.create(Scenario("refund", ("TEE-BLK-M", "TEE-BLK-M")), notify=False)
    w.lifecycle(rid)
    listed = get(loop, "/warehouse/return/list", state="closed",
                 **{"from": "2026-11-20T00:00:00Z"}).json()
    (ret,) = listed
    ids = [u["line_item_id"] for u in ret["line_items"]]
    assert {type(i) for i in ids} == {int, str}  # ids both ways
    assert isinstance(ret["refund"], str) and ret["refund"].count(".") == 1  # money strings
    assert ret["updated_at"].endswith("Z")
    assert ret["line_items"][0]["disposition"]["disposition_outcome"] == "back_to_stock"
    assert ret["label_status"] == "delivered"
    details = get(loop, "/warehouse/return/details", return_id=rid).json()
    assert "T" not in details["created_at"]  # the details view's zone-less timestamp
    asn = get(loop, "/warehouse/reporting/asn", **{"from": "2026-11-20T00:00:00Z",
                                                   "to": "2026-11-22T00:00:00Z"}).json()
    assert [r["restock_status"] for r in asn] == ["restocked", "restocked"]
    assert all(r["date_delivered"] for r in asn)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, self.headers.get("X-Loop-Signature", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_are_signed_and_dropped_duplicated_reordered_by_seed() -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/loop"
        dispatcher = WebhookDispatcher(url, "s3cret", drop_rate=0.1, duplicate_rate=0.2,
                                       reorder=True, seed=3)
        world = LoopWorld(dispatcher=dispatcher, clock=lambda: NOW)
        for _ in range(200):
            world.create()
        stats = dispatcher.flush()
    finally:
        server.shutdown()
    assert stats.emitted == 200
    assert stats.delivered == 200 - stats.dropped + stats.duplicated
    assert len(_Receiver.received) == stats.delivered
    assert 5 <= stats.dropped <= 35 and 20 <= stats.duplicated <= 60
    assert all(verify(body, sig, ["s3cret"]) for body, sig in _Receiver.received)
    assert all(b"\\/" in body for body, _ in _Receiver.received)  # PHP-style escaped slashes
    ids = [json.loads(body)["id"] for body, _ in _Receiver.received]
    assert ids != sorted(ids, key=int)  # reordered
    assert len(stats.dropped_refs) == stats.dropped


def test_keep_item_and_gift_card_flows_emit_what_loop_would() -> None:
    dispatcher = WebhookDispatcher()
    world = LoopWorld(dispatcher=dispatcher, clock=lambda: NOW)
    keep = world.create(Scenario("keep_item", ("SCARF-GRY",)))
    with pytest.raises(ValueError, match="keep-item"):
        world.label(keep)
    world.lifecycle(keep)
    credit = world.create(Scenario("credit", ("BOOT-TAN-9",)))
    world.lifecycle(credit)
    topics = [(p["topic"], p["trigger"]) for p in dispatcher.queue]
    assert topics.count(("giftcard", "giftcard.requested")) == 1
    assert ("restock", "restock.requested") in topics
    assert ("label", "label.created") in topics and ("label", "label.updated") in topics
    keep_events = [p for p in dispatcher.queue if str(p.get("id")) == str(keep)]
    assert all(p["topic"] == "return" for p in keep_events)  # no label, no restock
    assert world.get(keep).state == "closed"


def test_control_api_creates_and_advances_returns(loop: LoopSandboxServer) -> None:
    base = loop.base_url.removesuffix("/api/v1")
    made = httpx.post(f"{base}/_sandbox/returns",
                      json={"outcome": "exchange", "skus": ["JEAN-IND-32"]})
    assert made.status_code == 201
    rid = made.json()["id"]
    for step in ("label", "in_transit", "deliver", "grade", "restock", "close"):
        r = httpx.post(f"{base}/_sandbox/returns/{rid}/{step}")
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed"
    assert httpx.post(f"{base}/_sandbox/returns/{rid}/close").status_code == 409
    assert httpx.post(f"{base}/_sandbox/returns/{rid}/explode").status_code == 409
    assert httpx.post(f"{base}/_sandbox/returns/999/close").status_code == 404
    shown = httpx.get(f"{base}/_sandbox/returns/{rid}").json()
    assert shown["exchanges"][0]["exchange_order_name"] == f"#EX{rid}"
