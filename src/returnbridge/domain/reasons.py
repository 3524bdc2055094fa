"""Reason mapping (ARCHITECTURE 6.2): data, not code; first match wins."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase


class Processing(StrEnum):
    """What a Khaos return reason does to stock when the return is processed."""

    RESTOCK = "restock"
    WRITE_OFF = "write_off"
    NO_STOCK = "no_stock"


@dataclass(frozen=True)
class ReasonRule:
    source: str
    reason: str
    disposition: str
    khaos_reason_id: str
    processing: Processing
    condition: str = "*"

    def matches(self, source: str, reason: str, disposition: str, condition: str) -> bool:
        return (
            _glob(self.source, source)
            and _glob(self.reason, reason)
            and _glob(self.disposition, disposition)
            and _glob(self.condition, condition)
        )


def _glob(pattern: str, value: str) -> bool:
    return fnmatchcase(value.strip().casefold(), pattern.strip().casefold())


def match_reason(
    rules: list[ReasonRule] | tuple[ReasonRule, ...],
    *,
    source: str,
    reason: str,
    disposition: str,
    condition: str = "",
) -> ReasonRule | None:
    """The first rule that matches, or None when the combination is unmapped."""
    for rule in rules:
        if rule.matches(source, reason, disposition, condition):
            return rule
    return None
