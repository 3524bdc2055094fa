"""The canonical return lifecycle (ARCHITECTURE 4.1): monotonic transitions."""

from __future__ import annotations

from enum import StrEnum


class ReturnState(StrEnum):
    REQUESTED = "requested"
    REVIEW = "review"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    INSPECTED = "inspected"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Progress order. ``review`` is a pause next to ``requested``: a return can enter review
# from requested and leave it forwards, never fall back to requested. Terminal states
# (closed, cancelled, expired) share the top rank so that none overrides another.
_RANK: dict[ReturnState, int] = {
    ReturnState.REQUESTED: 0,
    ReturnState.REVIEW: 1,
    ReturnState.IN_TRANSIT: 2,
    ReturnState.RECEIVED: 3,
    ReturnState.INSPECTED: 4,
    ReturnState.RESOLVED: 5,
    ReturnState.CLOSED: 6,
    ReturnState.CANCELLED: 6,
    ReturnState.EXPIRED: 6,
}

TERMINAL: frozenset[ReturnState] = frozenset(
    {ReturnState.CLOSED, ReturnState.CANCELLED, ReturnState.EXPIRED}
)


def rank(state: ReturnState) -> int:
    return _RANK[state]


def advance(current: ReturnState | None, incoming: ReturnState) -> ReturnState:
    """The state after an event reporting ``incoming``.

    Monotonic: an event that would move the return backwards (a late retry, an
    out-of-order delivery) leaves the state as it is. Once terminal, a return stays in
    the terminal state it reached first.
    """
    if current is None:
        return incoming
    if current in TERMINAL:
        return current
    if rank(incoming) >= rank(current):
        return incoming
    return current


def is_backwards(current: ReturnState | None, incoming: ReturnState) -> bool:
    """True when ``incoming`` would not be applied because it is older news."""
    return current is not None and advance(current, incoming) != incoming
