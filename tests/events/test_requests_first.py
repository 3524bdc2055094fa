"""In `serve`, the event worker and the webhook handlers share one interpreter: between
batches the worker lets deliveries being answered finish first, and the count of
deliveries in flight always returns to zero (a leak would slow every batch)."""

from typing import Any

from fastapi.testclient import TestClient

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.worker import EventWorker
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sources.loop.signature import sign
from returnbridge.web.app import create_app
from tests.conftest import LOOP_SECRET


def test_every_answer_leaves_no_delivery_in_flight(runtime: Runtime) -> None:
    app = create_app(runtime, None)
    body = php_json(return_payload(9191, Scenario("refund", ("TEE-BLK-M",))))
    with TestClient(app) as client:
        statuses = [
            client.post("/webhooks/loop", content=body,
                        headers={"X-Loop-Signature": sign(body, LOOP_SECRET)}).status_code,
            client.post("/webhooks/loop", content=body,
                        headers={"X-Loop-Signature": "wrong"}).status_code,
            client.post("/webhooks/nosuch", content=body).status_code,
        ]
    assert statuses == [200, 401, 404]
    assert app.state.ctx.in_flight.count == 0 and not app.state.ctx.in_flight.busy()


def test_the_worker_waits_while_deliveries_are_answered(runtime: Runtime) -> None:
    worker = EventWorker(runtime)
    asked: list[bool] = []

    def answering_three_more() -> bool:
        asked.append(len(asked) < 3)
        return asked[-1]

    worker.requests_waiting = answering_three_more
    worker._let_requests_through()
    assert asked == [True, True, True, False]  # waited until the answers were out

    always: list[int] = []

    def never_done() -> bool:
        always.append(1)
        return True

    worker.requests_waiting = never_done
    worker._let_requests_through()  # bounded: processing is never starved
    assert len(always) >= 2


def test_a_worker_outside_serve_never_waits(runtime: Runtime) -> None:
    worker: Any = EventWorker(runtime)
    assert worker.requests_waiting is None
    worker._let_requests_through()  # returns at once, nothing to ask
