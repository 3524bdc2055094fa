"""One call rate shared by every process: the pacing of Shopify and desktop Khaos SOAP.

The chaos campaign (issue #16) found both over their limits with ``serve`` and two workers:
each process paced (or did not pace) its own calls, and retries - the Shopify client's own,
a DBOS step's, a workflow recovered after a crash - went out on top of what the DBOS queue
limiter had admitted. Here every request, first attempt or retry, from any process, takes
the next slot of one row in ``call_rates`` before it is sent.

The row holds the *theoretical arrival time* of the next call (GCRA, the generic cell rate
algorithm): taking a slot is one ``UPDATE ... RETURNING`` that moves it on by
``interval`` seconds; the caller then sleeps until its slot (outside any transaction).
``burst`` calls may go at once after a quiet spell. With ``interval = period / (limit -
burst - 1)`` no window of ``period`` seconds holds more than ``limit - 1`` calls (one call
of margin for network jitter between us and the server's own count). A process killed after
taking a slot only wastes it. Slots are wall-clock seconds (``time.time``), shared between
processes and, with NTP, between hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, case, literal, update
from sqlalchemy.dialects import postgresql, sqlite

from returnbridge.store.models import CallRate


class SharedCallRate:
    """At most ``limit`` requests in any ``period`` seconds across every process using
    ``name`` on this database. Satisfies ``adapters.ratelimit.CallLimiter``."""

    def __init__(self, engine: Engine, name: str, limit: int, period: float = 60.0, *,
                 burst: int | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a call rate needs at least one call per positive period")
        self.engine = engine
        self.name = name
        self.limit = limit
        self.period = period
        chosen = limit // 15 if burst is None else burst
        self.burst = max(0, min(chosen, limit - 2)) if limit > 1 else 0
        # (+0.1 ms: slots are floats in seconds since the epoch; rounding must never put
        # one more call inside a window)
        self.interval = period / max(1, limit - self.burst - 1) + 1e-4
        self._clock = clock
        self._sleep = sleep
        self.waits = 0  # requests that had to wait for their slot
        self.waited_seconds = 0.0

    def _insert_missing(self) -> None:
        values = {"name": self.name, "next_slot": 0.0}
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            conn.execute(dialect.insert(CallRate).values(values).on_conflict_do_nothing())

    def take_slot(self) -> float:
        """Reserve the next slot; returns the wall-clock time at which the call may go."""
        now = self._clock()
        earliest = now - self.burst * self.interval
        slot = case((CallRate.next_slot > literal(earliest), CallRate.next_slot),
                    else_=literal(earliest))
        stmt = (update(CallRate).where(CallRate.name == self.name)
                .values(next_slot=slot + self.interval).returning(CallRate.next_slot))
        for _ in range(2):
            with self.engine.begin() as conn:
                taken = conn.execute(stmt).scalar_one_or_none()
            if taken is not None:
                return max(float(taken) - self.interval, now)
            self._insert_missing()
        raise RuntimeError(f"call rate {self.name!r} could not be stored")

    def acquire(self) -> float:
        """Wait for this process's next slot; returns the seconds waited."""
        at = self.take_slot()
        wait = at - self._clock()
        if wait <= 0:
            return 0.0
        self.waits += 1
        self.waited_seconds += wait
        self._sleep(wait)
        return wait
