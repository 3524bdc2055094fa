"""Hypothesis: any variation of the fixtures, or any bytes, parse or raise PayloadInvalid."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.sources.zigzag.events import ZigZagInterpretation, envelope, interpret

from ._support import FIXTURES, zigzag_settings

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
S = zigzag_settings()
BASES = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))
         if p.name != "other_contract_processed.json"]

TRICKY: list[Any] = [
    "N/A", "", " ", None, "null", "0", "-1", "1e3", "12.345", "NaN", "Infinity", "1e999999999",
    1e300, float("inf"), float("nan"), 10**30, -5, True, False, 1.5, "2.0",
    "2026-03-09T14:02:00Z", "2026-02-30T10:00:00", "garbage", "ReturnGraded", "RefundIssued",
    "ReturnCreated", "Resellable", "Teleported", {"date": "2020-01-01"}, [], {}, [None],
    {"nested": {"deeper": [1]}}, "x" * 300,
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(_paths(child, (*prefix, index)))
    return out


def _mutate(payload: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    doc = copy.deepcopy(payload)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "retype" and isinstance(parent[last], int | float | str) and not isinstance(
            parent[last], bool):
        parent[last] = str(parent[last]) if not isinstance(parent[last], str) else (
            int(parent[last]) if parent[last].isdigit() else parent[last])
    else:
        parent[last] = value
    return doc


@st.composite
def variations(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["delete", "replace", "retype"]))
        doc = _mutate(doc, path, action, draw(st.sampled_from(TRICKY)))
    return json.dumps(doc, allow_nan=True).encode()


def _check(body: bytes) -> None:
    envelope(body, S)  # never raises
    try:
        result = interpret(body, settings=S)
    except PayloadInvalid:
        return
    assert isinstance(result, ZigZagInterpretation)
    if result.snapshot is not None:
        assert all(line.quantity >= 1 and line.sku for line in result.snapshot.lines)
        assert result.snapshot.associated_ref.startswith("ZZ-")
    if result.fallback_snapshot is not None:
        assert all(line.quantity >= 1 and line.sku for line in result.fallback_snapshot.lines)
    if result.evidence is not None:
        assert all(r.quantity > 0 for r in result.evidence.receipts)
    if result.external_refund is not None:
        assert result.external_refund.amount > 0


@FUZZ
@given(variations())
def test_mutated_fixtures_parse_or_say_payload_invalid(body: bytes) -> None:
    _check(body)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_say_payload_invalid(body: bytes) -> None:
    _check(body)


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.sampled_from(
                        ["eventType", "returnReference", "items", "sku", "quantity",
                         "refund", "amount", "customer", "email", "eventId"]), kids, max_size=4),
                    max_leaves=15))
def test_arbitrary_json_parse_or_say_payload_invalid(doc: Any) -> None:
    _check(json.dumps(doc).encode())
