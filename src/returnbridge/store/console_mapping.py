"""Reason-mapping rules saved in the console (``console_mapping_rules``).

They are checked before the ``[[mapping.reasons]]`` rules of returnbridge.toml, oldest
first; the first rule that matches wins (console or file), then the per-disposition
defaults. Removing a rule marks it inactive, so the audit log and the table keep it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.reasons import Processing, ReasonRule
from returnbridge.store.models import ConsoleMappingRule
from returnbridge.store.reads import reading


def to_rule(row: ConsoleMappingRule) -> ReasonRule:
    return ReasonRule(source=row.source, reason=row.reason, disposition=row.disposition,
                      condition=row.condition, khaos_reason_id=row.khaos_reason_id,
                      processing=Processing(row.processing))


class MappingRules:
    """The console's reason-mapping rules in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # Read once per unit of work: the event worker decides many returns in one
        # transaction, and the rules change only through add/deactivate below.
        self._rules: tuple[ReasonRule, ...] | None = None

    def active_rows(self) -> list[ConsoleMappingRule]:
        with reading(self._session, ConsoleMappingRule):
            return list(self._session.scalars(select(ConsoleMappingRule).where(
                ConsoleMappingRule.active.is_(True)).order_by(ConsoleMappingRule.id)))

    def rules(self) -> tuple[ReasonRule, ...]:
        if self._rules is None:
            self._rules = tuple(to_rule(r) for r in self.active_rows())
        return self._rules

    def add(self, rule: ReasonRule, *, note: str, by: str, at: datetime) -> int:
        """Store ``rule`` as an active console rule; returns its id."""
        row = ConsoleMappingRule(source=rule.source, reason=rule.reason,
                                 condition=rule.condition, disposition=rule.disposition,
                                 khaos_reason_id=rule.khaos_reason_id,
                                 processing=rule.processing.value, note=note, active=True,
                                 created_at=at, created_by=by)
        self._session.add(row)
        self._session.flush()
        self._rules = None
        return row.id

    def deactivate(self, rule_id: int) -> ConsoleMappingRule | None:
        """Mark the active rule ``rule_id`` inactive (kept for the audit log); None when
        there is no such active rule."""
        row = self._session.get(ConsoleMappingRule, rule_id)
        if row is None or not row.active:
            return None
        row.active = False
        self._rules = None
        return row
