"""Every Loop topic into an Interpretation: golden files, figures by hand, and fuzzing.

Golden files live in ``tests/fixtures/loop_golden/topics``; regenerate with
``RB_UPDATE_GOLDEN=1`` and review the diff. The by-hand tests hold the meaning independently.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.evidence import Interpretation
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Disposition
from returnbridge.sandbox.loop.sender import php_json
from returnbridge.sources.loop.settings import LoopSettings
from returnbridge.sources.loop.topics import interpret
from returnbridge.store.codec import to_jsonable

from ._support import GOLDEN, fixture, fixture_bytes
from .test_parser_fuzz import all_paths, garbage, get, placeholders, swapped, tricky

UPDATE = os.environ.get("RB_UPDATE_GOLDEN") == "1"
TOPIC_GOLDEN = GOLDEN / "topics"
SETTINGS = LoopSettings()

# (golden name, fixture file, topic, trigger) as the webhook stores them.
FIXTURE_EVENTS = [
    ("return_created_exchange", "return_created_exchange.json", "return", "return.created"),
    ("return_updated_closed_refund", "return_updated_closed_refund.json", "return",
     "return.updated"),
    ("label_updated", "label_updated.json", "label", "label.updated"),
    ("restock_requested", "restock_requested.json", "restock", "restock.requested"),
    ("giftcard_requested", "giftcard_requested.json", "giftcard", "giftcard.requested"),
]


def read(body: bytes | dict[str, Any], topic: str, trigger: str,
         loop: LoopSettings = SETTINGS) -> Interpretation:
    raw = body if isinstance(body, bytes) else php_json(body)
    return interpret(raw, topic=topic, trigger=trigger, settings=loop)


def render(found: Interpretation) -> str:
    return json.dumps(to_jsonable(found), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(("name", "file", "topic", "trigger"), FIXTURE_EVENTS,
                         ids=[e[0] for e in FIXTURE_EVENTS])
def test_fixture_matches_golden(name: str, file: str, topic: str, trigger: str) -> None:
    actual = render(read(fixture_bytes(file), topic, trigger))
    path = TOPIC_GOLDEN / f"{name}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        # fall through: the comparison below then checks the file was written whole
    assert path.exists(), f"missing golden file {path}; run with RB_UPDATE_GOLDEN=1"
    assert path.read_text(encoding="utf-8") == actual


def test_list_element_as_backstop_event_is_a_snapshot() -> None:
    element = fixture("return_list_page.json")["returns"][0]
    found = read(element, "return", "backstop")
    assert found.handled and found.snapshot is not None
    assert found.source_return_id == "12345678"
    assert found.snapshot.state is ReturnState.IN_TRANSIT


def test_label_by_hand() -> None:
    found = read(fixture_bytes("label_updated.json"), "label", "label.updated")
    assert found.handled and found.source_return_id == "12345"  # "id" is the return id
    ev = found.evidence
    assert ev is not None
    assert (ev.label_status, ev.carrier, ev.tracking_number) == (
        "in_transit", "USPS", "28735625627856237856287")
    assert ev.state is ReturnState.IN_TRANSIT
    assert ev.delivered_at is None
    assert ev.at == datetime(2019, 4, 1, 12, 0, tzinfo=UTC)


def test_delivered_label_means_received_at_the_warehouse() -> None:
    payload = fixture("label_updated.json") | {"label_status": "delivered",
                                               "label_updated_at": "2019-04-03 09:30:00"}
    ev = read(payload, "label", "label.updated").evidence
    assert ev is not None
    assert ev.state is ReturnState.RECEIVED
    assert ev.delivered_at == datetime(2019, 4, 3, 9, 30, tzinfo=UTC)  # no zone: UTC


def test_restock_by_hand_list_and_keyed_object_agree() -> None:
    as_list = read(fixture_bytes("restock_requested.json"), "restock", "restock.requested")
    assert as_list.source_return_id == "12345"
    assert as_list.evidence is not None
    (receipt,) = as_list.evidence.receipts
    assert (receipt.quantity, receipt.variant_id, receipt.disposition) == (
        1, "459875465", Disposition.RESTOCK)
    # The older shape: an object keyed by Shopify line item id, every value a string.
    keyed = fixture("restock_requested.json")
    item = keyed["restock_items"][0]
    keyed["restock_items"] = {"998877": {k: str(v) for k, v in item.items()},
                              "998878": {k: str(v) for k, v in item.items()}}
    found = read(keyed, "restock", "restock.requested")
    assert found.evidence is not None
    (both,) = found.evidence.receipts  # joined by variant: one receipt for 2 units
    assert (both.quantity, both.variant_id) == (2, "459875465")
    assert found.evidence.state is ReturnState.RECEIVED


def test_restock_rejects_negative_quantities() -> None:
    payload = fixture("restock_requested.json")
    payload["restock_items"][0]["available_adjustment"] = -1
    with pytest.raises(PayloadInvalid, match="available_adjustment"):
        read(payload, "restock", "restock.requested")


def test_giftcard_by_hand_and_bonus_spellings() -> None:
    found = read(fixture_bytes("giftcard_requested.json"), "giftcard", "giftcard.requested")
    assert found.source_return_id == "23456"  # return_id, not the gift card id
    assert found.evidence is not None
    assert found.evidence.store_credit == Decimal("23.50")  # total_credit_issued
    old = fixture("giftcard_requested.json")
    old.pop("gift_card_bonus_credit")
    old["gift_card_bonus"] = "2.00"
    old.pop("total_credit_issued")
    old["id"] = None  # automatic out-of-stock gift card
    ev = read(old, "giftcard", "giftcard.requested").evidence
    assert ev is not None
    assert ev.store_credit == Decimal("27.50")  # 25.00 + 0.50 tax + 2.00 bonus
    assert "bonus 2.00" in ev.summary and "automatic" in ev.summary


def test_processing_failed_is_one_problem_per_return_for_customer_service() -> None:
    payload = {"topic": "return.processing", "trigger": "return.processing.failed",
               "return_id": 4411, "return_state": "needs review", "message": None,
               "source": "warehouse"}
    found = read(payload, "return.processing", "return.processing.failed")
    again = read(payload | {"message": "Insufficient funds"}, "return.processing",
                 "return.processing.failed")
    assert found.source_return_id == "4411"
    (problem,) = found.problems
    assert problem.type == "source_processing_failed"
    assert problem.kind.owner.value == "cx"
    assert problem.dedupe_key == again.problems[0].dedupe_key  # deduplicated per return
    assert "LR-4411" in problem.message and "no reason" in problem.message
    assert "Insufficient funds" in again.problems[0].message
    assert found.evidence is not None and found.evidence.state is ReturnState.REVIEW


@pytest.mark.parametrize(("topic", "trigger", "payload"), [
    ("happy.returns.shipment", "shipment.processed",
     {"loop_shipment_id": 55, "happy_returns_shipment_id": "HR-1"}),
    ("label.request", "label.request.issued",
     {"id": "3f1c", "return_id": 77, "products": [{"sku": "A"}]}),
    ("label.request", "label.request.cancelled", {"id": 9, "return_id": "77"}),
    ("inventory", "inventory.moved", {"id": 1}),
])
def test_topics_not_used_are_unhandled_never_errors(topic: str, trigger: str,
                                                     payload: dict[str, Any]) -> None:
    found = read({"topic": topic, "trigger": trigger, **payload}, topic, trigger)
    assert found.handled is False
    assert found.note
    if topic == "label.request":
        assert found.source_return_id == "77"


def test_unreadable_bodies_raise_payload_invalid() -> None:
    for body in (b"not json", b"[1,2]", b"\xff\xfe", b'"text"'):
        with pytest.raises(PayloadInvalid):
            interpret(body, topic="return", trigger="return.created", settings=SETTINGS)
    with pytest.raises(PayloadInvalid, match="names no Loop return"):
        read({"label_status": "delivered"}, "label", "label.updated")


def test_topic_falls_back_to_the_payload_when_the_column_is_empty() -> None:
    found = read(fixture_bytes("label_updated.json"), "", "")
    assert found.handled and found.evidence is not None


# --- keep item ------------------------------------------------------------------------


def _keep_item_return() -> dict[str, Any]:
    payload = fixture("return_updated_closed_refund.json")
    payload["return_method"] = {"provider": "loop", "method_type": "keep_item"}
    return payload


def test_keep_item_by_return_method() -> None:
    found = read(_keep_item_return(), "return", "return.updated")
    assert found.snapshot is not None
    assert [ln.physical_return_expected for ln in found.snapshot.lines] == [False]
    off = LoopSettings(keep_item_return_methods=[])
    kept = read(_keep_item_return(), "return", "return.updated", off).snapshot
    assert kept is not None and kept.lines[0].physical_return_expected is True


def test_keep_item_by_line_outcome_only_marks_that_unit() -> None:
    payload = fixture("return_updated_closed_refund.json")
    unit = payload["line_items"][0]
    payload["line_items"] = [unit | {"outcome": "keep_item"},
                             unit | {"line_item_id": "2", "outcome": "default"}]
    snap = read(payload, "return", "return.updated").snapshot
    assert snap is not None
    assert sorted((ln.physical_return_expected, ln.quantity) for ln in snap.lines) == [
        (False, 1), (True, 1)]


def test_keep_item_closed_without_label_is_opt_in() -> None:
    payload = fixture("return_updated_closed_refund.json") | {
        "label_status": "N/A", "tracking_number": "N/A", "carrier": ""}
    default = read(payload, "return", "return.updated").snapshot
    assert default is not None and default.lines[0].physical_return_expected
    rule = LoopSettings(keep_item_when_closed_without_label=True)
    snap = read(payload, "return", "return.updated", rule).snapshot
    assert snap is not None and not snap.lines[0].physical_return_expected
    still_open = read(payload | {"state": "open"}, "return", "return.updated", rule).snapshot
    assert still_open is not None and still_open.lines[0].physical_return_expected


# --- dispositions and grades -------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "expected"), [
    ("back_to_stock", Disposition.RESTOCK), ("resale_hold", Disposition.RESALE_HOLD),
    ("recycle", Disposition.RECYCLE), ("donate", Disposition.DONATE),
    ("missing", Disposition.MISSING), ("something_new", Disposition.UNKNOWN),
])
def test_line_disposition_and_grade(outcome: str, expected: Disposition) -> None:
    payload = fixture("return_created_exchange.json")
    payload["line_items"][0]["disposition"] = {
        "disposition_outcome": outcome, "return_processor": "a@b.c",
        "inspected_at": "2024-03-31 23:59:59"}
    payload["line_items"][0]["condition"] = {"condition_category": "grade_b",
                                             "description": "Grade B"}
    snap = read(payload, "return", "return.updated").snapshot
    assert snap is not None
    (line,) = snap.lines
    assert (line.disposition, line.condition) == (expected, "grade_b")
    assert line.received_at == datetime(2024, 3, 31, 23, 59, 59, tzinfo=UTC)
    # Every unit dispositioned: the goods are in and inspected.
    assert snap.state is (ReturnState.INSPECTED if expected is not Disposition.UNKNOWN
                          else ReturnState.REQUESTED)


# --- one return, two views ----------------------------------------------------------------


def test_webhook_and_list_views_of_one_return_have_the_same_content() -> None:
    webhook = fixture("return_created_exchange.json")
    listed = copy.deepcopy(webhook)
    for key in ("topic", "trigger", "customer_detail", "shop_id"):
        listed.pop(key)
    listed["updated_at"] = "2023-05-02T15:00:00Z"
    a = read(webhook, "return", "return.created").snapshot
    b = read(listed, "return", "backstop").snapshot
    assert a is not None and b is not None
    assert a.customer.email == b.customer.email == "me@myself.com"  # `customer` first
    assert (a.lines, a.exchanges, a.settlement) == (b.lines, b.exchanges, b.settlement)


# --- fuzzing: interpret never raises anything but PayloadInvalid --------------------------

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
TOPIC_BASES = [(fixture(f), topic, trigger) for _, f, topic, trigger in FIXTURE_EVENTS] + [
    ({"topic": "return.processing", "trigger": "return.processing.failed", "return_id": 5,
      "return_state": "open", "message": "x", "source": None},
     "return.processing", "return.processing.failed"),
    ({"topic": "label.request", "trigger": "label.request.issued", "id": "u", "return_id": 3,
      "products": [{"sku": "A", "price": {"amount": "1.00", "currency": "GBP"}}]},
     "label.request", "label.request.issued"),
]


@st.composite
def mutated_event(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    base, topic, trigger = draw(st.sampled_from(TOPIC_BASES))
    payload = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        paths = all_paths(payload)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = get(payload, path[:-1]), path[-1]
        kind = draw(st.sampled_from(["swap", "delete", "placeholder", "garbage", "tricky"]))
        if kind == "delete":
            del parent[last]
        elif kind == "swap":
            parent[last] = swapped(parent[last])
        elif kind == "placeholder":
            parent[last] = draw(placeholders)
        elif kind == "tricky":
            parent[last] = copy.deepcopy(draw(tricky))
        else:
            parent[last] = draw(garbage)
    return payload, topic, trigger


@FUZZ
@given(mutated_event())
def test_mutated_events_interpret_or_raise_payload_invalid(
        event: tuple[dict[str, Any], str, str]) -> None:
    payload, topic, trigger = event
    try:
        body = json.dumps(payload, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return
    try:
        found = interpret(body, topic=topic, trigger=trigger, settings=SETTINGS)
    except PayloadInvalid:
        return
    assert isinstance(found, Interpretation)
    if found.handled:
        assert found.source_return_id
    if found.evidence is not None:
        for receipt in found.evidence.receipts:
            assert receipt.quantity > 0 and receipt.variant_id
        assert found.evidence.store_credit is None or found.evidence.store_credit.is_finite()
    json.dumps(to_jsonable(found))  # storable
