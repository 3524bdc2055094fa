"""Append-only audit log with a hash chain: each row commits to the one before it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.store.models import AuditEntry, utcnow

GENESIS = "0" * 64


def _digest(prev: str, at: str, actor: str, action: str, subject: str, details: Any) -> str:
    payload = json.dumps([prev, at, actor, action, subject, details], sort_keys=True,
                         default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, subject: str = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry. Call inside the transaction that makes the change it records."""
    last = session.scalars(
        select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1).with_for_update()
    ).first()
    prev = last.hash if last else GENESIS
    at = utcnow()
    details = details or {}
    entry = AuditEntry(
        at=at, actor=actor, action=action, subject=subject, details=details, prev_hash=prev,
        hash=_digest(prev, at.isoformat(), actor, action, subject, details),
    )
    session.add(entry)
    session.flush()
    return entry


def verify_chain(session: Session) -> list[int]:
    """Ids of rows whose hash does not follow from the previous row (empty when intact)."""
    broken: list[int] = []
    prev = GENESIS
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        at = entry.at.isoformat()
        expected = _digest(prev, at, entry.actor, entry.action, entry.subject, entry.details)
        if entry.prev_hash != prev or entry.hash != expected:
            broken.append(entry.id)
        prev = entry.hash
    return broken
