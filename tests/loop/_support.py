"""Shared helpers for the Loop adapter tests (no pytest fixtures: plain functions)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

# In-repository copies of the shared fixtures (byte for byte: signature tests depend on
# their exact bytes); provenance in tests/fixtures/README.md.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loop"
GOLDEN = Path(__file__).parent.parent / "fixtures" / "loop_golden"

PREFIX = "LR-"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def return_payloads() -> list[tuple[str, dict[str, Any]]]:
    """(golden name, payload) for every return-shaped object in the fixtures."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("return_created_exchange", fixture("return_created_exchange.json")),
        ("return_updated_closed_refund", fixture("return_updated_closed_refund.json")),
    ]
    for i, element in enumerate(fixture("return_list_page.json")["returns"]):
        cases.append((f"return_list_page_{i}", element))
    return cases


def closed_refund() -> dict[str, Any]:
    """A fresh, mutable copy of the real closed refund-only payload."""
    return copy.deepcopy(fixture("return_updated_closed_refund.json"))


def exchange() -> dict[str, Any]:
    """A fresh, mutable copy of the exchange payload (ints mixed with strings)."""
    return copy.deepcopy(fixture("return_created_exchange.json"))


def unit(**overrides: Any) -> dict[str, Any]:
    """One Loop line_items element (one returned unit) with sensible defaults."""
    element: dict[str, Any] = {
        "line_item_id": "1",
        "provider_line_item_id": "5000",
        "product_id": "4000",
        "variant_id": "3000",
        "sku": "SKU-A",
        "barcode": "",
        "title": "Thing",
        "price": "40.00",
        "discount": "0.00",
        "tax": "2.00",
        "refund": "42.00",
        "returned_at": "2023-05-01T12:00:00.000Z",
        "exchange_variant": "",
        "return_reason": "Too small",
        "parent_return_reason": "Didn't fit",
        "return_comment": "N/A",
        "outcome": "default",
    }
    element.update(overrides)
    return element
