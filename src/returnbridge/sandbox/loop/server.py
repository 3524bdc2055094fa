"""The Loop sandbox over HTTP: Loop's read endpoints and actions with Loop's semantics, plus a
small control API (``/_sandbox``) for tests and the demo.

Semantics kept (reference §4.1): ``X-Authorization`` checked (401 body shaped like Loop's);
``from``/``to`` omitted = the last 24 hours; a window over 120 days is 422; ``filter``
``created_at`` (default) or ``updated_at``; one ``state`` per call, default open, closed and
expired only; ``paginate=true`` gives ``{"returns", "nextPageUrl", "previousPageUrl"}`` with a
keyset cursor, else a bare array; ``pageSize`` default 100, at most 750; a sliding-window rate
limit (300 per 60 s by default) answering 429. ``process`` answers HTTP 200 with an error body
for closed or cancelled returns, as Loop does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.world import LIST_STATES, LoopWorld, SandboxReturn
from returnbridge.sandbox.service import free_port

DEFAULT_LIST_STATES = ("open", "closed", "expired")
MAX_WINDOW = timedelta(days=120)
MAX_PAGE_SIZE = 750


@dataclass
class Faults:
    """Misbehaviour switched on by tests."""

    force_429: int = 0  # answer the next N API calls with 429
    retry_after: str | None = "1"  # Retry-After header on 429 (None: no header, like Loop)
    error_body: int = 0  # answer the next N API calls 200 with an error body
    delay_seconds: float = 0.0  # wait this long before answering each API call
    repeat_cursor: bool = False  # nextPageUrl hands back the cursor just used


@dataclass
class ServerStats:
    requests: int = 0
    rate_limited: int = 0  # 429s sent
    list_calls: int = 0
    max_in_window: int = 0  # most requests seen inside one rate-limit window


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"errors": {"message": message, "code": code}}, status_code=status)


def _parse_time(raw: str) -> datetime:
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _encode_cursor(key: datetime, rid: int) -> str:
    raw = json.dumps({"k": key.isoformat(), "id": rid, "_pointsToNextItems": True})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    padded = cursor + "=" * (-len(cursor) % 4)
    data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    return datetime.fromisoformat(data["k"]), int(data["id"])


class LoopSandboxApp:
    def __init__(self, world: LoopWorld, *, api_key: str = "sandbox-loop-key",
                 rate_limit: int = 300, rate_period: float = 60.0,
                 public_base_url: str = "") -> None:
        self.world = world
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.rate_period = rate_period
        self.public_base_url = public_base_url
        self.faults = Faults()
        self.stats = ServerStats()
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()
        self.app = self._build()

    # --- cross-cutting -------------------------------------------------------------------

    def _admit(self, request: Request) -> Response | None:
        if request.headers.get("x-authorization") != self.api_key:
            return JSONResponse({"error": {"code": "401", "http_code": "GEN-UNAUTHORIZED",
                                           "message": "Unauthorized."}}, status_code=401)
        with self._lock:
            self.stats.requests += 1
            if self.faults.force_429 > 0:
                self.faults.force_429 -= 1
                return self._too_many()
            now = time.monotonic()
            while self._hits and self._hits[0] <= now - self.rate_period:
                self._hits.popleft()
            if len(self._hits) >= self.rate_limit:
                return self._too_many()
            self._hits.append(now)
            self.stats.max_in_window = max(self.stats.max_in_window, len(self._hits))
            if self.faults.error_body > 0:
                self.faults.error_body -= 1
                return JSONResponse({"errors": {"message": "Something went wrong.",
                                                "code": "UNEXPECTED_ERROR"}})
        return None

    def _too_many(self) -> Response:
        self.stats.rate_limited += 1
        headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else {}
        return JSONResponse({"message": "Too Many Attempts."}, status_code=429, headers=headers)

    async def _delay(self) -> None:
        if self.faults.delay_seconds:
            await asyncio.sleep(self.faults.delay_seconds)

    # --- endpoints -----------------------------------------------------------------------

    def _list(self, request: Request) -> Response:
        q = request.query_params
        self.stats.list_calls += 1
        now = self.world.clock()
        try:
            end = _parse_time(q["to"]) if q.get("to") else now
            start = _parse_time(q["from"]) if q.get("from") else end - timedelta(hours=24)
        except ValueError:
            return _error(422, "The from and to fields must be valid dates.", "VALIDATION")
        if end - start > MAX_WINDOW:
            return _error(422, "The date range may not exceed 120 days.", "VALIDATION")
        filter_by = q.get("filter", "created_at")
        if filter_by not in ("created_at", "updated_at"):
            return _error(422, "The selected filter is invalid.", "VALIDATION")
        state = q.get("state")
        if state is not None and state not in LIST_STATES:
            return _error(422, "The selected state is invalid.", "VALIDATION")
        states = (state,) if state else DEFAULT_LIST_STATES
        paginate = q.get("paginate", "false").casefold() in ("true", "1")
        try:
            size = int(q.get("pageSize", "100"))
        except ValueError:
            return _error(422, "The page size must be a number.", "VALIDATION")
        if not 1 <= size <= MAX_PAGE_SIZE:
            return _error(422, "The page size may not be greater than 750.", "VALIDATION")

        after = None
        cursor = q.get("cursor", "") if paginate else ""
        if cursor:
            try:
                after = _decode_cursor(cursor)
            except (ValueError, KeyError, binascii.Error, json.JSONDecodeError):
                return _error(422, "The cursor is invalid.", "VALIDATION")
        with self.world.lock:
            chosen: list[tuple[datetime, int, SandboxReturn]] = []
            for k, rid in self.world.in_key_order(filter_by, after, start):
                if k > end or (paginate and len(chosen) > size):
                    break
                ret = self.world.returns[rid]
                if ret.state in states:
                    chosen.append((k, rid, ret))
            if not paginate:
                return JSONResponse([self.world.list_view(r) for _, _, r in chosen])
            page = chosen[:size]
            body = [self.world.list_view(r) for _, _, r in page]
        next_url = None
        if len(chosen) > size:
            last = page[-1]
            next_cursor = cursor if (self.faults.repeat_cursor and cursor) else _encode_cursor(
                last[0], last[1])
            params = {k: v for k, v in q.items() if k != "cursor"}
            params["cursor"] = next_cursor
            base = self.public_base_url or str(request.base_url).rstrip("/") + "/api/v1"
            next_url = f"{base}/warehouse/return/list?{urlencode(params)}"
        return JSONResponse({"returns": body, "nextPageUrl": next_url,
                             "previousPageUrl": None})

    def _build(self) -> FastAPI:
        app = FastAPI(title="Loop Returns sandbox")
        api = APIRouter(prefix="/api/v1")
        sandbox = self

        @api.get("/warehouse/return/list")
        async def list_returns(request: Request) -> Response:
            refused = sandbox._admit(request)
            if refused:
                return refused
            await sandbox._delay()
            return sandbox._list(request)

        @api.get("/warehouse/return/details")
        async def details(request: Request) -> Response:
            refused = sandbox._admit(request)
            if refused:
                return refused
            await sandbox._delay()
            try:
                ret = sandbox.world.get(request.query_params.get("return_id", ""))
            except KeyError:
                return _error(404, "Return not found.", "NOT_FOUND")
            return JSONResponse(sandbox.world.details_view(ret))

        @api.get("/warehouse/reporting/asn")
        async def asn(request: Request) -> Response:
            refused = sandbox._admit(request)
            if refused:
                return refused
            await sandbox._delay()
            q = request.query_params
            try:
                end = _parse_time(q["to"]) if q.get("to") else sandbox.world.clock()
                start = _parse_time(q["from"]) if q.get("from") else end - timedelta(hours=24)
            except ValueError:
                return _error(422, "The from and to fields must be valid dates.", "VALIDATION")
            rows: list[dict[str, Any]] = []
            with sandbox.world.lock:
                for ret in sandbox.world.returns.values():
                    if start <= ret.updated_at <= end:
                        rows.extend(sandbox.world.asn_rows(ret))
            return JSONResponse(rows)

        @api.get("/warehouse/return/{rid}/notes")
        async def notes(rid: str, request: Request) -> Response:
            refused = sandbox._admit(request)
            if refused:
                return refused
            try:
                ret = sandbox.world.get(rid)
            except KeyError:
                return _error(404, "Return not found.", "NOT_FOUND")
            if not ret.notes:  # as Loop does: 422 when the return has no notes
                return _error(422, "This return has no notes.", "UNPROCESSABLE_ENTITY")
            return JSONResponse({"notes": ret.notes})

        @api.post("/warehouse/return/{rid}/{action}")
        async def act(rid: str, action: str, request: Request) -> Response:
            refused = sandbox._admit(request)
            if refused:
                return refused
            await sandbox._delay()
            try:
                ret = sandbox.world.get(rid)
            except KeyError:
                return _error(404, "Return not found.", "NOT_FOUND")
            if action == "process":
                if ret.state == "closed":
                    return JSONResponse({"errors": {
                        "message": "Return is closed and therefore cannot be processed.",
                        "code": "UNPROCESSABLE_RETURN"}})
                if ret.state == "cancelled":
                    return JSONResponse({"message": "Return is cancelled and therefore "
                                         "cannot be processed."})
                sandbox.world.close(ret.id)
                return JSONResponse("true")
            if action == "flag":
                sandbox.world.flag(ret.id)
                return JSONResponse("true")
            if action == "note":
                try:
                    content = (await request.json())["content"]
                except (ValueError, KeyError, TypeError):
                    return _error(422, "The content field is required.", "VALIDATION")
                if not isinstance(content, str) or not content or len(content) >= 255:
                    return _error(422, "The content must be under 255 characters.",
                                  "VALIDATION")
                sandbox.world.add_note(ret.id, content)
                return JSONResponse({"notes": ret.notes})
            if action == "cancel":
                sandbox.world.cancel(ret.id)
                return JSONResponse("true")
            return _error(404, f"Unknown action {action}.", "NOT_FOUND")

        control = APIRouter(prefix="/_sandbox")

        @control.post("/returns")
        async def create(request: Request) -> Response:
            spec = await request.json() if await request.body() else {}
            scenario = Scenario(spec.get("outcome", "refund"),
                                tuple(spec.get("skus", ["TEE-BLK-M"])),
                                state=spec.get("state", "open"))
            rid = sandbox.world.create(scenario)
            sandbox.world.dispatcher.flush()
            return JSONResponse({"id": rid}, status_code=201)

        @control.post("/returns/{rid}/{step}")
        async def advance(rid: int, step: str) -> Response:
            try:
                sandbox.world.step(rid, step)
            except KeyError as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            sandbox.world.dispatcher.flush()
            return JSONResponse({"id": rid, "state": sandbox.world.get(rid).state})

        @control.get("/returns/{rid}")
        async def show(rid: int) -> Response:
            try:
                return JSONResponse(sandbox.world.list_view(sandbox.world.get(rid)))
            except KeyError as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)

        app.include_router(api)
        app.include_router(control)
        return app


class LoopSandboxServer:
    """The sandbox app on a real socket in a background thread."""

    def __init__(self, world: LoopWorld | None = None, *, api_key: str = "sandbox-loop-key",
                 rate_limit: int = 300, rate_period: float = 60.0,
                 port: int | None = None) -> None:
        self.world = world or LoopWorld()
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self.sandbox = LoopSandboxApp(self.world, api_key=api_key, rate_limit=rate_limit,
                                      rate_period=rate_period, public_base_url=self.base_url)
        self.api_key = api_key
        self.server = uvicorn.Server(uvicorn.Config(self.sandbox.app, host="127.0.0.1",
                                                    port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def faults(self) -> Faults:
        return self.sandbox.faults

    @property
    def stats(self) -> ServerStats:
        return self.sandbox.stats

    def start(self) -> LoopSandboxServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("Loop sandbox did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> LoopSandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
