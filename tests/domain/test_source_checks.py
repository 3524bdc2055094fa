"""What real payloads send that Khaos cannot take as it is (issue #10): the policy holds it
with a named exception, or resolves it, never serves it as it is."""

from dataclasses import replace
from decimal import Decimal

from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Customer, ExchangeLine
from returnbridge.domain.policy import Facts, ItemFacts, LevelFacts, decide

from .test_policy import ADDRESS, CONFIG, NO_FACTS, NOW, POLICY, case, line

GBP = replace(CONFIG, currency="GBP", vat_rates=(Decimal("0"), Decimal("0.05"),
                                                  Decimal("0.20")))


def types(d: object) -> list[str]:
    return sorted(p.type for p in d.problems)  # type: ignore[attr-defined]


def test_a_unit_without_a_sku_is_held_naming_variant_barcode_and_title() -> None:
    blank = replace(line(sku=""), variant_id="4711", barcode="5012345678900", title="Tee")
    d = decide(case(blank), GBP, POLICY, NO_FACTS)
    assert not d.release and d.blocked
    (p,) = [p for p in d.problems if p.type == "sku_mismatch"]
    assert "4711" in p.message and "5012345678900" in p.message and "'Tee'" in p.message
    assert p.details["variant_id"] == "4711" and p.dedupe_key == "LR-1:sku:blank:4711"
    assert "[[mapping.skus]]" in p.next_action and 'variant_id = "4711"' in p.next_action


def test_a_unit_without_a_sku_is_released_under_the_stock_code_it_resolves_to() -> None:
    blank = replace(line(sku=""), variant_id="4711", barcode="5012345678900")
    for key in ("variant:4711", "barcode:5012345678900"):
        d = decide(case(blank), GBP, POLICY, Facts(now=NOW, resolved_skus={key: "TEE-M"}))
        assert d.release, d.problems
        assert [doc.line.sku for doc in d.document] == ["TEE-M"]


def test_an_exchange_item_without_a_sku_is_held_then_resolved() -> None:
    swap = ExchangeLine(sku="", quantity=1, unit_net=Decimal("10"), unit_tax=Decimal("2"),
                        unit_gross=Decimal("12"), variant_id="99", title="Tee - L")
    held = decide(case(line(), exchanges=(swap,)), GBP, POLICY, NO_FACTS)
    assert types(held) == ["exchange_unknown_sku"] and not held.release
    assert "99" in held.problems[0].message
    ok = decide(case(line(), exchanges=(swap,)), GBP, POLICY,
                Facts(now=NOW, resolved_skus={"variant:99": "TEE-L"}))
    assert ok.release and [e.sku for e in ok.exchanges] == ["TEE-L"]


def test_a_customer_without_a_name_is_never_released_unless_a_fallback_name_is_set() -> None:
    nameless = replace(case(line()), customer=Customer(email="a@b.c", address=ADDRESS))
    d = decide(nameless, GBP, POLICY, NO_FACTS)
    assert types(d) == ["unknown_customer"] and not d.release
    assert d.problems[0].dedupe_key == "LR-1:contact-name"
    assert "fallback_contact_surname" in d.problems[0].next_action
    assert decide(nameless, replace(GBP, fallback_contact=True), POLICY, NO_FACTS).release
    # A cancelled return never goes to Khaos: nothing to hold it for.
    cancelled = replace(nameless, state=ReturnState.CANCELLED, currency="USD")
    assert decide(cancelled, GBP, POLICY, NO_FACTS).problems == ()


def test_unknown_customer_next_action_names_only_what_is_not_configured() -> None:
    no_address = replace(case(line()), customer=Customer(email="a@b.c", last_name="Sam"))
    d = decide(no_address, GBP, POLICY, NO_FACTS)  # the fallback URN is set
    (p,) = d.problems
    assert "fallback_address_line1" in p.next_action
    assert "fallback_customer_urn" not in p.next_action and "LOOPWEB" in p.next_action
    no_urn = decide(case(line()), GBP, replace(POLICY, fallback_customer_urn=""), NO_FACTS)
    (p,) = no_urn.problems
    assert "[loop].fallback_customer_urn" in p.next_action


def test_a_return_in_another_currency_is_held_for_finance() -> None:
    usd = replace(case(line()), currency="USD")
    d = decide(usd, GBP, POLICY, NO_FACTS)
    assert types(d) == ["currency_mismatch"] and d.blocked
    assert "USD" in d.problems[0].message and "GBP" in d.problems[0].message
    assert decide(usd, replace(GBP, currency="USD"), POLICY, NO_FACTS).release


def test_tax_implying_a_rate_outside_the_vat_rates_is_tax_drift_per_line() -> None:
    fifty = line(sku="A", net="10.00", tax="5.00")
    twenty = line(sku="B", net="10.00", tax="2.00")
    five = line(sku="C", net="10.00", tax="0.50")
    zero = line(sku="D", net="10.00", tax="0.00")
    penny = line(sku="E", net="10.04", tax="2.00")  # 19.92%: penny rounding
    d = decide(case(fifty, twenty, five, zero, penny), GBP, POLICY, NO_FACTS)
    drift = [p for p in d.problems if p.type == "tax_drift"]
    assert [p.dedupe_key for p in drift] == ["LR-1:vat_rate:A"]
    assert "50%" in drift[0].message
    assert d.release  # a warning: finance looks, the return moves on
    again = replace(line(sku="A", net="20.00", tax="10.00"), reason="Too big")
    two = decide(case(fifty, again), GBP, POLICY, NO_FACTS)
    assert [p.dedupe_key for p in two.problems if p.type == "tax_drift"] == [
        "LR-1:vat_rate:A", "LR-1:vat_rate:A:2"]
    assert not [p for p in decide(case(fifty), replace(GBP, vat_rates=()), POLICY,
                                  NO_FACTS).problems if p.type == "tax_drift"]


def test_loop_out_of_stock_holds_the_exchange_with_or_without_a_catalogue() -> None:
    swap = ExchangeLine(sku="TEE-L", quantity=1, unit_net=Decimal("10"), unit_tax=Decimal("2"),
                        unit_gross=Decimal("12"), out_of_stock=True)
    fresh_install = decide(case(line(), exchanges=(swap,)), GBP, POLICY, NO_FACTS)
    assert types(fresh_install) == ["exchange_out_of_stock"] and not fresh_install.release
    stocked = Facts(now=NOW, catalogue_loaded=True,
                    items={"SKU1": ItemFacts("SKU1"), "TEE-L": ItemFacts("TEE-L")},
                    levels={"TEE-L": LevelFacts(Decimal("50"), NOW)})
    with_catalogue = decide(case(line(), exchanges=(swap,)), GBP, POLICY, stocked)
    assert types(with_catalogue) == ["exchange_out_of_stock"] and not with_catalogue.release
    in_stock = replace(swap, out_of_stock=False)
    assert decide(case(line(), exchanges=(in_stock,)), GBP, POLICY, stocked).release
