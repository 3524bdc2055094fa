"""Shared set-up: a live returnbridge, a Loop sender, and a Khaos sandbox with master data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.loop.samples import CATALOGUE, REASONS, Scenario, return_payload
from returnbridge.sandbox.loop.sender import LoopSender
from tests.conftest import KHAOS_PASSWORD, KHAOS_USER, LOOP_SECRET, LiveApp, start_live_app

RESTOCK, WRITE_OFF = "6", "7"
RETURNS_SITE, OTHER_SITE = 1, 2
DAMAGED = next(i for i, (reason, _) in enumerate(REASONS) if "damaged" in reason.lower())


def make_sandbox(app: LiveApp, *, skip_skus: tuple[str, ...] = (),
                 reasons: dict[str, str] | None = None, **kwargs: Any) -> KhaosSandbox:
    """A Khaos system knowing the Loop sample catalogue (10 of each at both sites), the
    LOOPWEB customer and the two mapped reasons."""
    khaos = KhaosSandbox(f"{app.base_url}/khaos/config.json", KHAOS_USER, KHAOS_PASSWORD,
                         reasons=reasons if reasons is not None
                         else {RESTOCK: "restock", WRITE_OFF: "write_off"}, **kwargs)
    for sku in CATALOGUE:
        if sku not in skip_skus:
            khaos.add_item(sku, other_ref=f"OR-{sku}", barcodes=(f"50{abs(hash(sku)) % 10**10}",),
                           levels={RETURNS_SITE: 10, OTHER_SITE: 10})
    khaos.add_customer("LOOPWEB", "webshop@example.com", "Web shop customers")
    return khaos


def warehouse_process(khaos: KhaosSandbox, associated_ref: str) -> None:
    """The warehouse books the goods in and clicks Process on the return in Khaos (over the
    sandbox's HTTP interface; its SOAP service must be running)."""
    record = khaos.return_for(associated_ref)
    assert record is not None, associated_ref
    base = khaos.state_url.removesuffix("/state")
    answer = httpx.post(f"{base}/state/process/{record.return_code}", timeout=10)
    assert answer.status_code == 200, answer.text


def return_id_with_reason(start: int, damaged: bool) -> int:
    """A return id whose single unit gets a damaged (write-off) reason, or not."""
    rid = start
    while ((rid % len(REASONS)) == DAMAGED) != damaged:
        rid += 1
    return rid


def send_returns(app: LiveApp, payloads: list[dict[str, Any]]) -> list[str]:
    sender = LoopSender(f"{app.base_url}/webhooks/loop", LOOP_SECRET)
    try:
        for payload in payloads:
            assert sender.send(payload).status_code == 200
    finally:
        sender.close()
    return [f"LR-{p['id']}" for p in payloads]


def refund(return_id: int, *skus: str) -> dict[str, Any]:
    return return_payload(return_id, Scenario("refund", skus or ("SCARF-GRY",)))


@contextmanager
def live(runtime_factory: Callable[..., Runtime], **sections: Any) -> Iterator[LiveApp]:
    app = start_live_app(runtime_factory, **sections)
    try:
        yield app
    finally:
        app.stop()
