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
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Disposition, ReturnCase


@dataclass(frozen=True)
class UnitReceipt:
    """Goods physically arrived (and possibly graded). Joined to return lines by the
    first non-empty key of: ``line_item_id`` (a source unit id), ``variant_id``, ``sku``."""

    quantity: int
    at: datetime | None
    line_item_id: str = ""
    variant_id: str = ""
    sku: str = ""
    disposition: Disposition | None = None  # None: arrival only, not graded yet
    condition: str = ""


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
