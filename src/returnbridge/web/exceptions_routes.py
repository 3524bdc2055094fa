"""/api/v1/exceptions: the exception queue and its actions, bearer token.

GET    /api/v1/exceptions?status=open&owner=&type=&ref=&limit=&offset=
GET    /api/v1/exceptions/{id}
POST   /api/v1/exceptions/{id}/retry|resolve|ignore   body {"by": "...", "why": "..."}

The audit actor is the authenticated identity: ``token:NAME`` for a named token, a
fingerprint of a shared ``[api].tokens`` entry (``api-token:1a2b3c4d``; never the token
itself). A ``by`` in the body is recorded beside it (``token:ops-script (alice)``), never
instead of it. Reading needs the ``read`` scope; actions need ``act``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from returnbridge.flows.console.accounts import Identity, Scope
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions import actions
from returnbridge.web.auth import actor_for, api_identity
from returnbridge.web.context import AppContext

router = APIRouter(prefix="/api/v1")
ExceptionId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The exception's id.")]


class ActionBody(BaseModel):
    by: str = Field("", max_length=120, description="Who acts; default: the token's name.")
    why: str = Field("", max_length=2000, description="Why; required for resolve and ignore.")


def runtime_of(request: Request) -> Runtime:
    ctx: AppContext = request.app.state.ctx
    api_identity(request, ctx.rt, Scope.READ)
    return ctx.rt


def actor_and_runtime(request: Request) -> tuple[Identity, Runtime]:
    ctx: AppContext = request.app.state.ctx
    return api_identity(request, ctx.rt, Scope.ACT), ctx.rt


def actor_of(identity: Identity, body: ActionBody | None) -> str:
    return actor_for(identity, body.by if body is not None else "")


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except actions.ExceptionNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except actions.ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except actions.BadFilter as exc:
        raise HTTPException(400, str(exc)) from None
    except actions.MissingReason as exc:
        raise HTTPException(422, str(exc)) from None


def _listing(rt: Runtime, **filters: Any) -> actions.ExceptionListing:
    with rt.unit_of_work() as uow:
        return actions.list_exceptions(uow, **filters)


def _show(rt: Runtime, exception_id: int) -> dict[str, Any]:
    with rt.unit_of_work() as uow:
        return actions.show_exception(uow, exception_id)


@router.get("/exceptions")
async def list_exceptions(rt: Annotated[Runtime, Depends(runtime_of)], status: str = "open",
                          owner: str | None = None, type: str | None = None,
                          ref: str | None = None, limit: int = 100,
                          offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict[str, Any]:
    page: actions.ExceptionListing = await _call(
        _listing, rt, status=status, owner=owner, type=type, ref=ref,
        limit=min(limit, 1000), offset=offset)
    return {"status": status, "count": len(page.items), "total": page.total,
            "limit": page.limit, "offset": page.offset, "exceptions": page.items}


@router.get("/exceptions/{exception_id}")
async def get_exception(exception_id: ExceptionId,
                        rt: Annotated[Runtime, Depends(runtime_of)]) -> dict[str, Any]:
    view: dict[str, Any] = await _call(_show, rt, exception_id)
    return view


@router.post("/exceptions/{exception_id}/retry")
async def retry_exception(exception_id: ExceptionId,
                          who: Annotated[tuple[Identity, Runtime], Depends(actor_and_runtime)],
                          body: ActionBody | None = None) -> dict[str, Any]:
    identity, rt = who
    result: actions.ActionResult = await _call(
        actions.retry, rt, exception_id, actor_of(identity, body), body.why if body else "")
    return result.as_dict()


@router.post("/exceptions/{exception_id}/resolve")
async def resolve_exception(exception_id: ExceptionId, body: ActionBody,
                            who: Annotated[tuple[Identity, Runtime], Depends(actor_and_runtime)]
                            ) -> dict[str, Any]:
    identity, rt = who
    result: actions.ActionResult = await _call(
        actions.resolve, rt, exception_id, actor_of(identity, body), body.why)
    return result.as_dict()


@router.post("/exceptions/{exception_id}/ignore")
async def ignore_exception(exception_id: ExceptionId, body: ActionBody,
                            who: Annotated[tuple[Identity, Runtime], Depends(actor_and_runtime)]
                            ) -> dict[str, Any]:
    identity, rt = who
    result: actions.ActionResult = await _call(
        actions.ignore, rt, exception_id, actor_of(identity, body), body.why)
    return result.as_dict()
