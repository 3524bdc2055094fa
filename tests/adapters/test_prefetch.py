"""Reading ahead on a thread gives the reader exactly what the source gives, in order,
failures included, and stops the source when the reader stops early."""

import threading
from collections.abc import Iterator

import pytest

from returnbridge.adapters.prefetch import Prefetch


def test_items_arrive_in_order_and_the_source_runs_ahead() -> None:
    produced: list[int] = []
    ahead = threading.Event()

    def source() -> Iterator[int]:
        for i in range(5):
            produced.append(i)
            if i == 1:
                ahead.set()  # asked for while the reader still holds item 0
            yield i

    with Prefetch(source(), ahead=1) as pages:
        seen = []
        for item in pages:
            if item == 0:
                assert ahead.wait(5), "the next item was not fetched ahead"
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4] and produced == seen


def test_a_failure_in_the_source_reaches_the_reader_after_the_items_before_it() -> None:
    def source() -> Iterator[str]:
        yield "page 1"
        raise ConnectionError("Loop answered 503")

    seen = []
    with Prefetch(source()) as pages, pytest.raises(ConnectionError, match="503"):
        for item in pages:
            seen.append(item)
    assert seen == ["page 1"]


def test_a_reader_that_stops_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Prefetch(source(), ahead=2) as pages:
        for item in pages:
            if item == 3:
                break
    assert closed.wait(5)
