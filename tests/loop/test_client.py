"""LoopClient against the Loop sandbox over real HTTP: pagination, cursors, windows, error
bodies, 429 handling, rate limiting, timeouts, auth and actions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from returnbridge.adapters.ratelimit import TokenBucket
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.client import (
    LoopAuthError,
    LoopBodyError,
    LoopClient,
    LoopNotFound,
    LoopRateLimited,
    LoopTimeout,
    cursor_of,
    windows,
)
from returnbridge.sources.loop.settings import LoopSettings

KEY = "client-test-key"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recording(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def sandbox() -> Iterator[LoopSandboxServer]:
    world = LoopWorld(clock=lambda: NOW)
    with LoopSandboxServer(world, api_key=KEY) as server:
        yield server


def make_client(server: LoopSandboxServer, fake: FakeTime | None = None,
                **overrides: Any) -> LoopClient:
    fake = fake or FakeTime()
    transport = overrides.pop("transport", None)
    settings = LoopSettings(api_key=KEY, base_url=server.base_url,
                            **{"page_size": 10, "timeout_seconds": 5.0, **overrides})
    limiter = TokenBucket(1000, 1.0, burst=1000, clock=fake.clock, sleep=fake.sleep)
    return LoopClient(settings, limiter=limiter, sleep=fake.sleep, transport=transport)


def populate(world: LoopWorld, count: int, *, start: datetime = NOW - timedelta(hours=6),
             step: timedelta = timedelta(minutes=1)) -> list[int]:
    return [world.create(Scenario("refund", ("TEE-BLK-M",)), at=start + i * step,
                         notify=False) for i in range(count)]


def test_windows_never_exceed_120_days_and_cover_the_range() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=365)
    cut = windows(start, end)
    assert cut[0][0] == start and cut[-1][1] == end
    assert all(b - a <= timedelta(days=120) for a, b in cut)
    assert all(cut[i][1] == cut[i + 1][0] for i in range(len(cut) - 1))
    assert len(cut) == 4


def test_cursor_is_read_from_next_page_url() -> None:
    url = ("https://api.loopreturns.com/api/v1/warehouse/return/list?to=2022-07-28%2000%3A00"
           "%3A00&filter=created_at&pageSize=5&cursor=eyJjcmVhdGVkX2F0Ijo")
    assert cursor_of(url) == "eyJjcmVhdGVkX2F0Ijo"
    assert cursor_of(None) == "" and cursor_of("https://x/y?page=2") == ""


def test_pagination_follows_cursors_and_reads_every_state(sandbox: LoopSandboxServer) -> None:
    ids = populate(sandbox.world, 25)
    sandbox.world.cancel(ids[0])  # cancelled and review are left out by Loop's default
    sandbox.world.flag(ids[1])
    sandbox.world.close(ids[2])
    with make_client(sandbox) as client:
        pages = list(client.iter_pages(start=NOW - timedelta(days=1), end=NOW))
    seen = [str(r["id"]) for p in pages for r in p.returns]
    assert sorted(seen) == sorted(str(i) for i in ids)  # each once, all states
    open_pages = [p for p in pages if p.state == "open"]
    assert [len(p.returns) for p in open_pages] == [10, 10, 2]
    assert open_pages[-1].next_cursor == ""
    assert {p.state for p in pages} == {"open", "closed", "cancelled", "expired", "review"}


def test_a_repeated_cursor_stops_the_pass(sandbox: LoopSandboxServer) -> None:
    populate(sandbox.world, 35)
    sandbox.faults.repeat_cursor = True
    with make_client(sandbox) as client:
        pages = list(client.iter_state(start=NOW - timedelta(days=1), end=NOW, state="open"))
    # Page 2 hands back the cursor it was fetched with: stop instead of looping for ever.
    assert len(pages) == 2
    assert pages[-1].next_cursor == ""


def test_long_ranges_are_split_into_windows_of_120_days(sandbox: LoopSandboxServer) -> None:
    start = NOW - timedelta(days=300)
    ids = populate(sandbox.world, 30, start=start + timedelta(hours=1), step=timedelta(days=10))
    recording = Recording()
    with make_client(sandbox, transport=recording) as client:
        found = list(client.iter_returns(start=start, end=NOW, states=["open"]))
    assert sorted(str(r["id"]) for r in found) == sorted(str(i) for i in ids)
    spans = []
    for request in recording.requests:
        q = parse_qs(urlsplit(str(request.url)).query)
        assert q["filter"] == ["updated_at"] and q["paginate"] == ["true"]
        assert request.headers["X-Authorization"] == KEY  # bare key, no Bearer
        spans.append(datetime.fromisoformat(q["to"][0].replace("Z", "+00:00"))
                     - datetime.fromisoformat(q["from"][0].replace("Z", "+00:00")))
    assert max(spans) <= timedelta(days=120)
    assert len({s for s in spans}) >= 2  # 120 + 120 + 60 days


def test_http_200_with_an_error_body_is_an_error(sandbox: LoopSandboxServer) -> None:
    ids = populate(sandbox.world, 2)
    sandbox.world.close(ids[0])
    sandbox.world.cancel(ids[1])
    with make_client(sandbox) as client:
        sandbox.faults.error_body = 1
        with pytest.raises(LoopBodyError) as listed:
            client.list_page(start=NOW - timedelta(days=1), end=NOW, state="open")
        assert listed.value.code == "UNEXPECTED_ERROR"
        with pytest.raises(LoopBodyError) as closed:
            client.process(ids[0])
        assert closed.value.code == "UNPROCESSABLE_RETURN"
        with pytest.raises(LoopBodyError, match="cancelled"):
            client.process(ids[1])


def test_429_is_honoured_with_retry_after_then_succeeds(sandbox: LoopSandboxServer) -> None:
    populate(sandbox.world, 3)
    sandbox.faults.force_429 = 2
    sandbox.faults.retry_after = "7"
    fake = FakeTime()
    with make_client(sandbox, fake) as client:
        page = client.list_page(start=NOW - timedelta(days=1), end=NOW, state="open")
        assert len(page.returns) == 3
        assert client.stats.rate_limited == 2
        assert client.limiter.waited_seconds >= 14  # 7 s after each 429
    assert sandbox.stats.rate_limited == 2


def test_429_without_retry_after_backs_off_then_gives_up(sandbox: LoopSandboxServer) -> None:
    sandbox.faults.force_429 = 10
    sandbox.faults.retry_after = None  # Loop documents no Retry-After
    fake = FakeTime()
    client = make_client(sandbox, fake)
    client.max_retries = 3
    with client, pytest.raises(LoopRateLimited):
        client.list_page(start=NOW - timedelta(days=1), end=NOW, state="open")
    assert client.limiter.waited_seconds >= 1 + 2 + 4  # growing pauses


def test_every_call_has_a_timeout(sandbox: LoopSandboxServer) -> None:
    sandbox.faults.delay_seconds = 1.0
    fake = FakeTime()
    client = make_client(sandbox, fake, timeout_seconds=0.2)
    client.max_retries = 1
    with client, pytest.raises(LoopTimeout):
        client.return_details(1)
    assert fake.sleeps  # one back-off before giving up
    note_client = make_client(sandbox, FakeTime(), timeout_seconds=0.2)
    with note_client, pytest.raises(LoopTimeout):  # actions are never re-sent on timeout
        note_client.note(1, "hello")
    assert sandbox.stats.requests == 3


def test_the_local_limiter_keeps_the_client_under_the_sandbox_limit() -> None:
    world = LoopWorld(clock=lambda: NOW)
    populate(world, 1)
    with LoopSandboxServer(world, api_key=KEY, rate_limit=10, rate_period=0.5) as server:
        settings = LoopSettings(api_key=KEY, base_url=server.base_url)
        limiter = TokenBucket(9, 0.5, burst=1)  # under 10 per 0.5 s, like 280/min vs 300
        with LoopClient(settings, limiter=limiter) as client:
            for _ in range(30):
                client.list_page(start=NOW - timedelta(days=1), end=NOW, state="open")
        assert server.stats.rate_limited == 0
        assert server.stats.max_in_window <= 10
        assert limiter.waits > 0


def test_wrong_key_is_an_auth_error(sandbox: LoopSandboxServer) -> None:
    settings = LoopSettings(api_key="wrong", base_url=sandbox.base_url)
    with LoopClient(settings, limiter=TokenBucket(100, 1.0)) as client, \
            pytest.raises(LoopAuthError, match="Returns scope"):
        client.list_page(start=NOW - timedelta(days=1), end=NOW, state="open")


def test_details_asn_and_actions(sandbox: LoopSandboxServer) -> None:
    (rid,) = populate(sandbox.world, 1)
    with make_client(sandbox) as client:
        details = client.return_details(rid)
        assert str(details["id"]) == str(rid)
        assert details["created_at"].count(":") == 2 and "T" not in details["created_at"]
        with pytest.raises(LoopNotFound):
            client.return_details(999999)
        client.note(rid, "Parcel arrived damaged")
        client.flag(rid)
        assert sandbox.world.get(rid).state == "review"
        assert sandbox.world.get(rid).notes[0]["content"] == "Parcel arrived damaged"
        client.process(rid)
        assert sandbox.world.get(rid).state == "closed"
        rows = client.asn_report(start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
        assert [r["sku"] for r in rows] == ["TEE-BLK-M"]
        with pytest.raises(ValueError, match="254"):
            client.note(rid, "x" * 255)
