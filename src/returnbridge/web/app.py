"""The FastAPI application."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from returnbridge import __version__
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.engine.wiring import install_hooks
from returnbridge.web import (
    api,
    confirm_routes,
    events_routes,
    exceptions_routes,
    health,
    khaos_push_routes,
    khaos_routes,
    reconciliation_routes,
    webhooks,
)
from returnbridge.web.auth import bearer_known
from returnbridge.web.console.routes import install as install_console
from returnbridge.web.context import AppContext, Enqueue, SignatureFailures, Wake
from returnbridge.web.inbox import Inbox
from returnbridge.web.limits import RequestGuard
from returnbridge.web.webhooks import WebhookFastPath

log = structlog.get_logger(__name__)


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming what is wrong, never echoing the input (it may be unprintable, like a
    number too large for JSON, or carry a secret)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in errors]
    return JSONResponse({"detail": detail}, status_code=422)


async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses (NUL characters, numbers out of range): the caller's
    input, so 400, with the details in the log only."""
    log.warning("request refused: a value cannot be stored", error=str(exc)[:300])
    return JSONResponse({"error": "a value in the request cannot be stored (out of range or "
                         "containing NUL characters)"}, status_code=400)


def create_app(rt: Runtime, enqueue: Enqueue | None, wake: Wake | None = None) -> FastAPI:
    install_hooks()
    docs = rt.settings.server.api_docs
    app = FastAPI(title="returnbridge", version=__version__,
                  docs_url="/api/docs" if docs else None,
                  openapi_url="/api/openapi.json" if docs else None, redoc_url=None)
    install_console(app)  # before the guard, so that the guard stays outermost
    # Webhook deliveries skip FastAPI's routing, inside the guard (web/webhooks.py).
    app.add_middleware(WebhookFastPath, context=lambda: app.state.ctx)
    # Outermost: nothing reads a body before its size and (for /api) its credentials pass.
    app.add_middleware(RequestGuard, settings=rt.settings,
                       authorize={"api": lambda headers: bearer_known(headers, rt)})
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DataError, _unstorable)
    inbox = Inbox(rt.sessions)
    app.state.ctx = AppContext(rt=rt, enqueue=enqueue,
                               signature_failures=SignatureFailures(rt), inbox=inbox,
                               wake=wake)
    app.router.on_shutdown.append(inbox.close)
    app.include_router(webhooks.router)
    app.include_router(khaos_routes.router)
    app.include_router(khaos_push_routes.router)
    app.include_router(api.router)
    app.include_router(confirm_routes.router)
    app.include_router(exceptions_routes.router)
    app.include_router(events_routes.router)
    app.include_router(reconciliation_routes.router)
    app.include_router(health.router)
    return app
