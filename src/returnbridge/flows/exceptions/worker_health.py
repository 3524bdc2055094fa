"""``worker_down``: the worker child of ``serve`` keeps dying (flows/engine/worker_child.py).

The supervisor in the HTTP process calls these. While the worker is down, nothing else
reports it: the scheduled jobs (``schedule_not_running``'s check, the alert cycle) run in
the worker. So the HTTP process opens the exception itself and runs one alert cycle
(deliveries are locked per row, so a worker that comes back cannot send the same alert
twice). Neither function raises: bookkeeping must not stop the supervisor.
"""

from __future__ import annotations

import socket

import structlog

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.alerts import run_alerts

log = structlog.get_logger(__name__)


def _key() -> str:
    return f"serve:{socket.gethostname()}"


def report_worker_down(rt: Runtime, exits: int, minutes: float, last_exit_code: int) -> None:
    """The child died ``exits`` times within ``minutes``; the last exit code was
    ``last_exit_code`` (negative: killed by that signal)."""
    how = (f"killed by signal {-last_exit_code}" if last_exit_code < 0
           else f"exit code {last_exit_code}")
    host = socket.gethostname()
    try:
        with rt.unit_of_work() as uow:
            uow.exceptions.raise_problem(Problem(
                "worker_down",
                f"The worker process of 'returnbridge serve' on {host} died {exits} times in "
                f"{minutes:.0f} minutes (last: {how}). Webhooks are stored but not applied, "
                "and no scheduled job runs, until it stays up.",
                dedupe_key=_key(),
                details={"host": host, "exits": str(exits), "last_exit": how}))
    except Exception as exc:
        log.error("could not record worker_down", error=str(exc))
        return
    try:
        run_alerts(rt)
    except Exception as exc:
        log.error("could not send the worker_down alert", error=str(exc))


def resolve_worker_down(rt: Runtime, stable_minutes: float) -> None:
    try:
        with rt.unit_of_work() as uow:
            uow.exceptions.resolve_by_key(
                "worker_down", _key(), by="returnbridge",
                how=f"the worker process has stayed up for {stable_minutes:.0f} minutes")
    except Exception as exc:
        log.warning("could not resolve worker_down", error=str(exc))
