"""What Khaos POSTs to us: StockUpload, StockStatusUpload, OrderStatusUpload (HTTP Basic).

Khaos sends the same data again after any answer but 200, so: 200 once the body is stored
and the mirror updated (also for a body we could not read: it is kept with a
``payload_invalid`` exception, and resending it would not help), 500 when nothing could be
persisted, 413 for a body over ``[khaos].max_push_bytes``."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from returnbridge.erp.khaos.pushes import PushKind
from returnbridge.flows.khaos.pushes import PushOutcome, receive_push, run_after_mirror_change
from returnbridge.web.khaos_routes import khaos_ctx
from returnbridge.web.webhooks import BodyTooLarge, read_body

router = APIRouter(prefix="/khaos")
log = structlog.get_logger(__name__)

_KEPT_HEADERS = ("content-type", "user-agent", "content-length", "sirion-continuation")


async def _receive(request: Request, background: BackgroundTasks, kind: PushKind
                   ) -> JSONResponse:
    ctx = khaos_ctx(request)
    limit = ctx.rt.settings.khaos.max_push_bytes
    try:
        body = await read_body(request.stream(), request.headers.get("content-length"), limit)
    except BodyTooLarge:
        return JSONResponse({"error": f"body larger than {limit} bytes ([khaos].max_push_bytes)"},
                            status_code=413)
    headers = {k: v for k, v in request.headers.items() if k.lower() in _KEPT_HEADERS}
    try:
        outcome: PushOutcome = await run_in_threadpool(
            receive_push, ctx.rt, kind, body,
            content_type=request.headers.get("content-type", ""), headers=headers)
    except SQLAlchemyError as exc:
        log.error("could not store a Khaos push; Khaos will send it again", kind=kind,
                  error=str(exc))
        return JSONResponse({"error": "could not store the data; please retry"},
                            status_code=500)
    if outcome.mirror_changed:
        background.add_task(run_after_mirror_change, ctx.rt, kind)
    change = outcome.change
    return JSONResponse({
        "status": outcome.status, "event_id": outcome.event_id,
        "inserted": change.inserted, "updated": change.updated,
        "unchanged": change.unchanged, "deleted": change.deleted,
        "problems": list(outcome.problems[:20]),
    })


@router.post("/stock")
async def khaos_stock(request: Request, background: BackgroundTasks) -> JSONResponse:
    """StockUpload: stock items (StockItems) and deleted items."""
    return await _receive(request, background, "stock")


@router.post("/stock-status")
async def khaos_stock_status(request: Request, background: BackgroundTasks) -> JSONResponse:
    """StockStatusUpload: levels per StockID and SiteID (StockStatuses)."""
    return await _receive(request, background, "stock-status")


@router.post("/order-status")
async def khaos_order_status(request: Request, background: BackgroundTasks) -> JSONResponse:
    """OrderStatusUpload: sales order / shipment statuses (OrderStatuses)."""
    return await _receive(request, background, "order-status")
