"""Money helpers: Decimal only, quantised at the edges, deterministic penny allocation."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

PENNY = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyError(ValueError):
    """A value could not be read as an amount of money."""


def to_decimal(value: object) -> Decimal:
    """Read a money value sent as a string or a number, never through float arithmetic.

    Floats are converted through ``str`` so that ``20`` and ``20.0`` and ``"20.00"`` agree.
    """
    if isinstance(value, bool) or value is None:
        raise MoneyError(f"not an amount: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        text = str(value).strip().replace(",", "")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise MoneyError(f"not an amount: {value!r}") from exc
    else:
        raise MoneyError(f"not an amount: {value!r}")
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return result


def quantize(amount: Decimal) -> Decimal:
    """Round to pennies, half up (the one rounding rule at the edges)."""
    return amount.quantize(PENNY, rounding=ROUND_HALF_UP)


def money(value: object) -> Decimal:
    """``to_decimal`` then ``quantize``."""
    return quantize(to_decimal(value))


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (in pennies) across ``weights`` by largest remainder.

    The parts always sum exactly to ``quantize(total)``. Ties in the remainder go to the
    earlier position, so the result is deterministic. All-zero weights split evenly.
    Negative totals are allocated by symmetry.
    """
    if not weights:
        raise ValueError("cannot allocate across no weights")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    total = quantize(total)
    if total < 0:
        return [-part for part in allocate(-total, weights)]
    pennies = int(total / PENNY)
    weight_sum = sum(weights, Decimal(0))
    effective = list(weights) if weight_sum > 0 else [Decimal(1)] * len(weights)
    effective_sum = sum(effective, Decimal(0))
    exact = [Decimal(pennies) * w / effective_sum for w in effective]
    floors = [int(x) for x in exact]
    remaining = pennies - sum(floors)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:remaining]:
        floors[i] += 1
    return [Decimal(p) * PENNY for p in floors]

