"""HTTP for adapters: clients that always have a timeout, and the one retry loop.

A client builds its ``httpx.Client`` with :func:`http_client` (the timeout is a required
argument) and runs each logical call through :func:`with_retries`. The loop itself knows
nothing about any platform: the client's ``step`` sends once and says what the answer means
(a result, or :class:`Retry`); the :class:`RetryPolicy` says how many attempts there are and
how long to wait between them (exponential backoff with optional jitter, ``Retry-After`` in
seconds or as an HTTP date, both capped).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

T = TypeVar("T")

# Answers that say "not now" rather than "no": rate limited, or the server is struggling.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def http_client(*, timeout: float, base_url: str = "",
                headers: Mapping[str, str] | None = None,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An ``httpx.Client`` whose every request has ``timeout`` seconds (connect, read,
    write and pool each)."""
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"an external call needs a positive timeout, got {timeout!r}")
    return httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout),
                        transport=transport)


def retry_after_seconds(value: str | None, *, cap: float,
                        now: Callable[[], float] = time.time) -> float | None:
    """Seconds a ``Retry-After`` header asks for, within [0, ``cap``]; None when the header
    is absent or says nothing usable. Both forms of RFC 9110 are read: delay-seconds
    (``"7"``, also ``"1.5"``) and an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``)."""
    raw = (value or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(raw).timestamp() - now()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


@dataclass(frozen=True)
class RetryPolicy:
    """How often one logical call is attempted and how long to wait between attempts.

    The wait before attempt ``n + 1`` is ``base * 2 ** (n - 1)`` seconds, at most
    ``backoff_cap``, less up to ``jitter`` of it at random (0: exactly that); a usable
    ``Retry-After`` replaces it, at most ``retry_after_cap``.
    """

    max_attempts: int
    base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 60.0
    jitter: float = 0.0  # 0..1: the fraction of each backoff that may be taken off at random
    statuses: frozenset[int] = RETRY_STATUSES
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)
    now: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("a call needs at least one attempt")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction between 0 and 1")

    def retryable(self, status: int) -> bool:
        """Whether an HTTP status may be worth sending again."""
        return status in self.statuses

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        seconds = float(min(self.base * 2.0 ** (attempt - 1), self.backoff_cap))
        if self.jitter:
            seconds -= seconds * self.jitter * self.random()
        return seconds

    def wait(self, attempt: int, response: httpx.Response | None = None) -> float:
        """The answer's ``Retry-After`` when usable, else the backoff for ``attempt``."""
        if response is not None:
            asked = retry_after_seconds(response.headers.get("retry-after"),
                                        cap=self.retry_after_cap, now=self.now)
            if asked is not None:
                return asked
        return self.backoff(attempt)


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based, counting only attempts that failed
    last: bool  # no further attempt is allowed after this one


@dataclass(frozen=True)
class Retry:
    """What a step answers when the call should be sent again.

    ``wait``: seconds to sleep first (None: the policy's backoff for this attempt; 0: none).
    ``counted=False``: the attempt did not fail (e.g. a token was renewed), so it does not
    use up one of the policy's attempts.
    """

    wait: float | None = None
    counted: bool = True


def with_retries(step: Callable[[Attempt], T | Retry], policy: RetryPolicy, *,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``step`` until it answers something other than :class:`Retry`.

    ``step`` sends once and decides: it returns the result, raises the client's own error
    (typically when ``attempt.last``), or returns :class:`Retry`. Asking to retry on the
    last attempt is a programming error in the step.
    """
    number = 1
    while True:
        attempt = Attempt(number, number >= policy.max_attempts)
        verdict = step(attempt)
        if not isinstance(verdict, Retry):
            return verdict
        if verdict.counted:
            if attempt.last:
                raise RuntimeError("a retry was asked for after the last attempt")
            number += 1
        wait = policy.backoff(attempt.number) if verdict.wait is None else verdict.wait
        if wait > 0:
            sleep(wait)
