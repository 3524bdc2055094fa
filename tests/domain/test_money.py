from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from returnbridge.domain.money import MoneyError, allocate, money, quantize, to_decimal

amounts = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=2,
                      allow_nan=False, allow_infinity=False)
weights = st.lists(st.decimals(min_value=Decimal("0"), max_value=Decimal("10000"), places=4,
                               allow_nan=False, allow_infinity=False), min_size=1, max_size=12)


@given(amounts, weights)
@settings(max_examples=300, deadline=None)
def test_allocation_always_sums_exactly_to_the_total(total: Decimal, ws: list[Decimal]) -> None:
    parts = allocate(total, ws)
    assert sum(parts, Decimal(0)) == quantize(total)
    assert all(p == quantize(p) for p in parts)


@given(amounts, weights)
@settings(max_examples=200, deadline=None)
def test_allocation_is_within_a_penny_of_the_exact_share(total: Decimal,
                                                         ws: list[Decimal]) -> None:
    parts = allocate(total, ws)
    wsum = sum(ws, Decimal(0))
    for part, w in zip(parts, ws, strict=True):
        exact = quantize(total) * w / wsum if wsum else quantize(total) / len(ws)
        assert abs(part - exact) < Decimal("0.01")


def test_allocation_is_deterministic_and_ties_go_to_the_first_position() -> None:
    assert allocate(Decimal("0.10"), [Decimal(1)] * 3) == [Decimal("0.04"), Decimal("0.03"),
                                                           Decimal("0.03")]
    assert allocate(Decimal("-0.10"), [Decimal(1)] * 3) == [Decimal("-0.04"),
                                                            Decimal("-0.03"), Decimal("-0.03")]


def test_allocation_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no weights"):
        allocate(Decimal("1"), [])
    with pytest.raises(ValueError, match="negative"):
        allocate(Decimal("1"), [Decimal("-1")])


@pytest.mark.parametrize("raw,expected", [
    ("20.00", Decimal("20.00")), (20, Decimal("20.00")), (20.1, Decimal("20.10")),
    ("1,234.50", Decimal("1234.50")), (" 0.125 ", Decimal("0.13")), ("0.005", Decimal("0.01")),
])
def test_money_reads_strings_and_numbers_without_float_error(raw: object,
                                                             expected: Decimal) -> None:
    assert money(raw) == expected


@pytest.mark.parametrize("raw", [None, True, "abc", "NaN", "Infinity", [], {}])
def test_money_refuses_non_amounts(raw: object) -> None:
    with pytest.raises(MoneyError):
        to_decimal(raw)


def test_float_input_goes_through_its_decimal_spelling() -> None:
    # 0.1 as a binary float is 0.1000000000000000055...; Loop means 0.1.
    assert to_decimal(0.1) == Decimal("0.1")
