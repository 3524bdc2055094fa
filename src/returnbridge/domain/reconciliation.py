"""Reconciliation vocabulary (ARCHITECTURE 11, issue #13): three legs, named gaps.

Three legs per return: the platform's outcome (what the returns platform says the customer gets),
the Khaos credit note (code, value, stage, cleared), and the payments (refunds on the
Shopify order, ours or made by hand, and store credit issued). Every penny between the
credit note and the money is one named *difference*, signed as its contribution to
``money paid - credit value``; so for each return

    refund + store credit issued + exchange credit = credit value + sum(differences)

and whatever no category explains is ``unexplained`` (the residual, listed). Money in the
reconciliation tables is held in integer minor units (pence), so sums are exact on every
database.

Pure: no SQL, no HTTP. The engine (flows/reconcile) computes the columns this module names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from returnbridge.domain.exceptions import Owner

CENT = Decimal("0.01")


class Category(StrEnum):
    CREDIT_NOTE_WITHOUT_REFUND = "credit_note_without_refund"
    REFUND_WITHOUT_CREDIT_NOTE = "refund_without_credit_note"
    CREDIT_NOTE_VALUE = "credit_note_value"  # the note differs from the platform's outcome
    REFUND = "refund"  # paid differs from the platform's refund (partial / over refund)
    DUPLICATE_REFUND = "duplicate_refund"  # the same refund paid twice
    STORE_CREDIT = "store_credit"  # store credit issued differs from credited
    SHIPPING = "shipping"  # shipping refunded, not on the credit note
    HANDLING_FEE = "handling_fee"  # handling fee withheld, not on the credit note
    BONUS = "bonus"  # bonus credit given with a gift card (goodwill cost)
    UPSELL = "upsell"  # paid by the customer for an exchange
    ROUNDING = "rounding"  # a penny per unit or less
    TAX = "tax"  # VAT on the note differs from the platform's
    UNEXPLAINED = "unexplained"  # the residual no category explains


ORPHANS = (Category.CREDIT_NOTE_WITHOUT_REFUND, Category.REFUND_WITHOUT_CREDIT_NOTE)


class AgeingCategory(StrEnum):
    CREDIT_NOTE_NOT_CLEARED = "credit_note_not_cleared"
    STUCK = "stuck"


@dataclass(frozen=True)
class CategoryInfo:
    meaning: str
    next_action: str


INFO: dict[Category, CategoryInfo] = {
    Category.CREDIT_NOTE_WITHOUT_REFUND: CategoryInfo(
        "Khaos has a credit note for this return but no refund, store credit or exchange "
        "credit reached the customer.",
        "Check the return in the platform and the Shopify order: refund the customer (the "
        "refund gate does this once the credit note is confirmed) or cancel the credit note "
        "in Khaos if nothing is owed."),
    Category.REFUND_WITHOUT_CREDIT_NOTE: CategoryInfo(
        "Money went back to the customer (a refund on the Shopify order, possibly made by "
        "hand as goodwill) with no Khaos credit note behind it.",
        "Find who made the refund (Shopify order timeline): raise the matching credit note "
        "in Khaos, or book it as goodwill in the ledger."),
    Category.CREDIT_NOTE_VALUE: CategoryInfo(
        "The Khaos credit note's value differs from what the platform settled for the goods.",
        "Compare the credit note lines in Khaos with the platform's return; amend the credit "
        "note by the amount shown if the platform is right."),
    Category.REFUND: CategoryInfo(
        "The refund on the Shopify order differs from the platform's refund (a partial or an "
        "over-refund).",
        "Check the Shopify order's refunds against the platform: refund the rest, or recover "
        "the over-refund, and note it on the credit note."),
    Category.DUPLICATE_REFUND: CategoryInfo(
        "The same refund was paid twice on the Shopify order.",
        "Confirm the second refund in Shopify and recover it from the customer (or book it "
        "as a loss); returnbridge never pays twice, so look for a refund made by hand."),
    Category.STORE_CREDIT: CategoryInfo(
        "The store credit (gift card / Shopify store credit) issued differs from what the "
        "platform credited.",
        "Compare the customer's store credit in Shopify with the platform; correct the "
        "balance or the gift card."),
    Category.SHIPPING: CategoryInfo(
        "A shipping refund reached the customer but is not on the credit note.",
        "Book the shipping refund under the shipping reconciliation code (or add the "
        "shipping line on the credit note)."),
    Category.HANDLING_FEE: CategoryInfo(
        "A handling fee was withheld from the customer but is not on the credit note.",
        "Book the handling fee income under its reconciliation code (or add the fee line on "
        "the credit note)."),
    Category.BONUS: CategoryInfo(
        "Bonus credit the platform gave with a gift card (never on the credit note).",
        "Book the bonus as a goodwill / marketing cost."),
    Category.UPSELL: CategoryInfo(
        "What the customer paid on top for an exchange (belongs on the exchange order).",
        "Check the upsell is on the exchange order in Khaos."),
    Category.ROUNDING: CategoryInfo(
        "A penny per unit or less between the credit note and the platform.",
        "Book it to rounding; no action on the customer."),
    Category.TAX: CategoryInfo(
        "The VAT on the credit note differs from the platform's tax total.",
        "Correct the VAT on the credit note in Khaos if the platform is right (tax drift)."),
    Category.UNEXPLAINED: CategoryInfo(
        "Money nothing else explains: the platform's own figures do not add up, or the "
        "return has no platform record.",
        "Investigate the return across the platform, Khaos and Shopify; this is the residual "
        "finance cannot sign off until it is explained."),
}


AGEING_INFO: dict[AgeingCategory, CategoryInfo] = {
    AgeingCategory.CREDIT_NOTE_NOT_CLEARED: CategoryInfo(
        "The platform processed or closed the return, but its Khaos credit note is not "
        "cleared (confirmed / processed) after the configured number of days.",
        "Process the credit note in Khaos (or confirm it with 'returnbridge khaos confirm'); "
        "if the platform closed it by mistake, reopen it there."),
    AgeingCategory.STUCK: CategoryInfo(
        "The return has been in one stage longer than the configured age for that stage.",
        "Open the return's timeline ('returnbridge returns show REF') and move it on: the "
        "stage says which system is waiting."),
}


# Khaos-side stages a return can wait in, with who can move it on.
STAGE_OWNERS: dict[str, Owner] = {
    "pending": Owner.OPS,  # not released to Khaos (held or waiting for its trigger)
    "ready": Owner.OPS,  # released, Khaos has not fetched it (channel polling?)
    "served": Owner.OPS,  # fetched, import not confirmed
    "imported": Owner.WAREHOUSE,  # in Khaos, goods not booked in
    "received_not_graded": Owner.WAREHOUSE,  # goods arrived, not graded
    "refund_held": Owner.FINANCE,  # credit confirmed, the refund is held for finance
}


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """'2026-11' -> [2026-11-01, 2026-12-01) in UTC."""
    try:
        year, month = (int(x) for x in period.split("-"))
        start = date(year, month, 1)
    except ValueError:
        raise ValueError(f"period must look like YYYY-MM, got {period!r}") from None
    end = date(year + (month == 12), month % 12 + 1, 1)
    return (datetime(start.year, start.month, 1, tzinfo=UTC),
            datetime(end.year, end.month, 1, tzinfo=UTC))


def to_minor(amount: Decimal) -> int:
    return int((amount / CENT).to_integral_value())


def from_minor(minor: int) -> Decimal:
    return (Decimal(minor) * CENT).quantize(CENT)
