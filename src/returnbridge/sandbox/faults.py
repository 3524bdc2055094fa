"""Fault injection and call-rate metering for the sandboxes (the chaos campaign, issue #16).

Off by default: a sandbox misbehaves only when it is wrapped with a :class:`FaultPlan`.

- :class:`FaultInjector` wraps a sandbox's ASGI app (the APIs returnbridge calls: Loop,
  ZigZag, Khaos SOAP, Shopify). A share ``rate`` of requests is answered with a 5xx
  (500/502/503), a 429 with ``Retry-After``, or a *timeout*: the request is held for
  ``timeout_seconds`` (longer than the caller's timeout) and then still processed, so the
  caller does not know whether it happened - the nastiest case for a mutation.
- :class:`FaultyTransport` does the same on the client side, for the sandbox that calls
  returnbridge (Khaos fetching returns and pushing statuses): a 5xx or 429 as if from a proxy
  in between (the request never reaches returnbridge), or a timeout; ``lost_answer`` decides
  for which requests a timeout happens *after* returnbridge answered (the answer is lost)
  rather than before the request left.
- :class:`RateMeter` counts every request a sandbox receives (refused ones too) and keeps
  the most seen inside any window of ``period`` seconds, to compare with the limit the
  sandbox is configured with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

KINDS = ("5xx", "429", "timeout")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class FaultPlan:
    """Which share of requests fails and how (seeded: the same run fails the same way)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    timeout_seconds: float = 3.0  # how long a "timeout" holds the request
    seed: int = 0
    # Outcomes of the next requests, in order, before any random one ("" for none): a test
    # places a fault exactly where it wants it.
    script: list[str] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = (set(self.kinds) | set(self.script)) - {*KINDS, ""}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> str:
        """The fault for the next request, or "" for none."""
        with self._lock:
            if self.script:
                kind = self.script.pop(0)
                if kind:
                    self.injected[kind] += 1
                return kind
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return ""
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    def status_5xx(self) -> int:
        with self._lock:
            return self._rng.choice((500, 502, 503))


class RateMeter:
    """Requests received in a sliding window of ``period`` seconds: the highest count seen,
    against ``limit`` (0: no limit configured)."""

    def __init__(self, limit: int = 0, period: float = 60.0) -> None:
        self.limit = limit
        self.period = period
        self.total = 0
        self.max_in_window = 0
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    def hit(self, now: float | None = None) -> int:
        """Count one request; returns how many fell in the current window (this one too)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.total += 1
            while self._hits and self._hits[0] <= now - self.period:
                self._hits.popleft()
            self._hits.append(now)
            seen = len(self._hits)
            self.max_in_window = max(self.max_in_window, seen)
            return seen

    @property
    def within_limit(self) -> bool:
        return self.limit <= 0 or self.max_in_window <= self.limit


class FaultInjector:
    """ASGI middleware: meter every HTTP request, fail a planned share of them."""

    def __init__(self, app: App, plan: FaultPlan | None = None,
                 meter: RateMeter | None = None,
                 applies: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.plan = plan
        self.meter = meter
        self.applies = applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.applies is not None and not self.applies(scope)):
            await self.app(scope, receive, send)
            return
        if self.meter is not None:
            self.meter.hit()
        kind = self.plan.draw() if self.plan is not None else ""
        if kind == "5xx":
            assert self.plan is not None
            await _answer(send, self.plan.status_5xx(), {"error": "injected server error"})
            return
        if kind == "429":
            await _answer(send, 429, {"message": "Too Many Attempts."},
                          (b"retry-after", b"1"))
            return
        if kind == "timeout":
            assert self.plan is not None
            # Read the request first, hold it until the caller has given up, then process it
            # all the same: the caller cannot know whether it happened.
            body = await _read_body(receive)
            await asyncio.sleep(self.plan.timeout_seconds)
            await self.app(scope, _replay(body), _ignore_disconnected(send))
            return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # nothing more arrives; the app never asks in practice
        return {"type": "http.disconnect"}
    return receive


def _ignore_disconnected(send: Send) -> Send:
    async def guarded(message: Message) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await send(message)
    return guarded


async def _answer(send: Send, status: int, body: dict[str, Any],
                  *headers: tuple[bytes, bytes]) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode()), *headers]})
    await send({"type": "http.response.body", "body": raw})


class FaultyTransport(httpx.BaseTransport):
    """Client side: fail a planned share of the requests a sandbox makes to returnbridge."""

    def __init__(self, plan: FaultPlan, meter: RateMeter | None = None,
                 lost_answer: Callable[[httpx.Request], bool] | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        self.plan = plan
        self.meter = meter
        self.lost_answer = lost_answer
        self.inner = inner or httpx.HTTPTransport()
        self.lost = 0  # answers returnbridge gave that never arrived

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.meter is not None:
            self.meter.hit()
        kind = self.plan.draw()
        if kind == "5xx":
            return httpx.Response(self.plan.status_5xx(), json={"error": "injected"},
                                  request=request)
        if kind == "429":
            return httpx.Response(429, headers={"Retry-After": "1"}, request=request)
        if kind == "timeout":
            if self.lost_answer is not None and self.lost_answer(request):
                response = self.inner.handle_request(request)
                response.read()
                response.close()
                self.lost += 1
                raise httpx.ReadTimeout("injected: the answer was lost", request=request)
            raise httpx.ConnectTimeout("injected: the request never arrived", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Kept open: the sandbox opens a client per poll, all sharing this transport."""

    def shutdown(self) -> None:
        self.inner.close()
