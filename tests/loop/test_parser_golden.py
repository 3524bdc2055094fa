"""Golden files: every return-shaped fixture parsed into the canonical ReturnCase.

The golden JSON is ``case_to_json(parse_return(payload, prefix="LR-"))``. To regenerate after
an intended change, run with ``RB_UPDATE_GOLDEN=1`` and review the diff by hand. The
``test_*_by_hand`` tests below hold the figures worked out from the fixtures and the reference
independently of the golden files, so a careless regeneration cannot hide a wrong result.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import ReturnCase
from returnbridge.sources.loop.parser import parse_return
from returnbridge.store.codec import case_from_json, case_to_json

from ._support import GOLDEN, PREFIX, fixture, return_payloads

UPDATE = os.environ.get("RB_UPDATE_GOLDEN") == "1"
CASES = return_payloads()


def parsed(name: str) -> ReturnCase:
    payload = dict(CASES)[name]
    return parse_return(payload, prefix=PREFIX)


def render(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def test_every_return_fixture_is_covered() -> None:
    names = [name for name, _ in CASES]
    assert names == [
        "return_created_exchange",
        "return_updated_closed_refund",
        *(f"return_list_page_{i}" for i in range(len(fixture("return_list_page.json")["returns"]))),
    ]
    assert len(names) >= 3


@pytest.mark.parametrize(("name", "payload"), CASES, ids=[name for name, _ in CASES])
def test_matches_golden(name: str, payload: dict[str, Any]) -> None:
    actual = case_to_json(parse_return(payload, prefix=PREFIX))
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(actual), encoding="utf-8")
        # fall through: the comparison below then checks the file was written whole
    assert path.exists(), f"missing golden file {path}; run with RB_UPDATE_GOLDEN=1"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected
    # The stored text is exactly what the codec produces (no hand-edited drift in formatting).
    assert path.read_text(encoding="utf-8") == render(actual)


@pytest.mark.parametrize("name", [name for name, _ in CASES])
def test_golden_loads_back_into_the_same_case(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    if not path.exists():
        pytest.fail(f"{path.name} is missing: run with RB_UPDATE_GOLDEN=1, then review it")
    assert case_from_json(json.loads(path.read_text(encoding="utf-8"))) == parsed(name)


# --- Figures worked out by hand from the fixtures and the reference (§3, §3.6, §6) ---------


def test_exchange_by_hand() -> None:
    case = parsed("return_created_exchange")
    assert case.source_return_id == "1673"
    assert case.associated_ref == "LR-1673"
    assert case.order_ref == "#47727779"
    assert case.source_order_id == "58997314"
    # state "open" and label_status "N/A": nothing has moved yet.
    assert (case.state, case.source_state) == (ReturnState.REQUESTED, "open")
    assert case.created_at == datetime(2023, 5, 1, 12, 0, tzinfo=UTC)
    # No updated_at in the webhook view; edited_at is the latest change we know of.
    assert case.updated_at == datetime(2023, 5, 2, 15, 0, tzinfo=UTC)
    assert case.currency == "USD"
    assert case.customer.address is not None
    assert case.customer.address.postcode == "90210"  # zip sent as a number
    assert case.customer.address.country_code == "US"

    (line,) = case.lines
    assert line.sku == "2039473-Y"
    assert line.quantity == 1
    assert line.source_unit_ids == ("123456789",)  # int id -> str
    assert line.source_order_line_id == "12345678901"
    assert line.variant_id == "23498287203948"
    assert line.unit_net == Decimal("45.00")  # price 50.00 - discount 5.00
    assert line.unit_tax == Decimal("2.50")
    assert line.unit_gross == Decimal("47.50")  # net + tax
    assert line.discount == Decimal("5.00")
    assert (line.reason, line.parent_reason) == ("Too small", "Didn't fit")
    assert line.condition == ""  # condition: null

    (ex,) = case.exchanges
    assert (ex.sku, ex.quantity, ex.variant_id) == ("2039473-Z", 1, "23498287203949")
    assert ex.unit_net == Decimal("50.00")  # 60.00 - 10.00
    assert ex.unit_tax == Decimal("3.00")
    assert ex.unit_gross == Decimal("53.00")
    assert ex.out_of_stock is False

    s = case.settlement
    assert s.refund_to_original == Decimal("20.00")
    assert s.store_credit == Decimal("25.00")
    assert s.exchange_credit == Decimal("53.00")
    assert s.upsell == Decimal("10.00")
    assert s.handling_fee == Decimal("5.00")
    (gw,) = s.gateway_refunds
    # Sent as the number 20; stored with pennies like every other amount.
    assert (gw.gateway, str(gw.amount), gw.provider_refund_id) == ("Stripe", "20.00", "987654321")
    assert (case.totals.product, case.totals.discount, case.totals.tax, case.totals.total) == (
        Decimal("50.00"), Decimal("5.00"), Decimal("2.50"), Decimal("47.50"))


def test_closed_refund_by_hand() -> None:
    case = parsed("return_updated_closed_refund")
    assert case.source_return_id == "6042537"
    assert case.associated_ref == "LR-6042537"
    assert (case.state, case.source_state) == (ReturnState.CLOSED, "closed")
    assert case.created_at == datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)  # "+00:00" form
    assert case.updated_at is None  # neither updated_at nor edited_at was sent
    assert case.customer.email == "customer@example.com"
    # No customer_detail: the name comes from the address.
    assert (case.customer.first_name, case.customer.last_name) == ("A", "Customer")
    assert case.customer.address is not None
    assert case.customer.address.company == ""

    (line,) = case.lines
    assert line.sku == "AU1022E00000"
    assert line.source_unit_ids == ("59160778",)
    assert line.barcode == ""
    assert line.unit_net == Decimal("0.12")  # 120.00 - 119.88
    assert line.unit_tax == Decimal("0.01")
    assert line.unit_gross == Decimal("0.13")  # equals the line refund and the header total
    assert line.unit_gross == case.totals.total == case.settlement.refund_to_original
    assert line.discount == Decimal("119.88")

    # The real delivery's manual gateway refund of 0.00 is kept as sent.
    (gw,) = case.settlement.gateway_refunds
    assert (gw.gateway, gw.amount, gw.provider_refund_id) == ("manual", Decimal("0.00"), "")
    assert case.exchanges == ()


def test_list_element_by_hand() -> None:
    case = parsed("return_list_page_0")
    assert case.source_return_id == "12345678"
    # state "open" with label_status "in_transit": the parcel is on its way.
    assert (case.state, case.source_state) == (ReturnState.IN_TRANSIT, "open")
    assert case.created_at == datetime(2023, 1, 1, 22, 27, 15, tzinfo=UTC)
    # updated_at wins over edited_at even when edited_at is later.
    assert case.updated_at == datetime(2023, 1, 1, 22, 27, 18, tzinfo=UTC)
    assert case.customer.email == "example@example.com"
    assert case.customer.address is None

    (line,) = case.lines
    assert line.unit_net == Decimal("78.00")  # 78.00 - 0.00
    assert line.unit_tax == Decimal("4.29")
    assert line.unit_gross == Decimal("82.29")
    assert line.source_unit_ids == ("293482039",)
    assert case.settlement.refund_to_original == Decimal("63.30")
    assert case.settlement.exchange_credit == Decimal("101.28")
    assert case.settlement.gateway_refunds == ()
    assert case.totals.total == Decimal("164.58")
    # Header identity from reference §3.4: product - discount + tax = total.
    assert case.totals.product - case.totals.discount + case.totals.tax == case.totals.total
