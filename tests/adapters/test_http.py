"""The one retry loop and its policy: Retry-After, caps, backoff, what is never retried."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from returnbridge.adapters.http import (
    Attempt,
    Retry,
    RetryPolicy,
    http_client,
    retry_after_seconds,
    with_retries,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC).timestamp()


def at_now() -> float:
    return NOW


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, headers=headers)


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), (" 12 ", 12.0), ("1.5", 1.5), ("0", 0.0), ("-3", 0.0)])
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, cap=60.0, now=at_now) == seconds


def test_retry_after_as_an_http_date_is_the_time_left_until_then() -> None:
    in_20s = format_datetime(datetime.fromtimestamp(NOW + 20, UTC), usegmt=True)
    assert retry_after_seconds(in_20s, cap=60.0, now=at_now) == pytest.approx(20.0)
    passed = format_datetime(datetime.fromtimestamp(NOW - 20, UTC), usegmt=True)
    assert retry_after_seconds(passed, cap=60.0, now=at_now) == 0.0


def test_retry_after_is_capped_in_both_forms() -> None:
    assert retry_after_seconds("3600", cap=60.0, now=at_now) == 60.0
    assert retry_after_seconds("inf", cap=300.0, now=at_now) == 300.0
    in_an_hour = format_datetime(datetime.fromtimestamp(NOW + 3600, UTC), usegmt=True)
    assert retry_after_seconds(in_an_hour, cap=60.0, now=at_now) == 60.0


@pytest.mark.parametrize("header", [None, "", "  ", "soon", "nan", "Mon, 99 Foo 2026"])
def test_an_unusable_retry_after_says_nothing(header: str | None) -> None:
    assert retry_after_seconds(header, cap=60.0, now=at_now) is None


def test_the_policy_waits_what_retry_after_asks_else_its_backoff() -> None:
    policy = RetryPolicy(max_attempts=5, retry_after_cap=60.0, now=at_now)
    assert policy.wait(3, answer(503, "7")) == 7.0
    assert policy.wait(3, answer(503, "600")) == 60.0
    assert policy.wait(3, answer(503)) == 2.0  # 0.5 * 2 ** 2
    assert policy.wait(3, answer(503, "later")) == 2.0
    assert policy.wait(3) == 2.0


# --- backoff -----------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=10)
    assert [policy.backoff(n) for n in range(1, 9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    slow = RetryPolicy(max_attempts=10, base=1.0, backoff_cap=60.0)
    assert [slow.backoff(n) for n in (1, 2, 3, 7, 8)] == [1.0, 2.0, 4.0, 60.0, 60.0]


def test_jitter_takes_off_at_most_its_fraction_of_the_backoff() -> None:
    draws = iter([0.0, 0.5, 1.0])
    policy = RetryPolicy(max_attempts=5, jitter=0.5, random=lambda: next(draws))
    assert [policy.backoff(4) for _ in range(3)] == [4.0, 3.0, 2.0]


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(max_attempts=1, jitter=1.5)


# --- the loop ----------------------------------------------------------------------------


class Server:
    """Answers the statuses given, in order, and records each call."""

    def __init__(self, *statuses: int | tuple[int, str]) -> None:
        self.queue = list(statuses)
        self.calls = 0
        self.client = http_client(timeout=5.0, transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        status = self.queue.pop(0) if self.queue else 200
        if isinstance(status, tuple):
            return answer(status[0], status[1])
        return answer(status)


class GaveUp(Exception):
    pass


def typical_step(server: Server,
                 policy: RetryPolicy) -> Callable[[Attempt], httpx.Response | Retry]:
    """What a client's step does: retry what the policy calls retryable, else hand back."""

    def step(attempt: Attempt) -> httpx.Response | Retry:
        response = server.client.get("https://api.example/x")
        if policy.retryable(response.status_code):
            if attempt.last:
                raise GaveUp(f"HTTP {response.status_code} {attempt.number} times")
            return Retry(policy.wait(attempt.number, response))
        return response

    return step


def test_retryable_answers_are_retried_with_their_waits_until_one_succeeds() -> None:
    server = Server((429, "7"), 503, 502)
    policy = RetryPolicy(max_attempts=5)
    waits: list[float] = []
    response = with_retries(typical_step(server, policy), policy, sleep=waits.append)
    assert response.status_code == 200
    assert server.calls == 4
    assert waits == [7.0, 1.0, 2.0]  # Retry-After, then the backoff for attempts 2 and 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_a_refusal_is_never_retried(status: int) -> None:
    server = Server(status)
    policy = RetryPolicy(max_attempts=5)
    waits: list[float] = []
    response = with_retries(typical_step(server, policy), policy, sleep=waits.append)
    assert response.status_code == status
    assert server.calls == 1 and waits == []


def test_the_attempts_run_out_at_max_attempts() -> None:
    server = Server(*[503] * 10)
    policy = RetryPolicy(max_attempts=3)
    waits: list[float] = []
    with pytest.raises(GaveUp, match="HTTP 503 3 times"):
        with_retries(typical_step(server, policy), policy, sleep=waits.append)
    assert server.calls == 3 and waits == [0.5, 1.0]


def test_an_uncounted_retry_does_not_use_up_an_attempt_and_zero_waits_do_not_sleep() -> None:
    seen: list[Attempt] = []

    def step(attempt: Attempt) -> str | Retry:
        seen.append(attempt)
        if len(seen) == 1:
            return Retry(wait=0, counted=False)  # e.g. a token renewed
        return "done"

    waits: list[float] = []
    assert with_retries(step, RetryPolicy(max_attempts=1), sleep=waits.append) == "done"
    assert seen == [Attempt(1, True), Attempt(1, True)]
    assert waits == []


def test_a_retry_asked_for_after_the_last_attempt_is_a_bug_in_the_step() -> None:
    with pytest.raises(RuntimeError, match="after the last attempt"):
        with_retries(lambda _a: Retry(), RetryPolicy(max_attempts=2), sleep=lambda _s: None)


# --- client construction ------------------------------------------------------------------


def test_every_client_has_a_timeout() -> None:
    with http_client(timeout=2.5) as client:
        assert client.timeout == httpx.Timeout(2.5)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive timeout"):
            http_client(timeout=bad)
