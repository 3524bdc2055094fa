"""Append-only audit log with a hash chain: each row commits to the one before it.

- **Serialised**: appends take one lock (a PostgreSQL transaction-level advisory lock; on
  SQLite every write transaction is ``BEGIN IMMEDIATE``, one writer at a time), so two
  processes never chain onto the same row (a fork).
- **Anchored**: ``audit_anchor`` holds the row count and the last row's id and hash, updated in
  the same transaction as each append. Rows removed at the end show as a count/head mismatch.
- **Sealed**: the anchor carries a MAC: HMAC-SHA256 under ``[audit].hmac_key`` when set, so
  editing a row and recomputing every hash after it (and the anchor) is detected by anyone
  holding the key. Without a key the MAC is a plain SHA-256 that a database administrator
  could recompute; ``check-config`` warns about that.

The key reaches ``record`` through the session (``session.info["audit_hmac_key"]``, set by
``Runtime``), so callers keep calling ``AuditLog(session).record(...)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from returnbridge.store.models import AuditAnchor, AuditEntry, utcnow

GENESIS = "0" * 64
KEY_INFO = "audit_hmac_key"
_ADVISORY_LOCK = 0x52425F41554449  # "RB_AUDI": one lock for the whole chain
_ANCHOR_ID = 1
BROKEN = "broken:"


def _digest(prev: str, at: str, actor: str, action: str, subject: str, details: Any) -> str:
    payload = json.dumps([prev, at, actor, action, subject, details], sort_keys=True,
                         default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def anchor_mac(count: int, head_id: int, head_hash: str, key: str) -> str:
    message = f"returnbridge-audit-anchor:{count}:{head_id}:{head_hash}".encode()
    if key:
        return "hmac-sha256:" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(message).hexdigest()


def _key(session: Session) -> str:
    return str(session.info.get(KEY_INFO, "") or "")


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
    # SQLite: the transaction began with BEGIN IMMEDIATE and holds the only write lock.


class AuditLog:
    """The audit log in one unit of work's session: append inside the transaction that
    makes the change an entry records."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record(self, *, actor: str, action: str, subject: str = "",
               details: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry. Call inside the transaction that makes the change it records."""
        _lock(self._session)
        last = self._session.execute(
            select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
        ).first()
        prev = last[1] if last else GENESIS
        at = utcnow()
        details = details or {}
        entry = AuditEntry(
            at=at, actor=actor, action=action, subject=subject, details=details, prev_hash=prev,
            hash=_digest(prev, at.isoformat(), actor, action, subject, details),
        )
        self._session.add(entry)
        self._session.flush()
        anchor = self._session.get(AuditAnchor, _ANCHOR_ID)
        key = _key(self._session)
        if anchor is None:  # first append ever (or the anchor was deleted: recount; verify says)
            count = self._session.scalar(select(func.count()).select_from(AuditEntry)) or 0
            anchor = AuditAnchor(id=_ANCHOR_ID, count=count - 1, head_id=0, head_hash=GENESIS,
                                 mac="")
            self._session.add(anchor)
            sealed_with = key
        else:
            # Never launder: an anchor that did not match the log before this append stays
            # visibly broken; an unkeyed anchor stays unkeyed until 'audit-log seal'.
            previous = (last[0], last[1]) if last else (0, GENESIS)
            # An empty log has nothing to protect yet: its first entry is sealed with the key.
            unkeyed = anchor.mac.startswith("sha256:") and anchor.count > 0
            sealed_with = "" if unkeyed else key
            if anchor.mac.startswith("sha256:") and not unkeyed:
                anchor.mac = anchor_mac(anchor.count, anchor.head_id, anchor.head_hash, key)
            valid = (anchor.mac == anchor_mac(anchor.count, anchor.head_id, anchor.head_hash,
                                              sealed_with)
                     and (anchor.head_id, anchor.head_hash) == previous)
            if not valid and not anchor.mac.startswith(BROKEN):
                anchor.mac = BROKEN + f"did not match the log when row {entry.id} was appended"
        anchor.count += 1
        anchor.head_id, anchor.head_hash = entry.id, entry.hash
        if not anchor.mac.startswith(BROKEN):
            anchor.mac = anchor_mac(anchor.count, entry.id, entry.hash, sealed_with)
        anchor.updated_at = at
        self._session.flush()
        return entry

    # --- exceptions, console, reconcile ---

    def entries_about(self, subject: str) -> list[AuditEntry]:
        """Every entry about ``subject``, oldest first."""
        return list(self._session.scalars(
            select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.id)))

    # --- ingest ---

    def entries_for(self, subject: str) -> Sequence[AuditEntry]:
        """The entries about ``subject``, oldest first."""
        return self._session.scalars(select(AuditEntry).where(
            AuditEntry.subject == subject).order_by(AuditEntry.id)).all()


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


@dataclass
class Verification:
    rows: int = 0
    head_id: int = 0
    keyed: bool = False
    broken_rows: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, key: str | None = None) -> Verification:
    """The chain and its anchor, checked; ``problems`` say where and what, in plain words."""
    key = _key(session) if key is None else key
    result = Verification(keyed=bool(key))
    prev, prev_id = GENESIS, 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        result.rows += 1
        expected = _digest(prev, entry.at.isoformat(), entry.actor, entry.action,
                           entry.subject, entry.details)
        if entry.prev_hash != prev:
            result.broken_rows.append(entry.id)
            after = f"row {prev_id}" if prev_id else "the start of the log"
            result.problems.append(
                f"row {entry.id}: does not follow {after} (a row before it was removed, "
                "edited, or written by a second writer at the same time)")
        elif entry.hash != expected:
            result.broken_rows.append(entry.id)
            result.problems.append(
                f"row {entry.id}: its content does not match its hash (edited after writing)")
        prev, prev_id = entry.hash, entry.id
    result.head_id = prev_id
    anchor = session.get(AuditAnchor, _ANCHOR_ID)
    if anchor is None:
        if result.rows:
            result.problems.append("the audit anchor is missing (deleted?): the row count "
                                   "and last hash cannot be checked")
        return result
    if anchor.count != result.rows:
        result.problems.append(
            f"the anchor counts {anchor.count} rows but {result.rows} are there"
            + (" (rows were removed)" if result.rows < anchor.count else " (rows were added "
               "without the anchor)"))
    if (anchor.head_id, anchor.head_hash) != (prev_id, prev):
        result.problems.append(
            f"the last row is {prev_id or 'none'} but the anchor names row {anchor.head_id} "
            "with another hash (rows at the end removed or rewritten)")
    expected_mac = anchor_mac(anchor.count, anchor.head_id, anchor.head_hash, key)
    if anchor.mac.startswith(BROKEN):
        result.problems.append(f"the anchor {anchor.mac[len(BROKEN):]} (the log was changed "
                               "before that append)")
    elif anchor.mac.startswith("sha256:") and key:
        # Either written before the key was set, or rewritten by someone without the key:
        # the two look the same, so it fails until an operator seals it on purpose.
        result.problems.append(
            "the anchor is not sealed with [audit].hmac_key: someone without the key "
            "rewrote it, or it was written before the key was set (then, and only then, run "
            "'returnbridge audit-log seal')")
    elif not hmac.compare_digest(anchor.mac, expected_mac):
        result.problems.append(
            "the anchor's seal does not match: the anchor was edited, or it was sealed with "
            "another [audit].hmac_key" if key or anchor.mac.startswith("hmac") else
            "the anchor's checksum does not match it (anchor edited)")
    if not key:
        result.notes.append("no [audit].hmac_key: an edit followed by recomputing every "
                            "hash and the anchor cannot be detected")
    return result


def seal(session: Session, key: str) -> Verification:
    """Seal an anchor written before ``key`` was set (e.g. by the migration), only if the
    chain and the anchor verify; never re-seals an anchor that does not match."""
    found = verify(session, "")  # the chain and the unkeyed anchor must match exactly
    anchor = session.get(AuditAnchor, _ANCHOR_ID)
    if found.problems or not key or anchor is None or not anchor.mac.startswith("sha256:"):
        return verify(session, key)
    _lock(session)
    anchor.mac = anchor_mac(anchor.count, anchor.head_id, anchor.head_hash, key)
    session.flush()
    return verify(session, key)
