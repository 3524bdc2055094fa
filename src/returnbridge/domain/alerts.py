"""Alert decisions (docs/alerts.md): which route takes which exception, what the message says,
when a digest period ends and whether a route is in its quiet hours. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

SEVERITY_RANK = {"warning": 1, "blocking": 2}


@dataclass(frozen=True)
class RouteRule:
    """The part of an ``[[alerts.routes]]`` entry that decides what it takes and when."""

    name: str
    owner: str  # a team or "*"
    mode: str  # immediate | digest
    digest: str = "hourly"  # hourly | daily
    min_severity: str = "warning"
    max_severity: str = "blocking"
    types: tuple[str, ...] = ()
    quiet_hours: str = ""

    def takes(self, owner: str, severity: str, type_: str) -> bool:
        if self.owner not in ("*", owner):
            return False
        rank = SEVERITY_RANK.get(severity, 0)
        if not SEVERITY_RANK.get(self.min_severity, 0) <= rank <= SEVERITY_RANK.get(
                self.max_severity, 2):
            return False
        return not self.types or type_ in self.types


@dataclass(frozen=True)
class ExceptionFacts:
    """What an alert says about one exception."""

    id: int
    type: str
    owner: str
    severity: str
    associated_ref: str
    message: str
    next_action: str
    count: int
    first_seen_at: datetime


def alert_keys(facts: ExceptionFacts, now: datetime,
               thresholds_hours: list[float]) -> tuple[str, list[str]]:
    """(the key of the alert for the exception at its severity, age keys passed by now)."""
    age_hours = (now - facts.first_seen_at).total_seconds() / 3600
    passed = [f"exc:{facts.id}:age:{_hours(h)}" for h in sorted(thresholds_hours)
              if h > 0 and age_hours >= h]
    return f"exc:{facts.id}:{facts.severity}", passed


def _hours(value: float) -> str:
    return f"{value:g}h"


def link(base_url: str, exception_id: int, *, console: bool) -> str:
    base = base_url.rstrip("/")
    return (f"{base}/exceptions/{exception_id}" if console
            else f"{base}/api/v1/exceptions/{exception_id}")


def _age(facts: ExceptionFacts, now: datetime) -> str:
    minutes = max(int((now - facts.first_seen_at).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // 1440}d {(minutes // 60) % 24}h"


def exception_message(facts: ExceptionFacts, url: str, now: datetime,
                      cause: str = "") -> tuple[str, str]:
    """(title, body) of the alert for one exception; the body names the next action."""
    ref = f" on {facts.associated_ref}" if facts.associated_ref else ""
    prefix = {"age": "Still open: ", "escalated": "Escalated: "}.get(cause, "")
    title = (f"[returnbridge] {prefix}{facts.severity.upper()} {facts.type}{ref} "
             f"(for {facts.owner})")[:250]
    body = "\n".join([
        facts.message,
        "",
        f"Next action ({facts.owner}): {facts.next_action}",
        "",
        f"Exception #{facts.id}, {facts.type}, {facts.severity}; first seen "
        f"{facts.first_seen_at:%Y-%m-%d %H:%M} UTC ({_age(facts, now)} ago), seen "
        f"{facts.count} time(s).",
        f"Open it: {url}",
        f"Runbook: docs/runbooks/{facts.type}.md",
    ])
    return title, body


def digest_message(route: str, items: list[tuple[ExceptionFacts, str]],
                   now: datetime, intro: str = "") -> tuple[str, str]:
    """(title, body) of one digest listing ``items`` (facts, link), oldest first."""
    owners = sorted({f.owner for f, _ in items})
    blocking = sum(1 for f, _ in items if f.severity == "blocking")
    title = (f"[returnbridge] {len(items)} new exception(s) for {', '.join(owners)}"
             + (f", {blocking} blocking" if blocking else ""))[:250]
    lines = [intro or f"Digest for route {route}: exceptions opened since the last digest "
             "and still open.", ""]
    for facts, url in items:
        ref = f" {facts.associated_ref}" if facts.associated_ref else ""
        lines.append(f"- #{facts.id} {facts.severity} {facts.type}{ref} "
                     f"({_age(facts, now)} old): {facts.message}")
        lines.append(f"  Next action ({facts.owner}): {facts.next_action}")
        lines.append(f"  {url}")
    return title, "\n".join(lines)


def digest_period_start(now: datetime, period: str, tz: str, digest_hour: int) -> datetime:
    """Start (UTC) of the digest period containing ``now``; a digest covers what was queued
    before it and goes out at this moment."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    if period == "daily":
        start = datetime.combine(local.date(), time(digest_hour), tzinfo=zone)
        if start > local:
            start = datetime.combine(local.date() - timedelta(days=1), time(digest_hour),
                                     tzinfo=zone)
    else:
        start = local.replace(minute=0, second=0, microsecond=0)
    return start.astimezone(UTC)


def quiet_until(now: datetime, quiet_hours: str, tz: str) -> datetime | None:
    """The end (UTC) of the quiet hours ``now`` falls in, or None when sending is allowed."""
    if not quiet_hours:
        return None
    start_text, end_text = quiet_hours.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if start == end:
        return None
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    end_day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(UTC)


def retry_delay(attempts: int, max_minutes: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at ``max_minutes``."""
    seconds = 30 * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, max_minutes * 60))
