"""One writer at a time on SQLite, across threads and processes, with the inbox first.

SQLite lets one connection write at a time; a writer that finds the database locked waits in
SQLite's busy handler, which sleeps in steps of up to 100 ms. The inbox's group commit (a
webhook answer waits for it) and the event worker (a batch holds the lock for up to
``BATCH_SECONDS_SQLITE``) write often, from different threads and, since ``serve`` runs
its worker in a child process, from different processes. Both queue here instead:

- a thread lock orders the writers of one process;
- an exclusive ``flock`` on ``<database>.write-gate`` orders the processes, and the kernel
  wakes a waiter as soon as the holder lets go;
- a *priority* writer (the inbox) holds a shared ``flock`` on ``<database>.write-want``
  while it waits. The worker looks at it after each event (:func:`priority_waiting`) and
  ends its batch early, so a webhook waits for at most one event, not a whole batch.

A database in memory, or a process that cannot create the gate files, has the thread lock
only. PostgreSQL needs no gate (row locks).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Engine

from returnbridge.store.db import sqlite_path


class _Gate:
    def __init__(self, database: Path | None) -> None:
        self.lock = threading.Lock()
        self._gate_fd = self._want_fd = self._probe_fd = -1
        if database is None or str(database) == ":memory:":
            return
        try:
            self._gate_fd = _open(database.with_name(database.name + ".write-gate"))
            want = database.with_name(database.name + ".write-want")
            self._want_fd = _open(want)
            self._probe_fd = _open(want)  # its own open file: it conflicts with _want_fd
        except OSError:
            self._gate_fd = self._want_fd = self._probe_fd = -1

    @contextmanager
    def hold(self, priority: bool) -> Iterator[None]:
        wanted = priority and self._want_fd >= 0
        if wanted:
            fcntl.flock(self._want_fd, fcntl.LOCK_SH)
        try:
            self.lock.acquire()
            try:
                if self._gate_fd >= 0:
                    fcntl.flock(self._gate_fd, fcntl.LOCK_EX)
            except BaseException:
                self.lock.release()
                raise
        finally:
            if wanted:
                fcntl.flock(self._want_fd, fcntl.LOCK_UN)
        try:
            yield
        finally:
            if self._gate_fd >= 0:
                fcntl.flock(self._gate_fd, fcntl.LOCK_UN)
            self.lock.release()

    def take_within(self, seconds: float) -> bool:
        """Take the gate, as a priority writer, if it comes free within ``seconds``;
        False (not taken) otherwise. :meth:`give_back` after a True."""
        deadline = time.monotonic() + seconds
        wanted = self._want_fd >= 0
        if wanted:
            fcntl.flock(self._want_fd, fcntl.LOCK_SH)
        try:
            if not self.lock.acquire(timeout=max(seconds, 0.0)):
                return False
            while self._gate_fd >= 0:
                try:
                    fcntl.flock(self._gate_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # another process writes: wait a little
                    if time.monotonic() >= deadline:
                        self.lock.release()
                        return False
                    time.sleep(0.0005)
                except BaseException:
                    self.lock.release()
                    raise
            return True
        finally:
            if wanted:
                fcntl.flock(self._want_fd, fcntl.LOCK_UN)

    def give_back(self) -> None:
        if self._gate_fd >= 0:
            fcntl.flock(self._gate_fd, fcntl.LOCK_UN)
        self.lock.release()

    def priority_waiting(self) -> bool:
        if self._probe_fd < 0:
            return False
        try:
            fcntl.flock(self._probe_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._probe_fd, fcntl.LOCK_UN)
        return False


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


_GATES: dict[str, _Gate] = {}
_GATES_LOCK = threading.Lock()


def _gate(engine: Engine) -> _Gate:
    key = str(engine.url)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = _Gate(sqlite_path(key))
        return gate


def write_gate(engine: Engine | None, *, priority: bool = False
               ) -> AbstractContextManager[None]:
    """Hold the write gate of ``engine``'s SQLite database for the ``with`` block;
    ``priority`` (the inbox) asks the event worker to end its batch early."""
    if engine is None or engine.dialect.name != "sqlite":
        return nullcontext()
    return _gate(engine).hold(priority)


@contextmanager
def write_gate_within(engine: Engine, seconds: float) -> Iterator[bool]:
    """``with write_gate_within(engine, s) as held:`` holds the gate for the block if it came
    free within ``s`` seconds (asking the event worker, as a priority writer, to end its
    batch); ``held`` False: it did not, nothing is held, do the write elsewhere.
    PostgreSQL has no gate: always True at once."""
    if engine.dialect.name != "sqlite":
        yield True
        return
    gate = _gate(engine)
    held = gate.take_within(seconds)
    try:
        yield held
    finally:
        if held:
            gate.give_back()


def priority_waiting(engine: Engine) -> bool:
    """A priority writer (any process) waits for the gate of ``engine``'s database."""
    if engine.dialect.name != "sqlite":
        return False
    return _gate(engine).priority_waiting()
