"""/api/v1: operators and scripts, bearer token (shared admin tokens or named, scoped)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from returnbridge.flows.console.accounts import Scope
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.console.search import BadSearch, ReturnFilters, search_returns
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.web.auth import api_identity
from returnbridge.web.context import AppContext

router = APIRouter(prefix="/api/v1")

async def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    await run_in_threadpool(api_identity, request, ctx.rt, Scope.READ)
    return ctx

def _search(rt: Runtime, filters: ReturnFilters, limit: int, offset: int) -> dict[str, Any]:
    with rt.unit_of_work() as uow:
        page = search_returns(uow, filters, limit=limit, offset=offset,
                              sources=rt.platforms.names())
    return {"total": page.total, "limit": page.limit, "offset": page.offset,
            "count": len(page.items), "filters": filters.as_query(), "returns": page.items}

@router.get("/returns")
async def list_returns(request: Request, q: str = "", status: str = "", source: str = "",
                       ref: str = "", order: str = "", email: str = "", sku: str = "",
                       date_from: str = "", date_to: str = "", min_age_days: str = "",
                       limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Returns matching every filter given, newest first; the same search as the console."""
    ctx = await _ctx(request)
    filters = ReturnFilters(q=q, status=status, source=source, ref=ref, order=order,
                            email=email, sku=sku, date_from=date_from, date_to=date_to,
                            min_age_days=min_age_days)
    try:
        result: dict[str, Any] = await run_in_threadpool(_search, ctx.rt, filters, limit,
                                                         offset)
    except BadSearch as exc:
        raise HTTPException(400, str(exc)) from None
    return result

@router.get("/returns/{associated_ref}")
async def get_return(associated_ref: str, request: Request) -> dict[str, Any]:
    ctx = await _ctx(request)
    view = await run_in_threadpool(return_view, ctx.rt, associated_ref)
    if view is None:
        raise HTTPException(404, f"no return with AssociatedRef {associated_ref!r}")
    return view
