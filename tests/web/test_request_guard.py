"""Security review findings on the HTTP face (issue 16), each over a real socket against
``create_app`` served by uvicorn with the production server options."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sources.loop.signature import sign
from tests.conftest import API_TOKEN, LOOP_SECRET, LiveApp, start_live_app


def _raw(app: LiveApp, head: str, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=10)
    sock.sendall(head.encode("latin-1") + b"\r\n" + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of the response; the server has answered by the time this returns."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest


def _post_head(path: str, length: int, extra: str = "") -> str:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}")


@pytest.fixture
def app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    live = start_live_app(runtime_factory, server={"body_read_timeout_seconds": 1.0})
    yield live
    live.stop()


def test_unauthenticated_api_post_is_refused_before_its_body_is_read(app: LiveApp) -> None:
    # 100 MB announced, nothing sent: the answer comes without the server waiting for it.
    sock = _raw(app, _post_head("/api/v1/exceptions/1/resolve", 100_000_000))
    status, body = _answer(sock)
    sock.close()
    assert status == 413 and b"max_api_body_bytes" in body
    # A small body without a token: 401, and the body is never read (none was sent).
    sock = _raw(app, _post_head("/api/v1/returns/LR-1/confirm-credit", 2_000))
    status, _ = _answer(sock)
    sock.close()
    assert status == 401


def test_infinite_number_without_token_is_401_and_with_token_422(app: LiveApp) -> None:
    body = b'{"credit_note_code":"CN1","value":1e400,"by":"ann","why":"checked"}'
    with app.client() as c:
        anonymous = c.post("/api/v1/returns/LR-1/confirm-credit", content=body,
                           headers={"Content-Type": "application/json"})
    with app.api() as api:
        authed = api.post("/api/v1/returns/LR-1/confirm-credit", content=body,
                          headers={"Content-Type": "application/json"})
        broken = api.post("/api/v1/returns/LR-1/confirm-credit", content=b'{"value": ',
                          headers={"Content-Type": "application/json"})
        deep = api.post("/api/v1/exceptions/1/resolve", content=b"[" * 20_000 + b"]" * 20_000,
                        headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401
    assert authed.status_code == 422 and "value" in authed.text
    assert broken.status_code == 422
    assert 400 <= deep.status_code < 500


def test_streamed_bodies_over_each_route_class_limit_get_413(
        runtime_factory: Callable[..., Runtime]) -> None:
    live = start_live_app(runtime_factory, server={"max_body_bytes": 2048},
                          khaos={"max_push_bytes": 4096})
    try:
        def chunks(total: int) -> Iterator[bytes]:  # chunked: no Content-Length to trust
            for _ in range(total // 1024):
                yield b" " * 1024

        with live.client() as c:
            loop = c.post("/webhooks/loop", content=chunks(8192),
                          headers={"X-Loop-Signature": sign(b"", LOOP_SECRET)})
            zigzag = c.post("/webhooks/zigzag", content=chunks(8192))
        with live.khaos() as k:
            small_push = k.post("/khaos/stock", content=b"{" + b" " * 3000 + b"}")
            big_push = k.post("/khaos/stock", content=chunks(16384))
        with live.api() as api:
            api_big = api.post("/api/v1/exceptions/1/resolve", content=chunks(131072))
    finally:
        live.stop()
    assert loop.status_code == 413 and "max_body_bytes" in loop.text
    assert zigzag.status_code in (401, 413)  # no ZigZag credentials configured: 401 first
    assert small_push.status_code == 200  # under the push limit although over the webhook one
    assert big_push.status_code == 413 and "max_push_bytes" in big_push.text
    assert api_big.status_code == 413


def test_a_body_that_stops_arriving_gets_408(app: LiveApp) -> None:
    sock = _raw(app, _post_head("/webhooks/loop", 1000), b"{" + b" " * 20)
    status, body = _answer(sock)  # nothing more is sent; the server gives up on its own
    sock.close()
    assert status == 408 and b"did not arrive" in body


def test_client_abandoning_a_body_logs_one_line_and_no_traceback(
        app: LiveApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with structlog.testing.capture_logs() as captured:
        sock = _raw(app, _post_head("/webhooks/loop", 50_000), b"{" + b" " * 5000)
        time.sleep(0.2)  # let the server start reading; then hang up mid-body
        sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                "went away" in e["event"] for e in captured):
            time.sleep(0.05)
    gone = [e for e in captured if "went away" in e["event"]]
    assert len(gone) == 1 and gone[0]["path"] == "/webhooks/loop"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def test_connection_limit_answers_503_beyond_it(runtime_factory: Callable[..., Runtime]
                                                ) -> None:
    live = start_live_app(runtime_factory, server={"limit_concurrency": 3})
    held: list[socket.socket] = []
    try:
        for _ in range(5):  # half-sent bodies, more than the limit
            held.append(_raw(live, _post_head("/webhooks/loop", 1000), b"{"))
            time.sleep(0.1)
        with live.client() as c:
            assert c.get("/healthz").status_code == 503
    finally:
        for sock in held:
            sock.close()
        live.stop()


def test_metrics_and_api_docs_are_closed_by_default(app: LiveApp) -> None:
    with app.client() as c:
        assert c.get("/metrics").status_code == 403
        assert c.get("/api/docs").status_code == 404
        assert c.get("/api/openapi.json").status_code == 404


def test_api_docs_and_public_metrics_when_configured(
        runtime_factory: Callable[..., Runtime]) -> None:
    live = start_live_app(runtime_factory, server={"api_docs": True},
                          api={"metrics_public": True})
    try:
        with live.client() as c:
            assert c.get("/api/openapi.json").json()["info"]["title"] == "returnbridge"
            assert "returnbridge_webhooks_total" in c.get("/metrics").text
    finally:
        live.stop()


def test_readyz_hides_the_database_error(runtime_factory: Callable[..., Runtime],
                                        tmp_path: Any) -> None:
    live = start_live_app(runtime_factory)
    try:
        # The database goes away under the running service.
        live.rt.engine.dispose()
        bad = "postgresql+psycopg://rb:hunter2-secret@127.0.0.1:1/nowhere"
        from returnbridge.store.db import make_engine

        live.rt.engine = make_engine(bad)
        with live.client() as c:
            r = c.get("/readyz")
    finally:
        live.stop()
    assert r.status_code == 503
    assert r.json() == {"status": "not ready",
                        "reason": "database unreachable (see the service log)"}
    assert "127.0.0.1" not in r.text and "hunter2" not in r.text


def test_api_token_still_works_for_bodies(app: LiveApp) -> None:
    with app.client(headers={"Authorization": f"Bearer {API_TOKEN}"}) as c:
        r = c.post("/api/v1/exceptions/999/resolve", json={"by": "ann", "why": "x"})
    assert r.status_code == 404
