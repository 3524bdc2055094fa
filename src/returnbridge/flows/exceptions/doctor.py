"""``returnbridge doctor``: one JSON file an integrator can attach to a support ticket.

It holds the configuration with every secret redacted, versions, the schema revision, counts
by status, recent errors, the last run of each schedule, the health the running system
recorded for each connection, and (unless switched off) a live connection check of each
configured system. Before it is written, every configured secret value (API keys, passwords,
webhook secrets, tokens, alert URLs and the secret parts in them, database passwords) is
replaced by ``[redacted]`` wherever it appears, including in stored error messages.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from typing import Any

import httpx

from returnbridge import __version__
from returnbridge.flows.engine.jobs import intervals
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.doctor_repo import password_hidden
from returnbridge.store.migrate import current_revision, head_revision
from returnbridge.store.models import utcnow

REDACTED = "[redacted]"
PACKAGES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "dbos", "pydantic",
            "pydantic-settings", "httpx", "apprise", "prometheus-client", "structlog")


def _versions() -> dict[str, str]:
    found = {"returnbridge": __version__, "python": sys.version.split()[0],
             "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _safe_url(url: str) -> str:
    try:
        return password_hidden(url)
    except Exception:
        return REDACTED if "@" in url else url


def _config(rt: Runtime) -> dict[str, Any]:
    data: dict[str, Any] = rt.settings.model_dump(mode="json")  # SecretStr -> '**********'
    data["database"]["url"] = _safe_url(rt.settings.database.url)
    if rt.settings.database.system_url:
        data["database"]["system_url"] = _safe_url(rt.settings.database.system_url)
    return data


def _schema(rt: Runtime) -> dict[str, Any]:
    try:
        current = current_revision(rt.engine)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    head = head_revision()
    return {"current": current, "expected": head, "up_to_date": current == head,
            "database": rt.engine.dialect.name}


def _counts(rt: Runtime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with rt.unit_of_work() as uow:
        out.update(uow.doctor.counts())
        for source in rt.platforms:
            out.update(source.doctor_counts(uow))
    return out


def _recent(rt: Runtime, limit: int = 20) -> dict[str, Any]:
    since = utcnow() - timedelta(days=7)
    with rt.unit_of_work() as uow:
        failed_events = [
            {"id": e.id, "source": e.source, "topic": e.topic, "trigger": e.trigger,
             "received_at": e.received_at.isoformat(), "error": e.error}
            for e in uow.doctor.failed_events(limit)]
        exceptions = [
            {"id": x.id, "type": x.type, "owner": x.owner, "status": x.status,
             "associated_ref": x.associated_ref, "count": x.count, "message": x.message,
             "last_seen_at": x.last_seen_at.isoformat()}
            for x in uow.doctor.exceptions_seen_since(since, limit)]
        alert_failures = [
            {"route": s.route, "consecutive_failures": s.consecutive_failures,
             "last_error": s.last_error,
             "last_failure_at": s.last_failure_at.isoformat() if s.last_failure_at else None,
             "last_success_at": s.last_success_at.isoformat() if s.last_success_at else None}
            for s in uow.alerts.route_states()]
    return {"failed_events": failed_events, "exceptions_last_7_days": exceptions,
            "alert_routes": alert_failures}


def _schedules(rt: Runtime) -> list[dict[str, Any]]:
    configured = intervals(rt)
    with rt.unit_of_work() as uow:
        runs = {r.name: r for r in uow.health.job_runs()}
    out = []
    for name, interval in configured.items():
        run = runs.get(name)
        out.append({
            "job": name, "interval_seconds": interval, "configured": interval > 0,
            "last_started_at": _iso(run.last_started_at if run else None),
            "last_success_at": _iso(run.last_success_at if run else None),
            "last_failure_at": _iso(run.last_failure_at if run else None),
            "last_error": run.last_error if run else "",
            "last_summary": run.last_summary if run else "",
        })
    return out


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _recorded_health(rt: Runtime) -> list[dict[str, Any]]:
    with rt.unit_of_work() as uow:
        return [{"system": h.system, "consecutive_failures": h.consecutive_failures,
                 "failing_since": _iso(h.failing_since), "last_error": h.last_error,
                 "last_success_at": _iso(h.last_success_at),
                 "last_failure_at": _iso(h.last_failure_at)}
                for h in uow.health.connections()]


def _probe(name: str, check: Callable[[], str]) -> dict[str, str]:
    try:
        return {"system": name, "result": "ok", "detail": check()}
    except Exception as exc:
        return {"system": name, "result": "failed", "detail": f"{type(exc).__name__}: {exc}"}


def connection_checks(rt: Runtime, timeout: float = 10.0) -> list[dict[str, str]]:
    """Live checks of each configured system (short timeouts, no retries, no writes)."""
    s = rt.settings
    checks: list[dict[str, str]] = []
    for source in rt.platforms:
        check = source.probe(source.settings(s))
        if check is not None:
            checks.append(_probe(source.name, check))
    if s.khaos.soap_url:
        def khaos() -> str:
            answer = httpx.get(s.khaos.soap_url, timeout=timeout)
            return f"HTTP {answer.status_code} from the SOAP URL"
        checks.append(_probe("khaos_soap", khaos))
    if s.shopify.shop_domain or s.shopify.base_url:
        def shopify() -> str:
            base = s.shopify.base_url or f"https://{s.shopify.shop_domain}"
            answer = httpx.get(base, timeout=timeout)
            return f"HTTP {answer.status_code} from {base} (reachability only)"
        checks.append(_probe("shopify", shopify))
    return checks


def redact(text: str, secrets: list[str]) -> str:
    for secret in sorted({x for x in secrets if x and len(x) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        # the same secret as it appears inside JSON strings (escaped characters)
        escaped = json.dumps(secret)[1:-1]
        if escaped != secret:
            text = text.replace(escaped, REDACTED)
    return text


def bundle(rt: Runtime, *, check_connections: bool = True) -> str:
    """The support bundle as JSON text, with every configured secret redacted."""
    report: dict[str, Any] = {
        "generated_at": utcnow().isoformat(),
        "versions": _versions(),
    }
    sections: dict[str, Callable[[], Any]] = {
        "schema": lambda: _schema(rt),
        "configuration": lambda: _config(rt),
        "counts": lambda: _counts(rt),
        "recent": lambda: _recent(rt),
        "schedules": lambda: _schedules(rt),
        "connection_health_recorded": lambda: _recorded_health(rt),
        "connection_checks": (lambda: connection_checks(rt)) if check_connections
        else (lambda: "skipped (--no-connections)"),
    }
    for name, build in sections.items():
        try:
            report[name] = build()
        except Exception as exc:  # a broken part must not lose the rest of the bundle
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
    # secret_values() includes the database passwords and the alert URLs' secret parts
    return redact(json.dumps(report, indent=2, default=str), rt.settings.secret_values())
