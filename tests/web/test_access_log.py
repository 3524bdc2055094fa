"""`[server].access_log`: one log line per request, or none for installations whose proxy
logs requests. Over real HTTP, with the options `serve` gives uvicorn."""

import logging
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.service import free_port
from returnbridge.web.app import create_app
from returnbridge.web.limits import uvicorn_options


def _access_lines(rt: Runtime, caplog: pytest.LogCaptureFixture) -> list[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(rt, None), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="off",
                                           **uvicorn_options(rt.settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        server.should_exit = True
        thread.join(10)
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]


def test_each_request_is_logged_by_default(runtime_factory: Any,
                                           caplog: pytest.LogCaptureFixture) -> None:
    lines = _access_lines(runtime_factory(), caplog)
    assert any("/healthz" in line and "200" in line for line in lines)


def test_the_access_log_can_be_turned_off(runtime_factory: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    assert _access_lines(runtime_factory(server={"access_log": False}), caplog) == []
