"""Merging a newly reported version of a return into what we already know (monotonic)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from returnbridge.domain.lifecycle import advance, is_backwards
from returnbridge.domain.model import Customer, Parcel, ReturnCase
from returnbridge.domain.receipts import effective_lines, merge_receipts


@dataclass(frozen=True)
class MergeResult:
    case: ReturnCase
    content_applied: bool  # lines, money and customer taken from the incoming version
    note: str


def merge(current: ReturnCase | None, incoming: ReturnCase, event_id: str) -> MergeResult:
    """Apply ``incoming``; an older version never overwrites a newer one."""
    if current is None:
        return MergeResult(replace(incoming, events=(event_id,)), True, "first seen")
    if event_id in current.events:
        return MergeResult(current, False, "event already applied")
    events = (*current.events, event_id)
    if is_backwards(current.state, incoming.state):
        return MergeResult(
            replace(current, events=events),
            False,
            f"older news ignored: the event says {incoming.state.value}, the return is "
            f"already {current.state.value}",
        )
    state = advance(current.state, incoming.state)
    customer = _keep_known_customer(current.customer, incoming.customer)
    settlement = incoming.settlement
    if settlement.store_credit == 0 and current.settlement.store_credit:
        # a gift card reported on its own (giftcard.requested) is not undone by a snapshot
        settlement = replace(settlement, store_credit=current.settlement.store_credit)
    merged = replace(incoming, state=state, customer=customer, events=events,
                     created_at=current.created_at or incoming.created_at,
                     receipts=merge_receipts(current.receipts, incoming.receipts),
                     parcel=incoming.parcel if incoming.parcel != Parcel() else current.parcel,
                     settlement=settlement)
    return MergeResult(merged, True, f"updated to {state.value}")


def same_content(a: ReturnCase, b: ReturnCase) -> bool:
    """True when two versions would produce the same Khaos document."""
    return (effective_lines(a), a.exchanges, a.settlement, a.customer.email) == (
        effective_lines(b), b.exchanges, b.settlement, b.customer.email)


def _keep_known_customer(current: Customer, incoming: Customer) -> Customer:
    """A platform's list view may have no name or address: a newer list element about the same
    customer must not erase the name and address an earlier webhook or details call gave."""
    customer = incoming
    if current.urn and not customer.urn:
        customer = replace(customer, urn=current.urn)
    same = not customer.email or customer.email.casefold() == current.email.casefold()
    if not same:
        return customer
    if not (customer.first_name or customer.last_name) and (
            current.first_name or current.last_name):
        customer = replace(customer, first_name=current.first_name,
                           last_name=current.last_name)
    if customer.address is None and current.address is not None:
        customer = replace(customer, address=current.address)
    return customer
