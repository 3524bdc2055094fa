"""POST /webhooks/{source}: verify on the raw bytes, store, answer, then process."""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from returnbridge.sources.loop import signature
from returnbridge.sources.loop.parser import envelope
from returnbridge.store.events import StoredEvent, store_event
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import WEBHOOKS

router = APIRouter()
log = structlog.get_logger(__name__)

_KEPT_HEADERS = ("content-type", "user-agent", "x-loop-signature", "content-length")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _peek(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nested too deep
        return None


@router.post("/webhooks/loop")
async def loop_webhook(request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    settings = ctx.rt.settings
    try:
        body = await read_body(request, settings.server.max_body_bytes)
    except BodyTooLarge:
        WEBHOOKS.labels("loop", "too_large").inc()
        return JSONResponse({"error": f"body larger than {settings.server.max_body_bytes} "
                             "bytes"}, status_code=413)
    secrets = [s.get_secret_value() for s in settings.loop.webhook_secrets]
    if not signature.verify(body, request.headers.get(signature.HEADER), secrets):
        WEBHOOKS.labels("loop", "bad_signature").inc()
        await run_in_threadpool(ctx.signature_failures.note, "loop")
        return JSONResponse({"error": "X-Loop-Signature does not match any configured "
                             "webhook secret"}, status_code=401)
    topic, trigger, ref = envelope(_peek(body))
    headers = {k: v for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS}
    try:
        stored: StoredEvent = await run_in_threadpool(
            store_event, ctx.rt.sessions, source="loop", body=body, headers=headers,
            topic=topic, trigger=trigger, source_ref=ref,
        )
    except SQLAlchemyError as exc:
        # Not stored: a 5xx makes Loop retry, which is what we want.
        WEBHOOKS.labels("loop", "store_failed").inc()
        log.error("could not store webhook", source="loop", error=str(exc))
        return JSONResponse({"error": "could not store the event; please retry"},
                            status_code=500)
    WEBHOOKS.labels("loop", "duplicate" if stored.duplicate else "stored").inc()
    if ctx.enqueue is not None and not stored.duplicate:
        try:
            await run_in_threadpool(ctx.enqueue, "loop", stored.dedupe_key, stored.event_id)
        except Exception as exc:  # stored already; the pump will enqueue it
            log.warning("enqueue failed; the event pump will pick it up",
                        event_id=stored.event_id, error=str(exc))
    return JSONResponse({"status": "duplicate" if stored.duplicate else "stored",
                         "event_id": stored.event_id})
