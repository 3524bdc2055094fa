"""The ZigZag API client against the ZigZag sandbox over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from returnbridge.sandbox.zigzag.api import ZigZagApiSandbox
from returnbridge.sources.zigzag.client import (
    NonReturnableProduct,
    StockLine,
    ZigZagAuthError,
    ZigZagClient,
    ZigZagRejected,
    ZigZagUnavailable,
)
from returnbridge.sources.zigzag.settings import ZigZagSettings

SKUS = {f"SKU-{n:03d}" for n in range(100)}


@pytest.fixture
def zz() -> Iterator[ZigZagApiSandbox]:
    sandbox = ZigZagApiSandbox(known_skus=set(SKUS), dc_codes={"GB0064", "GB0099"}).start()
    yield sandbox
    sandbox.stop()


def _settings(zz: ZigZagApiSandbox, **overrides: object) -> ZigZagSettings:
    return ZigZagSettings(**{"base_url": zz.base_url, "username": zz.username,
                             "password": zz.password, "retailer_code": zz.retailer_code,
                             **overrides})


def test_stock_is_pushed_in_batches_of_40_with_one_cached_token(zz: ZigZagApiSandbox) -> None:
    lines = [StockLine(f"SKU-{n:03d}", "GB0064", n) for n in range(85)]
    with ZigZagClient(_settings(zz)) as client:
        results = client.update_exchange_stocks(lines)
    assert [r.count for r in results] == [40, 40, 5]
    assert [c.items for c in zz.puts("ExchangeStocks/Update")] == [40, 40, 5]
    assert zz.stock[("SKU-084", "GB0064")] == 84 and len(zz.stock) == 85
    assert zz.tokens_issued == 1


def test_same_content_gives_the_same_requests(zz: ZigZagApiSandbox) -> None:
    lines = [StockLine(f"SKU-{n:03d}", "GB0064", n) for n in range(45)]
    with ZigZagClient(_settings(zz)) as client:
        first = client.update_exchange_stocks(lines)
        again = client.update_exchange_stocks(list(reversed(lines)) + lines[:3])
    assert [r.batch_key for r in first] == [r.batch_key for r in again]
    keys = [c.idempotency_key for c in zz.puts()]
    assert keys == [r.batch_key for r in first] * 2
    assert len(zz.stock) == 45  # repeating changed nothing


def test_expired_token_gives_401_then_a_fresh_token_transparently(
        zz: ZigZagApiSandbox) -> None:
    with ZigZagClient(_settings(zz)) as client:
        client.update_exchange_stocks([StockLine("SKU-001", "GB0064", 1)])
        zz.expire_tokens()
        client.update_exchange_stocks([StockLine("SKU-001", "GB0064", 2)])
    assert [c.status_code for c in zz.puts()] == [200, 401, 200]
    assert zz.tokens_issued == 2 and zz.stock[("SKU-001", "GB0064")] == 2


def test_token_is_renewed_before_it_expires(zz: ZigZagApiSandbox) -> None:
    now = [time.time()]
    with ZigZagClient(_settings(zz), clock=lambda: now[0]) as client:
        token = client.token()
        now[0] += 1800 - 300  # five minutes left: still fine
        assert client.token() == token
        now[0] += 200  # inside the 120 s renewal margin
        assert client.token() != token
    assert zz.tokens_issued == 2


def test_busy_answers_are_retried_honouring_retry_after(zz: ZigZagApiSandbox) -> None:
    waits: list[float] = []
    zz.fail_next(503, times=1, retry_after="7")
    zz.fail_next(500, times=1)
    with ZigZagClient(_settings(zz), sleep=waits.append) as client:
        client.update_exchange_stocks([StockLine("SKU-002", "GB0064", 5)])
    assert [c.status_code for c in zz.puts()] == [503, 500, 200]
    assert waits[0] == 7.0 and len(waits) == 2
    zz.fail_next(502, times=10)
    with (ZigZagClient(_settings(zz, max_attempts=3), sleep=lambda _s: None) as client,
          pytest.raises(ZigZagUnavailable, match="3 times")):
        client.update_exchange_stocks([StockLine("SKU-002", "GB0064", 6)])


def test_validation_errors_are_typed_and_bad_credentials_too(zz: ZigZagApiSandbox) -> None:
    with ZigZagClient(_settings(zz)) as client, pytest.raises(ZigZagRejected) as caught:
        client.update_exchange_stocks([StockLine("NOT-KNOWN", "GB0064", 1)])
    assert caught.value.status_code == 400 and "does not exist" in str(caught.value)
    with (ZigZagClient(_settings(zz, password="wrong")) as client,
          pytest.raises(ZigZagAuthError, match="refused the configured credentials")):
        client.token()


def test_non_returnable_products_at_most_40_per_call(zz: ZigZagApiSandbox) -> None:
    products = [NonReturnableProduct(f"SKU-{n:03d}", "GB", "ThisItemCanNotBeReturned")
                for n in range(45)]
    products.append(NonReturnableProduct("SKU-050", "GB", "NoSuchMessageKey"))
    with ZigZagClient(_settings(zz)) as client:
        results = client.update_non_returnable(products)
    assert [r.count for r in results] == [40, 6]
    assert results[1].body["skipped"] == [{"sku": "SKU-050", "reason": "failed validation"}]
    assert zz.non_returnable[("SKU-000", "GB")] == {
        "messageKey": "ThisItemCanNotBeReturned", "isReturnable": False}
