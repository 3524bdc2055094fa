"""``serve``'s workflows in a child process (``[server].worker_mode``).

The event worker, the scheduled jobs and the durable queues are CPU-bound Python. In the
HTTP process they share one interpreter lock with the request handlers, so a webhook
answer can wait behind a batch: on two cores, ingest with processing running fell to half
of ingest alone and its p99 rose fourfold (docs/operations.md, "Process model"). In a child
process they use the other core and the request path keeps the lock to itself.

On SQLite the default (``auto``) keeps them in threads: SQLite has one writer at a time, so
a second process only queues for the write lock (store/write_gate.py), and measured, the
threads were faster there. On PostgreSQL the child doubled ingest under load.

The child is ``<this program> worker --parent-pipe``: the same module the parent runs
(so a launcher that wraps the product, like the crash tests', wraps the child too), the
same configuration and environment. Its standard input is a pipe from the parent:

- a byte on it means "events were stored": the worker applies them at once (no polling);
- end of file means the parent is gone, however it ended (even SIGKILL: the kernel closes
  the pipe), and the child stops after its current batch.

If the child dies, the parent logs it and starts another after a short pause; the new child
resumes the unfinished durable work (same executor id). Stopping the parent stops the child.
A child that keeps dying (``DOWN_AFTER_EXITS`` exits within ``DOWN_WINDOW_S``) is
reported through ``on_down`` (``serve``: the ``worker_down`` exception for ops, and an alert
sent from the parent, since alerts are sent by the worker); once a child has stayed up for
``STABLE_AFTER_S``, ``on_stable`` (resolves it). ``/metrics`` shows whether the child is up
and how often it died.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from returnbridge.config import Settings
from returnbridge.metrics import WORKER_PROCESS_EXITS, WORKER_PROCESS_UP
from returnbridge.store.db import is_sqlite

log = structlog.get_logger(__name__)

RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 30.0
DOWN_AFTER_EXITS = 3  # this many exits ...
DOWN_WINDOW_S = 600.0  # ... within this long: report the worker down
STABLE_AFTER_S = 300.0  # up this long: the worker is back (resolve the report)


def worker_in_child(settings: Settings) -> bool:
    """Whether ``serve`` runs its workflows in a child process."""
    mode = settings.server.worker_mode
    if mode == "auto":
        return not is_sqlite(settings.database.url)
    return mode == "process"


def main_module() -> str:
    """The module this program was started as (``python -m X``), ``returnbridge`` for the
    installed console script."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = str(getattr(spec, "name", "") or "")
    if name.endswith(".__main__"):
        name = name[: -len(".__main__")]
    return name or "returnbridge"


def worker_command(config: str | None) -> list[str]:
    """The child's command line: this interpreter, this program, ``worker --parent-pipe``."""
    return [sys.executable, "-m", main_module(), "worker", "--parent-pipe",
            *(("--config", config) if config else ())]


class WorkerChild:
    """Start, wake, supervise and stop the worker child of ``serve``."""

    def __init__(self, command: Sequence[str], *,
                 restart_delay: float = RESTART_DELAY_S,
                 on_down: Callable[[int, float, int], None] | None = None,
                 on_stable: Callable[[float], None] | None = None) -> None:
        """``on_down(exits, window minutes, last exit code)`` when the child keeps dying;
        ``on_stable(minutes up)`` when a child has stayed up after starting or after a
        report. Both run on the supervisor thread."""
        self.command = list(command)
        self.restart_delay = restart_delay
        self.on_down = on_down
        self.on_stable = on_stable
        self._exits: list[float] = []  # monotonic times of recent unexpected exits
        self._reported = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._supervisor = threading.Thread(target=self._supervise, name="worker-child",
                                            daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        with self._lock:
            proc = subprocess.Popen(  # noqa: S603 - this interpreter and this program
                self.command, stdin=subprocess.PIPE)
            assert proc.stdin is not None
            os.set_blocking(proc.stdin.fileno(), False)  # a wake never blocks a request
            self._proc = proc
        WORKER_PROCESS_UP.set(1)
        log.info("worker process started", pid=proc.pid)

    def wake(self) -> None:
        """Tell the child events were stored (one byte; dropped if the pipe is full, which
        already means a wake is pending)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            os.write(proc.stdin.fileno(), b"w")
        except (BlockingIOError, BrokenPipeError, OSError, ValueError):
            return

    def _supervise(self) -> None:
        stable_known = False  # on_stable already called for the current child
        while not self._stop.is_set():
            proc = self._proc
            assert proc is not None
            try:
                code = proc.wait(timeout=None if stable_known else STABLE_AFTER_S)
            except subprocess.TimeoutExpired:  # up long enough: it is back
                stable_known = True
                self._exits.clear()
                self._reported = False
                if self.on_stable is not None:
                    self.on_stable(STABLE_AFTER_S / 60)
                continue
            if self._stop.is_set():
                return
            WORKER_PROCESS_UP.set(0)
            WORKER_PROCESS_EXITS.inc()
            self._close_pipe(proc)
            log.error("worker process exited; starting another", pid=proc.pid,
                      exit_code=code, restart_in_s=self.restart_delay)
            self._note_exit(code)
            if self._stop.wait(self.restart_delay):
                return
            self._spawn()
            stable_known = False

    def _note_exit(self, code: int) -> None:
        now = time.monotonic()
        self._exits = [t for t in self._exits if now - t <= DOWN_WINDOW_S] + [now]
        if len(self._exits) >= DOWN_AFTER_EXITS and not self._reported:
            self._reported = True
            log.error("worker process keeps dying; reported as worker_down",
                      exits=len(self._exits), window_s=DOWN_WINDOW_S)
            if self.on_down is not None:
                self.on_down(len(self._exits), DOWN_WINDOW_S / 60, code)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """End of file on the child's pipe: it finishes its batch and exits; killed if it
        has not after ``timeout`` seconds."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is None:
            return
        self._close_pipe(proc)
        deadline = time.monotonic() + timeout
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker process did not stop in time; killing it", pid=proc.pid)
            proc.kill()
            proc.wait(10)
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)

    @staticmethod
    def _close_pipe(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                return


def follow_parent(wake: Callable[[], None], stop: threading.Event) -> None:
    """In the child: wake the worker on each byte from the parent; at end of file (the
    parent stopped or died) set ``stop``."""
    while True:
        try:
            data = os.read(0, 4096)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            stop.set()
            return
        wake()
