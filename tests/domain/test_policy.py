from datetime import UTC, datetime
from decimal import Decimal

import pytest

from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.merge import merge
from returnbridge.domain.model import Customer, Disposition, ReturnCase, ReturnLine, Source
from returnbridge.domain.policy import GoodsInOwner, SourcePolicy, decide
from returnbridge.domain.reasons import Processing, ReasonRule, match_reason

RULES = (
    ReasonRule("loop", "*damaged*", "*", "7", Processing.WRITE_OFF),
    ReasonRule("*", "*", "restock", "6", Processing.RESTOCK),
    ReasonRule("loop", "*", "*", "6", Processing.RESTOCK),
)
POLICY = SourcePolicy(GoodsInOwner.KHAOS, fallback_customer_urn="LOOPWEB")


def line(reason: str = "Too small", disposition: Disposition = Disposition.UNKNOWN) -> ReturnLine:
    return ReturnLine(sku="SKU1", quantity=1, unit_net=Decimal("10.00"),
                      unit_tax=Decimal("2.00"), unit_gross=Decimal("12.00"), reason=reason,
                      disposition=disposition)


def case(*lines: ReturnLine, state: ReturnState = ReturnState.REQUESTED,
         source: Source = Source.LOOP, urn: str = "") -> ReturnCase:
    return ReturnCase(source=source, source_return_id="1", associated_ref="LR-1",
                      order_ref="#1", customer=Customer(email="a@b.c", urn=urn),
                      currency="GBP", state=state, source_state="open",
                      created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=None,
                      lines=lines)


def test_first_matching_rule_wins_case_insensitively() -> None:
    rule = match_reason(RULES, source="loop", reason="Arrived DAMAGED", disposition="restock")
    assert rule is not None and rule.khaos_reason_id == "7"
    rule = match_reason(RULES, source="loop", reason="Too small", disposition="unknown")
    assert rule is not None and rule.khaos_reason_id == "6"
    assert match_reason(RULES, source="zigzag", reason="Too small", disposition="unknown") is None


def test_every_line_gets_its_reason_and_the_fallback_urn() -> None:
    d = decide(case(line(), line("Arrived damaged")), RULES, POLICY)
    assert d.release and d.urn == "LOOPWEB" and not d.problems
    assert [ld.khaos_reason_id for ld in d.lines if ld] == ["6", "7"]
    assert d.process_return is False  # goods-in owned by Khaos: the warehouse processes it


def test_unmapped_reason_holds_the_return_and_says_which() -> None:
    d = decide(case(line(), source=Source.ZIGZAG), RULES[:1], POLICY)
    assert not d.release and d.blocked
    assert [p.type for p in d.problems] == ["unmapped_return_reason"]
    assert "Too small" in d.problems[0].message


def test_no_urn_and_no_fallback_raises_unknown_customer() -> None:
    d = decide(case(line()), RULES, SourcePolicy(GoodsInOwner.KHAOS, ""))
    assert not d.release and [p.type for p in d.problems] == ["unknown_customer"]
    assert decide(case(line(), urn="CUST1"), RULES, SourcePolicy(GoodsInOwner.KHAOS, "")).release


@pytest.mark.parametrize("state", [ReturnState.CANCELLED, ReturnState.EXPIRED])
def test_cancelled_or_expired_returns_are_not_released(state: ReturnState) -> None:
    d = decide(case(line(), state=state), RULES, POLICY)
    assert not d.release and not d.blocked and state.value in d.wait_reason


def test_returns_platform_owner_sends_processed_returns() -> None:
    d = decide(case(line()), RULES, SourcePolicy(GoodsInOwner.RETURNS_PLATFORM, "X"))
    assert d.process_return is True


def test_associated_ref_is_prefixed_suffixed_and_bounded() -> None:
    assert associated_ref("LR-", "123") == "LR-123"
    assert associated_ref("LR-", "123", follow_up=2) == "LR-123-2"
    with pytest.raises(IdentityError, match="at most 50"):
        associated_ref("LR-", "9" * 48)
    with pytest.raises(IdentityError):
        associated_ref("LR-", "  ")


def test_merge_keeps_newer_state_and_ignores_older_news() -> None:
    first = merge(None, case(line(), state=ReturnState.CLOSED), "loop:2").case
    late = merge(first, case(line("Changed"), state=ReturnState.REQUESTED), "loop:1")
    assert late.case.state is ReturnState.CLOSED and not late.content_applied
    assert late.case.lines[0].reason == "Too small"
    assert late.case.events == ("loop:2", "loop:1")
    again = merge(late.case, case(line(), state=ReturnState.CLOSED), "loop:1")
    assert again.note == "event already applied"
