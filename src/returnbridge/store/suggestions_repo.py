"""What the suggestions for open exceptions learn from: delivered returns, the catalogue
mirror and the customer mirror."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.store.models import (
    CustomerMirror,
    ExceptionRow,
    ReturnLineRow,
    ReturnRow,
    StockItem,
)


class SuggestionsRepository:
    """The suggestions' reads in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def returns_with_resolved_unmapped_reason(self) -> set[int | None]:
        return set(self._session.scalars(select(ExceptionRow.return_id).where(
            ExceptionRow.type == "unmapped_return_reason", ExceptionRow.status == "resolved",
            ExceptionRow.return_id.is_not(None))))

    def mapped_lines(self, statuses: Iterable[str]) -> Sequence[Any]:
        """(return id, reason, disposition, Khaos reason id, processing) of the mapped lines
        of returns in ``statuses``."""
        return self._session.execute(
            select(ReturnLineRow.return_id, ReturnLineRow.reason, ReturnLineRow.disposition,
                   ReturnLineRow.khaos_reason_id, ReturnLineRow.processing)
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnLineRow.khaos_reason_id != "",
                   ReturnRow.khaos_status.in_(list(statuses)))).all()

    def open_unmapped_reasons(self) -> list[tuple[ExceptionRow, str | None]]:
        """Open ``unmapped_return_reason`` exceptions with their return's platform."""
        return [(row, source) for row, source in self._session.execute(
            select(ExceptionRow, ReturnRow.source)
            .outerjoin(ReturnRow, ReturnRow.id == ExceptionRow.return_id)
            .where(ExceptionRow.type == "unmapped_return_reason",
                   ExceptionRow.status == "open"))]

    def live_catalogue(self) -> list[StockItem]:
        return list(self._session.scalars(select(StockItem).where(
            StockItem.deleted.is_(False))))

    def recent_cases(self, statuses: Iterable[str], limit: int) -> list[dict[str, Any]]:
        """The stored cases of the most recent ``limit`` returns in ``statuses``."""
        return list(self._session.scalars(
            select(ReturnRow.case_json)
            .where(ReturnRow.khaos_status.in_(list(statuses)))
            .order_by(ReturnRow.id.desc()).limit(limit)))

    def mirror_customers(self) -> list[CustomerMirror]:
        return list(self._session.scalars(select(CustomerMirror)))
