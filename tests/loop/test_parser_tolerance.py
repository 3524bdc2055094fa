"""Each quirk of real Loop payloads (reference §3, §3.2, §3.6, §6.4-6.6) tolerated explicitly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import amount, ident, text, timestamp
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Disposition, ReturnCase
from returnbridge.sources.loop.parser import canonical_state, parse_return
from returnbridge.store.codec import case_to_json

from ._support import PREFIX, closed_refund, exchange, unit


def parse(payload: Any) -> ReturnCase:
    return parse_return(payload, prefix=PREFIX)


def invalid(payload: Any) -> PayloadInvalid:
    with pytest.raises(PayloadInvalid) as info:
        parse(payload)
    return info.value


# --- ids: int or str ------------------------------------------------------------------------


@pytest.mark.parametrize("raw_id", [6042537, "6042537", " 6042537 "])
def test_return_id_int_or_str(raw_id: object) -> None:
    payload = closed_refund()
    payload["id"] = raw_id
    case = parse(payload)
    assert case.source_return_id == "6042537"
    assert case.associated_ref == "LR-6042537"


def test_every_id_field_reads_the_same_as_int_or_str() -> None:
    as_str = closed_refund()
    as_int = closed_refund()
    for key in ("id", "order_id", "provider_order_id"):
        as_int[key] = int(as_str[key])
    for key in ("line_item_id", "provider_line_item_id", "product_id", "variant_id"):
        as_int["line_items"][0][key] = int(as_str["line_items"][0][key])
    as_str["refunds"][0]["provider_refund_id"] = "987654321"
    as_int["refunds"][0]["provider_refund_id"] = 987654321
    a, b = parse(as_str), parse(as_int)
    assert a == b
    assert case_to_json(a) == case_to_json(b)
    (line,) = b.lines
    assert line.source_unit_ids == ("59160778",)
    assert line.source_order_line_id == "5896375795809"
    assert line.variant_id == "32725922578529"
    assert b.source_order_id == "2773679177825"
    assert b.settlement.gateway_refunds[0].provider_refund_id == "987654321"


def test_exchange_fixture_mixes_int_and_str_ids() -> None:
    case = parse(exchange())  # id "1673" (str), line_item_id 123456789 (int)
    assert case.source_return_id == "1673"
    assert case.lines[0].source_unit_ids == ("123456789",)
    assert all(isinstance(uid, str) for line in case.lines for uid in line.source_unit_ids)


@pytest.mark.parametrize("bad", [True, False, {"id": 1}, [1]])
def test_id_of_the_wrong_kind_is_rejected(bad: object) -> None:
    payload = closed_refund()
    payload["id"] = bad
    err = invalid(payload)
    assert err.path == "id"
    assert str(err).startswith("id: ")


# --- money: string, int, float, float-looking string ----------------------------------------


@pytest.mark.parametrize("price", ["120.00", 120, 120.0, "120", "120.0", " 120.00 "])
def test_money_as_string_int_or_float(price: object) -> None:
    payload = closed_refund()
    payload["line_items"][0]["price"] = price
    (line,) = parse(payload).lines
    assert line.unit_net == Decimal("0.12")  # price - discount 119.88
    assert line.unit_gross == Decimal("0.13")
    assert line.unit_nets == (Decimal("0.12"),)


@pytest.mark.parametrize("wire", [20, 20.0, "20", "20.0", "20.00"])
def test_money_wire_type_does_not_change_the_stored_case(wire: object) -> None:
    reference = closed_refund()
    reference["refunds"][0]["amount"] = "20.00"
    reference["refund"] = "20.00"
    other = closed_refund()
    other["refunds"][0]["amount"] = wire
    other["refund"] = wire
    a, b = parse(reference), parse(other)
    assert b.settlement.gateway_refunds[0].amount == Decimal("20.00")
    # Same value, same canonical JSON: the store must not see a change where there is none.
    assert case_to_json(a) == case_to_json(b)
    assert case_to_json(b)["settlement"]["gateway_refunds"][0]["amount"] == "20.00"
    assert case_to_json(b)["settlement"]["refund_to_original"] == "20.00"


def test_money_with_integer_price_and_discount_keeps_pennies() -> None:
    payload = closed_refund()
    payload["line_items"][0].update(price=50, discount=5, tax=2.5)
    (line,) = parse(payload).lines
    assert line.unit_nets == (Decimal("45.00"),)
    assert line.unit_taxes == (Decimal("2.50"),)
    assert str(line.unit_nets[0]) == "45.00"
    assert line.unit_gross == Decimal("47.50")


def test_sub_penny_money_is_kept_not_rounded_away() -> None:
    assert str(amount("0.125", "x")) == "0.125"


def test_money_placeholders_are_zero() -> None:
    for placeholder in (None, "", "N/A", "n/a"):
        assert amount(placeholder, "x") == Decimal("0.00")


@pytest.mark.parametrize("bad", ["abc", "12,34.5x", True, {"amount": "1"}, [1], "NaN", "Infinity",
                                 float("nan"), float("inf"), 1e300, "1e999999999", "-1e20"])
def test_bad_money_is_payload_invalid_with_path(bad: object) -> None:
    payload = closed_refund()
    payload["line_items"][0]["price"] = bad
    err = invalid(payload)
    assert err.path == "line_items[0].price"
    assert "line_items[0].price" in str(err)


# --- "N/A" and "" placeholders --------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["N/A", "", "n/a", None])
def test_label_placeholders_change_nothing(placeholder: object) -> None:
    without = closed_refund()
    for key in ("tracking_number", "carrier", "label_updated_at"):
        del without[key]
    del without["label_status"]
    with_placeholders = closed_refund()
    for key in ("tracking_number", "carrier", "label_updated_at", "label_status"):
        with_placeholders[key] = placeholder
    assert parse(with_placeholders) == parse(without)
    assert parse(with_placeholders).state is ReturnState.CLOSED


@pytest.mark.parametrize("placeholder", ["N/A", "", None])
def test_return_comment_placeholder_is_accepted(placeholder: object) -> None:
    payload = closed_refund()
    payload["line_items"][0]["return_comment"] = placeholder
    assert parse(payload) == parse(closed_refund())


def test_open_return_with_na_label_status_is_requested() -> None:
    payload = exchange()
    assert payload["label_status"] == "N/A"
    assert payload["label_updated_at"] == "N/A"
    assert payload["line_items"][0]["return_comment"] == "N/A"
    assert parse(payload).state is ReturnState.REQUESTED


@pytest.mark.parametrize("placeholder", ["N/A", "", "n/a", " N/A ", None])
def test_placeholders_become_empty_text(placeholder: object) -> None:
    assert text(placeholder) == ""
    payload = closed_refund()
    payload["line_items"][0].update(barcode=placeholder, parent_return_reason=placeholder)
    payload["address"].update(company=placeholder, address2=placeholder)
    case = parse(payload)
    assert (case.lines[0].barcode, case.lines[0].parent_reason) == ("", "")
    assert case.customer.address is not None
    assert (case.customer.address.company, case.customer.address.line2) == ("", "")


def test_placeholder_created_at_is_none() -> None:
    payload = closed_refund()
    payload["created_at"] = "N/A"
    assert parse(payload).created_at is None


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2023-05-01T12:00:00Z", datetime(2023, 5, 1, 12, 0, tzinfo=UTC)),
        ("2023-05-01T12:00:00.000Z", datetime(2023, 5, 1, 12, 0, tzinfo=UTC)),
        ("2020-10-29T16:07:31+00:00", datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)),
        ("2020-10-29 16:07:31", datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)),  # no zone: UTC
        ("2020-10-29T18:07:31+02:00", datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)),
        ("2020-10-29T11:07:31-05:00", datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)),
        (
            {"date": "2020-10-29 16:07:31.000000", "timezone": "UTC", "timezone_type": 3},
            datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC),
        ),
        (
            {"date": "2020-10-29 16:07:31", "timezone": "UTC", "timezone_type": 3},
            datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC),
        ),
    ],
)
def test_timestamp_formats(raw: object, expected: datetime) -> None:
    payload = closed_refund()
    payload["created_at"] = raw
    payload["updated_at"] = raw
    payload["line_items"][0]["returned_at"] = raw
    case = parse(payload)
    assert case.created_at == expected
    assert case.updated_at == expected
    assert case.created_at is not None
    assert case.created_at.utcoffset() is not None
    assert case.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert case.created_at.tzinfo is UTC


def test_zoneless_timestamp_is_read_as_utc_not_local() -> None:
    parsed = timestamp("2020-10-29 16:07:31", "x")
    assert parsed == datetime(2020, 10, 29, 16, 7, 31, tzinfo=UTC)
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("php", "expected"),
    [
        # A named zone (timezone_type 3): 12:00 in London in summer is 11:00 UTC.
        ({"date": "2020-06-01 12:00:00.000000", "timezone": "Europe/London", "timezone_type": 3},
         datetime(2020, 6, 1, 11, 0, tzinfo=UTC)),
        ({"date": "2020-01-01 12:00:00.000000", "timezone": "America/New_York",
          "timezone_type": 3}, datetime(2020, 1, 1, 17, 0, tzinfo=UTC)),
        # An offset (timezone_type 1).
        ({"date": "2020-06-01 12:00:00.000000", "timezone": "+02:00", "timezone_type": 1},
         datetime(2020, 6, 1, 10, 0, tzinfo=UTC)),
        # No timezone given: UTC, as for zoneless strings.
        ({"date": "2020-06-01 12:00:00.000000"}, datetime(2020, 6, 1, 12, 0, tzinfo=UTC)),
        ({"date": "2020-06-01 12:00:00", "timezone": "Z", "timezone_type": 2},
         datetime(2020, 6, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_php_datetime_timezone_is_honoured(php: dict[str, Any], expected: datetime) -> None:
    assert timestamp(php, "created_at") == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"date": "2020-06-01 12:00:00", "timezone": "Mars/Olympus", "timezone_type": 3},
        {"date": "2020-06-01 12:00:00", "timezone": "Europe", "timezone_type": 3},
        {"date": "2020-06-01 12:00:00", "timezone": ["UTC"], "timezone_type": 3},
        {"date": 1_600_000_000, "timezone": "UTC"},
        {"date": {"date": "2020-06-01 12:00:00"}},
        {"when": "2020-06-01 12:00:00"},
        "yesterday",
        "2020-13-45 99:99:99",
        "0001-01-01T00:00:00+01:00",  # valid ISO, but out of range once moved to UTC
        "9999-12-31T23:59:59-01:00",
        1_600_000_000,
        ["2020-06-01"],
    ],
)
def test_bad_timestamps_are_payload_invalid_with_path(bad: object) -> None:
    payload = closed_refund()
    payload["created_at"] = bad
    err = invalid(payload)
    assert err.path.startswith("created_at")
    assert "created_at" in str(err)


# --- state naming drift and mapping ---------------------------------------------------------


@pytest.mark.parametrize("raw", ["needs review", "needs_review", "review", "Needs Review",
                                 " REVIEW "])
def test_review_spellings(raw: str) -> None:
    payload = closed_refund()
    payload["state"] = raw
    case = parse(payload)
    assert case.state is ReturnState.REVIEW
    assert case.source_state == raw.strip()


@pytest.mark.parametrize(
    ("state", "label_status", "expected"),
    [
        ("open", "", ReturnState.REQUESTED),
        ("open", "N/A", ReturnState.REQUESTED),
        ("open", "pending", ReturnState.REQUESTED),
        ("open", "new", ReturnState.REQUESTED),
        ("open", "pre_transit", ReturnState.REQUESTED),
        ("open", "error", ReturnState.REQUESTED),
        ("open", "in_transit", ReturnState.IN_TRANSIT),
        ("open", "out_for_delivery", ReturnState.IN_TRANSIT),
        ("open", "delivered", ReturnState.RECEIVED),
        ("Open", "Delivered", ReturnState.RECEIVED),
        ("closed", "in_transit", ReturnState.CLOSED),
        ("closed", "delivered", ReturnState.CLOSED),
        ("review", "delivered", ReturnState.REVIEW),
        ("cancelled", "", ReturnState.CANCELLED),
        ("canceled", "", ReturnState.CANCELLED),
        ("expired", "pre_transit", ReturnState.EXPIRED),
    ],
)
def test_state_mapping(state: str, label_status: str, expected: ReturnState) -> None:
    assert canonical_state(state, label_status) is expected
    payload = closed_refund()
    payload["state"] = state
    payload["label_status"] = label_status
    assert parse(payload).state is expected


@pytest.mark.parametrize("raw", ["archived", "opened", "5", "true"])
def test_unknown_state_is_payload_invalid(raw: str) -> None:
    payload = closed_refund()
    payload["state"] = raw
    err = invalid(payload)
    assert err.path == "state"
    assert str(err).startswith("state: ")
    assert repr(raw) in str(err)


@pytest.mark.parametrize("raw", [None, "", "N/A"])
def test_missing_state_is_payload_invalid(raw: object) -> None:
    payload = closed_refund()
    payload["state"] = raw
    assert invalid(payload).path == "state"
    del payload["state"]
    assert invalid(payload).path == "state"


# --- units grouped into lines ---------------------------------------------------------------


def three_unit_payload() -> dict[str, Any]:
    payload = closed_refund()
    payload["line_items"] = [
        unit(line_item_id=101, tax="2.84"),
        unit(line_item_id="102", tax="2.74"),
        unit(line_item_id=103, tax=2.74),
    ]
    return payload


def test_three_units_group_into_quantity_three() -> None:
    (line,) = parse(three_unit_payload()).lines
    assert line.sku == "SKU-A"
    assert line.quantity == 3
    assert line.source_unit_ids == ("101", "102", "103")
    assert line.source_order_line_id == "5000"
    assert line.unit_nets == (Decimal("40.00"),) * 3
    # Per-unit tax differs by a cent; every figure is kept as sent, so the sum is exact.
    assert line.unit_taxes == (Decimal("2.84"), Decimal("2.74"), Decimal("2.74"))
    assert sum(line.unit_taxes) == Decimal("8.32")
    assert sum(line.unit_nets) == Decimal("120.00")
    # The line's per-unit figure is the rounded mean (8.32 / 3 = 2.7733...).
    assert line.unit_tax == Decimal("2.77")
    assert line.unit_net == Decimal("40.00")
    assert line.unit_gross == line.unit_net + line.unit_tax == Decimal("42.77")


def test_units_with_different_reasons_become_separate_lines() -> None:
    payload = closed_refund()
    payload["line_items"] = [
        unit(line_item_id=1, return_reason="Too small"),
        unit(line_item_id=2, return_reason="Damaged"),
        unit(line_item_id=3, return_reason="Too small"),
    ]
    lines = parse(payload).lines
    assert [(ln.sku, ln.reason, ln.quantity, ln.source_unit_ids) for ln in lines] == [
        ("SKU-A", "Too small", 2, ("1", "3")),
        ("SKU-A", "Damaged", 1, ("2",)),
    ]


def test_units_with_different_parent_reasons_or_dispositions_are_separate() -> None:
    payload = closed_refund()
    payload["line_items"] = [
        unit(line_item_id=1, parent_return_reason="Didn't fit"),
        unit(line_item_id=2, parent_return_reason="Didn't like it"),
        unit(line_item_id=3, disposition={"disposition_outcome": "donate"}),
    ]
    lines = parse(payload).lines
    assert [ln.source_unit_ids for ln in lines] == [("1",), ("2",), ("3",)]
    assert lines[2].disposition is Disposition.DONATE


def test_units_from_different_order_lines_keep_their_order_line_ids() -> None:
    # Same SKU bought on two Shopify order lines (e.g. at two prices): grouping them would keep
    # only the first provider_line_item_id and silently lose the other.
    payload = closed_refund()
    payload["line_items"] = [
        unit(line_item_id=1, provider_line_item_id="A-1", price="40.00"),
        unit(line_item_id=2, provider_line_item_id="B-2", price="30.00"),
        unit(line_item_id=3, provider_line_item_id="A-1", price="40.00"),
    ]
    lines = parse(payload).lines
    assert [(ln.source_order_line_id, ln.source_unit_ids, ln.unit_net) for ln in lines] == [
        ("A-1", ("1", "3"), Decimal("40.00")),
        ("B-2", ("2",), Decimal("30.00")),
    ]


def test_repeated_line_item_id_is_not_rejected() -> None:
    # Reference §3.2: one hand-copied sample repeats a line_item_id; keep both units.
    payload = closed_refund()
    payload["line_items"] = [unit(line_item_id=7), unit(line_item_id=7)]
    (line,) = parse(payload).lines
    assert line.quantity == 2
    assert line.source_unit_ids == ("7", "7")


def test_line_items_keyed_by_id_read_like_a_list() -> None:
    as_list = closed_refund()
    as_list["line_items"] = [unit(line_item_id=1), unit(line_item_id=2)]
    as_object = closed_refund()
    as_object["line_items"] = {"1": unit(line_item_id=1), "2": unit(line_item_id=2)}
    assert parse(as_object) == parse(as_list)


def test_no_line_items_gives_no_lines() -> None:
    for empty in ([], None, "N/A"):
        payload = closed_refund()
        payload["line_items"] = empty
        assert parse(payload).lines == ()


def test_exchange_out_of_stock_flag_spellings() -> None:
    for raw, expected in ((True, True), ("true", True), (1, True), ("1", True),
                          (False, False), ("false", False), (0, False), (None, False)):
        payload = exchange()
        payload["exchanges"][0]["out_of_stock"] = raw
        assert parse(payload).exchanges[0].out_of_stock is expected, raw
    payload = exchange()
    payload["exchanges"][0]["out_of_stock"] = "maybe"
    assert invalid(payload).path == "exchanges[0].out_of_stock"


# --- unknown fields -------------------------------------------------------------------------


def test_unknown_fields_are_ignored() -> None:
    baseline = parse(exchange())
    payload = exchange()
    payload["brand_new_field"] = {"nested": [1, 2, {"x": None}]}
    payload["another"] = "N/A"
    payload["customer_detail"]["pronouns"] = ["they"]
    payload["address"]["geo"] = {"lat": 1.5, "lng": -2.25}
    payload["line_items"][0]["future_flag"] = True
    payload["line_items"][0]["grading"] = {"score": 9}
    payload["exchanges"][0]["bundle"] = [{"sku": "x"}]
    payload["refunds"][0]["status"] = "success"
    payload["labels"][0]["new_key"] = "x"
    assert parse(payload) == baseline


# --- missing or invalid required data -------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "N/A", "  "])
def test_missing_id_is_payload_invalid(raw: object) -> None:
    payload = closed_refund()
    payload["id"] = raw
    err = invalid(payload)
    assert err.path == "id"
    assert "id" in str(err)
    del payload["id"]
    assert invalid(payload).path == "id"


def test_too_long_id_is_payload_invalid() -> None:
    payload = closed_refund()
    payload["id"] = "9" * 60
    assert invalid(payload).path == "id"


@pytest.mark.parametrize("payload", [None, [], "return", 12, [{"id": "1"}]])
def test_non_object_payload_is_payload_invalid(payload: object) -> None:
    invalid(payload)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p["line_items"][0].update(sku={"a": 1}), "line_items[0].sku"),
        (lambda p: p["line_items"][0].update(line_item_id=[1]), "line_items[0].line_item_id"),
        (lambda p: p["line_items"][0].update(tax="x"), "line_items[0].tax"),
        (lambda p: p["line_items"][0].update(return_reason={}), "line_items[0].return_reason"),
        (lambda p: p["line_items"][0].update(condition=[1]), "line_items[0].condition"),
        (lambda p: p["line_items"][0].update(disposition="x"), "line_items[0].disposition"),
        (lambda p: p["line_items"][0].update(returned_at="soon"), "line_items[0].returned_at"),
        (lambda p: p["line_items"].append("unit"), "line_items[1]"),
        (lambda p: p.update(line_items=42), "line_items"),
        (lambda p: p.update(refunds=[{"amount": "x"}]), "refunds[0].amount"),
        (lambda p: p.update(refunds=["x"]), "refunds[0]"),
        (lambda p: p.update(refunds=[{"gateway": ["a"]}]), "refunds[0].gateway"),
        (lambda p: p.update(address="1 Example St"), "address"),
        (lambda p: p["address"].update(zip={"code": 1}), "address.zip"),
        (lambda p: p.update(customer=["a@b"]), "customer"),
        (lambda p: p.update(currency={"code": "USD"}), "currency"),
        (lambda p: p.update(label_status=["in_transit"]), "label_status"),
        (lambda p: p.update(order_name={"n": 1}), "order_name"),
        (lambda p: p.update(gift_card="lots"), "gift_card"),
        (lambda p: p.update(exchanges=[{"sku": "X", "price": "1", "tax": "q"}]),
         "exchanges[0].tax"),
    ],
)
def test_invalid_values_name_their_path(mutate: Any, path: str) -> None:
    payload = closed_refund()
    mutate(payload)
    err = invalid(payload)
    assert err.path == path
    assert str(err).startswith(f"{path}: ")


def test_ident_and_text_name_the_path() -> None:
    with pytest.raises(PayloadInvalid, match=r"^a\.b: "):
        ident({"x": 1}, "a.b")
    with pytest.raises(PayloadInvalid, match=r"^a\.b: "):
        text([1], "a.b")
    with pytest.raises(PayloadInvalid, match=r"^a\.b: "):
        ident(True, "a.b")


def test_customer_object_with_email_is_read() -> None:
    payload = closed_refund()
    payload["customer"] = {"email": "obj@example.com"}
    assert parse(payload).customer.email == "obj@example.com"


@pytest.mark.parametrize("blank", ["", None, "N/A", "DELETE"])
def test_a_unit_or_exchange_without_a_sku_is_kept_with_what_identifies_it(blank: Any) -> None:
    """Shopify variants without a SKU send "sku": "". The return must not be thrown away:
    the unit is kept with its variant id, barcode and title (the policy holds it)."""
    payload = closed_refund()
    unit = payload["line_items"][0]
    unit["barcode"] = "5012345678900"
    payload["exchanges"] = [{"sku": "", "variant_id": 4455, "title": "Tee - L",
                             "price": "10.00", "tax": "2.00"}]
    for element in (unit, payload["exchanges"][0]):
        if blank == "DELETE":
            element.pop("sku")
        else:
            element["sku"] = blank
    case = parse_return(payload, prefix=PREFIX)
    (line,) = case.lines
    assert (line.sku, line.variant_id, line.barcode, line.quantity) == (
        "", str(unit["variant_id"]), "5012345678900", 1)
    assert line.title == unit["title"]
    (swap,) = case.exchanges
    assert (swap.sku, swap.variant_id, swap.title) == ("", "4455", "Tee - L")
