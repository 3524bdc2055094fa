"""/api/v1: operators and scripts, bearer token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from returnbridge.flows.queries import return_view
from returnbridge.web.auth import check_bearer
from returnbridge.web.context import AppContext

router = APIRouter(prefix="/api/v1")


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    check_bearer(request, [t.get_secret_value() for t in ctx.rt.settings.api.tokens])
    return ctx


@router.get("/returns/{associated_ref}")
async def get_return(associated_ref: str, request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    view = await run_in_threadpool(return_view, ctx.rt, associated_ref)
    if view is None:
        raise HTTPException(404, f"no return with AssociatedRef {associated_ref!r}")
    return view
