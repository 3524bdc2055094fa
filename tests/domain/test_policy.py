from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from returnbridge.domain.identity import IdentityError, associated_ref
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.merge import merge
from returnbridge.domain.model import (
    Address,
    Customer,
    Disposition,
    ExchangeLine,
    ReturnCase,
    ReturnLine,
    Settlement,
    SourceTotals,
    UnitReceipt,
)
from returnbridge.domain.money import ZERO
from returnbridge.domain.policy import (
    Facts,
    GoodsInOwner,
    ItemFacts,
    LevelFacts,
    PolicyConfig,
    ReleaseOn,
    SourcePolicy,
    decide,
)
from returnbridge.domain.reasons import Processing, ReasonRule, match_reason

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
RULES = (
    ReasonRule("loop", "*damaged*", "*", "7", Processing.WRITE_OFF),
    ReasonRule("*", "*", "restock", "6", Processing.RESTOCK),
    ReasonRule("*", "*", "write_off", "7", Processing.WRITE_OFF),
    ReasonRule("loop", "*", "*", "6", Processing.RESTOCK),
)
CONFIG = PolicyConfig(rules=RULES)
POLICY = SourcePolicy(GoodsInOwner.KHAOS, fallback_customer_urn="LOOPWEB")
PLATFORM = SourcePolicy(GoodsInOwner.RETURNS_PLATFORM, fallback_customer_urn="ZZWEB")
NO_FACTS = Facts(now=NOW)
ADDRESS = Address(name="Sam", line1="1 High Street", town="Grantham", postcode="NG31 7FZ")


def line(reason: str = "Too small", disposition: Disposition = Disposition.UNKNOWN,
         sku: str = "SKU1", qty: int = 1, net: str = "10.00", tax: str = "2.00",
         keep: bool = False) -> ReturnLine:
    return ReturnLine(sku=sku, quantity=qty, unit_net=Decimal(net), unit_tax=Decimal(tax),
                      unit_gross=Decimal(net) + Decimal(tax), reason=reason,
                      disposition=disposition, physical_return_expected=not keep,
                      source_unit_ids=tuple(f"{sku}-{i}" for i in range(qty)))


def case(*lines: ReturnLine, state: ReturnState = ReturnState.REQUESTED,
         source: str = "loop", urn: str = "", **kw: object) -> ReturnCase:
    return ReturnCase(source=source, source_return_id="1", associated_ref="LR-1",
                      order_ref="#1", customer=Customer(email="a@b.c", last_name="Sam", urn=urn,
                                                     address=ADDRESS),
                      currency="GBP", state=state, source_state="open",
                      created_at=datetime(2026, 1, 1, tzinfo=UTC), updated_at=None,
                      lines=lines, **kw)  # type: ignore[arg-type]


def test_first_matching_rule_wins_case_insensitively() -> None:
    rule = match_reason(RULES, source="loop", reason="Arrived DAMAGED", disposition="restock")
    assert rule is not None and rule.khaos_reason_id == "7"
    rule = match_reason(RULES, source="loop", reason="Too small", disposition="unknown")
    assert rule is not None and rule.khaos_reason_id == "6"
    assert match_reason(RULES, source="zigzag", reason="Too small", disposition="unknown") is None


def test_khaos_owned_goods_in_releases_decided_returns_unprocessed() -> None:
    d = decide(case(line(), line("Arrived damaged", sku="SKU2")), CONFIG, POLICY, NO_FACTS)
    assert d.release and d.urn == "LOOPWEB" and not d.problems
    assert [x.khaos_reason_id for x in d.document] == ["6", "7"]
    assert d.process_return is False  # the warehouse processes it when the goods arrive


def test_review_waits_and_closed_only_rule_waits_for_close() -> None:
    d = decide(case(line(), state=ReturnState.REVIEW), CONFIG, POLICY, NO_FACTS)
    assert not d.release and "review" in d.wait_reason
    closed_only = replace(POLICY, release_on=ReleaseOn.CLOSED)
    assert not decide(case(line()), CONFIG, closed_only, NO_FACTS).release
    assert decide(case(line(), state=ReturnState.CLOSED), CONFIG, closed_only, NO_FACTS).release


def test_unmapped_reason_holds_the_return_and_says_which() -> None:
    d = decide(case(line(), source="zigzag"), PolicyConfig(rules=RULES[:1]), POLICY,
               NO_FACTS)
    assert not d.release and d.blocked
    assert [p.type for p in d.problems] == ["unmapped_return_reason"]
    assert "Too small" in d.problems[0].message


def test_per_disposition_default_applies_when_no_rule_matches() -> None:
    from returnbridge.domain.policy import DefaultReason

    cfg = PolicyConfig(rules=(), defaults=(DefaultReason("*", "9", Processing.RESTOCK),))
    d = decide(case(line()), cfg, POLICY, NO_FACTS)
    assert d.release and d.document[0].khaos_reason_id == "9"


def test_damaged_goods_are_never_mapped_to_a_restock_reason() -> None:
    cfg = PolicyConfig(rules=(ReasonRule("*", "*", "*", "6", Processing.RESTOCK),))
    d = decide(case(line(disposition=Disposition.WRITE_OFF)), cfg, POLICY, NO_FACTS)
    assert d.blocked and "graded write_off" in d.problems[0].message


def test_keep_item_lines_use_the_no_stock_reason_and_are_processed_on_import() -> None:
    cfg = replace(CONFIG, keep_item_reason_id="11")
    d = decide(case(line(keep=True)), cfg, POLICY, NO_FACTS)
    assert d.release and d.process_return
    assert d.document[0].khaos_reason_id == "11"
    assert d.document[0].processing is Processing.NO_STOCK
    # Without a keep-item reason, a rule that would restock the kept item holds the return.
    held = decide(case(line(keep=True)), CONFIG, POLICY, NO_FACTS)
    assert held.blocked and "keeps the item" in held.problems[0].message


def test_no_urn_and_no_fallback_raises_unknown_customer_mirror_resolves_it() -> None:
    no_fallback = SourcePolicy(GoodsInOwner.KHAOS, "")
    d = decide(case(line()), CONFIG, no_fallback, NO_FACTS)
    assert not d.release and [p.type for p in d.problems] == ["unknown_customer"]
    d = decide(case(line()), CONFIG, no_fallback, Facts(now=NOW, customer_urn="C42"))
    assert d.release and d.urn == "C42"


@pytest.mark.parametrize("state", [ReturnState.CANCELLED, ReturnState.EXPIRED])
def test_cancelled_or_expired_returns_are_not_released(state: ReturnState) -> None:
    d = decide(case(line(), state=state), CONFIG, POLICY, NO_FACTS)
    assert not d.release and not d.blocked and state.value in d.wait_reason


def test_platform_goods_in_waits_for_grading_then_credits_what_arrived() -> None:
    two = line(qty=2, sku="A")
    waiting = decide(case(two, source="zigzag", state=ReturnState.IN_TRANSIT),
                     CONFIG, PLATFORM, NO_FACTS)
    assert not waiting.release and "received and graded" in waiting.wait_reason
    graded = case(two, source="zigzag", state=ReturnState.INSPECTED, receipts=(
        UnitReceipt(quantity=1, at=NOW, sku="A", disposition=Disposition.RESTOCK),))
    d = decide(graded, CONFIG, PLATFORM, NO_FACTS)
    assert d.release and d.process_return and d.open_units == 1
    assert [(x.line.quantity, x.khaos_reason_id) for x in d.document] == [(1, "6")]
    assert any("not received yet" in n for n in d.notes)


def test_received_then_graded_twice_and_out_of_order_counts_units_once() -> None:
    two = line(qty=2, sku="A")
    arrived = UnitReceipt(quantity=2, at=NOW, sku="A")
    graded = UnitReceipt(quantity=2, at=NOW + timedelta(hours=1), sku="A",
                         disposition=Disposition.WRITE_OFF)
    from returnbridge.domain.receipts import merge_receipts

    in_order = merge_receipts(merge_receipts((), (arrived,)), (graded,))
    reversed_ = merge_receipts(merge_receipts((), (graded,)), (arrived,))
    assert in_order == reversed_ == (graded,)
    d = decide(case(two, source="zigzag", state=ReturnState.INSPECTED,
                    receipts=in_order), CONFIG, PLATFORM, NO_FACTS)
    assert [(x.line.quantity, x.processing) for x in d.document] == [(2, Processing.WRITE_OFF)]


def test_penny_difference_is_allocated_and_a_bigger_one_is_tax_drift() -> None:
    three = line(qty=3, net="3.33", tax="0.67")  # 3 x 4.00 = 12.00 but header says 12.01
    totals = SourceTotals(product=Decimal("10.00"), discount=ZERO, tax=Decimal("2.01"),
                          total=Decimal("12.01"))
    d = decide(case(three, totals=totals), CONFIG, POLICY, NO_FACTS)
    assert d.release and not d.problems
    assert d.credit_value == Decimal("12.01")
    assert sorted(x.line.quantity for x in d.document) == [1, 2]
    drift = replace(totals, tax=Decimal("2.50"), total=Decimal("12.50"))
    d = decide(case(three, totals=drift), CONFIG, POLICY, NO_FACTS)
    assert [p.type for p in d.problems] == ["tax_drift"] and d.release  # finance looks


def test_settlement_that_does_not_add_up_is_amount_mismatch() -> None:
    settled = Settlement(refund_to_original=Decimal("15.00"))
    d = decide(case(line(), state=ReturnState.CLOSED, settlement=settled), CONFIG, POLICY,
               NO_FACTS)
    assert [p.type for p in d.problems] == ["amount_mismatch"] and d.release
    ok = Settlement(refund_to_original=Decimal("10.00"), shipping_refund=Decimal("3.00"),
                    handling_fee=Decimal("5.00"))
    d = decide(case(line(), state=ReturnState.CLOSED, settlement=ok), CONFIG, POLICY, NO_FACTS)
    assert not d.problems


def test_shipping_refund_and_handling_fee_become_non_stock_lines_when_configured() -> None:
    cfg = replace(CONFIG, shipping_refund_sku="SHIP", handling_fee_sku="FEE",
                  non_stock_reason_id="20")
    s = Settlement(refund_to_original=Decimal("10.00"), shipping_refund=Decimal("3.00"),
                   handling_fee=Decimal("5.00"))
    d = decide(case(line(), state=ReturnState.CLOSED, settlement=s), cfg, POLICY, NO_FACTS)
    assert [(x.line.sku, x.line.unit_gross) for x in d.document[1:]] == [
        ("SHIP", Decimal("3.00")), ("FEE", Decimal("-5.00"))]
    assert d.credit_value == Decimal("10.00")
    unconfigured = decide(case(line(), state=ReturnState.CLOSED, settlement=s), CONFIG,
                          POLICY, NO_FACTS)
    assert len(unconfigured.document) == 1
    assert any("shipping_refund" in n for n in unconfigured.notes)


CATALOGUE = Facts(
    now=NOW, catalogue_loaded=True,
    items={"SKU1": ItemFacts("SKU1"), "EX1": ItemFacts("EX1"),
           "HIDDEN": ItemFacts("HIDDEN", publish_on_web=False)},
    candidates={"SKU-1": ("StockCode SKU1",)},
    levels={"EX1": LevelFacts(Decimal("1"), NOW - timedelta(hours=1))},
)


def exchange(sku: str, qty: int = 1) -> ExchangeLine:
    return ExchangeLine(sku=sku, quantity=qty, unit_net=Decimal("10"), unit_tax=Decimal("2"),
                        unit_gross=Decimal("12"))


@pytest.mark.parametrize(("ex", "expected"), [
    (exchange("EX1"), []),
    (exchange("EX1", 2), ["exchange_out_of_stock"]),
    (exchange("HIDDEN"), ["exchange_not_web_enabled"]),
    (exchange("NOPE"), ["exchange_unknown_sku"]),
])
def test_exchange_pre_checks_against_the_mirror(ex: ExchangeLine, expected: list[str]) -> None:
    d = decide(case(line(), exchanges=(ex,)), CONFIG, POLICY, CATALOGUE)
    assert [p.type for p in d.problems] == expected
    assert d.release is (not expected)


def test_stale_stock_level_is_not_trusted() -> None:
    stale = replace(CATALOGUE, now=NOW + timedelta(days=2))
    d = decide(case(line(), exchanges=(exchange("EX1"),)), CONFIG, POLICY, stale)
    assert [p.type for p in d.problems] == ["exchange_out_of_stock"]
    assert "stale" in d.problems[0].message


def test_unknown_sku_is_held_with_the_nearest_candidates() -> None:
    d = decide(case(line(sku="SKU-1")), CONFIG, POLICY, CATALOGUE)
    assert [p.type for p in d.problems] == ["sku_mismatch"] and not d.release
    assert "StockCode SKU1" in d.problems[0].message
    assert d.problems[0].details["candidates"] == "StockCode SKU1"


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


def test_snapshot_after_receipt_keeps_the_receipt() -> None:
    receipt = UnitReceipt(quantity=1, at=NOW, sku="SKU1", disposition=Disposition.RESTOCK)
    first = case(line(), receipts=(receipt,))
    later = merge(first, case(line(), state=ReturnState.CLOSED), "loop:9").case
    assert later.receipts == (receipt,)


# --- properties over generated returns -------------------------------------------------

pennies = st.integers(min_value=0, max_value=50_000).map(lambda p: Decimal(p) / 100)
dispositions = st.sampled_from(list(Disposition))


@st.composite
def lines_st(draw: st.DrawFn) -> tuple[ReturnLine, ...]:
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        qty = draw(st.integers(1, 4))
        net, tax = draw(pennies), draw(pennies)
        out.append(ReturnLine(sku=f"S{i}", quantity=qty, unit_net=net, unit_tax=tax,
                              unit_gross=net + tax, reason="r", disposition=draw(dispositions),
                              source_unit_ids=tuple(f"S{i}-{u}" for u in range(qty))))
    return tuple(out)


@st.composite
def cases_st(draw: st.DrawFn) -> ReturnCase:
    lines = draw(lines_st())
    net = sum((ln.unit_net * ln.quantity for ln in lines), ZERO)
    tax = sum((ln.unit_tax * ln.quantity for ln in lines), ZERO)
    jitter = Decimal(draw(st.integers(-3, 3))) / 100
    totals = SourceTotals(product=net, discount=ZERO, tax=tax + jitter, total=net + tax + jitter)
    receipts = tuple(
        UnitReceipt(quantity=draw(st.integers(0, ln.quantity)), at=NOW, sku=ln.sku,
                    disposition=draw(st.one_of(st.none(), dispositions)))
        for ln in lines if draw(st.booleans())
    )
    state = draw(st.sampled_from(list(ReturnState)))
    return case(*lines, state=state, totals=totals, receipts=receipts)


ALL_DISPOSITIONS = PolicyConfig(rules=(
    ReasonRule("*", "*", "restock", "6", Processing.RESTOCK),
    ReasonRule("*", "*", "*", "7", Processing.WRITE_OFF),
))


@settings(max_examples=300, deadline=None)
@given(cases_st(), st.sampled_from([POLICY, PLATFORM]))
def test_lines_sum_to_source_totals_or_an_exception_is_open(c: ReturnCase,
                                                             p: SourcePolicy) -> None:
    # A header of all zeros means "the source gave no totals" (domain/settlement.py,
    # tests/domain/test_settlement.py): there is nothing to compare the lines with, by
    # design (hypothesis found the case: one 0.01 VAT-only line, its header jittered to 0).
    assume(c.totals.total != ZERO or c.totals.product != ZERO)
    d = decide(c, ALL_DISPOSITIONS, p, NO_FACTS)
    if d.release and p is POLICY:
        gap = abs(d.credit_value - c.totals.total)
        assert gap == 0 or {"tax_drift", "amount_mismatch"} & {
            x.type for x in d.problems}


@settings(max_examples=300, deadline=None)
@given(cases_st())
def test_platform_never_releases_stock_before_receipt_evidence(c: ReturnCase) -> None:
    d = decide(c, ALL_DISPOSITIONS, PLATFORM, NO_FACTS)
    if d.release:
        for doc in d.document:
            assert doc.line.received_at is not None or not doc.line.physical_return_expected
            if doc.processing is Processing.RESTOCK:
                assert doc.line.disposition is Disposition.RESTOCK
        got = sum(x.line.quantity for x in d.document)
        assert got + d.open_units == c.units


@settings(max_examples=200, deadline=None)
@given(cases_st(), st.sampled_from([POLICY, PLATFORM]))
def test_deciding_is_deterministic_so_releasing_is_idempotent(c: ReturnCase,
                                                                 p: SourcePolicy) -> None:
    assert decide(c, ALL_DISPOSITIONS, p, NO_FACTS) == decide(c, ALL_DISPOSITIONS, p, NO_FACTS)


def test_no_address_is_held_unless_a_fallback_address_is_configured() -> None:
    bare = replace(case(line()), customer=Customer(email="a@b.c", last_name="Sam"))
    d = decide(bare, CONFIG, POLICY, NO_FACTS)
    assert d.blocked and "InvoiceAddress" in d.problems[0].message
    assert decide(bare, replace(CONFIG, fallback_address=True), POLICY, NO_FACTS).release
