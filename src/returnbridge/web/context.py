"""Per-app state shared by the routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.runtime import Runtime
from returnbridge.store.exceptions_repo import raise_problem

log = structlog.get_logger(__name__)

Enqueue = Callable[[str, str, int], None]


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
            with self.rt.sessions() as session, session.begin():
                raise_problem(
                    session,
                    Problem(type="signature_invalid",
                            message=f"{source} webhook deliveries were refused because their "
                            "signature matched no configured secret.",
                            dedupe_key=f"{source}:signature"),
                    times=count,
                )
        except Exception as exc:  # counting must never break the 401 answer
            log.warning("could not record signature failures", error=str(exc))


@dataclass
class AppContext:
    rt: Runtime
    enqueue: Enqueue | None
    signature_failures: SignatureFailures
