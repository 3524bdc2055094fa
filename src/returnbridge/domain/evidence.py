"""What a source event means for a return, independent of the source.

A source adapter turns one stored event into an :class:`Interpretation`: either a full
snapshot of the return (merged monotonically with what we have), partial evidence about
it (a label was delivered, units were received and graded, a gift card was issued), or
problems to raise (the platform failed to process it). Flows apply interpretations; the
adapters never touch storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from returnbridge.domain.exceptions import Problem
from returnbridge.domain.lifecycle import ReturnState, advance
from returnbridge.domain.model import Parcel, ReturnCase, UnitReceipt
from returnbridge.domain.receipts import merge_receipts


@dataclass(frozen=True)
class Evidence:
    """Partial facts about a return that is (or will be) known from a full snapshot."""

    at: datetime | None
    receipts: tuple[UnitReceipt, ...] = ()
    # Parcel facts (label / shipment topics, ASN report).
    label_status: str = ""
    carrier: str = ""
    tracking_number: str = ""
    delivered_at: datetime | None = None
    # Money facts the source reported separately (e.g. giftcard.requested).
    store_credit: Decimal | None = None
    # Lifecycle hint, applied monotonically (e.g. delivered -> received).
    state: ReturnState | None = None
    # Free-text for the timeline.
    summary: str = ""
    # The source's own name for the stage this event reports (e.g. "ReturnGraded");
    # becomes the return's ``source_state`` when ``state`` is not older news.
    source_state: str = ""


@dataclass(frozen=True)
class ExternalRefund:
    """A refund the platform reports as already made: reconcile it, never pay it again."""

    return_ref: str  # the platform's return reference
    associated_ref: str
    order_ref: str
    amount: Decimal
    currency: str
    method: str
    reference: str  # the payment provider's refund id, when the platform sends one
    event_id: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class RefundRequest:
    """The platform asks the retailer to refund: the refund gate decides what is paid."""

    return_ref: str
    associated_ref: str
    order_ref: str
    amount: Decimal | None  # None: the platform did not say; the credit note value decides
    currency: str
    method: str
    event_id: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class Interpretation:
    """One stored event, understood.

    ``handled`` False means: stored and counted, but this version does not use it
    (unknown topic or trigger); the event is marked ``unhandled``, never an error.
    """

    handled: bool
    source_return_id: str = ""
    snapshot: ReturnCase | None = None
    evidence: Evidence | None = None
    problems: tuple[Problem, ...] = ()
    note: str = ""
    external_refund: ExternalRefund | None = None
    refund_request: RefundRequest | None = None
    # An event about a return not seen yet that carries the whole return: that picture
    # (state requested), to open the return from (out-of-order delivery). None when the
    # payload cannot make one.
    fallback_snapshot: ReturnCase | None = None
    # What the platform called the event, and the canonical trigger it maps to ("" when
    # the platform's envelope already says: the stored topic and trigger stand).
    event_type: str = ""
    trigger: str = ""




def apply_evidence(case: ReturnCase, evidence: Evidence, event_key: str) -> ReturnCase:
    """Fold partial evidence into a case. Applying the same event twice changes nothing."""
    from dataclasses import replace


    if event_key in case.events:
        return case
    parcel = case.parcel
    if evidence.label_status or evidence.carrier or evidence.tracking_number or (
        evidence.delivered_at
    ):
        parcel = Parcel(
            label_status=evidence.label_status or parcel.label_status,
            carrier=evidence.carrier or parcel.carrier,
            tracking_number=evidence.tracking_number or parcel.tracking_number,
            delivered_at=evidence.delivered_at or parcel.delivered_at,
        )
    settlement = case.settlement
    if evidence.store_credit is not None and evidence.store_credit > settlement.store_credit:
        settlement = replace(settlement, store_credit=evidence.store_credit)
    state = advance(case.state, evidence.state) if evidence.state is not None else case.state
    source_state = case.source_state
    if evidence.source_state and evidence.state is not None and state == evidence.state:
        # The source state follows the canonical one: the most advanced stage wins, an
        # out-of-order or late event never moves it back.
        source_state = evidence.source_state
    return replace(
        case,
        source_state=source_state,
        receipts=merge_receipts(case.receipts, evidence.receipts),
        parcel=parcel,
        settlement=settlement,
        state=state,
        events=(*case.events, event_key),
    )


__all__ = ["Evidence", "Interpretation", "UnitReceipt", "apply_evidence"]
