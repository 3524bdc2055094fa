"""The table of notes returnbridge writes on Loop returns (created by migration 0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from returnbridge.domain.khaos_status import KhaosStatus
from returnbridge.store.models import Base, ExceptionRow, ReturnRow, UTCDateTime, utcnow


class LoopNote(Base):
    """What returnbridge wrote (or will write) on a Loop return, one row per cause, so that
    the same cause is never noted twice (even when the return is released and held again).

    ``cause``: ``held:{exception type}:{dedupe key}``, ``flag`` or ``credit:{code}``.
    Status: pending (decided, not yet sent), sending (the POST may have gone: checked against
    Loop's notes before sending again), sent, failed (Loop refused it; ``error`` says why).
    """

    __tablename__ = "loop_notes"
    __table_args__ = (UniqueConstraint("return_id", "cause", name="uq_loop_notes_cause"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id", ondelete="CASCADE"))
    loop_return_id: Mapped[str] = mapped_column(String(80))
    cause: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LoopNotes:
    """The ``loop_notes`` rows in one unit of work's session (``uow.repository(LoopNotes)``):
    the platform's own table, so its repository lives with it."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def held_causes(self, source: str) -> list[tuple[ReturnRow, ExceptionRow]]:
        """Held returns of ``source`` with their open blocking exceptions, by return."""
        rows = self._session.execute(
            select(ReturnRow, ExceptionRow)
            .join(ExceptionRow, ExceptionRow.return_id == ReturnRow.id)
            .where(ReturnRow.source == source, ReturnRow.khaos_status == KhaosStatus.HELD.value,
                   ExceptionRow.status == "open", ExceptionRow.severity == "blocking")
            .order_by(ReturnRow.id, ExceptionRow.id)).all()
        return [(ret, exc) for ret, exc in rows]

    def credited_since(self, source: str, since: datetime) -> list[ReturnRow]:
        """Returns of ``source`` whose credit note Khaos confirmed since ``since``."""
        return list(self._session.scalars(select(ReturnRow).where(
            ReturnRow.source == source, ReturnRow.credit_note_code != "",
            ReturnRow.credit_confirmed_at >= since)))

    def add(self, ret: ReturnRow, cause: str, content: str) -> bool:
        """A pending note for ``cause`` on ``ret``, unless that cause was noted already."""
        exists = self._session.scalar(select(LoopNote.id).where(
            LoopNote.return_id == ret.id, LoopNote.cause == cause))
        if exists is not None:
            return False
        self._session.add(LoopNote(return_id=ret.id, loop_return_id=ret.source_return_id,
                                   cause=cause, content=content, status="pending", error="",
                                   created_at=utcnow()))
        self._session.flush()
        return True

    def returns_to_send(self) -> list[int]:
        """Ids of returns with notes pending or being sent."""
        return sorted(set(self._session.scalars(select(LoopNote.return_id).where(
            LoopNote.status.in_(("pending", "sending"))))))

    def to_send(self, return_id: int) -> list[LoopNote]:
        return list(self._session.scalars(select(LoopNote).where(
            LoopNote.return_id == return_id,
            LoopNote.status.in_(("pending", "sending"))).order_by(LoopNote.id)))

    def drop(self, row: LoopNote, error: str = "") -> None:
        row.status = "dropped"
        if error:
            row.error = error

    def set_content(self, row: LoopNote, content: str) -> None:
        row.content = content

    def sending(self, row: LoopNote) -> None:
        row.status = "sending"

    def finish(self, ids: list[int], error: str) -> None:
        """Sent (no ``error``) or failed with ``error``."""
        for row in self._session.scalars(select(LoopNote).where(LoopNote.id.in_(ids))):
            if error:
                row.status = "failed"
                row.error = error
            else:
                row.status = "sent"
                row.sent_at = utcnow()

    def counts_by_status(self) -> dict[str, int]:
        rows = self._session.execute(select(LoopNote.status, func.count())
                                     .group_by(LoopNote.status)).all()
        return {str(s): int(n) for s, n in rows}
