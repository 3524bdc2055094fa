"""The Khaos-side status of a return (ARCHITECTURE 4.2) and its allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class KhaosStatus(StrEnum):
    PENDING = "pending"
    HELD = "held"
    READY = "ready"
    SERVED = "served"
    IMPORTED = "imported"
    CREDIT_CONFIRMED = "credit_confirmed"
    REFUND_RECORDED = "refund_recorded"
    DONE = "done"


_ALLOWED: dict[KhaosStatus, frozenset[KhaosStatus]] = {
    KhaosStatus.PENDING: frozenset({KhaosStatus.HELD, KhaosStatus.READY}),
    KhaosStatus.HELD: frozenset({KhaosStatus.READY, KhaosStatus.PENDING}),
    KhaosStatus.READY: frozenset({KhaosStatus.SERVED, KhaosStatus.HELD, KhaosStatus.PENDING}),
    KhaosStatus.SERVED: frozenset({KhaosStatus.IMPORTED, KhaosStatus.CREDIT_CONFIRMED}),
    KhaosStatus.IMPORTED: frozenset({KhaosStatus.CREDIT_CONFIRMED}),
    KhaosStatus.CREDIT_CONFIRMED: frozenset({KhaosStatus.REFUND_RECORDED, KhaosStatus.DONE}),
    KhaosStatus.REFUND_RECORDED: frozenset({KhaosStatus.DONE}),
    KhaosStatus.DONE: frozenset(),
}

# Once a return has been handed to Khaos it can never be handed over again as the same
# AssociatedRef (ARCHITECTURE 6.1).
DELIVERED: frozenset[KhaosStatus] = frozenset(
    {
        KhaosStatus.SERVED,
        KhaosStatus.IMPORTED,
        KhaosStatus.CREDIT_CONFIRMED,
        KhaosStatus.REFUND_RECORDED,
        KhaosStatus.DONE,
    }
)


class IllegalTransition(ValueError):
    """A Khaos status change that the status machine does not allow."""

    def __init__(self, current: KhaosStatus, target: KhaosStatus) -> None:
        super().__init__(f"Khaos status cannot move from {current} to {target}")
        self.current = current
        self.target = target


def can_move(current: KhaosStatus, target: KhaosStatus) -> bool:
    return target in _ALLOWED[current]


def move(current: KhaosStatus, target: KhaosStatus) -> KhaosStatus:
    """Return ``target`` if the move is allowed, else raise ``IllegalTransition``."""
    if not can_move(current, target):
        raise IllegalTransition(current, target)
    return target
