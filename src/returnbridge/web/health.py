"""Probes and metrics."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from returnbridge import __version__
from returnbridge.db_metrics import DatabaseCollector
from returnbridge.flows.ingest.events import refresh_failed_gauge
from returnbridge.store.migrate import SchemaNotCurrent, require_current
from returnbridge.web.auth import check_bearer
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import REGISTRY

log = structlog.get_logger(__name__)
router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    try:
        await run_in_threadpool(require_current, ctx.rt.engine)
    except SchemaNotCurrent as exc:
        # Details for the operator in the log; the probe's caller learns only the kind.
        log.warning("not ready: database schema", error=str(exc))
        return JSONResponse({"status": "not ready", "reason": "database schema is not "
                             "current (see the service log)"}, status_code=503)
    except Exception as exc:
        log.warning("not ready: database unreachable", error=str(exc))
        return JSONResponse({"status": "not ready", "reason": "database unreachable (see "
                             "the service log)"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    api = ctx.rt.settings.api
    token = api.metrics_token.get_secret_value()
    if token:
        check_bearer(request, [token])
    elif not api.metrics_public:
        raise HTTPException(403, "metrics are off: set [api].metrics_token (or "
                            "[api].metrics_public = true on a private network)")
    try:
        refresh_failed_gauge(ctx.rt)
    except Exception as exc:  # the counters still answer when the database does not
        log.warning("could not read failed events for /metrics", error=str(exc))
    from_db = CollectorRegistry(auto_describe=False)
    from_db.register(DatabaseCollector(ctx.rt.sessions))
    return Response(generate_latest(REGISTRY) + generate_latest(from_db),
                    media_type=CONTENT_TYPE_LATEST)
