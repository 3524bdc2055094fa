"""What ``returnbridge doctor`` reads: counts by status and recent errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from returnbridge.store.models import AlertOutbox, ExceptionRow, InboundEvent, ReturnRow


def password_hidden(url: str) -> str:
    """A database URL with its password masked (ValueError-like errors if unparseable)."""
    return make_url(url).render_as_string(hide_password=True)


class DoctorRepository:
    """The support bundle's reads in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _grouped(self, *cols: Any) -> dict[str, int]:
        rows = self._session.execute(select(*cols, func.count()).group_by(*cols)).all()
        return {":".join(str(v) for v in row[:-1]): int(row[-1]) for row in rows}

    def counts(self) -> dict[str, Any]:
        """Returns, exceptions, events and alerts counted by status (and source, route)."""
        out: dict[str, Any] = {}
        out["returns_by_khaos_status"] = self._grouped(ReturnRow.khaos_status)
        out["returns_by_source"] = self._grouped(ReturnRow.source)
        out["exceptions_by_status"] = self._grouped(ExceptionRow.status)
        out["open_exceptions_by_type"] = {
            t: int(n) for t, n in self._session.execute(
                select(ExceptionRow.type, func.count()).where(ExceptionRow.status == "open")
                .group_by(ExceptionRow.type))}
        out["events_by_status"] = self._grouped(InboundEvent.source, InboundEvent.status)
        out["alerts_by_route_and_status"] = self._grouped(AlertOutbox.route, AlertOutbox.status)
        return out

    def failed_events(self, limit: int) -> list[InboundEvent]:
        return list(self._session.scalars(
            select(InboundEvent).where(InboundEvent.status.in_(("failed", "invalid")))
            .order_by(InboundEvent.id.desc()).limit(limit)))

    def exceptions_seen_since(self, since: datetime, limit: int) -> list[ExceptionRow]:
        return list(self._session.scalars(
            select(ExceptionRow).where(ExceptionRow.last_seen_at >= since)
            .order_by(ExceptionRow.last_seen_at.desc()).limit(limit)))
