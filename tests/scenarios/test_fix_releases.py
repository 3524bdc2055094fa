"""Fixing the cause releases a held return without a manual retry, and says how."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from returnbridge.flows.decide.reevaluate import reevaluate_if_mapping_changed
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import ExceptionRow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.conftest import LiveApp, make_settings, start_live_app
from tests.scenarios.test_posting_scenarios import MAPPING, loop_return, unit


def _stock_item(stock_id: str, code: str) -> dict[str, Any]:
    return {"StockID": stock_id, "StockCode": code, "ShortDescription": code, "Barcodes": [],
            "Options": {"PublishOnWeb": True, "Discontinued": False, "StockControlled": True}}


def _push(app: LiveApp, path: str, body: dict[str, Any]) -> httpx.Response:
    with app.khaos() as client:
        return client.post(path, content=json.dumps(body),
                           headers={"Content-Type": "application/json"})


def _ingest(app: LiveApp, body: dict[str, Any]) -> None:
    from returnbridge.flows.ingest.apply import apply_event
    from returnbridge.store.events import store_event

    raw = json.dumps(body).encode()
    stored = store_event(app.rt.sessions, source="loop", body=raw, headers={},
                         topic="return", trigger="return.updated", source_ref=str(body["id"]))
    apply_event(app.rt, stored.event_id)


def _status(rt: Runtime, ref: str) -> tuple[str, list[ExceptionRow]]:
    with rt.sessions() as s:
        row = ReturnsRepository(s).by_ref(ref)
        assert row is not None
        excs = s.query(ExceptionRow).filter(ExceptionRow.return_id == row.id).all()
        s.expunge_all()
        return row.khaos_status, excs


def _wait_status(rt: Runtime, ref: str, want: str, timeout: float = 15) -> list[ExceptionRow]:
    deadline = time.monotonic() + timeout
    while True:
        status, excs = _status(rt, ref)
        if status == want or time.monotonic() > deadline:
            assert status == want, (status, [(e.type, e.message) for e in excs])
            return excs
        time.sleep(0.1)


def test_pushing_the_missing_sku_releases_the_held_return(
        runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory, mapping=MAPPING)
    try:
        # The catalogue knows one item, so SKUs are checked; the return's SKU is missing.
        assert _push(app, "/khaos/stock", {"Items": [_stock_item("1", "TEE-BLK-M")],
                                           "Deleted": []}).status_code == 200
        _ingest(app, loop_return(501, [unit("SCARF-GRY", 1)]))
        _wait_status(app.rt, "LR-501", "held")
        # Khaos master data is fixed and pushed again: no retry by hand.
        assert _push(app, "/khaos/stock", {"Items": [_stock_item("2", "SCARF-GRY")],
                                           "Deleted": []}).status_code == 200
        excs = _wait_status(app.rt, "LR-501", "ready")
        (sku,) = [e for e in excs if e.type == "sku_mismatch"]
        assert sku.status == "resolved" and sku.resolved_by == "returnbridge"
        assert "Khaos stock update" in sku.resolution
    finally:
        app.stop()


def test_adding_a_mapping_releases_the_held_return_at_start_up(
        runtime_factory: Callable[..., Runtime]) -> None:
    narrow = {"reasons": [{"reason": "Too small", "khaos_reason_id": "6",
                           "processing": "restock"}]}
    rt = runtime_factory(mapping=narrow)
    assert reevaluate_if_mapping_changed(rt) is not None  # first start records the mapping
    from returnbridge.flows.ingest.apply import apply_event
    from returnbridge.store.events import store_event

    body = loop_return(502, [unit("TEE-BLK-M", 1, reason="Wrong colour")])
    stored = store_event(rt.sessions, source="loop", body=json.dumps(body).encode(), headers={},
                         topic="return", trigger="return.updated", source_ref="502")
    apply_event(rt, stored.event_id)
    assert _status(rt, "LR-502")[0] == "held"
    assert reevaluate_if_mapping_changed(rt) is None  # same mapping: nothing to do

    wider = {"reasons": [*narrow["reasons"],
                         {"reason": "Wrong colour", "khaos_reason_id": "6",
                          "processing": "restock"}]}
    settings = make_settings(rt.settings.database.url, mapping=wider)
    restarted = Runtime(settings, rt.engine, rt.sessions)
    result = reevaluate_if_mapping_changed(restarted)
    assert result is not None and result.released == 1
    status, excs = _status(rt, "LR-502")
    assert status == "ready"
    (unmapped,) = excs
    assert unmapped.status == "resolved"
    assert "mapping or policy configuration changed" in unmapped.resolution


def test_setting_the_khaos_currency_releases_a_currency_mismatch_at_start_up(
        runtime_factory: Callable[..., Runtime]) -> None:
    from returnbridge.flows.ingest.apply import apply_event
    from returnbridge.store.events import store_event

    rt = runtime_factory(mapping=MAPPING)  # [khaos].currency defaults to GBP
    assert reevaluate_if_mapping_changed(rt) is not None
    body = loop_return(503, [unit("TEE-BLK-M", 1)])
    body["currency"] = "EUR"
    stored = store_event(rt.sessions, source="loop", body=json.dumps(body).encode(), headers={},
                         topic="return", trigger="return.updated", source_ref="503")
    apply_event(rt, stored.event_id)
    status, excs = _status(rt, "LR-503")
    assert status == "held" and [e.type for e in excs] == ["currency_mismatch"]
    assert excs[0].owner == "finance" and "EUR" in excs[0].message

    settings = make_settings(rt.settings.database.url, mapping=MAPPING,
                             khaos={"currency": "EUR"})
    result = reevaluate_if_mapping_changed(Runtime(settings, rt.engine, rt.sessions))
    assert result is not None and result.released == 1
    status, excs = _status(rt, "LR-503")
    assert status == "ready" and excs[0].status == "resolved"
