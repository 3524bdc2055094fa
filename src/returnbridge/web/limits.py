"""ASGI guard in front of every route: authentication before parsing, body size limits,
body read timeouts, and quiet handling of clients that go away mid-body.

Why an ASGI middleware and not route code: FastAPI reads and parses a declared JSON body
before any dependency (the bearer check) runs, so an unauthenticated client could make the
server buffer and parse whatever it sent. Here:

- every request is classified by path (webhooks, Khaos channel, everything else) and gets
  that class's size limit; a declared ``Content-Length`` over the limit is answered 413 at
  once, before a byte of the body is read; a body that turns out larger while streaming is
  cut off at the limit with 413 (the connection is closed, the rest is never read);
- a request with a body on ``/api/`` must carry credentials the installation accepts
  (``authorize``) before its body is read: else 401 without reading;
- a body whose next piece does not arrive within ``body_read_timeout_seconds`` (or whose
  whole body takes longer than ``body_read_deadline_seconds``) is answered 408 and closed;
- a client that disconnects mid-body is logged as one line, never a traceback.

Once this guard has answered, whatever the application still tries to send is dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from returnbridge.config import Settings

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Authorize = Callable[[dict[str, str]], bool]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RouteClass:
    name: str  # "webhook" | "khaos" | "api" | "other"
    max_body_bytes: int
    setting: str  # the key that sets the limit, for the 413 message


def route_class(path: str, settings: Settings) -> RouteClass:
    server = settings.server
    if path.startswith("/webhooks/"):
        return RouteClass("webhook", server.max_body_bytes, "[server].max_body_bytes")
    if path.startswith("/khaos/"):
        return RouteClass("khaos", settings.khaos.max_push_bytes, "[khaos].max_push_bytes")
    if path.startswith("/api/"):
        return RouteClass("api", server.max_api_body_bytes, "[server].max_api_body_bytes")
    return RouteClass("other", server.max_api_body_bytes, "[server].max_api_body_bytes")


class _Answered(Exception):
    """The guard has answered the request; the application must stop."""


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings,
                 authorize: dict[str, Authorize] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.authorize = authorize or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        rc = route_class(path, self.settings)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET")
        state = _State()

        async def guarded_send(message: Message) -> None:
            if state.answered:
                return  # we already answered; drop the application's late output
            if message["type"] == "http.response.start":
                state.started = True
            await send(message)

        async def answer(status: int, error: str, extra: dict[str, str] | None = None
                         ) -> None:
            if state.answered or state.started:
                state.answered = True
                return
            state.answered = True
            body = json.dumps({"error": error}).encode()
            hdrs = [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")]
            hdrs += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})

        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > rc.max_body_bytes:
            await answer(413, f"body larger than {rc.max_body_bytes} bytes ({rc.setting})")
            return
        check = self.authorize.get(rc.name)
        has_body = method in _BODY_METHODS
        if check is not None and has_body and not check(headers):
            await answer(401, "credentials required before a body is accepted",
                         {"www-authenticate": "Bearer"})
            return

        server = self.settings.server
        deadline = time.monotonic() + server.body_read_deadline_seconds

        async def guarded_receive() -> Message:
            if state.answered:
                raise _Answered
            if state.body_done:
                return await receive()  # after the body: only disconnect notices
            remaining = min(server.body_read_timeout_seconds, deadline - time.monotonic())
            try:
                # asyncio.timeout, not wait_for: wait_for wraps receive() in a task of its
                # own, an extra turn of the event loop for every piece of every body.
                async with asyncio.timeout(max(remaining, 0.001)):
                    message = await receive()
            except TimeoutError:
                log.info("request body timed out; answered 408", path=path,
                         received_bytes=state.size)
                await answer(408, "the request body did not arrive in time")
                raise _Answered from None
            if message["type"] == "http.disconnect":
                raise _Disconnected
            if message["type"] == "http.request":
                state.size += len(message.get("body", b""))
                if state.size > rc.max_body_bytes:
                    await answer(413, f"body larger than {rc.max_body_bytes} bytes "
                                 f"({rc.setting})")
                    raise _Answered
                if not message.get("more_body", False):
                    state.body_done = True
            return message

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Answered:
            return
        except (_Disconnected, ClientDisconnect):
            log.info("client went away before its request body was complete", path=path,
                     method=method, received_bytes=state.size)
            state.answered = True
        except BaseExceptionGroup as group:  # anyio task groups wrap what we raised
            if group.subgroup((_Answered, _Disconnected, ClientDisconnect)) is None:
                raise
            rest = group.subgroup(lambda e: not isinstance(
                e, _Answered | _Disconnected | ClientDisconnect))
            if rest is not None:
                raise rest from None
            if not state.answered:
                log.info("client went away before its request body was complete",
                         path=path, method=method, received_bytes=state.size)


@dataclass
class _State:
    answered: bool = False
    started: bool = False
    body_done: bool = False
    size: int = 0


MAX_HEAD_BYTES = 32 * 1024  # request line and headers together


class HeadTooLarge(Exception):
    """The request line and headers are longer than MAX_HEAD_BYTES."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (a C parser: about half the interpreter time h11 takes
    per request) with a limit on the request head, which it does not have: without one a
    client could make the server hold megabytes of headers. Over the limit the parser stops
    and uvicorn answers 400 and closes the connection."""

    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn server options from [server] (timeouts and connection limits)."""
    server = settings.server
    return {
        "http": BoundedHttpToolsProtocol,
        "access_log": server.access_log,
        "timeout_keep_alive": server.timeout_keep_alive_seconds,
        "limit_concurrency": server.limit_concurrency,
        "timeout_graceful_shutdown": 10,
        "server_header": False,
    }
