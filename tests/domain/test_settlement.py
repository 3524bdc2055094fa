"""The settlement identity: credit value = refund + store credit + exchange credit +- named
components, or exactly one exception per gap, each with its category."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import ReturnCase, Settlement, SourceTotals
from returnbridge.domain.money import ZERO
from returnbridge.domain.policy import decide
from returnbridge.domain.settlement import (
    CreditBasis,
    MoneyCategory,
    Stage,
    money_gaps,
    money_problems,
    off_note,
    received_back,
)
from tests.domain.test_policy import CONFIG, NO_FACTS, POLICY, case, line

D = Decimal
TOL = D("0.01")


def _totals(net: str, tax: str) -> SourceTotals:
    return SourceTotals(product=D(net), discount=ZERO, tax=D(tax), total=D(net) + D(tax))


def test_a_ten_pence_vat_gap_is_one_tax_drift_not_also_an_amount_mismatch() -> None:
    # Lines carry 2.00 VAT; Loop's header says 2.10 and the refund follows the header.
    settled = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.10"),
                   settlement=Settlement(refund_to_original=D("12.10")))
    d = decide(settled, CONFIG, POLICY, NO_FACTS)
    assert [(p.type, p.details["category"], p.details["gap"]) for p in d.problems] == [
        ("tax_drift", "tax", "0.10")]
    assert d.problems[0].dedupe_key == "LR-1:money:lines:tax"
    assert d.problems[0].next_action.startswith("[tax]")


def test_a_net_gap_is_one_amount_mismatch_not_two() -> None:
    # The lines add up to 10.00 net; Loop says 16.80 and refunds 18.80 (16.80 + 2.00 VAT).
    settled = case(line(), state=ReturnState.CLOSED, totals=_totals("16.80", "2.00"),
                   settlement=Settlement(refund_to_original=D("18.80")))
    d = decide(settled, CONFIG, POLICY, NO_FACTS)
    assert [(p.type, p.details["category"], p.details["gap"]) for p in d.problems] == [
        ("amount_mismatch", "rounding", "6.80")]


def test_an_over_refund_is_one_refund_gap_with_both_figures() -> None:
    settled = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.00"),
                   settlement=Settlement(refund_to_original=D("18.80")))
    (p,) = decide(settled, CONFIG, POLICY, NO_FACTS).problems
    assert (p.type, p.details["category"], p.details["gap"]) == ("amount_mismatch", "refund",
                                                                 "6.80")
    assert "got 18.80 GBP back from loop" in p.message
    assert "the credit note to be sent to Khaos is 12.00 GBP" in p.message
    assert p.dedupe_key == "LR-1:money:settlement:refund"


def test_named_components_explain_the_settlement_and_are_categorised_when_missing() -> None:
    s = Settlement(refund_to_original=D("10.00"), store_credit=D("3.00"),
                   shipping_refund=D("4.00"), handling_fee=D("5.00"), bonus_credit=D("1.00"),
                   upsell=D("1.00"))
    ok = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.00"), settlement=s)
    assert decide(ok, CONFIG, POLICY, NO_FACTS).problems == ()
    # the customer did not get the shipping refund Loop reports: a shipping gap
    short = replace(ok, settlement=replace(s, refund_to_original=D("6.00")))
    (p,) = decide(short, CONFIG, POLICY, NO_FACTS).problems
    assert (p.details["category"], p.details["gap"]) == ("shipping", "-4.00")
    # store credit only: an unexplained difference is the store credit's
    gift = replace(ok, settlement=Settlement(store_credit=D("20.00")))
    (p,) = decide(gift, CONFIG, POLICY, NO_FACTS).problems
    assert p.details["category"] == "store_credit"


def test_unconfigured_shipping_is_off_the_note_and_configured_shipping_is_a_line() -> None:
    s = Settlement(refund_to_original=D("15.00"), shipping_refund=D("3.00"))
    c = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.00"), settlement=s)
    d = decide(c, CONFIG, POLICY, NO_FACTS)
    assert d.problems == ()
    assert [(o.category, o.amount) for o in d.off_note] == [(MoneyCategory.SHIPPING,
                                                            D("3.00"))]
    cfg = replace(CONFIG, shipping_refund_sku="SHIP", non_stock_reason_id="20")
    d = decide(c, cfg, POLICY, NO_FACTS)
    assert d.off_note == () and d.credit_value == D("15.00")


def test_a_handling_fee_is_a_negative_line_or_off_the_note() -> None:
    s = Settlement(refund_to_original=D("7.00"), handling_fee=D("5.00"))
    c = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.00"), settlement=s)
    d = decide(c, CONFIG, POLICY, NO_FACTS)
    assert d.problems == ()
    assert [(o.category, o.amount) for o in d.off_note] == [(MoneyCategory.HANDLING_FEE,
                                                            D("5.00"))]
    cfg = replace(CONFIG, handling_fee_sku="FEE", non_stock_reason_id="20")
    d = decide(c, cfg, POLICY, NO_FACTS)
    assert d.off_note == () and d.credit_value == D("7.00") and d.problems == ()
    # the fee waived after handover: the served fee line is now a gap
    served = CreditBasis(D("10.00"), D("2.00"), fee_line=D("5.00"),
                         stage=Stage.AFTER_HANDOVER, units=1)
    waived = replace(c, settlement=Settlement(refund_to_original=D("12.00")))
    (gap,) = money_gaps(waived, served, TOL)
    assert (gap.category, gap.amount) == (MoneyCategory.HANDLING_FEE, D("5.00"))


def test_after_handover_a_changed_shipping_figure_is_a_note_gap() -> None:
    s = Settlement(refund_to_original=D("17.00"), shipping_refund=D("5.00"))
    c = case(line(), state=ReturnState.CLOSED, totals=_totals("10.00", "2.00"), settlement=s)
    served = CreditBasis(D("10.00"), D("2.00"), shipping_line=D("3.00"),
                         stage=Stage.AFTER_HANDOVER, units=1)
    (gap,) = money_gaps(c, served, TOL)
    assert (gap.link.value, gap.category, gap.amount) == ("note", MoneyCategory.SHIPPING,
                                                         D("2.00"))
    assert "already in Khaos" in gap.next_action


# --- the property -------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=20_000).map(lambda p: Decimal(p) / 100)
offsets = st.one_of(st.just(ZERO), st.integers(min_value=2, max_value=5_000).map(
    lambda p: Decimal(p) / 100), st.integers(min_value=-5_000, max_value=-2).map(
    lambda p: Decimal(p) / 100))


@st.composite
def settled_returns(draw: st.DrawFn) -> tuple[ReturnCase, CreditBasis]:
    """A settled return and its credit note, with independent injected errors per link."""
    goods_net, goods_tax = draw(amounts), draw(amounts)
    units = draw(st.integers(1, 6))
    tax_err, net_err, header_err = draw(offsets), draw(offsets), draw(offsets)
    totals = SourceTotals(product=goods_net + net_err, discount=ZERO, tax=goods_tax + tax_err,
                          total=goods_net + net_err + goods_tax + tax_err + header_err)
    shipping, fee, bonus, upsell = (draw(st.one_of(st.just(ZERO), amounts)) for _ in range(4))
    ship_on, fee_on = draw(st.booleans()), draw(st.booleans())
    basis = CreditBasis(goods_net, goods_tax,
                        shipping_line=(shipping + draw(offsets)) if ship_on else None,
                        fee_line=(fee + draw(offsets)) if fee_on else None,
                        stage=draw(st.sampled_from(list(Stage))), units=units)
    owed = totals.total + shipping - fee + bonus + upsell + draw(offsets)
    split = [draw(st.integers(0, 100)) for _ in range(3)]
    weights = [D(w) for w in split] if sum(split) else [D(1), ZERO, ZERO]
    refund = (owed * weights[0] / sum(weights)).quantize(D("0.01"))
    credit = (owed * weights[1] / sum(weights)).quantize(D("0.01"))
    exchange = owed - refund - credit
    settlement = Settlement(refund_to_original=refund, store_credit=credit,
                            exchange_credit=exchange, shipping_refund=shipping,
                            handling_fee=fee, bonus_credit=bonus, upsell=upsell)
    c = replace(case(line(), state=ReturnState.CLOSED), totals=totals, settlement=settlement)
    return c, basis


@settings(max_examples=400, deadline=None)
@given(settled_returns())
def test_credit_value_plus_named_components_plus_gaps_is_what_the_customer_got(
        drawn: tuple[ReturnCase, CreditBasis]) -> None:
    c, basis = drawn
    if received_back(c.settlement) == ZERO:
        return  # nothing settled: nothing to check
    gaps = money_gaps(c, basis, TOL)
    problems = money_problems(c, basis, TOL)
    # one exception per gap: never two for the same gap ...
    assert len({(p.type, p.dedupe_key) for p in problems}) == len(problems) == len(gaps)
    for p, g in zip(problems, gaps, strict=True):
        assert p.details["category"] == g.category.value
        assert f"[{g.category.value}]" in p.next_action
        assert abs(g.amount) > TOL  # ... and never one for a gap within the tolerance
    s = c.settlement
    named = (s.bonus_credit + s.upsell
             + sum((o.amount for o in off_note(c, basis)
                    if o.category is MoneyCategory.SHIPPING), ZERO)
             - sum((o.amount for o in off_note(c, basis)
                    if o.category is MoneyCategory.HANDLING_FEE), ZERO))
    explained = basis.value + named + sum((g.amount for g in gaps), ZERO)
    # ... and never zero: the injected errors are whole pennies beyond the tolerance, so
    # every penny is explained by the credit note, a named component or a reported gap
    assert received_back(s) == explained


@settings(max_examples=300, deadline=None)
@given(settled_returns())
def test_an_injected_error_is_found_exactly_once(drawn: tuple[ReturnCase, CreditBasis]) -> None:
    c, basis = drawn
    clean_basis = replace(basis, shipping_line=None, fee_line=None)
    t = c.totals
    clean = replace(c, totals=SourceTotals(product=basis.goods_net, discount=ZERO,
                                           tax=basis.goods_tax, total=basis.goods))
    s = clean.settlement
    owed = basis.goods + s.shipping_refund - s.handling_fee + s.bonus_credit + s.upsell
    clean = replace(clean, settlement=replace(s, refund_to_original=owed, store_credit=ZERO,
                                              exchange_credit=ZERO))
    if owed == ZERO:
        return
    assert money_gaps(clean, clean_basis, TOL) == ()
    error = t.tax - basis.goods_tax  # reuse the drawn VAT error (0 or > tolerance)
    drifted = replace(clean, totals=replace(clean.totals, tax=clean.totals.tax + error,
                                            total=clean.totals.total + error),
                      settlement=replace(clean.settlement,
                                         refund_to_original=owed + error))
    # A header of all zeros means "the source gave no totals" (nothing to compare with): an
    # error that drives the header to zero cannot be seen, by design.
    assume(drifted.totals.total != ZERO or drifted.totals.product != ZERO)
    gaps = money_gaps(drifted, clean_basis, TOL)
    if error == ZERO:
        assert gaps == ()
    else:
        assert [(g.category, g.amount) for g in gaps] == [(MoneyCategory.TAX, error)]
