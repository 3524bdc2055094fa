"""The event worker: stored events applied in micro-batches (ARCHITECTURE 5).

Each round claims up to ``batch_size`` received events, oldest first, and applies them in ONE
transaction (the try counted with its outcome, in one UPDATE), then commits. The event's
status changes in the same transaction as its effects, so the transaction is the
exactly-once unit: a crash anywhere in a batch rolls the whole batch back, and the next
round applies every event of it once. If an event raises, the batch is rolled back and
applied again at once with a savepoint per event: the event that raised is rolled back to
its savepoint alone, counted, and retried with backoff; after ``max_attempts`` it becomes
``failed`` with an ``event_failed`` exception. (Savepoints for every batch cost two
statements and a flush an event; events rarely raise.)

Order per return: an event is claimed only when no older event about the same return is
still waiting, so two workers never apply one return's events out of order. On PostgreSQL
the claim is ``FOR UPDATE SKIP LOCKED``: workers in several processes, on several hosts,
share one database and never take the same event. On SQLite there is one writer anyway.

Idle, the worker sleeps: an in-process wake-up when a webhook is stored here, PostgreSQL
``LISTEN`` for events stored by other processes, and a slow poll as a backstop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import structlog

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import (
    apply_event,
    apply_in_batch,
    error_text,
    invalid_in_batch,
    unreadable,
)
from returnbridge.flows.ingest.events import record_failure
from returnbridge.store.db import is_sqlite
from returnbridge.store.events import listen
from returnbridge.store.inbox import NOTIFY_CHANNEL
from returnbridge.store.write_gate import priority_waiting, write_gate

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
BATCH_SECONDS_SQLITE = 0.02
BATCH_SECONDS_POSTGRES = 0.5
RETRY_INTERVAL_S = 1.0
RETRY_BACKOFF = 2.0
YIELD_SECONDS = 0.02  # at most this long between batches while requests are answered

# Called with n after the n-th event of a batch is applied, before the batch commits. Empty
# in production; the crash tests' launcher (tests/e2e/crash_hooks.py) adds a pause there.
AFTER_EVENT_IN_BATCH: list[Callable[[int], None]] = []


class _EventRaised(Exception):
    """An event raised in a batch applied without savepoints: apply it again with them."""


class EventWorker:
    def __init__(self, rt: Runtime, *, batch_size: int = 100, idle_poll_seconds: float = 1.0,
                 max_attempts: int = MAX_ATTEMPTS, batch_seconds: float | None = None) -> None:
        self.rt = rt
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.max_attempts = max_attempts
        self.sqlite = is_sqlite(rt.settings.database.url)
        # How long one batch may hold its transaction: on SQLite that is the write lock the
        # inbox waits for, so keep it short; PostgreSQL holds only the claimed rows.
        self.batch_seconds = batch_seconds if batch_seconds is not None else (
            BATCH_SECONDS_SQLITE if self.sqlite else BATCH_SECONDS_POSTGRES)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._not_before: dict[int, float] = {}  # event id -> monotonic time of next try
        self._per_event_s = 0.002  # recent time to apply one event (moving average)
        self._careful_next = False  # the next batch: a savepoint per event
        # In `serve`, whether webhook requests are being answered in this process right now
        # (web/webhooks.py). The worker and the request handlers share one interpreter lock;
        # between batches the worker lets waiting requests finish first (up to
        # YIELD_SECONDS), so a burst is acknowledged fast and applied right after.
        self.requests_waiting: Callable[[], bool] | None = None

    # ------------------------------------------------------------------ lifecycle

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._run, name="event-worker", daemon=True)]
        if not self.sqlite:
            self._threads.append(threading.Thread(target=self._listen, name="event-listen",
                                                  daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.run_batch()
            except Exception as exc:
                log.warning("event batch failed; will retry", error=error_text(exc))
                claimed = 0
            if claimed:
                self._let_requests_through()
                continue  # more may be waiting: no sleep while there is a backlog
            self._wake.wait(self._idle_wait())
            self._wake.clear()

    def _let_requests_through(self) -> None:
        waiting = self.requests_waiting
        if waiting is None:
            return
        until = time.monotonic() + YIELD_SECONDS
        while waiting() and time.monotonic() < until and not self._stop.is_set():
            time.sleep(0.001)

    def _idle_wait(self) -> float:
        if not self._not_before:
            return self.idle_poll_seconds
        soonest = min(self._not_before.values()) - time.monotonic()
        return max(0.01, min(self.idle_poll_seconds, soonest))

    def _listen(self) -> None:
        """PostgreSQL: wake on NOTIFY from any process that stored events."""
        while not self._stop.is_set():
            try:
                listen(self.rt.engine, NOTIFY_CHANNEL, self._stop, self._wake)
            except Exception as exc:  # the slow poll still runs; try again shortly
                log.warning("event notifications unavailable; polling", error=str(exc))
                self._stop.wait(5.0)

    # ------------------------------------------------------------------ one round

    def _claim_limit(self) -> int:
        """About as many events as fit in ``batch_seconds`` at the recent pace (claiming
        more would only read rows the batch leaves for the next round)."""
        fit = self.batch_seconds / max(self._per_event_s, 1e-4) + 1
        return max(1, min(self.batch_size, int(min(fit, self.batch_size))))

    def _waiting_retries(self) -> list[int]:
        now = time.monotonic()
        for event_id in [i for i, t in self._not_before.items() if t <= now]:
            del self._not_before[event_id]
        return list(self._not_before)

    def run_batch(self) -> int:
        """Claim and apply one batch; returns how many events were claimed.

        A batch is first applied without a savepoint per event (two statements and a
        flush fewer an event). If an event raises, that pass is rolled back whole and the
        same events are applied again at once, each in its own savepoint, so the event
        that raised is rolled back alone and the others commit."""
        if not self._careful_next:
            try:
                return self._run_batch(savepoints=False)
            except _EventRaised:
                pass  # nothing of that pass was committed
        self._careful_next = False
        return self._run_batch(savepoints=True)

    def _run_batch(self, *, savepoints: bool) -> int:
        failed: list[tuple[int, BaseException]] = []
        ids: list[int] = []
        try:
            with write_gate(self.rt.engine), self.rt.unit_of_work() as uow:
                events = uow.events.claim(self._claim_limit(), skip_locked=not self.sqlite,
                                          not_ids=self._waiting_retries())
                if not savepoints:  # outcomes in one statement at the end of the batch
                    uow.events.keep_marks()
                # the batch's returns read (and locked) in one query, not one per event
                uow.returns.prefetch_for_update([(e.source, e.source_ref) for e in events])
                started = time.monotonic()
                for n, event in enumerate(events, start=1):
                    if n > 1 and (time.monotonic() - started > self.batch_seconds
                                  or priority_waiting(self.rt.engine)):
                        break  # the rest stays received, for the next round
                    ids.append(event.id)
                    if not savepoints:
                        try:
                            apply_in_batch(self.rt, uow, event)
                        except Exception as event_exc:
                            raise _EventRaised from event_exc
                    else:
                        try:
                            with uow.savepoint():
                                apply_in_batch(self.rt, uow, event)
                        except Exception as event_exc:  # this event alone is rolled back
                            uow.events.add_attempt(event.id)
                            invalid = unreadable(event_exc)
                            if invalid is None:
                                failed.append((event.id, event_exc))
                            else:  # never readable: kept as invalid, no retry
                                invalid_in_batch(uow, event, invalid)
                    for hook in AFTER_EVENT_IN_BATCH:
                        hook(n)
                uow.events.write_kept_marks()
        except _EventRaised:
            self._careful_next = True
            raise
        except Exception as exc:
            if not ids:
                raise
            # The batch itself did not commit (nothing of it is applied): one at a time.
            log.warning("event batch rolled back; applying its events one by one",
                        events=len(ids), error=error_text(exc))
            return self._one_by_one(ids)
        for event_id, problem in failed:
            self._failed_attempt(event_id, problem)
        if ids:
            per_event = (time.monotonic() - started) / len(ids)
            self._per_event_s = 0.8 * self._per_event_s + 0.2 * per_event
            log.info("events applied", count=len(ids) - len(failed), failed=len(failed))
        if self.sqlite:  # let a waiting inbox commit (any process) take the gate first
            until = time.monotonic() + YIELD_SECONDS
            while priority_waiting(self.rt.engine) and time.monotonic() < until:
                time.sleep(0.0005)
        return len(ids)

    def _one_by_one(self, ids: Sequence[int]) -> int:
        for event_id in ids:
            try:
                apply_event(self.rt, event_id)  # counts the failed try itself
            except Exception as exc:
                self._after_failure(event_id, exc)
        return len(ids)

    def _failed_attempt(self, event_id: int, exc: BaseException) -> None:
        """The try is counted already (committed with the batch); keep its error."""
        try:
            with self.rt.unit_of_work() as uow:
                uow.events.note_error(event_id, error_text(exc), count_attempt=False)
        except Exception as db_exc:
            log.warning("could not record an event's error", event_id=event_id,
                        error=error_text(db_exc))
        self._after_failure(event_id, exc)

    def _after_failure(self, event_id: int, exc: BaseException) -> None:
        with self.rt.unit_of_work() as uow:
            attempts = uow.events.attempts(event_id)
        if attempts >= self.max_attempts:
            self._not_before.pop(event_id, None)
            record_failure(self.rt, event_id, error_text(exc))
            log.error("event failed", event_id=event_id, error=error_text(exc))
            return
        delay = RETRY_INTERVAL_S * RETRY_BACKOFF ** max(0, attempts - 1)
        self._not_before[event_id] = time.monotonic() + delay
        log.warning("event not applied; will retry", event_id=event_id, attempts=attempts,
                    retry_in_s=delay, error=error_text(exc))
