"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from returnbridge import __version__
from returnbridge.flows.runtime import Runtime
from returnbridge.flows.wiring import install_hooks
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
    zigzag_webhook,
)
from returnbridge.web.context import AppContext, Enqueue, SignatureFailures


def create_app(rt: Runtime, enqueue: Enqueue | None) -> FastAPI:
    install_hooks()
    app = FastAPI(title="returnbridge", version=__version__, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.state.ctx = AppContext(rt=rt, enqueue=enqueue,
                               signature_failures=SignatureFailures(rt))
    app.include_router(webhooks.router)
    app.include_router(zigzag_webhook.router)
    app.include_router(khaos_routes.router)
    app.include_router(khaos_push_routes.router)
    app.include_router(api.router)
    app.include_router(confirm_routes.router)
    app.include_router(exceptions_routes.router)
    app.include_router(events_routes.router)
    app.include_router(reconciliation_routes.router)
    app.include_router(health.router)
    return app
