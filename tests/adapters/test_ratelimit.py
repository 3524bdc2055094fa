"""The token bucket every rate-limited client shares per API key."""

from __future__ import annotations

import pytest

from returnbridge.adapters.ratelimit import TokenBucket, shared_bucket


class FakeTime:
    """A clock that only moves when something sleeps on it. The rates below make every
    wait a power of two, so that the fake clock's sums are exact."""

    def __init__(self) -> None:
        self.now = 512.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def bucket(rate: int, period: float, burst: int, fake: FakeTime) -> TokenBucket:
    return TokenBucket(rate, period, burst=burst, clock=fake.clock, sleep=fake.sleep)


def test_a_burst_goes_out_at_once_then_callers_wait_for_each_new_token() -> None:
    fake = FakeTime()
    limiter = bucket(8, 1.0, 3, fake)  # a token every 0.125 s
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert fake.sleeps == []
    assert limiter.acquire() == 0.125
    assert limiter.acquire() == 0.125
    assert limiter.waits == 2 and limiter.waited_seconds == 0.25


def test_no_period_sends_more_than_burst_plus_rate() -> None:
    fake = FakeTime()
    limiter = bucket(256, 64.0, 16, fake)
    start = fake.now
    sent = 0
    while True:
        limiter.acquire()
        if fake.now - start > 64.0:
            break
        sent += 1
    assert sent <= 16 + 256
    assert sent >= 256  # and it does not hold back more than it must


def test_idle_time_refills_up_to_the_burst_only() -> None:
    fake = FakeTime()
    limiter = bucket(8, 1.0, 2, fake)
    limiter.acquire()
    limiter.acquire()
    fake.now += 4096  # over an hour idle saves two tokens, not 32,768
    assert [limiter.acquire() for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire() > 0


def test_a_pause_holds_every_caller_of_the_bucket() -> None:
    fake = FakeTime()
    limiter = bucket(1024, 1.0, 100, fake)
    limiter.pause(7.0)
    assert limiter.acquire() == 7.0
    limiter.pause(2.0)
    limiter.pause(1.0)  # a shorter pause never shortens a longer one
    assert limiter.acquire() == 2.0


def test_the_default_burst_is_a_fifteenth_of_the_rate() -> None:
    assert TokenBucket(280).capacity == 18
    assert TokenBucket(5).capacity == 1


def test_a_bucket_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="at least one request"):
        TokenBucket(10, 0)


def test_one_bucket_per_key_and_rate_in_the_process() -> None:
    first = shared_bucket("adapters-test-key-a", 280)
    assert shared_bucket("adapters-test-key-a", 280) is first
    assert shared_bucket("adapters-test-key-b", 280) is not first
    assert shared_bucket("adapters-test-key-a", 100) is not first
