"""Pacing calls to another system.

:class:`CallLimiter` is what a client asks before *every* request it sends (first attempts
and retries alike): ``acquire()`` returns once the request may go. Two implementations:

- :class:`TokenBucket` here, shared by every client of one API key *in this process*: when
  the bucket is empty the caller waits for the next token instead of risking 429 (Loop, for
  one, allows 300 requests per minute per API key);
- ``store/call_rates.py``: one pacing slot in the database, shared by *every process*
  (Shopify, desktop Khaos SOAP).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol


class CallLimiter(Protocol):
    """Asked before every request a client sends, retries included."""

    def acquire(self) -> float:
        """Wait until one more request may go; returns the seconds waited."""
        ...


class TokenBucket:
    """``rate`` tokens per ``period`` seconds, at most ``burst`` saved up. Thread-safe."""

    def __init__(self, rate: int, period: float = 60.0, *, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate < 1 or period <= 0:
            raise ValueError("a rate limit needs at least one request per positive period")
        self.rate = rate
        self.period = period
        # In any ``period`` at most burst + rate calls go out: 280/min with a burst of 18
        # stays under Loop's 300.
        self.capacity = float(burst if burst is not None else max(1, rate // 15))
        self._per_second = rate / period
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.waits = 0  # times a caller had to wait for a token
        self.waited_seconds = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self._per_second)
        self._last = now

    def acquire(self) -> float:
        """Take one token, waiting if needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                now = self._last
                if now < self._paused_until:
                    need = self._paused_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    if waited:
                        self.waits += 1
                        self.waited_seconds += waited
                    return waited
                else:
                    need = (1 - self._tokens) / self._per_second
            self._sleep(need)
            waited += need

    def pause(self, seconds: float) -> None:
        """Everyone sharing the bucket holds off for ``seconds`` (after a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._tokens = min(self._tokens, 1.0)


_SHARED: dict[tuple[str, int, float], TokenBucket] = {}
_SHARED_LOCK = threading.Lock()


def shared_bucket(key: str, rate: int, period: float = 60.0) -> TokenBucket:
    """The process-wide bucket for one API key (the key itself is never stored)."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    with _SHARED_LOCK:
        bucket = _SHARED.get((digest, rate, period))
        if bucket is None:
            bucket = TokenBucket(rate, period)
            _SHARED[(digest, rate, period)] = bucket
        return bucket
