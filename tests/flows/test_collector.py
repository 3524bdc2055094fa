"""The garbage collector is held off while a large answer is built, and comes back after,
also when the block raises and when two threads hold it at once."""

from __future__ import annotations

import gc
import threading

import pytest

from returnbridge.flows.engine import collector


def test_paused_inside_and_running_after_even_when_the_block_raises() -> None:
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("the page failed")
    assert gc.isenabled()


def test_two_holders_the_collector_runs_again_when_the_last_lets_go() -> None:
    first_in, second_done = threading.Event(), threading.Event()

    def second() -> None:
        first_in.wait(10)
        with collector.paused():
            pass
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with collector.paused():
        first_in.set()
        assert second_done.wait(10)
        assert not gc.isenabled()  # the other holder left; this one still holds it
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
