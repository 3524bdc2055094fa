"""Failed console sign-ins (``console_login_failures``), counted per user name and address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from returnbridge.store.models import ConsoleLoginFailure


class LoginFailuresRepository:
    """Failed sign-ins in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def counts_since(self, keys: list[str], since: datetime) -> list[tuple[str, int, datetime]]:
        """(key, failures, oldest failure) of each key with failures after ``since``."""
        t = ConsoleLoginFailure
        return [(key, int(n), oldest) for key, n, oldest in self._session.execute(
            select(t.key, func.count(), func.min(t.at))
            .where(t.key.in_(keys), t.at > since)
            .group_by(t.key)).all()]

    def record(self, keys: list[str], at: datetime, forget_before: datetime) -> None:
        """One failure per key at ``at``; failures at or before ``forget_before`` go."""
        t = ConsoleLoginFailure
        self._session.execute(delete(t).where(t.at <= forget_before))
        self._session.execute(insert(t), [{"key": k, "at": at} for k in keys])

    def clear(self, keys: list[str]) -> None:
        t = ConsoleLoginFailure
        self._session.execute(delete(t).where(t.key.in_(keys)))
