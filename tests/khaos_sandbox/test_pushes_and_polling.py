"""The sandbox's channel behaviour: config over Basic auth, polling with
Sirion-Continuation, pushes of at most 100 stock statuses per POST, retried until 200."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.service import free_port
from returnbridge.store.models import StockLevel
from tests.khaos_sandbox._support import (
    RETURNS_SITE,
    live,
    make_sandbox,
    refund,
    return_id_with_reason,
    send_returns,
)


class Recorder:
    """A stand-in for returnbridge's channel that fails the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[int] = []
        self.port = free_port()
        base = f"http://127.0.0.1:{self.port}"
        app = FastAPI()

        @app.get("/khaos/config.json")
        def config() -> dict[str, Any]:
            return {"EndpointConfig": {
                "CReturnDownload": {"URL": f"{base}/khaos/returns", "Format": "JSON",
                                    "Frequency": 15},
                "StockStatusUpload": {"URL": f"{base}/khaos/stock-status", "Format": "JSON"},
                "StockUpload": {"URL": f"{base}/khaos/stock", "Format": "JSON"}}}

        @app.post("/khaos/{kind}")
        async def push(kind: str, request: Request) -> JSONResponse:
            self.posts.append((kind, await request.json()))
            status = 500 if len(self.posts) <= self.fail_first else 200
            self.answers.append(status)
            return JSONResponse({}, status_code=status)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.config_url = f"{base}/khaos/config.json"


@contextmanager
def recorder(fail_first: int = 0) -> Iterator[Recorder]:
    rec = Recorder(fail_first)
    thread = threading.Thread(target=rec.server.run, daemon=True)
    thread.start()
    while not rec.server.started:
        time.sleep(0.02)
    try:
        yield rec
    finally:
        rec.server.should_exit = True
        thread.join(10)


def test_stock_statuses_go_at_most_100_per_post_and_non_200_is_retried() -> None:
    with recorder(fail_first=1) as rec:
        khaos = KhaosSandbox(rec.config_url, "u", "p", push_attempts=3)
        for i in range(230):
            khaos.add_item(f"SKU-{i:03d}", levels={1: i})
        report = khaos.push_stock_statuses()
        assert (report.posts, report.items, report.failed_posts) == (3, 230, 0)
        assert rec.answers[0] == 500 and rec.answers.count(200) == 3
        sizes = [len(body["Statuses"]) for _, body in rec.posts]
        assert sizes == [100, 100, 100, 30]  # the first batch twice: 500, then 200
        first = rec.posts[1][1]["Statuses"][0]
        assert first == {"StockCode": "SKU-000", "StockID": first["StockID"], "SiteID": 1,
                         "Levels": {"Available": 0.0, "OnOrder": 0.0}}
        assert isinstance(first["StockID"], str)
        assert khaos.push_stock_statuses().posts == 0  # nothing changed since


def test_a_push_never_accepted_stays_pending_for_the_next_one() -> None:
    with recorder(fail_first=3) as rec:
        khaos = KhaosSandbox(rec.config_url, "u", "p", push_attempts=3)
        khaos.add_item("ONLY", levels={1: 4})
        assert khaos.push_stock_statuses().failed_posts == 1
        report = khaos.push_stock_statuses()
        assert (report.posts, report.failed_posts) == (1, 0)
        assert [len(b["Statuses"]) for _, b in rec.posts] == [1, 1, 1, 1]


def test_stock_upload_pushes_the_catalogue() -> None:
    with recorder() as rec:
        khaos = KhaosSandbox(rec.config_url, "u", "p")
        khaos.add_item("WEB-1", other_ref="O1", barcodes=("123",), publish_on_web=True)
        khaos.add_item("OLD-1", discontinued=True, publish_on_web=False)
        assert khaos.push_stock_items().posts == 1
        [(kind, body)] = rec.posts
    assert kind == "stock" and body["Deleted"] == []
    items = {i["StockCode"]: i for i in body["Items"]}
    assert items["WEB-1"]["Barcodes"] == [{"Barcode": "123"}]
    assert items["OLD-1"]["Options"]["Discontinued"] is True
    assert items["OLD-1"]["Options"]["PublishOnWeb"] is False


def test_processing_pushes_the_new_level_to_returnbridge(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory) as app:
        [ref] = send_returns(app, [refund(return_id_with_reason(2000, damaged=False),
                                          "SCARF-GRY")])
        khaos = make_sandbox(app)
        try:
            khaos.poll_once()
            khaos.process_by_ref(ref)
            item = khaos.state.item_by_code("SCARF-GRY")
        finally:
            khaos.close()
        with app.rt.sessions() as s:
            level = s.scalars(select(StockLevel).where(
                StockLevel.stock_id == item.stock_id,
                StockLevel.site_id == str(RETURNS_SITE))).first()
    assert level is not None and level.available == Decimal(11)


def test_polling_follows_continuation_and_runs_on_a_schedule(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory, khaos={"page_size": 2}) as app:
        refs = send_returns(app, [refund(return_id_with_reason(2100 + 4 * i, damaged=False))
                                  for i in range(5)])
        khaos = make_sandbox(app)
        try:
            assert khaos.poll_interval_seconds == 15 * 60  # the configured Frequency
            khaos.start_polling(interval_seconds=0.2)
            deadline = time.monotonic() + 20
            while len(khaos.imported) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            khaos.close()
    assert sorted(khaos.imported) == sorted(refs) and not khaos.failures
    assert khaos.continuations[:3] == ["2019-12-31 12:00:00Z", khaos.continuations[1],
                                       khaos.continuations[2]]
    assert khaos.continuations[1] != khaos.continuations[0]
