"""The Shopify client against the Shopify sandbox over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from returnbridge.config import ShopifySettings
from returnbridge.payments.shopify.client import (
    DOCUMENTS,
    REFUND_CREATE,
    OrderNotFound,
    ShopifyAuthError,
    ShopifyClient,
    ShopifyGraphQLError,
    ShopifyUnavailable,
    ShopifyUserError,
    UserError,
)
from returnbridge.sandbox.service import free_port
from returnbridge.sandbox.shopify.api import ShopifySandbox


@pytest.fixture
def shop() -> Iterator[ShopifySandbox]:
    sandbox = ShopifySandbox().start()
    sandbox.add_order("1001", "89.98")
    yield sandbox
    sandbox.stop()


def _client(shop: ShopifySandbox, **overrides: object) -> ShopifyClient:
    settings = ShopifySettings(**{"shop_domain": "example.myshopify.com",
                                  "admin_token": shop.access_token,
                                  "base_url": shop.admin_url(), **overrides})
    return ShopifyClient(settings, sleep=lambda _s: None)


def test_find_order_with_transactions_as_decimal(shop: ShopifySandbox) -> None:
    with _client(shop) as client:
        order = client.find_order("#1001")
        assert client.find_order("1001").id == order.id
        with pytest.raises(OrderNotFound):
            client.find_order("#9999")
    assert (order.name, order.currency, order.total) == ("#1001", "GBP", Decimal("89.98"))
    assert order.customer_id == shop.order("1001").customer_id
    assert order.customer_id.startswith("gid://shopify/Customer/")
    (sale,) = order.transactions
    assert (sale.kind, sale.status, sale.amount) == ("SALE", "SUCCESS", Decimal("89.98"))
    assert order.refunds == ()


def test_refund_carries_the_credit_note_and_the_same_key_returns_the_same_refund(
        shop: ShopifySandbox) -> None:
    with _client(shop) as client:
        order = client.find_order("#1001")
        first = client.create_refund(order.id, Decimal("44.99"), "GBP",
                                     "returnbridge ZZ-RTN-1 credit note CN000123",
                                     "refund:ZZ-RTN-1:CN000123")
        again = client.create_refund(order.id, Decimal("44.99"), "GBP",
                                     "returnbridge ZZ-RTN-1 credit note CN000123",
                                     "refund:ZZ-RTN-1:CN000123")
        refunds = client.existing_refunds(order.id)
    assert again.id == first.id and first.amount == Decimal("44.99")
    assert "CN000123" in first.note and first.gateway == "shopify_payments"
    assert [r.id for r in refunds] == [first.id]  # one refund, not two
    calls = shop.refund_calls("refund:ZZ-RTN-1:CN000123")
    assert [c.replayed for c in calls] == [False, True]
    assert len(shop.order("1001").refunds) == 1


def test_over_refund_is_a_typed_user_error_and_pays_nothing(shop: ShopifySandbox) -> None:
    with _client(shop) as client:
        order = client.find_order("#1001")
        client.create_refund(order.id, Decimal("80.00"), "GBP", "first", "k1")
        with pytest.raises(ShopifyUserError, match="greater than net payment") as caught:
            client.create_refund(order.id, Decimal("20.00"), "GBP", "second", "k2")
    assert caught.value.errors[0].field == ("transactions", "0", "amount")
    assert len(shop.order("1001").refunds) == 1
    assert not [c for c in shop.calls if c.operation == "invalid"]
    assert {c.query for c in shop.calls} <= set(DOCUMENTS.values())


def test_manual_refund_is_visible_for_the_duplicate_guard(shop: ShopifySandbox) -> None:
    shop.add_manual_refund("1001", "10.00", note="Goodwill: late delivery")
    with _client(shop) as client:
        order = client.find_order("1001")
        (manual,) = client.existing_refunds(order.id)
    assert (manual.amount, manual.note) == (Decimal("10.00"), "Goodwill: late delivery")
    assert order.refunded == Decimal("10.00")
    assert shop.refund_calls() == []  # made in the admin, not through the API


def test_throttled_calls_wait_for_the_bucket_and_succeed() -> None:
    # slow refill (0.5 s per call) so that the bucket cannot refill between quick calls
    shop = ShopifySandbox(bucket_size=20, restore_rate=20.0, query_cost=10).start()
    try:
        shop.add_order("2002", "10.00")
        settings = ShopifySettings(shop_domain="x.myshopify.com",
                                   admin_token=shop.access_token, base_url=shop.admin_url())
        with ShopifyClient(settings) as client:  # real sleeps: the bucket refills in time
            names = [client.find_order("2002").name for _ in range(5)]
        assert names == ["#2002"] * 5
        assert any(c.throttled for c in shop.calls)
    finally:
        shop.stop()


def test_refund_without_idempotency_key_is_refused_from_2026_04(shop: ShopifySandbox) -> None:
    order = shop.order("1001")
    mutation = ("mutation R($input: RefundInput!) { refundCreate(input: $input) "
                "{ refund { id } userErrors { field message } } }")
    response = httpx.post(f"{shop.admin_url()}/graphql.json",
                          headers={"X-Shopify-Access-Token": shop.access_token},
                          json={"query": mutation, "variables": {"input": {
                              "orderId": order.id, "transactions": []}}}, timeout=10)
    assert "@idempotent" in response.json()["errors"][0]["message"]
    assert shop.order("1001").refunds == []


def test_wrong_token_and_unreachable_shop_are_typed_errors(shop: ShopifySandbox) -> None:
    with _client(shop, admin_token="wrong") as client, pytest.raises(ShopifyAuthError):
        client.find_order("1001")
    dead = ShopifySettings(shop_domain="x", admin_token="t", timeout_seconds=1, max_attempts=2,
                           base_url=f"http://127.0.0.1:{free_port()}/admin/api/2026-04")
    with ShopifyClient(dead, sleep=lambda _s: None) as client, pytest.raises(ShopifyUnavailable):
        client.find_order("1001")


def test_order_without_customer_has_empty_customer_id(shop: ShopifySandbox) -> None:
    shop.add_order("3003", "12.00", customer_id="")
    with _client(shop) as client:
        assert client.find_order("3003").customer_id == ""


def test_user_errors_carry_field_and_message_only() -> None:
    assert [f for f in UserError.__dataclass_fields__] == ["field", "message"]


def test_sandbox_refuses_the_old_refund_document_as_shopify_does(shop: ShopifySandbox) -> None:
    order = shop.order("1001")
    old = REFUND_CREATE.replace("userErrors { field message }",
                                "userErrors { field message code }")
    response = httpx.post(f"{shop.admin_url()}/graphql.json",
                          headers={"X-Shopify-Access-Token": shop.access_token},
                          json={"query": old, "variables": {
                              "idempotencyKey": "refund:old",
                              "input": {"orderId": order.id, "transactions": [{
                                  "amount": "10.00", "gateway": "shopify_payments",
                                  "kind": "REFUND", "orderId": order.id,
                                  "parentId": order.transactions[0].id}]}}}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    (error,) = body["errors"]
    assert error["message"] == "Field 'code' doesn't exist on type 'UserError'"
    assert error["extensions"]["code"] == "undefinedField"
    assert error["locations"] == [{"line": 4, "column": 32}]
    assert shop.order("1001").refunds == []  # nothing was paid


def test_client_raises_a_typed_error_once_for_a_refused_document(shop: ShopifySandbox) -> None:
    old = REFUND_CREATE.replace("userErrors { field message }",
                                "userErrors { field message code }")
    order = shop.order("1001")
    with _client(shop) as client, pytest.raises(ShopifyGraphQLError) as caught:
        client.execute(old, {"idempotencyKey": "k", "input": {"orderId": order.id}})
    assert caught.value.errors[0].code == "undefinedField"
    assert "doesn't exist on type 'UserError'" in str(caught.value)
    assert [c.operation for c in shop.calls] == ["invalid"]  # not retried
    assert shop.order("1001").refunds == []


def test_bad_variables_are_refused_before_anything_runs(shop: ShopifySandbox) -> None:
    order = shop.order("1001")
    with _client(shop) as client, pytest.raises(ShopifyGraphQLError) as caught:
        client.execute(REFUND_CREATE, {"idempotencyKey": "k", "input": {
            "orderId": order.id, "transactions": [{"kind": "NOT_A_KIND"}]}})
    assert caught.value.errors[0].code == "INVALID_VARIABLE"
    assert shop.order("1001").refunds == []
