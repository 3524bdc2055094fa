"""Every process together, retries included, keeps within each documented call rate
(issue #16: the 10,000-return chaos run saw Shopify 1,408 calls in a minute against 800
and Khaos SOAP 67 against 60).

Two runtimes on one database stand for two processes; a fake wall clock shared by both
moves only when something sleeps, so a client that does not pace itself sends everything
"at once" and the window count shows it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.refunds.workflow import provider
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.store.call_rates import SharedCallRate

SOAP_URL = "http://khaos.test/KhaosSandbox.exe/soap/IKosWeb"
ORDER = {"id": "gid://shopify/Order/1", "name": "#1001", "currencyCode": "GBP",
         "customer": None, "totalPriceSet": {"shopMoney": {"amount": "10.00",
                                                           "currencyCode": "GBP"}},
         "transactions": [], "refunds": []}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sent: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def most_in_a_minute(times: list[float], period: float = 60.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + period) - i for i, t in enumerate(times)),
               default=0)


def _processes(runtime_factory: Callable[..., Runtime], fake: FakeTime,
               **sections: Any) -> list[Runtime]:
    made = [runtime_factory(**sections) for _ in range(2)]
    for rt in made:
        rt.clock, rt.sleep = fake.clock, fake.sleep
    return made


def test_shopify_calls_of_every_process_stay_within_the_limit_under_429s(
        runtime_factory: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other answer is a 429 asking for no wait (a retry storm): the retries go
    through the shared pacing too, so two processes together never exceed
    ``[shopify] calls_per_minute``."""
    fake = FakeTime()
    answers = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal answers
        fake.sent.append(fake.now)
        answers += 1
        if answers % 2:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return httpx.Response(200, json={"data": {"orders": {"nodes": [ORDER]}}})

    monkeypatch.setattr("returnbridge.payments.shopify.client.http_client",
                        lambda **_kw: httpx.Client(transport=httpx.MockTransport(answer)))
    limit = 60
    processes = _processes(runtime_factory, fake, shopify={
        "shop_domain": "example.myshopify.com", "admin_token": "shpat_test",
        "calls_per_minute": limit})
    clients = [provider(rt) for rt in processes]
    for n in range(150):
        client = clients[n % 2]
        assert isinstance(client, ShopifyClient)
        assert client.find_order("#1001").name == "#1001"
    assert len(fake.sent) == 300  # each order read once refused, once answered
    assert most_in_a_minute(fake.sent) <= limit
    assert fake.now - 1_800_000_000.0 >= 4 * 60  # 300 calls at under 60 a minute


def test_khaos_soap_attempts_of_every_process_stay_within_the_queue_limit(
        runtime_factory: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    """The DBOS queue limiter counts workflows; a step's retries (every other SOAP call
    fails here) and recovered workflows call again on top. Each attempt is paced."""
    fake = FakeTime()
    answers = 0
    ok = ('<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV='
          '"http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
          '<NS1:ProcessReturnResponse xmlns:NS1="urn:KosWebIntf-IKosWeb"><return>OK</return>'
          '</NS1:ProcessReturnResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>')

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal answers
        fake.sent.append(fake.now)
        answers += 1
        if answers % 2:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, text=ok)

    monkeypatch.setattr("returnbridge.erp.khaos.soap.http_client",
                        lambda **_kw: httpx.Client(transport=httpx.MockTransport(answer)))
    limit = 30
    processes = _processes(runtime_factory, fake, khaos={
        "soap_url": SOAP_URL, "soap_calls_per_minute": limit})
    for n in range(100):
        with processes[n % 2].khaos_soap_client() as client:
            try:
                client.process_return(f"RTN{n}", "")
            except Exception:  # the step would retry: call again
                client.process_return(f"RTN{n}", "")
    assert len(fake.sent) == 200
    assert most_in_a_minute(fake.sent) <= limit


@pytest.mark.parametrize(("limit", "burst"), [(60, None), (800, None), (600, 40), (5, 0),
                                              (2, None), (1, None)])
def test_the_shared_call_rate_never_admits_more_than_its_limit(
        runtime_factory: Callable[..., Runtime], limit: int, burst: int | None) -> None:
    fake = FakeTime()
    rates = [SharedCallRate(rt.engine, "api", limit, 60.0, burst=burst, clock=fake.clock,
                            sleep=fake.sleep) for rt in _processes(runtime_factory, fake)]
    for n in range(3 * limit + 20):
        rates[n % 2].acquire()
        fake.sent.append(fake.now)
        if n % 7 == 3:
            fake.sleep(0.37)  # callers come and go
    assert most_in_a_minute(fake.sent) <= max(limit - 1, 1)


def test_a_quiet_spell_allows_a_burst_then_paces(
        runtime_factory: Callable[..., Runtime]) -> None:
    fake = FakeTime()
    rt = runtime_factory()
    rate = SharedCallRate(rt.engine, "api", 60, 60.0, burst=4, clock=fake.clock,
                          sleep=fake.sleep)
    waited = [rate.acquire() for _ in range(7)]
    assert waited[:5] == pytest.approx([0.0] * 5, abs=1e-3)
    assert waited[5] == pytest.approx(60 / 55, abs=1e-3)
    fake.sleep(600)
    assert rate.acquire() == 0.0
