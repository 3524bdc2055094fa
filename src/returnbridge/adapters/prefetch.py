"""Reading ahead on a thread: the next items of an iterator are fetched while the caller
works on this one (a database cursor's next batch, a paged API's next page). Waiting on a
socket or in a C library lets go of the interpreter lock, so the wait overlaps the work."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class Prefetch(Generic[T]):
    """Iterates ``source`` on a thread of its own, at most ``ahead`` items ahead of the
    reader. An exception in ``source`` is raised in the reader, in order. ``stop`` (also
    on leaving a ``with`` block) ends the reading early and waits for the thread; the
    source iterator is closed on its own thread."""

    def __init__(self, source: Iterable[T], ahead: int = 1, name: str = "prefetch") -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        iterator = iter(self._source)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the reader, raised there
            self._put(exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while (item := self._queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        """Stop reading (the reader is done or failed) and wait for the thread."""
        self._stopped.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
