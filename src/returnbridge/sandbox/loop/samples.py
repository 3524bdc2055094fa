"""Loop-shaped return payloads with Loop's awkward types (string/int ids, string money,
"N/A" placeholders, per-unit line items, timestamps without a zone)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CATALOGUE: dict[str, tuple[str, Decimal]] = {
    "TEE-BLK-M": ("Organic Tee - Black / M", Decimal("25.00")),
    "TEE-BLK-L": ("Organic Tee - Black / L", Decimal("25.00")),
    "JEAN-IND-32": ("Slim Jean - Indigo / 32", Decimal("79.00")),
    "JEAN-IND-34": ("Slim Jean - Indigo / 34", Decimal("79.00")),
    "SCARF-GRY": ("Lambswool Scarf - Grey", Decimal("39.50")),
    "BOOT-TAN-9": ("Chelsea Boot - Tan / 9", Decimal("120.00")),
}
REASONS = [("Too small", "Didn't fit"), ("Too big", "Didn't fit"),
           ("Changed my mind", "Didn't like it"), ("Arrived damaged", "Quality")]
VAT = Decimal("0.2")


def _money(d: Decimal) -> str:
    return str(d.quantize(Decimal("0.01")))


@dataclass(frozen=True)
class Scenario:
    outcome: str  # refund | exchange | credit | cancelled | keep_item
    skus: tuple[str, ...]  # one entry per unit
    state: str = "open"


def return_payload(return_id: int, scenario: Scenario, *, trigger: str = "return.created",
                   order: int = 1000) -> dict[str, Any]:
    """A ``return`` topic webhook body. Prices include VAT (UK gross prices)."""
    units = []
    product = tax_total = Decimal(0)
    for i, sku in enumerate(scenario.skus):
        title, gross = CATALOGUE[sku]
        tax = (gross - gross / (1 + VAT)).quantize(Decimal("0.01"))
        net = gross - tax
        product += net
        tax_total += tax
        reason, parent = REASONS[(return_id + i) % len(REASONS)]
        units.append({
            "line_item_id": return_id * 10 + i if i % 2 else str(return_id * 10 + i),
            "provider_line_item_id": str(900000 + return_id),
            "product_id": str(700000 + hash(sku) % 1000),
            "variant_id": 500000 + sum(map(ord, sku)),
            "sku": sku, "barcode": "", "title": title,
            "price": _money(net), "discount": "0.00", "tax": _money(tax),
            "refund": (_money(net + tax) if scenario.outcome in ("refund", "keep_item")
                       else "0.00"),
            "returned_at": "2026-11-20 10:15:00",
            "exchange_variant": "", "return_reason": reason, "parent_return_reason": parent,
            "return_comment": "N/A", "outcome": "default", "condition": None,
            "disposition": None,
        })
    total = product + tax_total
    exchanges: list[dict[str, Any]] = []
    if scenario.outcome == "exchange":
        swap = {"TEE-BLK-M": "TEE-BLK-L", "JEAN-IND-32": "JEAN-IND-34"}.get(scenario.skus[0],
                                                                           "TEE-BLK-L")
        title, gross = CATALOGUE[swap]
        tax = (gross - gross / (1 + VAT)).quantize(Decimal("0.01"))
        exchanges.append({
            "exchange_id": str(return_id * 7), "exchange_order_id": None,
            "exchange_order_name": None, "product_id": "1", "variant_id": "2", "sku": swap,
            "type": None, "title": title, "price": _money(gross - tax), "discount": "0.00",
            "tax": _money(tax), "total": _money(gross), "out_of_stock": False,
            "out_of_stock_resolution": None,
        })
    refund = total if scenario.outcome in ("refund", "cancelled", "keep_item") else Decimal(0)
    extra: dict[str, Any] = {}
    if scenario.outcome == "keep_item":
        # Loop documents no keep-item field; the sandbox marks it in return_method, which
        # the default [loop].keep_item_return_methods rule recognises.
        extra["return_method"] = {"provider": "loop", "method_type": "keep_item",
                                  "state": "N/A"}
    return {
        "topic": "return", "trigger": trigger, "shop_id": 4242,
        "id": str(return_id) if return_id % 2 else return_id,
        "state": scenario.state, "created_at": "2026-11-20T10:15:00+00:00",
        "edited_at": None, "total": _money(refund),
        "order_id": str(80000 + order), "order_name": f"#{order}",
        "provider_order_id": str(5500000000 + order), "order_number": str(order),
        "customer": f"customer{return_id}@example.co.uk",
        "customer_detail": {"email": f"customer{return_id}@example.co.uk",
                            "first_name": "Sam", "middle_name": None,
                            "last_name": f"Tester{return_id}"},
        "address": {"name": f"Sam Tester{return_id}", "company": "", "address1":
                    f"{return_id} High Street", "address2": "", "city": "Grantham",
                    "state": "Lincolnshire", "zip": "NG31 7FZ", "country": "United Kingdom",
                    "country_code": "GB", "phone": "01476 000000"},
        "currency": "GBP",
        "return_product_total": _money(product), "return_discount_total": "0.00",
        "return_tax_total": _money(tax_total), "return_total": _money(total),
        "return_credit_total": (_money(total) if scenario.outcome not in ("refund", "keep_item")
                                else "0.00"),
        "exchange_product_total": "0.00", "exchange_discount_total": "0.00",
        "exchange_tax_total": "0.00",
        "exchange_total": exchanges[0]["total"] if exchanges else "0.00",
        "exchange_credit_total": exchanges[0]["total"] if exchanges else "0.00",
        "gift_card": _money(total) if scenario.outcome == "credit" else "0.00",
        "handling_fee": "0.00", "refund": _money(refund), "upsell": "0.00",
        "refunds": [], "line_items": units, "exchanges": exchanges,
        "carrier": "N/A", "tracking_number": "N/A", "label_status": "N/A",
        "label_updated_at": "N/A",
    } | extra


DEMO_SCENARIOS = [
    Scenario("refund", ("TEE-BLK-M",)),
    Scenario("exchange", ("JEAN-IND-32",)),
    Scenario("refund", ("SCARF-GRY", "SCARF-GRY", "TEE-BLK-L")),
    Scenario("credit", ("BOOT-TAN-9",)),
    Scenario("refund", ("JEAN-IND-34",), state="closed"),
    Scenario("cancelled", ("TEE-BLK-M",), state="cancelled"),
    Scenario("keep_item", ("SCARF-GRY",)),
]


def demo_payloads(count: int, first_id: int = 31001, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        scenario = DEMO_SCENARIOS[i % len(DEMO_SCENARIOS)]
        out.append(return_payload(first_id + i, scenario, order=2000 + rng.randint(0, 999)))
    return out

# Every outcome the sandbox can produce, keep item included (for demos that want them all).
ALL_OUTCOME_SCENARIOS = [*DEMO_SCENARIOS, Scenario("keep_item", ("SCARF-GRY",))]
