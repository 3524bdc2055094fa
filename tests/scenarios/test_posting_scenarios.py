"""What each kind of return becomes in Khaos (ARCHITECTURE 6), end to end through the flow.

Each scenario feeds Loop-shaped events through the real ingest path (store, parse, merge,
policy, validation against a seeded Khaos mirror) and then serves the Khaos channel. The
expected outcome (the served CustomerReturnImport entry, or the hold and its exceptions)
is a golden file in tests/fixtures/scenarios/. Set RB_UPDATE_GOLDEN=1 to rewrite them after
an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.store.events import store_event
from returnbridge.store.models import CustomerMirror, ExceptionRow, StockItem, StockLevel
from returnbridge.store.returns_repo import ReturnsRepository

GOLDEN = Path(__file__).parent.parent / "fixtures" / "scenarios"
UPDATE = os.environ.get("RB_UPDATE_GOLDEN") == "1"

MAPPING = {
    "reasons": [
        {"source": "loop", "reason": "*damaged*", "khaos_reason_id": "7",
         "processing": "write_off"},
        {"disposition": "donate", "khaos_reason_id": "9", "processing": "no_stock"},
        {"disposition": "recycle", "khaos_reason_id": "7", "processing": "write_off"},
        {"source": "loop", "reason": "Too small", "khaos_reason_id": "6",
         "processing": "restock"},
        {"source": "loop", "reason": "Changed my mind", "khaos_reason_id": "6",
         "processing": "restock"},
    ],
}
POLICY = {"keep_item_reason_id": "11"}
CATALOGUE = [
    # stock_id, code, other_ref, barcode, publish_on_web, available at site 1
    ("101", "TEE-BLK-M", "OR-TEE-M", "5012345000011", True, "12"),
    ("102", "TEE-BLK-L", "OR-TEE-L", "5012345000028", True, "3"),
    ("103", "JEAN-IND-32", "", "", True, "5"),
    ("104", "JEAN-IND-34", "", "", True, "0"),
    ("105", "SCARF-GRY", "", "", True, "8"),
    ("106", "BOOT-TAN-9", "", "", False, "4"),
    ("107", "GIFT-WRAP", "", "", True, "100"),
    ("108", "SHIPPING-REFUND", "", "", True, "0"),
    ("109", "HANDLING-FEE", "", "", True, "0"),
]
PRICES = {"TEE-BLK-M": "25.00", "TEE-BLK-L": "25.00", "JEAN-IND-32": "79.00",
          "JEAN-IND-34": "79.00", "SCARF-GRY": "39.50", "BOOT-TAN-9": "120.00",
          "TEE-BLK-XL": "25.00", "TE-BLK-M": "25.00", "GIFT-WRAP": "5.00"}


def unit(sku: str, n: int, *, reason: str = "Too small", disposition: str | None = None,
         net: str | None = None, tax: str | None = None) -> dict[str, Any]:
    gross = Decimal(PRICES[sku])
    vat = (gross / 6).quantize(Decimal("0.01"))
    return {
        "line_item_id": n, "variant_id": 5000 + sum(map(ord, sku)), "sku": sku,
        "title": sku.title(), "price": net or str(gross - vat), "discount": "0.00",
        "tax": tax or str(vat), "return_reason": reason, "parent_return_reason": "Fit",
        "return_comment": "N/A", "outcome": "default", "condition": None,
        "disposition": ({"disposition_outcome": disposition,
                         "inspected_at": "2026-11-21 09:00:00"} if disposition else None),
    }


def loop_return(rid: int, units: list[dict[str, Any]], *, state: str = "open",
                order: str = "#1001", email: str = "", **money: Any) -> dict[str, Any]:
    product = sum((Decimal(u["price"]) for u in units), Decimal(0))
    tax = sum((Decimal(u["tax"]) for u in units), Decimal(0))
    body: dict[str, Any] = {
        "topic": "return", "trigger": "return.updated", "id": rid, "state": state,
        "created_at": "2026-11-20T10:15:00+00:00", "updated_at": "2026-11-21 09:30:00",
        "order_name": order, "provider_order_id": "5500001001", "currency": "GBP",
        "customer": email or f"c{rid}@example.co.uk",
        "customer_detail": {"email": email or f"c{rid}@example.co.uk", "first_name": "Sam",
                            "last_name": "Tester"},
        "address": {"name": "Sam Tester", "address1": "1 High Street", "city": "Grantham",
                    "zip": "NG31 7FZ", "country_code": "GB", "phone": "01476 000000"},
        "return_product_total": str(product), "return_discount_total": "0.00",
        "return_tax_total": str(tax), "return_total": str(product + tax),
        "refund": str(product + tax), "gift_card": "0.00", "exchange_credit_total": "0.00",
        "handling_fee": "0.00", "upsell": "0.00", "line_items": units, "exchanges": [],
        "label_status": "N/A", "carrier": "N/A", "tracking_number": "N/A",
    }
    body.update(money)
    return body


def exchange_item(sku: str, gross: str) -> dict[str, Any]:
    vat = (Decimal(gross) / 6).quantize(Decimal("0.01"))
    return {"exchange_id": "1", "sku": sku, "variant_id": "77", "title": sku,
            "price": str(Decimal(gross) - vat), "discount": "0.00", "tax": str(vat),
            "total": gross, "out_of_stock": False}


@dataclass
class Scenario:
    name: str
    events: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    refs: tuple[str, ...] = ()


def exchange_scenario(name: str, sku: str, gross: str, upsell: str = "0.00") -> Scenario:
    body = loop_return(20, [unit("TEE-BLK-M", 1)], refund="0.00",
                       exchange_credit_total="25.00", upsell=upsell)
    body["exchanges"] = [exchange_item(sku, gross)]
    return Scenario(name, [body])


SCENARIOS = [
    Scenario("full_refund_resellable", [loop_return(1, [unit("TEE-BLK-M", 1)])]),
    Scenario("partial_return_of_multi_unit_line",
             [loop_return(2, [unit("SCARF-GRY", 1), unit("SCARF-GRY", 2)])]),
    Scenario("second_return_same_order",
             [loop_return(3, [unit("TEE-BLK-M", 1)], order="#2002"),
              loop_return(4, [unit("JEAN-IND-32", 2)], order="#2002")],
             refs=("LR-3", "LR-4")),
    Scenario("damaged_write_off",
             [loop_return(5, [unit("JEAN-IND-32", 1, reason="Arrived damaged")])]),
    Scenario("keep_item", [loop_return(6, [dict(unit("TEE-BLK-L", 1), outcome="keep_item")])]),
    Scenario("keep_item_with_goods_coming_back",
             [loop_return(17, [dict(unit("TEE-BLK-L", 1), outcome="keep_item"),
                               unit("JEAN-IND-32", 2)])],
             refs=("LR-17", "LR-17-2")),
    Scenario("donate",
             [loop_return(7, [unit("SCARF-GRY", 1, reason="Changed my mind",
                                   disposition="donate")])]),
    Scenario("store_credit", [loop_return(8, [unit("JEAN-IND-34", 1)], refund="0.00",
                                          gift_card="79.00")]),
    exchange_scenario("exchange_equal", "TEE-BLK-L", "25.00"),
    exchange_scenario("exchange_cheaper", "GIFT-WRAP", "5.00"),
    exchange_scenario("exchange_dearer", "JEAN-IND-32", "79.00", upsell="54.00"),
    exchange_scenario("exchange_not_published_to_web", "BOOT-TAN-9", "120.00", upsell="95.00"),
    exchange_scenario("exchange_out_of_stock", "JEAN-IND-34", "79.00", upsell="54.00"),
    Scenario("unknown_sku_with_near_match", [loop_return(9, [unit("TE-BLK-M", 1)])]),
    Scenario("unmapped_reason",
             [loop_return(10, [unit("TEE-BLK-M", 1, reason="Wrong colour")])]),
    Scenario("unknown_customer", [loop_return(11, [unit("TEE-BLK-M", 1)])],
             settings={"loop": {"fallback_customer_urn": ""}}),
    Scenario("known_customer_from_mirror",
             [loop_return(12, [unit("TEE-BLK-M", 1)], email="Known@Example.co.uk")],
             settings={"loop": {"fallback_customer_urn": ""}}),
    Scenario("shipping_refund_and_handling_fee",
             [loop_return(13, [unit("JEAN-IND-32", 1)], state="closed", refund="77.95",
                          refund_shipping_total="3.95", handling_fee="5.00")],
             settings={"policy": {"shipping_refund_sku": "SHIPPING-REFUND",
                                  "handling_fee_sku": "HANDLING-FEE",
                                  "non_stock_reason_id": "12"}}),
    Scenario("vat_penny_difference",
             # three units at 3.33 + 0.67 each, header 10.00 + 2.01: one penny to place
             [loop_return(14, [unit("TEE-BLK-M", i, net="3.33", tax="0.67")
                               for i in (1, 2, 3)],
                          return_product_total="9.99", return_tax_total="2.02",
                          return_total="12.01", refund="12.01")]),
    Scenario("review_state_waits", [loop_return(15, [unit("TEE-BLK-M", 1)], state="review")]),
    Scenario("cancelled_is_never_sent",
             [loop_return(16, [unit("TEE-BLK-M", 1)], state="cancelled", refund="0.00")]),
]


def _seed(rt: Runtime) -> None:
    now = datetime.now(UTC)
    with rt.sessions() as s, s.begin():
        for stock_id, code, other, barcode, web, available in CATALOGUE:
            s.add(StockItem(stock_id=stock_id, stock_code=code, other_ref=other,
                            barcodes=[barcode] if barcode else [], publish_on_web=web,
                            updated_at=now))
            s.add(StockLevel(stock_id=stock_id, site_id="1", stock_code=code,
                             available=Decimal(available), on_order=Decimal(0),
                             updated_at=now))
        s.add(CustomerMirror(email="known@example.co.uk", urn="CUST-0042", name="Known"))


def _outcome(rt: Runtime, refs: tuple[str, ...]) -> dict[str, Any]:
    page = serve_page(rt, fmt="JSON")
    served = json.loads(page.document)
    by_ref = {r.get("AssociatedRef"): r for r in served.get("Returns", served.get(
        "CustomerReturns", []))} if isinstance(served, dict) else {}
    out: dict[str, Any] = {}
    with rt.sessions() as s:
        for ref in refs:
            row = ReturnsRepository(s).by_ref(ref)
            assert row is not None, ref
            exceptions = s.query(ExceptionRow).filter(ExceptionRow.return_id == row.id).order_by(
                ExceptionRow.type, ExceptionRow.dedupe_key).all()
            out[ref] = {
                "khaos_status": row.khaos_status,
                "wait_reason": row.wait_reason,
                "exceptions": [{"type": e.type, "owner": e.owner, "status": e.status,
                                "message": e.message,
                                "candidates": e.details.get("candidates", "")}
                               for e in exceptions],
                "document": by_ref.get(ref),
            }
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, runtime_factory: Callable[..., Runtime]) -> None:
    sections: dict[str, Any] = {"mapping": MAPPING, "policy": POLICY}
    for key, value in scenario.settings.items():
        sections[key] = {**sections.get(key, {}), **value}
    rt = runtime_factory(**sections)
    _seed(rt)
    for body in scenario.events:
        raw = json.dumps(body).encode()
        stored = store_event(rt.sessions, source="loop", body=raw, headers={},
                             topic=body["topic"], trigger=body["trigger"],
                             source_ref=str(body["id"]))
        outcome = apply_event(rt, stored.event_id)
        assert outcome.status == "processed", outcome
    refs = scenario.refs or (f"LR-{scenario.events[0]['id']}",)
    got = _outcome(rt, refs)
    path = GOLDEN / f"{scenario.name}.json"
    text = json.dumps(got, indent=2, sort_keys=True, default=str) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with RB_UPDATE_GOLDEN=1 and review it"
    assert json.loads(text) == json.loads(path.read_text())
