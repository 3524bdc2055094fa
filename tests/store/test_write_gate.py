"""The SQLite write gate: writers of several threads and processes take turns, and the
event worker can see that the inbox (a webhook answer) is waiting."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from returnbridge.store.db import make_engine
from returnbridge.store.write_gate import priority_waiting, write_gate

HOLD = """
import sys
from returnbridge.store.db import make_engine
from returnbridge.store.write_gate import write_gate
engine = make_engine(sys.argv[1])
with write_gate(engine):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes the pipe
"""


def _wait_for(check: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_waiting_inbox_is_visible_to_the_gate_holder(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rb.db'}")
    entered = threading.Event()

    def inbox() -> None:
        with write_gate(engine, priority=True):
            entered.set()

    with write_gate(engine):  # the worker's batch
        assert not priority_waiting(engine)
        thread = threading.Thread(target=inbox)
        thread.start()
        assert _wait_for(lambda: priority_waiting(engine)), "the waiting inbox is not seen"
        assert not entered.is_set()
    thread.join(30)
    assert entered.is_set() and not priority_waiting(engine)
    engine.dispose()


def test_another_process_holding_the_gate_keeps_writers_out_until_it_lets_go(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rb.db'}"
    engine = make_engine(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        entered = threading.Event()

        def writer() -> None:
            with write_gate(engine, priority=True):
                entered.set()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        assert not entered.wait(0.5), "entered while another process held the gate"
        assert holder.stdin is not None
        holder.stdin.close()  # the holder lets go
        assert entered.wait(30), "never entered after the other process let go"
    finally:
        holder.kill()
        holder.wait(10)
        engine.dispose()


def test_an_in_memory_database_has_a_thread_gate_only() -> None:
    engine = make_engine("sqlite://")
    with write_gate(engine, priority=True):
        assert not priority_waiting(engine)
    engine.dispose()
