"""The settlement identity (ARCHITECTURE 4, 6.4, 11): every penny between the credit note and
what the customer got back is either explained by a named component or one gap.

Money runs through a chain of links, and each link can open at most one gap:

``lines``       the credit note's goods lines against the source's header components
                (VAT: category ``tax``, which is ``tax_drift``; net: category ``rounding``);
``header``      the source's header against itself (total != product - discount + tax:
                category ``header``);
``note``        a shipping refund / handling fee line on the credit note against the
                settlement's figure (categories ``shipping`` / ``handling_fee``);
``settlement``  what the customer got back (refund + store credit + exchange credit)
                against the header total plus the named components (shipping refund,
                minus handling fee, bonus credit, upsell). The residual is given the
                category of the component it equals (``shipping``, ``handling_fee``,
                ``bonus``, ``upsell``), ``rounding`` when it is a penny per unit or less,
                else the leg that carried the money (``refund``, ``store_credit``,
                ``exchange_credit``).

Because each link compares with the next one (not with the credit note again), the same
gap is never reported twice: a 10p VAT difference between the lines and the header is one
``tax`` gap, not also a settlement gap when the refund follows the header. The sum of the
credit value, the gaps and the named components not on the note is what the customer got
back (within the tolerance per unreported link).

Pure: the flow passes in what the credit note carries (computed before handover, the
stored delivery after it).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import ReturnCase, Settlement
from returnbridge.domain.money import PENNY, ZERO, quantize


class MoneyCategory(StrEnum):
    REFUND = "refund"
    STORE_CREDIT = "store_credit"
    EXCHANGE_CREDIT = "exchange_credit"
    SHIPPING = "shipping"
    HANDLING_FEE = "handling_fee"
    BONUS = "bonus"
    UPSELL = "upsell"
    ROUNDING = "rounding"
    TAX = "tax"
    HEADER = "header"


class Link(StrEnum):
    LINES = "lines"
    HEADER = "header"
    NOTE = "note"
    SETTLEMENT = "settlement"


class Stage(StrEnum):
    BEFORE_HANDOVER = "before_handover"  # the document returnbridge would send now
    AFTER_HANDOVER = "after_handover"  # the document Khaos was actually served


@dataclass(frozen=True)
class CreditBasis:
    """What the credit note carries (or will carry)."""

    goods_net: Decimal
    goods_tax: Decimal
    shipping_line: Decimal | None = None  # None: no shipping refund line on the note
    fee_line: Decimal | None = None  # None: no handling fee line (positive amount)
    stage: Stage = Stage.BEFORE_HANDOVER
    units: int = 0

    @property
    def goods(self) -> Decimal:
        return self.goods_net + self.goods_tax

    @property
    def value(self) -> Decimal:
        return (self.goods + (self.shipping_line or ZERO) - (self.fee_line or ZERO))


@dataclass(frozen=True)
class MoneyGap:
    link: Link
    category: MoneyCategory
    amount: Decimal  # signed: the later figure in the chain minus the earlier one
    expected: Decimal
    actual: Decimal
    message: str
    next_action: str

    @property
    def exception_type(self) -> str:
        return "tax_drift" if self.category is MoneyCategory.TAX else "amount_mismatch"

    def dedupe_key(self, associated_ref: str) -> str:
        return money_key(associated_ref, self.link, self.category)


def money_key(associated_ref: str, link: Link | str, category: MoneyCategory | str) -> str:
    return f"{associated_ref}:money:{link}:{category}"


def money_key_prefix(associated_ref: str) -> str:
    return f"{associated_ref}:money:"


_SETTLED = frozenset({ReturnState.RESOLVED, ReturnState.CLOSED})


def received_back(s: Settlement) -> Decimal:
    return s.refund_to_original + s.store_credit + s.exchange_credit


def is_settled(case: ReturnCase) -> bool:
    """The source has said what the customer gets back (money news to check)."""
    return received_back(case.settlement) != ZERO and case.state in _SETTLED


def _header_known(case: ReturnCase) -> bool:
    t = case.totals
    return t.total != ZERO or t.product != ZERO


_NEXT = {
    MoneyCategory.TAX: "Compare the VAT on the {src} return with the lines on the Khaos credit "
    "note; correct the VAT on the credit note in Khaos if the source is right.",
    MoneyCategory.ROUNDING: "Compare the line values on the Khaos credit note with the {src} "
    "return (product - discount); amend the credit note in Khaos by the difference if the "
    "source is right.",
    MoneyCategory.HEADER: "The {src} return's own totals do not add up; check the return in "
    "{src} and book the credit note at the value the customer was actually credited.",
    MoneyCategory.SHIPPING: "Check the shipping refund in {src}; add or correct the shipping "
    "line on the Khaos credit note (or book it under the shipping reconciliation category).",
    MoneyCategory.HANDLING_FEE: "Check the handling fee in {src}; correct the fee line on the "
    "Khaos credit note (or book it under the handling fee reconciliation category).",
    MoneyCategory.BONUS: "Check the bonus credit {src} gave with the gift card; book it as a "
    "goodwill cost, not against the credit note.",
    MoneyCategory.UPSELL: "Check the upsell the customer paid in {src} for the exchange; it "
    "belongs on the exchange order in Khaos, not on the credit note.",
    MoneyCategory.REFUND: "Compare the refund in {src} (and the payment provider) with the "
    "Khaos credit note; if the customer was over- or under-refunded, settle the difference "
    "and amend the credit note or the refund.",
    MoneyCategory.STORE_CREDIT: "Compare the store credit (gift card) {src} issued with the "
    "Khaos credit note; correct the gift card or the credit left on the customer's account.",
    MoneyCategory.EXCHANGE_CREDIT: "Compare the exchange credit in {src} with the Khaos "
    "credit note and the exchange order; correct whichever is wrong.",
}


def next_action(category: MoneyCategory, source: str, stage: Stage) -> str:
    base = _NEXT[category].format(src=source)
    where = ("It is already in Khaos: amend it there; returnbridge will not send it again."
             if stage is Stage.AFTER_HANDOVER else
             "The return is not in Khaos yet; it goes with the lines shown.")
    return f"[{category.value}] {base} {where}"


def _gap(link: Link, category: MoneyCategory, expected: Decimal, actual: Decimal,
         message: str, source: str, stage: Stage) -> MoneyGap:
    return MoneyGap(link, category, quantize(actual - expected), quantize(expected),
                    quantize(actual), message, next_action(category, source, stage))


def _settlement_category(residual: Decimal, s: Settlement, units: int,
                         tolerance: Decimal) -> MoneyCategory:
    named = ((MoneyCategory.SHIPPING, s.shipping_refund),
             (MoneyCategory.HANDLING_FEE, s.handling_fee),
             (MoneyCategory.BONUS, s.bonus_credit),
             (MoneyCategory.UPSELL, s.upsell))
    for category, component in named:
        if component != ZERO and abs(abs(residual) - abs(component)) <= tolerance:
            return category
    if abs(residual) <= PENNY * max(units, 1):
        return MoneyCategory.ROUNDING
    legs = ((MoneyCategory.REFUND, s.refund_to_original),
            (MoneyCategory.STORE_CREDIT, s.store_credit),
            (MoneyCategory.EXCHANGE_CREDIT, s.exchange_credit))
    carried = [(abs(amount), -i, cat) for i, (cat, amount) in enumerate(legs) if amount]
    if not carried:
        return MoneyCategory.REFUND
    return max(carried)[2]


def money_gaps(case: ReturnCase, basis: CreditBasis, tolerance: Decimal) -> tuple[MoneyGap, ...]:
    """Every gap beyond ``tolerance``, one per link (see the module docstring)."""
    src = case.source
    cur = f" {case.currency}" if case.currency else ""
    stage = basis.stage
    sent = "sent to Khaos" if stage is Stage.AFTER_HANDOVER else "to be sent to Khaos"
    gaps: list[MoneyGap] = []
    t = case.totals
    header_net = quantize(t.product - t.discount)
    header_tax = quantize(t.tax)
    known = _header_known(case)
    if known:
        goods_net, goods_tax = quantize(basis.goods_net), quantize(basis.goods_tax)
        has_lines = basis.units > 0
        if has_lines and abs(header_tax - goods_tax) > tolerance:
            gaps.append(_gap(
                Link.LINES, MoneyCategory.TAX, goods_tax, header_tax,
                f"VAT on the lines {sent} is {goods_tax}{cur}; {src}'s return tax total is "
                f"{header_tax}{cur}: {header_tax - goods_tax:+}{cur} (category tax).",
                src, stage))
        if has_lines and abs(header_net - goods_net) > tolerance:
            gaps.append(_gap(
                Link.LINES, MoneyCategory.ROUNDING, goods_net, header_net,
                f"Line values {sent} are {goods_net}{cur} net; {src}'s product - discount is "
                f"{header_net}{cur}: {header_net - goods_net:+}{cur} (category rounding).",
                src, stage))
        header_total = quantize(t.total)
        if abs(header_total - (header_net + header_tax)) > tolerance:
            gaps.append(_gap(
                Link.HEADER, MoneyCategory.HEADER, header_net + header_tax, header_total,
                f"{src}'s return total {header_total}{cur} is not product - discount + tax "
                f"({header_net + header_tax}{cur}): "
                f"{header_total - header_net - header_tax:+}{cur} (category header).",
                src, stage))
        base = header_total
    else:
        base = quantize(basis.goods)
    if not is_settled(case):
        return tuple(gaps)
    s = case.settlement
    for category, on_note, settled, what, sign in (
        (MoneyCategory.SHIPPING, basis.shipping_line, s.shipping_refund, "shipping refund", 1),
        (MoneyCategory.HANDLING_FEE, basis.fee_line, s.handling_fee, "handling fee", -1),
    ):
        if on_note is not None and abs(quantize(settled) - quantize(on_note)) > tolerance:
            # signed as its effect on what the customer gets (a fee takes money away)
            gaps.append(_gap(
                Link.NOTE, category, sign * on_note, sign * settled,
                f"The {what} line {sent} is {quantize(on_note)}{cur}; {src} now says "
                f"{quantize(settled)}{cur}: {quantize(settled - on_note):+}{cur} "
                f"(category {category.value}).", src, stage))
    got = quantize(received_back(s))
    expected = quantize(base + s.shipping_refund - s.handling_fee + s.bonus_credit + s.upsell)
    residual = got - expected
    if abs(residual) > tolerance:
        category = _settlement_category(residual, s, basis.units, tolerance)
        parts = [f"refund {quantize(s.refund_to_original)}",
                 f"store credit {quantize(s.store_credit)}",
                 f"exchange credit {quantize(s.exchange_credit)}"]
        named = [f"{label} {sign}{quantize(v)}" for label, sign, v in (
            ("shipping refund", "+", s.shipping_refund), ("handling fee", "-", s.handling_fee),
            ("bonus credit", "+", s.bonus_credit), ("upsell", "+", s.upsell)) if v]
        explained = f"{base}{cur} of goods" + (f" {' '.join(named)}" if named else "")
        gaps.append(_gap(
            Link.SETTLEMENT, category, expected, got,
            f"The customer got {got}{cur} back from {src} ({', '.join(parts)}); the credit "
            f"note {sent} is {quantize(basis.value)}{cur}, and {explained} explain "
            f"{expected}{cur}: {residual:+}{cur} unexplained (category {category.value}).",
            src, stage))
    return tuple(gaps)


def money_problems(case: ReturnCase, basis: CreditBasis,
                   tolerance: Decimal) -> tuple[Problem, ...]:
    """The gaps as exceptions: one per gap, the category in details, key and next_action."""
    return tuple(
        Problem(
            type=g.exception_type, message=g.message,
            dedupe_key=g.dedupe_key(case.associated_ref),
            details={"category": g.category.value, "link": g.link.value,
                     "gap": str(g.amount), "expected": str(g.expected),
                     "actual": str(g.actual), "stage": basis.stage.value,
                     "credit_value": str(quantize(basis.value))},
            next_action=g.next_action,
        )
        for g in money_gaps(case, basis, tolerance)
    )


@dataclass(frozen=True)
class OffNote:
    """A named component that is not on the credit note: reconciled as its own category."""

    category: MoneyCategory
    amount: Decimal  # positive: money to the customer; the fee is withheld (kept positive)


def off_note(case: ReturnCase, basis: CreditBasis) -> tuple[OffNote, ...]:
    s = case.settlement
    out: list[OffNote] = []
    if s.shipping_refund != ZERO and basis.shipping_line is None:
        out.append(OffNote(MoneyCategory.SHIPPING, quantize(s.shipping_refund)))
    if s.handling_fee != ZERO and basis.fee_line is None:
        out.append(OffNote(MoneyCategory.HANDLING_FEE, quantize(s.handling_fee)))
    return tuple(out)
