"""/api/v1/events: stored events for scripts, bearer token (like the rest of /api/v1).

GET  /api/v1/events?source=&status=&older_than=&since=&ref=&topic=&limit=&offset=
GET  /api/v1/events/{id}           the event, redacted headers, body (text and base64),
                                   and what this version reads in it now
GET  /api/v1/events/{id}/raw       the stored body bytes, exactly
POST /api/v1/events/{id}/replay    body {"by": "...", "why": "..."}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from returnbridge.flows.console.accounts import Identity
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest import events as events_admin
from returnbridge.web.exceptions_routes import ActionBody, actor_and_runtime, actor_of, runtime_of

router = APIRouter(prefix="/api/v1")
EventId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The stored event's id.")]


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except events_admin.EventNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except events_admin.BadEventFilter as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/events")
async def list_events(rt: Annotated[Runtime, Depends(runtime_of)],
                      source: Annotated[list[str] | None, Query()] = None,
                      status: Annotated[list[str] | None, Query()] = None,
                      older_than: str | None = None, since: str | None = None,
                      ref: str | None = None, topic: str | None = None,
                      limit: int = 50, offset: int = 0) -> dict[str, Any]:
    page: events_admin.EventListing = await _call(
        events_admin.list_events, rt, source=source, status=status, older_than=older_than,
        since=since, ref=ref, topic=topic, limit=min(limit, 1000), offset=offset)
    return {"count": len(page.items), "total": page.total, "limit": page.limit,
            "offset": page.offset, "events": page.items}


@router.get("/events/{event_id}")
async def get_event(event_id: EventId,
                    rt: Annotated[Runtime, Depends(runtime_of)]) -> dict[str, Any]:
    view: dict[str, Any] = await _call(events_admin.show_event, rt, event_id)
    return view


@router.get("/events/{event_id}/raw")
async def get_raw(event_id: EventId, rt: Annotated[Runtime, Depends(runtime_of)]) -> Response:
    body: bytes = await _call(events_admin.raw_body, rt, event_id)
    return Response(body, media_type="application/octet-stream",
                    headers={"X-Content-Type-Options": "nosniff"})


@router.post("/events/{event_id}/replay")
async def replay_event(event_id: EventId,
                       who: Annotated[tuple[Identity, Runtime], Depends(actor_and_runtime)],
                       body: ActionBody | None = None) -> dict[str, Any]:
    identity, rt = who
    result: events_admin.ReplayResult = await _call(
        events_admin.replay_event, rt, event_id, actor_of(identity, body),
        body.why if body else "")
    return result.as_dict()
