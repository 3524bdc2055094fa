"""Loop Returns API client (reference §1, §4): list, details, ASN and return actions.

* ``X-Authorization: <key>`` (no Bearer), base URL from :class:`LoopSettings`.
* Every call takes a token from a bucket shared per API key (under 300/min), has a timeout,
  backs off on 429 honouring ``Retry-After``, and retries reads on 5xx and network errors.
* An HTTP 200 whose body is an error (``{"errors":{...}}``, ``{"message": ...}``) raises
  :class:`LoopBodyError`: Loop answers some refusals that way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from returnbridge.adapters.http import Attempt, Retry, RetryPolicy, http_client, with_retries
from returnbridge.adapters.ratelimit import TokenBucket, shared_bucket
from returnbridge.sources.loop.settings import LoopSettings

DEFAULT_STATES = ("open", "closed", "cancelled", "expired", "review")
MAX_PAGE_SIZE = 750
MAX_WINDOW = timedelta(days=120)
# After a 429 the key pauses for Loop's Retry-After (at most 5 minutes), else 1, 2, 4 ... 60 s.
_RATE_LIMITED = RetryPolicy(max_attempts=1, base=1.0, backoff_cap=60.0, retry_after_cap=300.0)


class LoopError(Exception):
    """A Loop API call failed."""


class LoopHTTPError(LoopError):
    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.body = body[:2000]


class LoopAuthError(LoopHTTPError):
    """401/403: a wrong key, or a key without the Returns scope (reference §1)."""


class LoopNotFound(LoopHTTPError):
    pass


class LoopValidationError(LoopHTTPError):
    """422: Loop refused the parameters (bad window, state or body)."""


class LoopRateLimited(LoopHTTPError):
    """Still 429 after every allowed retry."""


class LoopUnavailable(LoopError):
    """Network errors or 5xx after every allowed retry."""


class LoopTimeout(LoopUnavailable):
    pass


class LoopBodyError(LoopError):
    """HTTP 2xx whose body says the call failed."""

    def __init__(self, message: str, *, code: str = "", body: str = "") -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.body = body[:2000]


class LoopResponseInvalid(LoopError):
    """The body is not what the endpoint documents (not JSON, wrong shape)."""


@dataclass
class ClientStats:
    requests: int = 0
    rate_limited: int = 0  # 429 answers received (each honoured with a pause)
    throttled: int = 0  # times the local limiter made a call wait
    retries: int = 0


@dataclass(frozen=True)
class ReturnPage:
    """One page of the detailed returns list."""

    state: str
    window: tuple[datetime, datetime]
    cursor: str  # the cursor this page was fetched with ("" for the first page)
    next_cursor: str  # "" when this was the last page of the (state, window) pass
    returns: list[dict[str, Any]] = field(default_factory=list)


def windows(start: datetime, end: datetime,
            max_span: timedelta = MAX_WINDOW) -> list[tuple[datetime, datetime]]:
    """[start, end] cut into consecutive windows no longer than ``max_span``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + max_span)
        out.append((cursor, stop))
        cursor = stop
    return out


def loop_time(moment: datetime, *, round_up: bool = False) -> str:
    """ISO 8601 with milliseconds and Z, as in Loop's examples. Window ends round up so that
    a return updated in the last millisecond is not cut off."""
    moment = moment.astimezone(UTC)
    extra = moment.microsecond % 1000
    if extra:
        moment -= timedelta(microseconds=extra)
        if round_up:
            moment += timedelta(milliseconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def cursor_of(next_page_url: Any) -> str:
    """The ``cursor`` query value inside Loop's ``nextPageUrl`` ("" if none)."""
    if not isinstance(next_page_url, str) or not next_page_url:
        return ""
    values = parse_qs(urlsplit(next_page_url).query).get("cursor", [])
    return values[0] if values else ""


def _error_in(data: Any) -> tuple[str, str] | None:
    """(code, message) when a 2xx JSON body is an error, else None."""
    if not isinstance(data, dict):
        return None
    errors = data.get("errors", data.get("error"))
    if isinstance(errors, dict) and errors:
        code = str(errors.get("code", errors.get("http_code", "")))
        return code, str(errors.get("message", json.dumps(errors)[:300]))
    if isinstance(errors, list | str) and errors:
        return "", str(errors)[:300]
    if set(data) <= {"message", "code", "status"} and "message" in data:
        return str(data.get("code", "")), str(data["message"])
    return None


class LoopClient:
    def __init__(self, settings: LoopSettings, *, transport: httpx.BaseTransport | None = None,
                 limiter: TokenBucket | None = None, max_retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        key = settings.api_key.get_secret_value()
        self.settings = settings
        self.limiter = limiter or shared_bucket(key, settings.rate_limit_per_minute)
        self.max_retries = max_retries
        self.sleep = sleep
        self.stats = ClientStats()
        self._http = http_client(
            timeout=settings.timeout_seconds,
            base_url=settings.base_url.rstrip("/") + "/",
            headers={"X-Authorization": key, "Accept": "application/json",
                     "User-Agent": "returnbridge"},
            transport=transport,
        )

    def __enter__(self) -> LoopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None, retry_reads: bool = True) -> httpx.Response:
        def step(attempt: Attempt) -> httpx.Response | Retry:
            if self.limiter.acquire():
                self.stats.throttled += 1
            self.stats.requests += 1
            try:
                response = self._http.request(method, path.lstrip("/"), params=params,
                                              json=body)
            except httpx.TimeoutException as exc:
                if retry_reads and not attempt.last:
                    return self._backoff()
                raise LoopTimeout(f"Loop did not answer {method} {path} within "
                                  f"{self.settings.timeout_seconds}s: {exc}") from None
            except httpx.TransportError as exc:
                # A failed connect never reached Loop, so even actions may be retried.
                if (retry_reads or isinstance(exc, httpx.ConnectError)) and not attempt.last:
                    return self._backoff()
                raise LoopUnavailable(f"Loop could not be reached for {method} {path}: "
                                      f"{exc}") from None
            if response.status_code == 429:
                self.stats.rate_limited += 1
                if attempt.last:
                    raise LoopRateLimited("Loop kept answering 429 Too Many Requests",
                                          status=429, body=response.text)
                # this and every other caller of the key waits
                self.limiter.pause(_RATE_LIMITED.wait(attempt.number, response))
                return Retry(wait=0)
            if response.status_code >= 500 and retry_reads and not attempt.last:
                return self._backoff()
            self._raise_for_status(method, path, response)
            return response

        return with_retries(step, RetryPolicy(max_attempts=self.max_retries + 1),
                            sleep=self.sleep)

    def _backoff(self) -> Retry:
        self.stats.retries += 1
        return Retry()  # the policy's exponential backoff

    @staticmethod
    def _raise_for_status(method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        what = f"Loop refused {method} {path}"
        if status in (401, 403):
            raise LoopAuthError(what + ": check the API key and that it has the Returns scope",
                                status=status, body=response.text)
        if status == 404:
            raise LoopNotFound(what + ": not found", status=status, body=response.text)
        if status == 422:
            raise LoopValidationError(what + f": {response.text[:300]}", status=status,
                                      body=response.text)
        if status >= 500:
            raise LoopUnavailable(f"{what}: server error {status}")
        raise LoopHTTPError(what, status=status, body=response.text)

    def _json(self, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LoopResponseInvalid(
                f"Loop answered {response.request.url.path} with a body that is not JSON: "
                f"{response.text[:200]!r}") from None
        error = _error_in(data)
        if error is not None:
            raise LoopBodyError(error[1], code=error[0], body=response.text)
        return data

    # --- reads ----------------------------------------------------------------------------

    def list_page(self, *, start: datetime, end: datetime, state: str, cursor: str = "",
                  filter_by: str = "updated_at", page_size: int | None = None) -> ReturnPage:
        """One page of ``GET /warehouse/return/list`` (paginated)."""
        if end - start > MAX_WINDOW:
            raise ValueError("Loop rejects list windows over 120 days; use iter_pages")
        size = min(page_size or self.settings.page_size, MAX_PAGE_SIZE)
        params: dict[str, Any] = {"from": loop_time(start),
                                  "to": loop_time(end, round_up=True),
                                  "filter": filter_by, "state": state, "paginate": "true",
                                  "pageSize": size}
        if cursor:
            params["cursor"] = cursor
        data = self._json(self._send("GET", "warehouse/return/list", params=params))
        if isinstance(data, list):  # unpaginated shape: one page, no cursor
            returns, next_url = data, None
        elif isinstance(data, dict) and isinstance(data.get("returns"), list):
            returns, next_url = data["returns"], data.get("nextPageUrl")
        else:
            raise LoopResponseInvalid("the returns list has no 'returns' array")
        for i, element in enumerate(returns):
            if not isinstance(element, dict):
                raise LoopResponseInvalid(f"returns[{i}] is not an object")
        return ReturnPage(state=state, window=(start, end), cursor=cursor,
                          next_cursor=cursor_of(next_url), returns=returns)

    def iter_state(self, *, start: datetime, end: datetime, state: str, cursor: str = "",
                   page_size: int | None = None) -> Iterator[ReturnPage]:
        """Every page of one (state, window) pass, following cursors; stops when a cursor
        repeats (Loop has been seen to loop)."""
        seen: set[str] = {cursor} if cursor else set()
        while True:
            page = self.list_page(start=start, end=end, state=state, cursor=cursor,
                                  page_size=page_size)
            repeated = page.next_cursor in seen
            if repeated:
                page = ReturnPage(page.state, page.window, page.cursor, "", page.returns)
            yield page
            if not page.next_cursor or not page.returns:
                return
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def iter_pages(self, *, start: datetime, end: datetime,
                   states: tuple[str, ...] | list[str] | None = None,
                   page_size: int | None = None) -> Iterator[ReturnPage]:
        """Every page for [start, end]: windows of at most ``max_window_days``, one pass per
        state in each window, ``filter=updated_at``."""
        span = timedelta(days=self.settings.max_window_days)
        for window in windows(start, end, span):
            for state in states or self.settings.list_states or DEFAULT_STATES:
                yield from self.iter_state(start=window[0], end=window[1], state=state,
                                           page_size=page_size)

    def iter_returns(self, *, start: datetime, end: datetime,
                     states: tuple[str, ...] | list[str] | None = None
                     ) -> Iterator[dict[str, Any]]:
        for page in self.iter_pages(start=start, end=end, states=states):
            yield from page.returns

    def return_details(self, return_id: str | int, *,
                       currency_type: str | None = None) -> dict[str, Any]:
        """``GET /warehouse/return/details?return_id=`` (one return object)."""
        params: dict[str, Any] = {"return_id": str(return_id)}
        if currency_type:
            params["currency_type"] = currency_type
        data = self._json(self._send("GET", "warehouse/return/details", params=params))
        if not isinstance(data, dict):
            raise LoopResponseInvalid("return details are not an object")
        return data

    def asn_report(self, *, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """``GET /warehouse/reporting/asn``: one row per returned line item."""
        data = self._json(self._send("GET", "warehouse/reporting/asn",
                                     params={"from": loop_time(start),
                                             "to": loop_time(end, round_up=True)}))
        rows = data.get("data", data.get("returns")) if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise LoopResponseInvalid("the ASN report is not a list of rows")
        return rows

    # --- actions (never retried once sent: they are not idempotent at Loop) --------------

    def _action(self, path: str, body: Any = None) -> Any:
        response = self._send("POST", path, body=body, retry_reads=False)
        if not response.content.strip():
            return None
        return self._json(response)

    def process(self, return_id: str | int, details: dict[str, str] | None = None) -> None:
        """Queue processing (asynchronous at Loop; failures come back as
        ``return.processing.failed``)."""
        result = self._action(f"warehouse/return/{int(return_id)}/process", details or None)
        if result not in (None, True, "true") and not isinstance(result, dict):
            raise LoopBodyError(f"unexpected answer to process: {result!r}")

    def flag(self, return_id: str | int) -> None:
        self._action(f"warehouse/return/{int(return_id)}/flag")

    def note(self, return_id: str | int, content: str) -> None:
        if not content or len(content) >= 255:
            raise ValueError("a Loop note needs 1 to 254 characters")
        self._action(f"warehouse/return/{int(return_id)}/note", {"content": content})

    def notes(self, return_id: str | int) -> list[str]:
        """The contents of the return's notes (Loop answers 422 when there are none)."""
        try:
            response = self._send("GET", f"warehouse/return/{int(return_id)}/notes")
        except LoopValidationError:
            return []
        data = self._json(response)
        rows = data.get("notes") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise LoopResponseInvalid("the notes answer has no notes list")
        return [str(r.get("content", "")) for r in rows if isinstance(r, dict)]

