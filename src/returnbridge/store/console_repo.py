"""What the team console's pages read: a return's whole story, the exception queues, the
overview's counts and the mapping preview's candidates. Reads only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from returnbridge.store.models import (
    ExceptionRow,
    InboundEvent,
    KhaosDelivery,
    KhaosDeliveryItem,
    RefundRow,
    ReturnLineRow,
    ReturnRow,
)

_CHUNK = 500


class ConsoleRepository:
    """The console's read models in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # --- a return's page ---

    def delivery_items(self, return_id: int) -> Sequence[KhaosDeliveryItem]:
        return self._session.scalars(
            select(KhaosDeliveryItem).where(KhaosDeliveryItem.return_id == return_id)
            .order_by(KhaosDeliveryItem.id)
        ).all()

    def refunds(self, return_id: int) -> Sequence[RefundRow]:
        return self._session.scalars(select(RefundRow).where(RefundRow.return_id == return_id)
                                     .order_by(RefundRow.id)).all()

    def ref_of(self, return_id: int) -> str | None:
        return self._session.scalar(select(ReturnRow.associated_ref).where(
            ReturnRow.id == return_id))

    def follow_up_refs(self, return_id: int) -> list[str]:
        return list(self._session.scalars(select(ReturnRow.associated_ref).where(
            ReturnRow.parent_id == return_id).order_by(ReturnRow.id)))

    def deliveries(self, return_id: int) -> Sequence[Any]:
        """(delivery, redelivery) of every document this return was served in."""
        return self._session.execute(
            select(KhaosDelivery, KhaosDeliveryItem.redelivery)
            .join(KhaosDeliveryItem, KhaosDeliveryItem.delivery_id == KhaosDelivery.id)
            .where(KhaosDeliveryItem.return_id == return_id)
            .order_by(KhaosDelivery.id)).all()

    def raw_events(self, source: str, source_ref: str, limit: int) -> Sequence[InboundEvent]:
        return self._session.scalars(
            select(InboundEvent).where(InboundEvent.source == source,
                                       InboundEvent.source_ref == source_ref)
            .order_by(InboundEvent.id).limit(limit)).all()

    def all_exceptions(self, return_id: int) -> Sequence[ExceptionRow]:
        return self._session.scalars(
            select(ExceptionRow).where(ExceptionRow.return_id == return_id)
            .order_by(ExceptionRow.id)).all()

    # --- exception queues ---

    def exceptions_by_status(self, status: str) -> Sequence[ExceptionRow]:
        """Newest seen first; ``status`` "all": every status."""
        stmt = select(ExceptionRow).order_by(ExceptionRow.last_seen_at.desc(), ExceptionRow.id)
        if status != "all":
            stmt = stmt.where(ExceptionRow.status == status)
        return self._session.scalars(stmt).all()

    def queue(self, owner: str, *, status: str, type: str, blocking: str,
              limit: int) -> Sequence[ExceptionRow]:
        """An owning team's queue (``owner`` "all": every team): ``blocking`` severity
        first, then oldest first."""
        stmt = select(ExceptionRow).where(ExceptionRow.status == status)
        if owner != "all":
            stmt = stmt.where(ExceptionRow.owner == owner)
        if type:
            stmt = stmt.where(ExceptionRow.type == type)
        severity_rank = case((ExceptionRow.severity == blocking, 0), else_=1)
        stmt = stmt.order_by(severity_rank, ExceptionRow.first_seen_at, ExceptionRow.id
                             ).limit(limit)
        return self._session.scalars(stmt).all()

    def open_by_owner(self) -> Sequence[Any]:
        """(owner, open exceptions)."""
        return self._session.execute(select(ExceptionRow.owner, func.count())
                                     .where(ExceptionRow.status == "open")
                                     .group_by(ExceptionRow.owner)).all()

    # --- overview ---

    def stage_counts(self, periods: Sequence[datetime]) -> Sequence[Any]:
        """(khaos status, imported, cleared, seen since each period's start..., count) of
        the returns first seen since the earliest start."""
        since = min(periods)
        flags = [(ReturnRow.first_seen_at >= start).label(f"p{i}")
                 for i, start in enumerate(periods)]
        imported = ReturnRow.imported_at.is_not(None).label("imported")
        cleared = ReturnRow.credit_confirmed_at.is_not(None).label("cleared")
        return self._session.execute(
            select(ReturnRow.khaos_status, imported, cleared, *flags, func.count())
            .where(ReturnRow.first_seen_at >= since)
            .group_by(ReturnRow.khaos_status, imported, cleared, *flags)).all()

    def refunded_first_seen(self, since: datetime) -> Sequence[Any]:
        """(first seen,) of the refunded returns first seen since ``since``."""
        return self._session.execute(
            select(ReturnRow.first_seen_at).join(RefundRow, RefundRow.return_id == ReturnRow.id)
            .where(ReturnRow.first_seen_at >= since).distinct()).all()

    def open_exception_ages(self) -> Sequence[Any]:
        """(owner, type, first seen) of every open exception."""
        return self._session.execute(
            select(ExceptionRow.owner, ExceptionRow.type, ExceptionRow.first_seen_at)
            .where(ExceptionRow.status == "open")).all()

    def served_not_imported(self, status: str, served_before: datetime) -> int:
        return int(self._session.scalar(select(func.count()).select_from(ReturnRow).where(
            ReturnRow.khaos_status == status, ReturnRow.served_at <= served_before)) or 0)

    def processed_not_cleared(self, statuses: Sequence[str]) -> int:
        return int(self._session.scalar(select(func.count()).select_from(ReturnRow).where(
            ReturnRow.process_return.is_(True), ReturnRow.credit_confirmed_at.is_(None),
            ReturnRow.khaos_status.in_(statuses))) or 0)

    def received_per_day(self, since: datetime) -> Sequence[Any]:
        day = func.date(ReturnRow.first_seen_at)
        return self._session.execute(select(day, func.count()).where(
            ReturnRow.first_seen_at >= since).group_by(day)).all()

    def served_per_day(self, since: datetime) -> Sequence[Any]:
        sday = func.date(ReturnRow.served_at)
        return self._session.execute(select(sday, func.count()).where(
            ReturnRow.served_at >= since).group_by(sday)).all()

    # --- mapping preview ---

    def lines_by_return(self, return_ids: list[int]) -> dict[int, list[ReturnLineRow]]:
        found: dict[int, list[ReturnLineRow]] = {}
        for i in range(0, len(return_ids), _CHUNK):
            for line in self._session.scalars(select(ReturnLineRow).where(
                    ReturnLineRow.return_id.in_(return_ids[i:i + _CHUNK]))
                    .order_by(ReturnLineRow.return_id, ReturnLineRow.position)):
                found.setdefault(line.return_id, []).append(line)
        return found

    def blocking_on_status(self, severity: str, khaos_status: str) -> Sequence[Any]:
        """(return id, type) of the open exceptions of ``severity`` on returns in
        ``khaos_status``."""
        return self._session.execute(
            select(ExceptionRow.return_id, ExceptionRow.type)
            .join(ReturnRow, ReturnRow.id == ExceptionRow.return_id)
            .where(ExceptionRow.status == "open",
                   ExceptionRow.severity == severity,
                   ReturnRow.khaos_status == khaos_status)).all()

    def returns_by_id(self, ids: Sequence[int]) -> dict[int, ReturnRow]:
        return {r.id: r for r in self._session.scalars(select(ReturnRow).where(
            ReturnRow.id.in_(ids)))}

    def line_combos(self, statuses: Sequence[str]) -> Sequence[Any]:
        """(source, reason, condition, disposition, physical) of the lines of the returns
        in ``statuses``, each once."""
        return self._session.execute(
            select(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                   ReturnLineRow.disposition, ReturnLineRow.physical_return_expected)
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnRow.khaos_status.in_(statuses)).distinct()).all()

    def refs_with_combo(self, statuses: Sequence[str], source: str, reason: str,
                        condition: str, disposition: str, limit: int) -> Sequence[Any]:
        """(ref, khaos status) of the returns in ``statuses`` with a line like this."""
        return self._session.execute(
            select(ReturnRow.associated_ref, ReturnRow.khaos_status)
            .join(ReturnLineRow, ReturnLineRow.return_id == ReturnRow.id)
            .where(ReturnRow.khaos_status.in_(statuses), ReturnRow.source == source,
                   ReturnLineRow.reason == reason, ReturnLineRow.condition == condition,
                   ReturnLineRow.disposition == disposition).distinct()
            .limit(limit)).all()
