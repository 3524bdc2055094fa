"""Silent failures made visible: failing connections and schedules that stopped running.

- **Connections** (``khaos_soap``, ``shopify`` and each returns platform's API): every call
  site that
  talks to the system records a success or a failure here. After
  ``[alerts].connection_failure_threshold`` failures in a row, or failures for
  ``[alerts].connection_failure_minutes``, a ``connection_failing`` exception for ops is
  opened (one per system); the next success resolves it.
- **Schedules**: each job run records its start, success or failure (``job_runs``); a job
  that has not succeeded for three times its interval opens ``schedule_not_running``, which
  its next success resolves.

Recording never raises: a health bookkeeping problem must not fail the work it watches.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import utcnow

log = structlog.get_logger(__name__)

CORE_SYSTEMS = {"khaos_soap": "Khaos SOAP", "shopify": "Shopify"}


def system_title(rt: Runtime, system: str) -> str:
    """How people call an external system: "Khaos SOAP", or a platform's ``api_title``."""
    for platform in rt.platforms:
        if platform.api_system == system:
            return platform.api_title or platform.title
    return CORE_SYSTEMS.get(system, system)


def record_success(rt: Runtime, system: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    try:
        with rt.unit_of_work() as uow:
            if uow.health.connection_succeeded(system, now):
                uow.exceptions.resolve_by_key(
                    "connection_failing", f"system:{system}", by="returnbridge",
                    how=f"a call to {system_title(rt, system)} succeeded again")
    except Exception as exc:  # never fail the caller over bookkeeping
        log.warning("could not record a connection success", system=system, error=str(exc))


def record_failure(rt: Runtime, system: str, error: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    settings = rt.settings.alerts
    error = error[:1000]
    try:
        with rt.unit_of_work() as uow:
            row = uow.health.connection_failed(system, error, now)
            since = row.failing_since or now  # connection_failed set it
            minutes = (now - since).total_seconds() / 60
            if (row.consecutive_failures >= settings.connection_failure_threshold
                    or minutes >= settings.connection_failure_minutes):
                name = system_title(rt, system)
                uow.exceptions.raise_problem(Problem(
                    "connection_failing",
                    f"Calls to {name} have failed {row.consecutive_failures} time(s) in a row "
                    f"since {since:%Y-%m-%d %H:%M} UTC. Last error: {error}",
                    dedupe_key=f"system:{system}",
                    details={"system": system, "last_error": error,
                             "failures": str(row.consecutive_failures),
                             "failing_since": since.isoformat()}))
    except Exception as exc:
        log.warning("could not record a connection failure", system=system, error=str(exc))


# --- schedules -------------------------------------------------------------------------


def record_job(rt: Runtime, name: str, *, ok: bool | None, summary: str = "",
               now: datetime | None = None) -> None:
    """``ok=None``: the run started; True: it succeeded; False: it failed (summary = error)."""
    now = now or utcnow()
    try:
        with rt.unit_of_work() as uow:
            if ok is None:
                uow.health.job_started(name, now)
            elif ok:
                uow.health.job_succeeded(name, now, summary)
                uow.exceptions.resolve_by_key("schedule_not_running", f"job:{name}",
                                              by="returnbridge", how="the job ran again")
            else:
                uow.health.job_failed(name, now, summary)
    except Exception as exc:
        log.warning("could not record a job run", job=name, error=str(exc))


def check_schedules(rt: Runtime, intervals: dict[str, float],
                    now: datetime | None = None, *, started_at: datetime | None = None
                    ) -> list[str]:
    """Open ``schedule_not_running`` for each job (name -> interval seconds, 0 = off) with no
    success for three intervals; a job never run counts from ``started_at`` (this process's
    start). Returns the names of the late jobs."""
    now = now or utcnow()
    late: list[str] = []
    with rt.unit_of_work() as uow:
        for name, interval in intervals.items():
            if interval <= 0:
                continue
            row = uow.health.job_run(name)
            since = (row.last_success_at if row is not None and row.last_success_at
                     else started_at)
            if since is None or now - since < timedelta(seconds=3 * interval):
                continue
            late.append(name)
            error = row.last_error if row is not None else ""
            if uow.exceptions.not_resolved_exists("schedule_not_running", f"job:{name}"):
                continue  # already open (or ignored): do not count it again on every check
            uow.exceptions.raise_problem(Problem(
                "schedule_not_running",
                f"The scheduled job {name} (every {_every(interval)}) has not completed since "
                f"{since:%Y-%m-%d %H:%M} UTC." + (f" Last error: {error}" if error else ""),
                dedupe_key=f"job:{name}",
                details={"job": name, "interval_seconds": str(int(interval)),
                         "last_success_at": since.isoformat(), "last_error": error}))
    return late


def _every(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"
