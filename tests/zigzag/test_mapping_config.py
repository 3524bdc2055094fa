"""The [zigzag.webhook.*] mapping as users write it: TOML sections and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from returnbridge.composition import load_settings
from returnbridge.config import ConfigError
from returnbridge.sources.zigzag.events import interpret, trigger_of

from ._support import fixture

TOML = """
[zigzag]
retailer_code = "GL123"

[zigzag.webhook.fields]
event_id = "id"
event_type = "type"
occurred_at = "timestamp"
return_ref = "return.ref"
order_ref = "return.order.number"
items = "lines[]"
item_sku = "product.code"
item_quantity_received = "qtyReceived"
item_condition = "grade"
item_disposition = "outcome"

[zigzag.webhook.event_types]
RETURN_PROCESSED = "inspected"

[zigzag.webhook.dispositions]
RESTOCK = "restock"
BIN = "write_off"
"""


def test_toml_sections_map_a_different_contract(tmp_path: Path) -> None:
    path = tmp_path / "returnbridge.toml"
    path.write_text(TOML)
    settings = load_settings(path).zigzag
    assert settings.webhook.fields.customer_email == "customer.email"  # unspecified: default
    result = interpret(fixture("other_contract_processed.json"), settings=settings)
    assert result.handled and result.source_return_id == "Z-555"
    assert trigger_of("ReturnGraded", settings) == "inspected"  # defaults still apply
    assert trigger_of("return_processed", settings) == "inspected"  # case is ignored


def test_environment_overrides_one_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("RB_ZIGZAG__WEBHOOK__FIELDS__ITEM_SKU", "productCode")
    settings = load_settings(None).zigzag
    assert settings.webhook.fields.item_sku == "productCode"
    assert settings.webhook.fields.item_quantity == "quantity"


@pytest.mark.parametrize(("section", "line", "fragment"), [
    ("[zigzag.webhook.fields]", 'items = "items[]]"', "not a dot path"),
    ("[zigzag.webhook.event_types]", 'ReturnGraded = "graded"', "must be one of"),
    ("[zigzag.webhook.dispositions]", 'Resellable = "sell"', "must be one of"),
    ("[zigzag.webhook.fields]", 'item_colour = "colour"', "not a known setting"),
])
def test_mistakes_are_explained(tmp_path: Path, section: str, line: str, fragment: str
                                ) -> None:
    path = tmp_path / "returnbridge.toml"
    path.write_text(f"{section}\n{line}\n")
    with pytest.raises(ConfigError, match=fragment):
        load_settings(path)
