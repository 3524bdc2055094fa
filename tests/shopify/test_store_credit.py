"""Store credit and gift cards through the Shopify client against the sandbox over HTTP:
each is made once per idempotency key, whatever the retries."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from decimal import Decimal

import pytest

from returnbridge.config import ShopifySettings
from returnbridge.payments.provider import PaymentsProvider
from returnbridge.payments.shopify.client import (
    DOCUMENTS,
    GiftCardResult,
    Order,
    ShopifyClient,
    ShopifyError,
    ShopifyOutcomeUnknown,
    ShopifyUserError,
    StoreCreditResult,
    gift_card_tag,
    marker_key,
)
from returnbridge.sandbox.shopify.api import ShopifySandbox


@pytest.fixture
def shop() -> Iterator[ShopifySandbox]:
    sandbox = ShopifySandbox().start()
    sandbox.add_order("1001", "89.98")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def client(shop: ShopifySandbox) -> Iterator[ShopifyClient]:
    settings = ShopifySettings(shop_domain="example.myshopify.com",
                               admin_token=shop.access_token, base_url=shop.admin_url())
    with ShopifyClient(settings, sleep=lambda _s: None) as c:
        yield c
    # everything the client sent was valid and is one of the documents checked in
    # test_documents.py (no document is built elsewhere)
    assert [c.errors for c in shop.calls if c.operation == "invalid"] == []
    assert {c.query for c in shop.calls} <= set(DOCUMENTS.values())


def test_the_client_keeps_the_agreed_interface() -> None:
    for name in ("find_order", "create_refund", "credit_store_credit", "create_gift_card"):
        agreed = inspect.signature(getattr(PaymentsProvider, name)).parameters
        ours = inspect.signature(getattr(ShopifyClient, name)).parameters
        assert list(ours)[: len(agreed)] == list(agreed), name
        assert all(p.default is not inspect.Parameter.empty
                   for p in list(ours.values())[len(agreed):]), name
    assert {f.name for f in dataclasses.fields(StoreCreditResult)} >= {"id", "amount"}
    assert {f.name for f in dataclasses.fields(GiftCardResult)} >= {
        "id", "amount", "last_characters"}
    assert {f.name for f in dataclasses.fields(Order)} >= {"customer_id", "currency"}


def test_store_credit_is_credited_once_per_key(shop: ShopifySandbox,
                                               client: ShopifyClient) -> None:
    order = client.find_order("1001")
    first = client.credit_store_credit(order.customer_id, Decimal("25.50"), "GBP",
                                       "ZZ-RTN-1 credit note CN000123", "sc:ZZ-RTN-1:CN000123")
    again = client.credit_store_credit(order.customer_id, Decimal("25.50"), "GBP",
                                       "ZZ-RTN-1 credit note CN000123", "sc:ZZ-RTN-1:CN000123")
    assert again == first
    assert first.amount == Decimal("25.50")
    assert first.id.startswith("gid://shopify/StoreCreditAccountCreditTransaction/")
    assert [c.id for c in shop.store_credits] == [first.id]
    assert shop.store_credit_balance(order.customer_id, "GBP") == Decimal("25.50")
    record = shop.customers[order.customer_id].metafields[
        ("returnbridge", marker_key("sc:ZZ-RTN-1:CN000123"))]
    assert '"state": "credited"' in record["value"] and first.id in record["value"]

    other = client.credit_store_credit(order.customer_id, Decimal("4.50"), "GBP",
                                       "ZZ-RTN-2", "sc:ZZ-RTN-2:CN000124")
    assert other.id != first.id
    assert shop.store_credit_balance(order.customer_id, "GBP") == Decimal("30.00")


def test_store_credit_key_reused_for_another_amount_is_refused(shop: ShopifySandbox,
                                                               client: ShopifyClient) -> None:
    customer = shop.order("1001").customer_id
    client.credit_store_credit(customer, Decimal("10.00"), "GBP", "n", "sc:1")
    with pytest.raises(ShopifyError, match="already used"):
        client.credit_store_credit(customer, Decimal("12.00"), "GBP", "n", "sc:1")
    assert len(shop.store_credits) == 1


def test_store_credit_with_a_lost_answer_is_never_repeated_blindly(
        shop: ShopifySandbox, client: ShopifyClient) -> None:
    customer = shop.order("1001").customer_id
    shop.answer_lost.add("storeCreditAccountCredit")
    with pytest.raises(ShopifyOutcomeUnknown):
        client.credit_store_credit(customer, Decimal("10.00"), "GBP", "n", "sc:lost")
    assert len(shop.store_credits) == 1  # Shopify did credit it
    with pytest.raises(ShopifyOutcomeUnknown, match="check customer"):
        client.credit_store_credit(customer, Decimal("10.00"), "GBP", "n", "sc:lost")
    assert len(shop.store_credits) == 1  # and it was not credited a second time
    assert [c.operation for c in shop.calls].count("store_credit") == 1


def test_store_credit_needs_a_customer_and_a_positive_amount(shop: ShopifySandbox,
                                                             client: ShopifyClient) -> None:
    customer = shop.order("1001").customer_id
    with pytest.raises(ShopifyError, match="needs a customer"):
        client.credit_store_credit("", Decimal("10.00"), "GBP", "n", "sc:x")
    with pytest.raises(ShopifyError, match="positive"):
        client.credit_store_credit(customer, Decimal("0"), "GBP", "n", "sc:x")
    with pytest.raises(ShopifyError, match="no customer"):
        client.credit_store_credit("gid://shopify/Customer/999999", Decimal("1"), "GBP", "n",
                                   "sc:x")
    assert shop.store_credits == []


def test_store_credit_user_errors_are_typed_and_the_key_can_be_retried(
        shop: ShopifySandbox, client: ShopifyClient) -> None:
    customer = shop.order("1001").customer_id
    shop.store_credit_limit = Decimal("100.00")
    with pytest.raises(ShopifyUserError, match="credit limit") as caught:
        client.credit_store_credit(customer, Decimal("150.00"), "GBP", "n", "sc:big")
    assert caught.value.errors[0].field == ("creditInput", "creditAmount", "amount")
    assert shop.store_credits == []
    shop.store_credit_limit = None  # the merchant raised the limit: the same key now credits
    again = client.credit_store_credit(customer, Decimal("150.00"), "GBP", "n", "sc:big")
    assert again.amount == Decimal("150.00") and len(shop.store_credits) == 1


def test_gift_card_is_issued_once_per_key(shop: ShopifySandbox, client: ShopifyClient) -> None:
    order = client.find_order("1001")
    first = client.create_gift_card(order.customer_id, Decimal("30.00"), "GBP",
                                    "ZZ-RTN-1 credit note CN000123", "gc:ZZ-RTN-1:CN000123")
    again = client.create_gift_card(order.customer_id, Decimal("30.00"), "GBP",
                                    "ZZ-RTN-1 credit note CN000123", "gc:ZZ-RTN-1:CN000123")
    assert again == first
    assert (first.amount, len(first.last_characters)) == (Decimal("30.00"), 4)
    (card,) = shop.gift_cards
    assert card.id == first.id and card.customer_id == order.customer_id
    assert card.code.endswith(first.last_characters)
    assert gift_card_tag("gc:ZZ-RTN-1:CN000123") in card.note and "CN000123" in card.note


def test_gift_card_without_customer_and_after_a_lost_answer(shop: ShopifySandbox,
                                                            client: ShopifyClient) -> None:
    shop.answer_lost.add("giftCardCreate")
    with pytest.raises(ShopifyOutcomeUnknown):
        client.create_gift_card("", Decimal("15.00"), "GBP", "goodwill", "gc:lost")
    found = client.create_gift_card("", Decimal("15.00"), "GBP", "goodwill", "gc:lost")
    (card,) = shop.gift_cards  # the retry found the card instead of issuing another
    assert found.id == card.id and card.customer_id == ""


def test_gift_card_refusals(shop: ShopifySandbox, client: ShopifyClient) -> None:
    with pytest.raises(ShopifyError, match="shop currency GBP"):
        client.create_gift_card("", Decimal("15.00"), "EUR", "n", "gc:eur")
    with pytest.raises(ShopifyUserError) as caught:
        client.create_gift_card("gid://shopify/Customer/999999", Decimal("15.00"), "GBP",
                                "n", "gc:nobody")
    assert caught.value.errors[0].field == ("input", "customerId")
    customer = shop.order("1001").customer_id
    client.create_gift_card(customer, Decimal("15.00"), "GBP", "n", "gc:1")
    with pytest.raises(ShopifyError, match="already issued"):
        client.create_gift_card(customer, Decimal("16.00"), "GBP", "n", "gc:1")
    assert len(shop.gift_cards) == 1
