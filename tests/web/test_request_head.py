"""The HTTP parser (httptools) has no limit of its own on the request head; the service sets
one, so a client cannot make it hold megabytes of headers. Over real HTTP."""

import socket

from tests.conftest import LiveApp


def _raw(app: LiveApp, head_extra: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head_extra + b"\r\n")
        return s.recv(200)


def test_a_huge_request_head_is_refused_and_a_normal_one_still_served(live_app: LiveApp
                                                                      ) -> None:
    huge = _raw(live_app, b"X-Padding: " + b"a" * 200_000 + b"\r\n")
    assert huge.startswith(b"HTTP/1.1 400") or huge == b""  # refused, connection closed
    many = _raw(live_app, b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100) for i in range(400)))
    assert many.startswith(b"HTTP/1.1 400") or many == b""
    normal = _raw(live_app, b"X-Ok: 1\r\n")
    assert normal.startswith(b"HTTP/1.1 200")
