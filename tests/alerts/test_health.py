"""Schedules that stop running and failing connections become exceptions, and resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from returnbridge.flows.engine import jobs
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import check_schedules, record_failure, record_success
from returnbridge.store.models import ExceptionRow, JobRun, utcnow


def _rows(rt: Runtime, type_: str) -> list[ExceptionRow]:
    with rt.sessions() as session:
        return list(session.scalars(select(ExceptionRow).where(ExceptionRow.type == type_)))


def test_a_job_without_success_for_three_intervals_is_reported_until_it_runs(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory()
    started = utcnow()
    intervals = {"khaos-confirm": 900.0, "loop-backstop": 0.0}  # backstop not configured
    job = jobs.Job("khaos-confirm", lambda _rt: 900.0, lambda _rt: "ok")
    assert jobs.run_recorded(rt, job) == "ok"
    assert check_schedules(rt, intervals, started + timedelta(minutes=44),
                           started_at=started) == []
    late = check_schedules(rt, intervals, started + timedelta(minutes=46), started_at=started)
    check_schedules(rt, intervals, started + timedelta(minutes=50), started_at=started)
    assert late == ["khaos-confirm"]
    [row] = _rows(rt, "schedule_not_running")
    assert row.status == "open" and row.owner == "ops" and row.count == 1
    assert "khaos-confirm" in row.message and row.details["job"] == "khaos-confirm"

    def broken(_rt: Runtime) -> str:
        raise RuntimeError("SOAP said no")

    with pytest.raises(RuntimeError):
        jobs.run_recorded(rt, jobs.Job("khaos-confirm", lambda _rt: 900.0, broken))
    with rt.sessions() as session:
        run = session.get(JobRun, "khaos-confirm")
        assert run is not None and "SOAP said no" in run.last_error
    assert _rows(rt, "schedule_not_running")[0].status == "open"
    jobs.run_recorded(rt, job)
    assert _rows(rt, "schedule_not_running")[0].status == "resolved"


def test_a_job_that_never_ran_counts_from_the_worker_start(
        runtime_factory: Callable[..., Runtime]) -> None:
    rt = runtime_factory()
    started = utcnow()
    assert check_schedules(rt, {"refund-gate": 60.0}, started + timedelta(minutes=4),
                           started_at=started) == ["refund-gate"]
    assert _rows(rt, "schedule_not_running")[0].details["job"] == "refund-gate"


@pytest.mark.parametrize("system", ["loop", "khaos_soap", "shopify"])
def test_connection_failing_after_a_run_of_failures_or_minutes(
        runtime_factory: Callable[..., Runtime], system: str) -> None:
    rt = runtime_factory(alerts={"connection_failure_threshold": 3,
                                 "connection_failure_minutes": 10})
    t0 = utcnow()
    record_failure(rt, system, "timed out", t0)
    record_failure(rt, system, "timed out", t0 + timedelta(minutes=1))
    assert _rows(rt, "connection_failing") == []
    record_failure(rt, system, "HTTP 503", t0 + timedelta(minutes=2))
    [row] = _rows(rt, "connection_failing")
    assert row.status == "open" and row.details["system"] == system
    assert "HTTP 503" in row.message
    record_success(rt, system, t0 + timedelta(minutes=3))
    assert _rows(rt, "connection_failing")[0].status == "resolved"
    # Few calls, but failing for longer than the minutes threshold: reported again.
    record_failure(rt, system, "refused", t0 + timedelta(minutes=4))
    record_failure(rt, system, "refused", t0 + timedelta(minutes=15))
    assert _rows(rt, "connection_failing")[0].status == "open"
