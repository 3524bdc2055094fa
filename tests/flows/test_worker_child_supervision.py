"""The supervisor of ``serve``'s worker child reports a child that keeps dying once, not a
single death, and reports it back once a child stays up."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from returnbridge.flows.engine import worker_child
from returnbridge.flows.engine.worker_child import WorkerChild

DIES = [sys.executable, "-c", "raise SystemExit(3)"]
STAYS_UP = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]  # until EOF


class Reports:
    def __init__(self) -> None:
        self.down: list[tuple[int, float, int]] = []
        self.stable: list[float] = []
        self.changed = threading.Event()

    def on_down(self, exits: int, minutes: float, code: int) -> None:
        self.down.append((exits, minutes, code))
        self.changed.set()

    def on_stable(self, minutes: float) -> None:
        self.stable.append(minutes)
        self.changed.set()


def _wait(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.02)


def test_a_child_that_keeps_dying_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_child, "STABLE_AFTER_S", 30.0)
    reports = Reports()
    child = WorkerChild(DIES, restart_delay=0.01, on_down=reports.on_down,
                        on_stable=reports.on_stable)
    child.start()
    try:
        _wait("the report", lambda: reports.down)
        exits_then = worker_child.WORKER_PROCESS_EXITS._value.get()
        _wait("more deaths", lambda: worker_child.WORKER_PROCESS_EXITS._value.get()
              >= exits_then + 3)
    finally:
        child.stop(timeout=5)
    assert reports.down == [(3, worker_child.DOWN_WINDOW_S / 60, 3)]
    assert reports.stable == []


def test_deaths_further_apart_than_the_window_are_not_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_child, "STABLE_AFTER_S", 30.0)
    monkeypatch.setattr(worker_child, "DOWN_WINDOW_S", 0.01)
    reports = Reports()
    child = WorkerChild(DIES, restart_delay=0.05, on_down=reports.on_down)
    child.start()
    try:
        exits_then = worker_child.WORKER_PROCESS_EXITS._value.get()
        _wait("five deaths", lambda: worker_child.WORKER_PROCESS_EXITS._value.get()
              >= exits_then + 5)
    finally:
        child.stop(timeout=5)
    assert reports.down == []


def test_a_child_that_stays_up_is_reported_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_child, "STABLE_AFTER_S", 0.5)
    reports = Reports()
    child = WorkerChild(STAYS_UP, on_down=reports.on_down, on_stable=reports.on_stable)
    child.start()
    try:
        _wait("the child counted as up", lambda: reports.stable)
        assert worker_child.WORKER_PROCESS_UP._value.get() == 1
    finally:
        child.stop(timeout=5)  # end of file: the child exits by itself
    assert reports.stable == [0.5 / 60]
    assert reports.down == []
