"""Webhook deliveries are answered by a lean ASGI layer (WebhookFastPath) in front of FastAPI;
the FastAPI route documents the same endpoint. Both doors must answer every case alike,
byte for byte: stored, duplicate, bad signature, unknown platform, body too large."""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sources.loop.signature import sign
from returnbridge.store.models import InboundEvent
from returnbridge.web import webhooks
from returnbridge.web.app import create_app
from returnbridge.web.limits import RequestGuard
from tests.conftest import LOOP_SECRET


def _cases(limit: int) -> list[tuple[str, bytes, dict[str, str]]]:
    body = php_json(return_payload(4242, Scenario("refund", ("TEE-BLK-M",))))
    good = {"X-Loop-Signature": sign(body, LOOP_SECRET), "Content-Type": "application/json"}
    big = b"x" * (limit + 1)
    return [("/webhooks/loop", body, good),  # stored
            ("/webhooks/loop", body, good),  # duplicate
            ("/webhooks/loop", body, {"X-Loop-Signature": sign(body, "wrong")}),
            ("/webhooks/nosuch", body, good),
            ("/webhooks/loop", big, {"X-Loop-Signature": sign(big, LOOP_SECRET)})]


def _answers(app: Any, limit: int) -> list[tuple[int, bytes, str]]:
    with TestClient(app) as client:
        out = []
        for path, body, headers in _cases(limit):
            r = client.post(path, content=body, headers=headers)
            out.append((r.status_code, re.sub(rb'"event_id":\d+', b'"event_id":N', r.content),
                        r.headers["content-type"]))
        return out


def test_the_fast_path_answers_as_the_documented_route(runtime: Runtime) -> None:
    limit = runtime.settings.server.max_body_bytes
    fast = _answers(create_app(runtime, None), limit)
    with runtime.sessions() as s, s.begin():
        s.execute(delete(InboundEvent))  # the route starts from the same empty inbox

    plain = FastAPI()  # the route alone, behind the same guard: no fast path in front
    plain.add_middleware(RequestGuard, settings=runtime.settings)
    full = create_app(runtime, None)
    plain.state.ctx = full.state.ctx
    plain.include_router(webhooks.router)
    route = _answers(plain, limit)

    assert [a[0] for a in fast] == [200, 200, 401, 404, 413]
    assert fast[0][1] == b'{"status":"stored","event_id":N}'
    assert fast[1][1] == b'{"status":"duplicate","event_id":N}'
    assert b"larger than" in fast[4][1]
    assert fast == route
