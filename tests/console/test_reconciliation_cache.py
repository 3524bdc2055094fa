"""The Reconciliation page's report is computed once per state of the legs (migration 0012's
triggers count every leg change) and read back while they are unchanged: on SQLite and
PostgreSQL it must always equal the report computed from the legs as they are now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import continuous, pack, report_cache, service
from returnbridge.sandbox.month import generate, load_legs
from returnbridge.store.models import ReconciliationReport, ReconPaymentLeg, ReconPlatformLeg

PERIOD = "2026-10"


def fresh(rt: Runtime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = service.report(rt, PERIOD)
    return result.summary, result.differences


def shown(rt: Runtime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = report_cache.report(rt, PERIOD)
    return result.summary, result.differences


def test_the_report_is_read_back_until_a_leg_changes(runtime: Runtime,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime
    month = generate(PERIOD, 200, seed=5)
    with rt.engine.begin() as conn:
        load_legs(conn, month)
    first = shown(rt)
    assert first == fresh(rt) and first[1]  # computed, with its planted differences
    report_cache.warm(rt, [PERIOD])

    real_build = pack.build
    built: list[str] = []

    def counting_build(*args: Any, **kwargs: Any) -> pack.PackResult:
        built.append("build")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(pack, "build", counting_build)
    again = shown(rt)
    assert again == first and built == []  # read back, Decimals and all

    ref = next(d["associated_ref"] for d in first[1] if d["associated_ref"])
    with rt.engine.begin() as conn:  # a leg refresh changes one return's refund
        conn.execute(update(ReconPlatformLeg).where(ReconPlatformLeg.associated_ref == ref)
                     .values(refund=ReconPlatformLeg.refund + 1234))
    changed = shown(rt)
    assert built == ["build"]
    assert changed != first
    assert changed == fresh(rt)

    with rt.engine.begin() as conn:
        conn.execute(delete(ReconPaymentLeg).where(ReconPaymentLeg.associated_ref == ref))
    assert shown(rt) == fresh(rt) != changed
    assert len(built) == 4  # two views after two changes, and the two fresh reports


def test_the_scheduled_run_leaves_the_checked_months_ready(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime
    now = datetime(2026, 11, 3, 9, tzinfo=UTC)
    with rt.engine.begin() as conn:
        load_legs(conn, generate(PERIOD, 60, seed=8))
    service.run_continuous(rt, now)
    checked = continuous.periods(now, rt.settings.reconciliation.months_checked)
    assert PERIOD in checked
    with rt.sessions() as s:
        stored = set(s.scalars(select(ReconciliationReport.period)))
    assert stored == set(checked)

    def no_build(*args: Any, **kwargs: Any) -> pack.PackResult:
        raise AssertionError("the page recomputed a month the schedule had just computed")

    expected = fresh(rt)
    monkeypatch.setattr(pack, "build", no_build)
    assert shown(rt) == expected
