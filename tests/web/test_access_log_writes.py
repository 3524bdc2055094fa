"""Access-log lines are written in batches (one write per batch, not per request), yet an
operator reading the log sees every line within a second, in the order things happened,
with secrets redacted, and nothing is lost when the process stops normally."""

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from returnbridge import logs

SECRET = "whsec-test-0123456789"


@pytest.fixture
def configured() -> Iterator[None]:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = root.handlers[:], root.level, access.level, access.propagate, access.disabled
    logs.configure("INFO", "json", [SECRET])
    # as `serve` leaves it (a uvicorn server started by another test may have set a level)
    access.setLevel(logging.NOTSET)
    access.disabled = False
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.flush()
        root.handlers, root.level = saved[0], saved[1]
        access.level, access.propagate, access.disabled = saved[2], saved[3], saved[4]


def _access(path: str) -> None:
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000",
                                             "POST", path, "1.1", 200)


def test_an_access_line_reaches_the_log_within_a_second(
        configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    _access(f"/webhooks/loop?token={SECRET}")
    deadline = time.monotonic() + 2 * logs._Handler.BATCH_SECONDS + 1
    seen = ""
    while time.monotonic() < deadline and "/webhooks/loop" not in seen:
        time.sleep(0.05)
        seen += capsys.readouterr().err
    assert '"POST /webhooks/loop?token=[redacted] HTTP/1.1" 200' in seen
    assert SECRET not in seen


def test_lines_keep_their_order_with_records_written_at_once(
        configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    _access("/webhooks/loop/first")
    _access("/webhooks/loop/second")
    logging.getLogger("returnbridge.test").warning("database unreachable")
    err = capsys.readouterr().err  # no waiting: the warning wrote what was kept before it
    first, second = err.find("/first"), err.find("/second")
    warning = err.find("database unreachable")
    assert -1 < first < second < warning


def test_a_normal_stop_writes_what_is_kept(configured: None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(50):
        _access(f"/webhooks/loop/{n}")
    for handler in logging.getLogger().handlers:  # what logging.shutdown() does at exit
        handler.flush()
        handler.close()
    err = capsys.readouterr().err
    assert all(f"/webhooks/loop/{n} " in err for n in range(50))


def test_the_writer_stops_when_the_lines_stop(configured: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A quiet service keeps no thread waking four times a second for nothing, and a
    handler replaced by a new configuration leaves none behind; the next line is still
    written."""
    _access("/webhooks/loop/early")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
            t.name == "log-writer" for t in threading.enumerate()):
        time.sleep(0.05)
    assert not any(t.name == "log-writer" for t in threading.enumerate())
    _access("/webhooks/loop/late")
    deadline = time.monotonic() + 5
    seen = ""
    while time.monotonic() < deadline and "/late" not in seen:
        time.sleep(0.05)
        seen += capsys.readouterr().err
    assert "/late" in seen
