"""POST /webhooks/{platform}: the platform's verifier, then store, answer, then process.

The answer is decided by :func:`accept`. Two doors lead to it: the FastAPI route (what the
OpenAPI page documents) and :class:`WebhookFastPath`, a plain ASGI layer just inside the
request guard that answers ``POST /webhooks/<name>`` without FastAPI's routing, dependency
solving and exception wrappers. Under a burst of deliveries those cost more interpreter time
than the webhook's own work, and the interpreter is what every request queues for. Both
doors give the same answers, byte for byte; the guard (size limits, read timeouts, clients
that go away) is in front of both.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from returnbridge.store.events import StoredEvent
from returnbridge.store.inbox import NewEvent
from returnbridge.web.context import AppContext
from returnbridge.web.limits import ASGIApp, Receive, Scope, Send
from returnbridge.web.metrics import WEBHOOKS

router = APIRouter()
log = structlog.get_logger(__name__)

_PATH = re.compile(r"/webhooks/([^/]+)")


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    content: dict[str, Any]

    def body(self) -> bytes:
        """As Starlette's JSONResponse renders it."""
        return json.dumps(self.content, ensure_ascii=False, allow_nan=False, indent=None,
                          separators=(",", ":")).encode("utf-8")


async def read_body(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
    return b"".join(parts)


def _too_large(platform: str, limit: int) -> Answer:
    WEBHOOKS.labels(platform, "too_large").inc()
    # 413 is not retried by the platforms that list what they retry: the same bytes would
    # fail again.
    return Answer(413, {"error": f"body larger than {limit} bytes"})


async def accept(ctx: AppContext, platform_name: str, headers: dict[str, str],
                 chunks: Callable[[], AsyncIterator[bytes]]) -> Answer:
    """Authenticate a delivery with its platform's verifier, store the raw event, answer.

    ``headers`` have lower-case names. A stored event gets 200 even if it later turns out
    invalid (it is kept and raises payload_invalid); a failure before storing gets 500, which
    every platform retries; bad credentials get 401 (retried where the platform retries it,
    so a mis-set secret loses nothing)."""
    settings = ctx.rt.settings
    platform = ctx.rt.platforms.get(platform_name)
    if platform is None:
        return Answer(404, {"error": f"no returns platform named {platform_name!r}"})
    name = platform.name
    section = platform.settings(settings)
    limit = settings.server.max_body_bytes
    if not platform.authenticates_on_body:
        why = platform.authenticate(section, headers, None)
        if why:
            return await _refused(ctx, name, platform.auth_failure_label, why)
    try:
        body = await read_body(chunks(), headers.get("content-length"), limit)
    except BodyTooLarge:
        return _too_large(name, limit)
    # A client that goes away mid-body is the request guard's (web/limits.py): one log line.
    if platform.authenticates_on_body:
        why = platform.authenticate(section, headers, body)
        if why:
            return await _refused(ctx, name, platform.auth_failure_label, why)
    routing = platform.route(section, body)
    kept = {k: v for k, v in headers.items() if k in platform.kept_headers}
    try:
        stored: StoredEvent = await ctx.inbox.store(NewEvent(
            source=name, body=body, headers=kept, dedupe_key=routing.dedupe_key or None,
            topic=routing.topic, trigger=routing.trigger, source_ref=routing.source_ref))
    except Exception as exc:
        # Not stored: a 5xx makes the platform retry, which is what we want.
        WEBHOOKS.labels(name, "store_failed").inc()
        log.error("could not store webhook", source=name, error=str(exc))
        return Answer(500, {"error": "could not store the event; please retry"})
    WEBHOOKS.labels(name, "duplicate" if stored.duplicate else "stored").inc()
    await ctx.after_store(stored)
    return Answer(200, {"status": "duplicate" if stored.duplicate else "stored",
                        "event_id": stored.event_id})


async def _refused(ctx: AppContext, platform: str, label: str, why: str) -> Answer:
    WEBHOOKS.labels(platform, label).inc()
    await run_in_threadpool(ctx.signature_failures.note, platform)
    return Answer(401, {"error": why})


@router.post("/webhooks/{platform_name}")
async def platform_webhook(request: Request, platform_name: str) -> JSONResponse:
    """Authenticate a delivery with its platform's verifier, store the raw event, answer.

    A stored event gets 200 even if it later turns out invalid (it is kept and raises
    payload_invalid); a failure before storing gets 500, which every platform retries; bad
    credentials get 401 (retried where the platform retries it, so a mis-set secret loses
    nothing)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = await accept(request.app.state.ctx, platform_name, headers, request.stream)
    return JSONResponse(answer.content, status_code=answer.status)


class WebhookFastPath:
    """``POST /webhooks/<name>`` answered by :func:`accept` straight from ASGI; every other
    request goes on to the application."""

    def __init__(self, app: ASGIApp, context: Callable[[], AppContext]) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope.get("method") == "POST":
            match = _PATH.fullmatch(scope.get("path", ""))
        if match is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect  # the request guard logs it, in one line
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        ctx = self.context()
        ctx.in_flight.count += 1
        try:
            answer = await accept(ctx, match.group(1), headers, chunks)
            await _send_json(send, answer)
        finally:
            ctx.in_flight.count -= 1


async def _send_json(send: Send, answer: Answer) -> None:
    body = answer.body()
    await send({"type": "http.response.start", "status": answer.status,
                "headers": [(b"content-length", str(len(body)).encode("latin-1")),
                            (b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
