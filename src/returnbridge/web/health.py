"""Probes and metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from returnbridge.store.migrate import SchemaNotCurrent, require_current
from returnbridge.web.auth import check_bearer
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import REGISTRY

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    try:
        await run_in_threadpool(require_current, ctx.rt.engine)
    except SchemaNotCurrent as exc:
        return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
    except Exception as exc:
        return JSONResponse({"status": "not ready", "reason": f"database: {exc}"},
                            status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    token = ctx.rt.settings.api.metrics_token.get_secret_value()
    if token:
        check_bearer(request, [token])
    elif request.headers.get("authorization"):
        raise HTTPException(400, "metrics need no token on this installation")
    from prometheus_client import CollectorRegistry

    from returnbridge.db_metrics import DatabaseCollector

    from_db = CollectorRegistry(auto_describe=False)
    from_db.register(DatabaseCollector(ctx.rt.sessions))
    return Response(generate_latest(REGISTRY) + generate_latest(from_db),
                    media_type=CONTENT_TYPE_LATEST)
