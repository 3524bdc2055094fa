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

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.store.models import ConsoleLoginFailure, utcnow

KEY_CHARS = 200


class LoginThrottle:
    def __init__(self, sessions: sessionmaker[Session], attempts: int, window_seconds: float,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.sessions = sessions
        self.attempts = attempts
        self.window = timedelta(seconds=window_seconds)
        self.clock = clock

    def blocked(self, *keys: str) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = self.clock()
        t = ConsoleLoginFailure
        with self.sessions() as session:
            rows = session.execute(
                select(t.key, func.count(), func.min(t.at))
                .where(t.key.in_([k[:KEY_CHARS] for k in keys]), t.at > now - self.window)
                .group_by(t.key)).all()
        wait = 0.0
        for _key, n, oldest in rows:
            if int(n) >= self.attempts:
                wait = max(wait, (self.window - (now - oldest)).total_seconds())
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        t = ConsoleLoginFailure
        with self.sessions() as session, session.begin():
            session.execute(delete(t).where(t.at <= now - self.window))
            session.execute(insert(t), [{"key": k[:KEY_CHARS], "at": now} for k in keys])

    def succeeded(self, *keys: str) -> None:
        t = ConsoleLoginFailure
        with self.sessions() as session, session.begin():
            session.execute(delete(t).where(t.key.in_([k[:KEY_CHARS] for k in keys])))
