"""Gauges read from the database on every scrape, so every process answering ``/metrics``
reports the same figures (unlike the per-process counters in ``returnbridge.metrics``).

Names (all prefixed ``returnbridge_``; the dashboard and alert rules in ``deploy/`` use them):

- ``open_exceptions{type,owner,severity,age}``: open exceptions, age bucket since first seen
- ``returns{khaos_status}``: returns by Khaos status
- ``oldest_item_age_seconds{stage}``: age of the oldest item waiting in each stage
- ``refunds{provider,origin,currency}`` / ``refunds_amount{...}``: refunds recorded, count
  and sum (the amount is a float here: for dashboards, not for accounting)
- ``alert_outbox{route,status}``, ``alert_route_consecutive_failures{route}``
- ``connection_consecutive_failures{system}``
- ``schedule_last_success_timestamp_seconds{job}``
- ``reconciliation_open_gaps{category}``: open ``reconciliation_gap`` exceptions (what the
  continuous reconciliation found over its checked months), by difference category
- ``reconciliation_residual_unexplained{currency}``: the sum of the open gaps no category
  explains (signed; a float, for dashboards: the month-end pack is the accounting figure)
- ``db_metrics_up``: 1 when the database could be read for this scrape
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import CATALOGUE
from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.domain.reconciliation import Category
from returnbridge.store.models import (
    AlertOutbox,
    AlertRouteState,
    ConnectionHealth,
    ExceptionRow,
    InboundEvent,
    JobRun,
    RefundRow,
    ReturnRow,
    utcnow,
)

log = structlog.get_logger(__name__)

AGE_BUCKETS = (("lt_1h", 3600), ("1h_24h", 86400), ("1d_3d", 3 * 86400),
               ("3d_7d", 7 * 86400), ("gt_7d", None))

# stage -> (status filter on returns, the timestamp the wait is measured from)
_RETURN_STAGES = {
    "pending": (KhaosStatus.PENDING, ReturnRow.first_seen_at),
    "held": (KhaosStatus.HELD, ReturnRow.first_seen_at),
    "ready": (KhaosStatus.READY, ReturnRow.ready_at),
    "served": (KhaosStatus.SERVED, ReturnRow.served_at),
    "imported": (KhaosStatus.IMPORTED, ReturnRow.imported_at),
    "credit_confirmed": (KhaosStatus.CREDIT_CONFIRMED, ReturnRow.credit_confirmed_at),
}


def age_bucket(seconds: float) -> str:
    for name, limit in AGE_BUCKETS:
        if limit is None or seconds < limit:
            return name
    return AGE_BUCKETS[-1][0]


def _age(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0


class DatabaseCollector(Collector):
    """Reads the figures above from the database on each ``collect``."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._factory = session_factory

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("returnbridge_db_metrics_up",
                               "1 when the database could be read for this scrape")
        try:
            families = list(self._collect())
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("database metrics failed", error=str(exc))
            up.add_metric([], 0)
            yield up
            return
        yield from families
        up.add_metric([], 1)
        yield up

    def _collect(self) -> Iterable[Metric]:
        now = utcnow()
        with self._factory() as session:
            yield _exceptions(session, now)
            yield _returns(session)
            yield _oldest(session, now)
            yield from _refunds(session)
            yield from _alerts(session)
            yield _connections(session)
            yield _schedules(session)
            yield from _reconciliation(session)


def _exceptions(session: Session, now: datetime) -> Metric:
    fam = GaugeMetricFamily("returnbridge_open_exceptions",
                            "Open exceptions by type, owner, severity and age since first seen",
                            labels=["type", "owner", "severity", "age"])
    counts: dict[tuple[str, str, str, str], int] = {}
    for kind in CATALOGUE.values():
        for bucket, _ in AGE_BUCKETS:
            counts[(kind.name, kind.owner.value, kind.severity.value, bucket)] = 0
    for type_, owner, severity, first_seen in session.execute(
            select(ExceptionRow.type, ExceptionRow.owner, ExceptionRow.severity,
                   ExceptionRow.first_seen_at).where(ExceptionRow.status == "open")):
        key = (type_, owner, severity, age_bucket(_age(now, first_seen)))
        counts[key] = counts.get(key, 0) + 1
    for labels, value in sorted(counts.items()):
        fam.add_metric(list(labels), value)
    return fam


def _returns(session: Session) -> Metric:
    fam = GaugeMetricFamily("returnbridge_returns", "Returns by Khaos status",
                            labels=["khaos_status"])
    counts = {s.value: 0 for s in KhaosStatus}
    for status, n in session.execute(
            select(ReturnRow.khaos_status, func.count()).group_by(ReturnRow.khaos_status)):
        counts[status] = int(n)
    for status, value in counts.items():
        fam.add_metric([status], value)
    return fam


def _oldest(session: Session, now: datetime) -> Metric:
    fam = GaugeMetricFamily("returnbridge_oldest_item_age_seconds",
                            "Age of the oldest item waiting in each stage (0: none waiting)",
                            labels=["stage"])
    for stage, (status, column) in _RETURN_STAGES.items():
        oldest = session.scalar(select(func.min(column)).where(
            ReturnRow.khaos_status == status.value))
        fam.add_metric([stage], _age(now, _aware(oldest)))
    oldest_event = session.scalar(select(func.min(InboundEvent.received_at)).where(
        InboundEvent.status == "received"))
    fam.add_metric(["event_unprocessed"], _age(now, _aware(oldest_event)))
    oldest_exc = session.scalar(select(func.min(ExceptionRow.first_seen_at)).where(
        ExceptionRow.status == "open"))
    fam.add_metric(["open_exception"], _age(now, _aware(oldest_exc)))
    oldest_alert = session.scalar(select(func.min(AlertOutbox.created_at)).where(
        AlertOutbox.status == "pending"))
    fam.add_metric(["alert_pending"], _age(now, _aware(oldest_alert)))
    return fam


def _aware(value: datetime | str | None) -> datetime | None:
    # func.min() bypasses the column type on some backends: SQLite hands back naive UTC.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _refunds(session: Session) -> Iterable[Metric]:
    count = GaugeMetricFamily("returnbridge_refunds", "Refunds recorded (paid), by provider, "
                              "origin and currency", labels=["provider", "origin", "currency"])
    amount = GaugeMetricFamily("returnbridge_refunds_amount",
                               "Sum of refunds recorded (paid), by provider, origin and "
                               "currency; a float, for dashboards only",
                               labels=["provider", "origin", "currency"])
    for provider, origin, currency, n, total in session.execute(
            select(RefundRow.provider, RefundRow.origin, RefundRow.currency, func.count(),
                   func.sum(RefundRow.amount))
            .group_by(RefundRow.provider, RefundRow.origin, RefundRow.currency)):
        count.add_metric([provider, origin, currency], int(n))
        amount.add_metric([provider, origin, currency], float(total or 0))
    yield count
    yield amount


def _alerts(session: Session) -> Iterable[Metric]:
    outbox = GaugeMetricFamily("returnbridge_alert_outbox", "Alert outbox rows by route and "
                               "status", labels=["route", "status"])
    for route, status, n in session.execute(
            select(AlertOutbox.route, AlertOutbox.status, func.count())
            .group_by(AlertOutbox.route, AlertOutbox.status)):
        outbox.add_metric([route, status], int(n))
    failing = GaugeMetricFamily("returnbridge_alert_route_consecutive_failures",
                                "Failed alert deliveries in a row, by route", labels=["route"])
    for state in session.scalars(select(AlertRouteState)):
        failing.add_metric([state.route], state.consecutive_failures)
    yield outbox
    yield failing


def _connections(session: Session) -> Metric:
    fam = GaugeMetricFamily("returnbridge_connection_consecutive_failures",
                            "Failed calls in a row to an external system", labels=["system"])
    for row in session.scalars(select(ConnectionHealth)):
        fam.add_metric([row.system], row.consecutive_failures)
    return fam


def _schedules(session: Session) -> Metric:
    fam = GaugeMetricFamily("returnbridge_schedule_last_success_timestamp_seconds",
                            "When each scheduled job last completed (Unix time)",
                            labels=["job"])
    for row in session.scalars(select(JobRun)):
        if row.last_success_at is not None:
            fam.add_metric([row.name], row.last_success_at.timestamp())
    return fam


def _reconciliation(session: Session) -> Iterable[Metric]:
    # One query: the continuous reconciliation keeps one open gap per return and category,
    # its figures current (flows/reconcile/continuous.py), so this is the live picture.
    gaps = GaugeMetricFamily("returnbridge_reconciliation_open_gaps",
                             "Open reconciliation_gap exceptions by difference category",
                             labels=["category"])
    residual = GaugeMetricFamily("returnbridge_reconciliation_residual_unexplained",
                                 "Sum of the open reconciliation gaps no category explains, "
                                 "by currency (signed; a float, for dashboards only)",
                                 labels=["currency"])
    counts = {c.value: 0 for c in Category}
    unexplained: dict[str, Decimal] = {}
    for (details,) in session.execute(select(ExceptionRow.details).where(
            ExceptionRow.type == "reconciliation_gap", ExceptionRow.status == "open")):
        d = details or {}
        category = str(d.get("category") or "unknown")
        counts[category] = counts.get(category, 0) + 1
        if category == Category.UNEXPLAINED.value:
            try:
                amount = Decimal(str(d.get("amount") or "0"))
            except InvalidOperation:
                amount = Decimal(0)
            currency = str(d.get("currency") or "")
            unexplained[currency] = unexplained.get(currency, Decimal(0)) + amount
    for category, n in sorted(counts.items()):
        gaps.add_metric([category], n)
    for currency, total in sorted(unexplained.items() or [("", Decimal(0))]):
        residual.add_metric([currency], float(total))
    yield gaps
    yield residual
