"""The HTTP server ``serve`` runs: uvicorn, waking once a second when idle.

uvicorn's server (``Server.main_loop``) wakes ten times a second to refresh the Date header
(which it does once a second) and to see whether it should stop. An idle ``serve`` should
cost next to nothing (issue #12: at most 2% of a core), so this server ticks once a second:
the Date header is refreshed as often as before, and a stop (SIGTERM, Ctrl-C) is seen
within a second instead of a tenth."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import uvicorn

TICK_SECONDS = 1.0
STARTUP_FAILURE = 3  # uvicorn's exit code when the server could not start


class QuietServer(uvicorn.Server):
    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            # uvicorn refreshes its default headers when counter % 10 == 0: every tick
            counter = (counter + 10) % 864000
            await asyncio.sleep(TICK_SECONDS)
            should_exit = await self.on_tick(counter)


def run(app: Any, **options: Any) -> None:
    """``uvicorn.run(app, **options)`` with :class:`QuietServer`, for an app object."""
    server = QuietServer(uvicorn.Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
