"""Console sign-in rate limiting, counted in the database.

Failed sign-ins per user name and per client address in a sliding window
(``[console].login_attempts`` within ``login_window_minutes``). The failures are rows of
``console_login_failures``, so every ``serve`` process (or worker behind a load balancer)
counts the same ones: a guesser cannot multiply the limit by spreading attempts over them.
A success clears that user name's and that address's failures; rows older than the window
are deleted as new failures come in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

KEY_CHARS = 200


class LoginThrottle:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], attempts: int,
                 window_seconds: float, clock: Callable[[], datetime] = utcnow) -> None:
        self.unit_of_work = unit_of_work
        self.attempts = attempts
        self.window = timedelta(seconds=window_seconds)
        self.clock = clock

    def blocked(self, *keys: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = self.clock()
        with self.unit_of_work() as uow:
            rows = uow.login_failures.counts_since([k[:KEY_CHARS] for k in keys],
                                                   now - self.window)
        wait = 0.0
        for _key, n, oldest in rows:
            if int(n) >= self.attempts:
                wait = max(wait, (self.window - (now - oldest)).total_seconds())
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self.unit_of_work() as uow:
            uow.login_failures.record([k[:KEY_CHARS] for k in keys], now, now - self.window)

    def succeeded(self, *keys: str) -> None:
        with self.unit_of_work() as uow:
            uow.login_failures.clear([k[:KEY_CHARS] for k in keys])
