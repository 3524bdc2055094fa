"""``python -m tests.e2e.crash_hooks serve ...``: returnbridge with crash-test faults.

The product has no fault switch; this launcher, which only the tests run, hangs its faults
on the product's hooks and then runs the normal command line:

- ``RB_TEST_KILL_AFTER_PAYMENT=1`` (and ``RB_TEST_MARKER=path``): SIGKILL right after a
  payment call succeeded, before it is stored (refund_gate.AFTER_PAYMENT_CALL); once: the
  process that does it writes its id to the marker first.
- ``RB_TEST_PAUSE_MID_BATCH_AFTER=N`` (and ``RB_TEST_MARKER=path``): after the N-th event
  of a batch is applied and before the batch commits, write the process id to the marker
  and wait forever, so the test can SIGKILL it mid-batch (event_worker.AFTER_EVENT_IN_BATCH).

- ``RB_TEST_WORKER_EXIT_WHILE=path``: the ``worker`` command (the child of ``serve``) exits
  at once with code 70 while ``path`` exists: a worker that keeps dying. With
  ``RB_TEST_WORKER_STABLE_AFTER=S``, ``serve`` counts a child up for S seconds as back.
- ``RB_TEST_SCHEDULE_WATCH_SECONDS=S``: ``serve`` checks the schedules every S seconds
  instead of every minute (flows/engine/schedule_watch.py).

When ``serve`` runs its worker in a child process ([server].worker_mode), the child is this
launcher too (flows/engine/worker_child.py), so the faults fire where the work runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

KILL_AFTER_PAYMENT = "RB_TEST_KILL_AFTER_PAYMENT"
PAUSE_MID_BATCH_AFTER = "RB_TEST_PAUSE_MID_BATCH_AFTER"
MARKER = "RB_TEST_MARKER"
WORKER_EXIT_WHILE = "RB_TEST_WORKER_EXIT_WHILE"
WORKER_STABLE_AFTER = "RB_TEST_WORKER_STABLE_AFTER"
SCHEDULE_WATCH_SECONDS = "RB_TEST_SCHEDULE_WATCH_SECONDS"
MODULE = "tests.e2e.crash_hooks"


def _kill_once(marker: str) -> Callable[[str], None]:
    """SIGKILL this process the first time; with a marker, only if the marker does not
    exist yet (a worker child that ``serve`` restarts inherits the environment)."""
    def kill(_ref: str) -> None:
        if marker:
            if Path(marker).exists():
                return
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return kill


def _pause_after(count: int, marker: str) -> None:
    from returnbridge.flows.ingest import worker as event_worker

    def pause(n: int) -> None:
        if n != count:
            return
        if marker:
            Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        while True:
            time.sleep(3600)
    event_worker.AFTER_EVENT_IN_BATCH.append(pause)
    # The batch must reach the pause: no time limit on it.
    event_worker.BATCH_SECONDS_SQLITE = event_worker.BATCH_SECONDS_POSTGRES = float("inf")


def install() -> None:
    exit_while = os.environ.get(WORKER_EXIT_WHILE, "")
    if exit_while and sys.argv[1:2] == ["worker"] and Path(exit_while).exists():
        sys.exit(70)  # before importing the product: a worker that dies at once
    from returnbridge.flows.refunds import gate as refund_gate

    stable_after = os.environ.get(WORKER_STABLE_AFTER, "")
    if stable_after:
        from returnbridge.flows.engine import worker_child
        worker_child.STABLE_AFTER_S = float(stable_after)
    watch_seconds = os.environ.get(SCHEDULE_WATCH_SECONDS, "")
    if watch_seconds:
        from returnbridge.flows.engine import schedule_watch
        schedule_watch.WATCH_SECONDS = float(watch_seconds)
    if os.environ.get(KILL_AFTER_PAYMENT) == "1":
        refund_gate.AFTER_PAYMENT_CALL.append(_kill_once(os.environ.get(MARKER, "")))
    pause = os.environ.get(PAUSE_MID_BATCH_AFTER, "")
    if pause.isdigit():
        _pause_after(int(pause), os.environ.get(MARKER, ""))


if __name__ == "__main__":
    install()
    from returnbridge.cli import main

    main()
