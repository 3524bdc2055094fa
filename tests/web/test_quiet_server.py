"""An idle serve sleeps: the HTTP server's loop wakes once a second (uvicorn's own wakes ten
times), still refreshes the Date header every second and still stops when told to."""

import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import uvicorn

from returnbridge.sandbox.service import free_port
from returnbridge.web.server import QuietServer


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_idle_server_wakes_about_once_a_second_and_stops_when_told() -> None:
    port = free_port()
    server = QuietServer(uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="warning",
                                        lifespan="off"))
    ticks: list[float] = []
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(time.monotonic())
        return await on_tick(counter)

    server.on_tick = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    first = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    time.sleep(3.2)
    second = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    asked = time.monotonic()
    server.should_exit = True
    thread.join(timeout=5)
    stopped = time.monotonic() - asked
    assert first.text == "ok" and not thread.is_alive()
    idle = [t for t in ticks if t < asked]
    assert 3 <= len(idle) <= 5, f"{len(idle)} wake-ups in about 3 s (uvicorn's loop: ~30)"
    age = (parsedate_to_datetime(second.headers["date"])
           - parsedate_to_datetime(first.headers["date"])).total_seconds()
    assert 2 <= age <= 5  # the Date header kept moving
    assert stopped < 2.5
