"""Per-app state shared by the routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from fastapi.concurrency import run_in_threadpool

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.events import StoredEvent
from returnbridge.web.inbox import Inbox

log = structlog.get_logger(__name__)

Enqueue = Callable[[str, str, int], None]
Wake = Callable[[], None]


@dataclass
class SignatureFailures:
    """Counts bad signatures and writes them as one exception row at most once a minute."""

    rt: Runtime
    interval: float = 60.0
    _pending: dict[str, int] = field(default_factory=dict)
    _last_flush: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, source: str) -> None:
        with self._lock:
            self._pending[source] = self._pending.get(source, 0) + 1
            now = time.monotonic()
            if now - self._last_flush.get(source, 0.0) < self.interval:
                return
            count = self._pending.pop(source)
            self._last_flush[source] = now
        try:
            with self.rt.unit_of_work() as uow:
                uow.exceptions.raise_problem(Problem(type="signature_invalid",
                            message=f"{source} webhook deliveries were refused because their "
                            "signature matched no configured secret.",
                            dedupe_key=f"{source}:signature"),
                    times=count,
                )
        except Exception as exc:  # counting must never break the 401 answer
            log.warning("could not record signature failures", error=str(exc))


@dataclass
class InFlight:
    """Webhook deliveries being answered right now (counted on the request thread only)."""

    count: int = 0

    def busy(self) -> bool:
        return self.count > 0


@dataclass
class AppContext:
    rt: Runtime
    enqueue: Enqueue | None
    signature_failures: SignatureFailures
    inbox: Inbox
    # Tells this process's event worker that events were stored (no database round trip);
    # workers elsewhere hear it from the database (PostgreSQL NOTIFY) or their slow poll.
    wake: Wake | None = None
    in_flight: InFlight = field(default_factory=InFlight)

    async def after_store(self, stored: StoredEvent) -> None:
        """A new event was committed: wake the worker, or (tests) apply it right away."""
        if stored.duplicate:
            return
        if self.wake is not None:
            self.wake()
        if self.enqueue is not None:
            try:
                await run_in_threadpool(self.enqueue, stored.source, stored.dedupe_key,
                                        stored.event_id)
            except Exception as exc:  # stored already; the worker will pick it up
                log.warning("enqueue failed; the event worker will pick it up",
                            event_id=stored.event_id, error=str(exc))
