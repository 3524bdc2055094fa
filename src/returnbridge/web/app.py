"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from returnbridge import __version__
from returnbridge.flows.runtime import Runtime
from returnbridge.web import api, health, khaos_routes, webhooks
from returnbridge.web.context import AppContext, Enqueue, SignatureFailures


def create_app(rt: Runtime, enqueue: Enqueue | None) -> FastAPI:
    app = FastAPI(title="returnbridge", version=__version__, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    app.state.ctx = AppContext(rt=rt, enqueue=enqueue,
                               signature_failures=SignatureFailures(rt))
    app.include_router(webhooks.router)
    app.include_router(khaos_routes.router)
    app.include_router(api.router)
    app.include_router(health.router)
    return app
