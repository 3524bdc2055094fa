"""POST /webhooks/{platform}: the platform's verifier, then store, answer, then process."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from returnbridge.store.events import StoredEvent
from returnbridge.store.inbox import NewEvent
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import WEBHOOKS

router = APIRouter()
log = structlog.get_logger(__name__)

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


def _too_large(platform: str, limit: int) -> JSONResponse:
    WEBHOOKS.labels(platform, "too_large").inc()
    # 413 is not retried by the platforms that list what they retry: the same bytes would
    # fail again.
    return JSONResponse({"error": f"body larger than {limit} bytes"}, status_code=413)


@router.post("/webhooks/{platform_name}")
async def platform_webhook(request: Request, platform_name: str) -> JSONResponse:
    """Authenticate a delivery with its platform's verifier, store the raw event, answer.

    A stored event gets 200 even if it later turns out invalid (it is kept and raises
    payload_invalid); a failure before storing gets 500, which every platform retries; bad
    credentials get 401 (retried where the platform retries it, so a mis-set secret loses
    nothing)."""
    ctx: AppContext = request.app.state.ctx
    settings = ctx.rt.settings
    platform = ctx.rt.platforms.get(platform_name)
    if platform is None:
        return JSONResponse({"error": f"no returns platform named {platform_name!r}"},
                            status_code=404)
    name = platform.name
    section = platform.settings(settings)
    limit = settings.server.max_body_bytes
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not platform.authenticates_on_body:
        why = platform.authenticate(section, headers, None)
        if why:
            return await _refused(ctx, name, platform.auth_failure_label, why)
    try:
        body = await read_body(request, limit)
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
        return JSONResponse({"error": "could not store the event; please retry"},
                            status_code=500)
    WEBHOOKS.labels(name, "duplicate" if stored.duplicate else "stored").inc()
    await ctx.after_store(stored)
    return JSONResponse({"status": "duplicate" if stored.duplicate else "stored",
                         "event_id": stored.event_id})


async def _refused(ctx: AppContext, platform: str, label: str, why: str) -> JSONResponse:
    WEBHOOKS.labels(platform, label).inc()
    await run_in_threadpool(ctx.signature_failures.note, platform)
    return JSONResponse({"error": why}, status_code=401)
