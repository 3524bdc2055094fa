"""The request side of group commit (store/inbox.py).

A webhook handler awaits :meth:`Inbox.store`; events that arrive while a batch is being
committed wait together and go in the next transaction, so PostgreSQL sees one WAL flush per
batch. A request is answered only after the commit that holds its event.

On SQLite a batch is committed on the HTTP (asyncio) thread when the write gate comes free
within ``INLINE_WAIT_S`` (a long transaction elsewhere must not stall every request,
health checks included, for longer); otherwise, and always on PostgreSQL, the inbox thread
commits it and waits for the gate with priority.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from returnbridge.store.events import StoredEvent
from returnbridge.store.inbox import NewEvent, store_events, store_events_soon

MAX_BATCH = 256
# SQLite: how long the HTTP thread itself waits for the write gate before handing the batch
# to the inbox thread. The event worker lets go after its current event (a few ms); a long
# transaction of anything else must not stall every request for longer than this.
INLINE_WAIT_S = 0.025


class Inbox:
    def __init__(self, sessions: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        self.sessions = sessions
        # SQLite: commit on the HTTP thread itself when the write gate comes free
        # within INLINE_WAIT_S (a commit is tens of microseconds; handing it to another
        # thread and back costs two waits for the interpreter lock behind the event
        # worker); else, and always on PostgreSQL (a network round trip and a WAL flush),
        # in the inbox thread.
        bind = sessions.kw.get("bind")
        self.inline = bind is not None and bind.dialect.name == "sqlite"
        self.max_batch = max_batch
        self._pending: list[tuple[NewEvent, asyncio.Future[StoredEvent]]] = []
        self._flushing = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inbox")
        self._task: asyncio.Task[None] | None = None

    async def store(self, event: NewEvent) -> StoredEvent:
        """Store ``event`` durably (committed) and return it; raises what the commit raised."""
        event_loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredEvent] = event_loop.create_future()
        self._pending.append((event, future))
        if not self._flushing:
            self._flushing = True
            self._task = event_loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        event_loop = asyncio.get_running_loop()
        batch: list[tuple[NewEvent, asyncio.Future[StoredEvent]]] = []
        try:
            while self._pending:
                if self.inline:
                    await asyncio.sleep(0)  # requests read in this turn join the batch
                batch = self._pending[:self.max_batch]
                del self._pending[:self.max_batch]
                events = [e for e, _ in batch]
                try:
                    stored = store_events_soon(self.sessions, events, INLINE_WAIT_S) \
                        if self.inline else None
                    if stored is None:
                        stored = await event_loop.run_in_executor(
                            self._executor, store_events, self.sessions, events)
                except Exception as exc:
                    if len(batch) == 1:
                        if not batch[0][1].done():
                            batch[0][1].set_exception(exc)
                    else:  # none is stored; one bad event must not fail the others
                        for event, future in batch:
                            await self._store_alone(event_loop, event, future)
                else:
                    for (_, future), result in zip(batch, stored, strict=True):
                        if not future.done():
                            future.set_result(result)
                batch = []
        finally:
            for _, future in batch:  # cancelled mid-commit (shutdown): do not leave waiters
                if not future.done():
                    future.cancel()
            self._flushing = False

    async def _store_alone(self, event_loop: asyncio.AbstractEventLoop, event: NewEvent,
                           future: asyncio.Future[StoredEvent]) -> None:
        try:
            stored = await event_loop.run_in_executor(self._executor, store_events, self.sessions,
                                                [event])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(stored[0])

    def close(self) -> None:
        self._executor.shutdown(wait=True)
