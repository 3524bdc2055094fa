"""The pure alert decisions (periods, quiet hours, back-off, routing) and check-config on
alert routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from returnbridge.checks import Level, check_alerts
from returnbridge.composition import Settings
from returnbridge.domain.alerts import (
    RouteRule,
    digest_period_start,
    quiet_until,
    retry_delay,
)


def test_daily_digests_start_at_the_digest_hour_in_the_local_zone() -> None:
    # 07:30 London in summer is 06:30 UTC: the period began yesterday at 08:00 London.
    now = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)
    assert digest_period_start(now, "daily", "Europe/London", 8) == datetime(
        2026, 6, 30, 7, 0, tzinfo=UTC)
    later = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # 08:00 London exactly
    assert digest_period_start(later, "daily", "Europe/London", 8) == later
    assert digest_period_start(datetime(2026, 1, 5, 13, 59, tzinfo=UTC), "hourly", "UTC",
                               8) == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)


def test_quiet_hours_across_midnight_end_the_next_morning() -> None:
    at_night = datetime(2026, 1, 5, 23, 15, tzinfo=UTC)
    assert quiet_until(at_night, "22:00-07:00", "UTC") == datetime(2026, 1, 6, 7, 0,
                                                                   tzinfo=UTC)
    early = datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    assert quiet_until(early, "22:00-07:00", "UTC") == datetime(2026, 1, 6, 7, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 1, 6, 12, 0, tzinfo=UTC), "22:00-07:00", "UTC") is None
    assert quiet_until(at_night, "", "UTC") is None


def test_retries_back_off_to_the_cap() -> None:
    assert [retry_delay(n, 30).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(20, 30) == timedelta(minutes=30)


def test_a_route_takes_its_team_and_severity() -> None:
    rule = RouteRule("r", "finance", "immediate", min_severity="blocking")
    assert rule.takes("finance", "blocking", "duplicate_refund_suspected")
    assert not rule.takes("finance", "warning", "tax_drift")
    assert not rule.takes("cx", "blocking", "unknown_customer")
    assert RouteRule("all", "*", "digest").takes("cx", "warning", "source_processing_failed")
    rest = RouteRule("rest", "finance", "digest", max_severity="warning")
    assert rest.takes("finance", "warning", "tax_drift")
    assert not rest.takes("finance", "blocking", "duplicate_refund_suspected")


def test_bad_routes_are_refused_when_loading() -> None:
    with pytest.raises(ValueError, match="owner must be one of"):
        Settings(alerts={"routes": [{"owner": "sales", "urls": ["json://x"]}]})
    with pytest.raises(ValueError, match="unknown exception type"):
        Settings(alerts={"routes": [{"owner": "cx", "types": ["nope"]}]})
    with pytest.raises(ValueError, match="quiet_hours"):
        Settings(alerts={"routes": [{"owner": "cx", "quiet_hours": "late"}]})
    with pytest.raises(ValueError, match="unique"):
        Settings(alerts={"routes": [{"owner": "cx", "name": "a"}, {"owner": "ops", "name": "a"}]})


def test_check_config_explains_routes_that_cannot_deliver(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RB_UNSET_TOKEN", raising=False)
    settings = Settings(alerts={"routes": [
        {"name": "cx", "owner": "cx", "urls": ["slack://${RB_UNSET_TOKEN}"]},
        {"name": "fin", "owner": "finance", "urls": ["nosuchscheme://x"]},
        {"name": "empty", "owner": "warehouse"},
        {"name": "ok", "owner": "ops", "urls": ["json://127.0.0.1:9/hook"]},
    ]})
    found = {(f.key, f.level): f.message for f in check_alerts(settings)}
    assert "RB_UNSET_TOKEN" in found[("[[alerts.routes]] cx", Level.ERROR)]
    assert "'nosuchscheme'" in found[("[[alerts.routes]] fin", Level.ERROR)]
    assert "no URLs" in found[("[[alerts.routes]] empty", Level.ERROR)]
    assert not any(key == "[[alerts.routes]] ok" for key, _ in found)
