"""Posting policy: what a canonical return becomes in Khaos, and whether it may go yet.

This is the minimal policy of the walking skeleton: each line takes the first matching
``[[mapping.reasons]]`` entry, the customer takes the source's fallback URN, and a return
is released unless it was cancelled or expired. Fuller rules (ARCHITECTURE 6) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import ReturnCase
from returnbridge.domain.reasons import Processing, ReasonRule, match_reason


class GoodsInOwner(StrEnum):
    KHAOS = "khaos"
    RETURNS_PLATFORM = "returns_platform"


@dataclass(frozen=True)
class SourcePolicy:
    goods_in_owner: GoodsInOwner
    fallback_customer_urn: str


@dataclass(frozen=True)
class LineDecision:
    khaos_reason_id: str
    processing: Processing


@dataclass(frozen=True)
class Decision:
    release: bool
    urn: str
    lines: tuple[LineDecision | None, ...]
    process_return: bool
    problems: tuple[Problem, ...]
    wait_reason: str = ""

    @property
    def blocked(self) -> bool:
        return any(p.blocking for p in self.problems)


_NOT_RELEASABLE = frozenset({ReturnState.CANCELLED, ReturnState.EXPIRED})


def decide(case: ReturnCase, rules: tuple[ReasonRule, ...], policy: SourcePolicy) -> Decision:
    problems: list[Problem] = []
    line_decisions: list[LineDecision | None] = []
    for line in case.lines:
        rule = match_reason(
            rules,
            source=case.source.value,
            reason=line.reason,
            disposition=line.disposition.value,
            condition=line.condition,
        )
        if rule is None:
            line_decisions.append(None)
            problems.append(
                Problem(
                    type="unmapped_return_reason",
                    message=(
                        f"No reason mapping for {case.source.value} reason {line.reason!r} "
                        f"with disposition {line.disposition.value!r} (SKU {line.sku})."
                    ),
                    dedupe_key=f"{case.associated_ref}:{line.reason.casefold()}:"
                    f"{line.disposition.value}",
                    details={"reason": line.reason, "disposition": line.disposition.value},
                )
            )
        else:
            line_decisions.append(LineDecision(rule.khaos_reason_id, rule.processing))

    urn = case.customer.urn or policy.fallback_customer_urn
    if not urn:
        problems.append(
            Problem(
                type="unknown_customer",
                message=f"No Khaos customer URN for {case.customer.email or 'this customer'}.",
                dedupe_key=f"{case.associated_ref}:customer",
                details={"email": case.customer.email},
            )
        )

    if not case.lines:
        wait = "the return has no returned items yet"
    elif case.state in _NOT_RELEASABLE:
        wait = f"the return is {case.state.value} at the source"
    else:
        wait = ""
    blocked = any(p.blocking for p in problems)
    return Decision(
        release=not wait and not blocked,
        urn=urn,
        lines=tuple(line_decisions),
        process_return=policy.goods_in_owner is GoodsInOwner.RETURNS_PLATFORM,
        problems=tuple(problems),
        wait_reason=wait,
    )
