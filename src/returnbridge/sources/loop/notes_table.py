"""The table of notes returnbridge writes on Loop returns (created by migration 0007)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from returnbridge.store.models import Base, UTCDateTime, utcnow


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
