"""ZigZag API client: JWT from the token endpoint, stock and non-returnable pushes.

Facts (reference §1-2): ``POST`` the token endpoint with ``{"username", "password"}``;
send ``Authorization: Bearer <jwt>``; a token lives 30 minutes and a 401 means "get a
new one". ``PUT ExchangeStocks/Update`` overwrites available quantities;
``PUT NonReturnableProducts`` takes at most 40 products per call.

The token response's field names are not public, so the token is read from the usual
names (``token``, ``access_token``, ``accessToken``, ``jwt``) or a bare string, and its
expiry from ``expires_in``/``expiresIn``, else the JWT's ``exp`` claim, else
``[zigzag].token_lifetime_seconds``.

Batching is idempotent: the lines are deduplicated and sorted, so the same content gives
the same requests, each carrying an ``Idempotency-Key`` derived from its body (harmless
if ZigZag ignores it; the PUTs overwrite values, so repeating one changes nothing).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import httpx
import structlog

from returnbridge.adapters.http import Attempt, Retry, RetryPolicy, http_client, with_retries
from returnbridge.sources.zigzag.settings import ZigZagSettings

log = structlog.get_logger(__name__)

MAX_NON_RETURNABLE_PER_CALL = 40
MAX_QUANTITY = 2_147_483_647
_MAX_WAIT = 60.0
_TOKEN_FIELDS = ("token", "access_token", "accessToken", "jwt", "Token", "AccessToken")
_EXPIRY_FIELDS = ("expires_in", "expiresIn", "ExpiresIn")


class ZigZagError(Exception):
    """A ZigZag API call failed."""


class ZigZagAuthError(ZigZagError):
    """The token endpoint refused the configured credentials, or a fresh token was refused."""


class ZigZagRejected(ZigZagError):
    """ZigZag refused a request (4xx other than 401/429); repeating it will not help."""

    def __init__(self, message: str, status_code: int, body: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ZigZagUnavailable(ZigZagError):
    """ZigZag did not answer successfully after every attempt (timeouts, 429, 5xx)."""


@dataclass(frozen=True)
class StockLine:
    sku: str
    warehouse_dc_code: str
    available_quantity: int

    def as_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "warehouseDcCode": self.warehouse_dc_code,
                "availableQuantity": max(0, min(self.available_quantity, MAX_QUANTITY))}


@dataclass(frozen=True)
class NonReturnableProduct:
    sku: str
    country_iso: str  # ISO-2; "" applies to every country
    message_key: str
    is_returnable: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "countryIso": self.country_iso,
                "messageKey": self.message_key, "isReturnable": self.is_returnable}


@dataclass(frozen=True)
class BatchResult:
    batch_key: str  # sha256 of the request body: the same content, the same key
    count: int
    status_code: int
    body: Any


def batch_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        exp = claims.get("exp") if isinstance(claims, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class ZigZagClient:
    """One client per process; thread-safe token cache."""

    def __init__(self, settings: ZigZagSettings, *, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        if not settings.base_url:
            raise ZigZagError("[zigzag].base_url is not configured")
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._http = http or http_client(timeout=settings.timeout_seconds)
        self._own_http = http is None
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def _url(self, path: str) -> str:
        return f"{self._base}/{path.lstrip('/')}"

    # -- token -------------------------------------------------------------------------

    def token(self) -> str:
        """A valid token: cached, renewed ``token_renew_seconds`` before it expires."""
        with self._lock:
            if self._token and self._clock() < self._expires_at - self.settings.token_renew_seconds:
                return self._token
            return self._fetch_token()

    def invalidate_token(self, stale: str) -> None:
        with self._lock:
            if self._token == stale:
                self._token, self._expires_at = "", 0.0

    def _fetch_token(self) -> str:
        body = {"username": self.settings.username,
                "password": self.settings.password.get_secret_value()}
        response = self._send("POST", self.settings.token_path, json_body=body, auth=False)
        if response.status_code in (400, 401, 403):
            raise ZigZagAuthError(f"the ZigZag token endpoint refused the configured "
                                  f"credentials (HTTP {response.status_code})")
        if response.status_code >= 300:
            raise ZigZagError(f"the ZigZag token endpoint answered HTTP {response.status_code}")
        token, lifetime = self._read_token(response)
        now = self._clock()
        exp = _jwt_exp(token)
        if lifetime is not None:
            self._expires_at = now + lifetime
        elif exp is not None:
            self._expires_at = exp
        else:
            self._expires_at = now + self.settings.token_lifetime_seconds
        self._token = token
        self.tokens_fetched += 1
        return token

    @staticmethod
    def _read_token(response: httpx.Response) -> tuple[str, float | None]:
        try:
            data: Any = response.json()
        except ValueError:
            data = response.text.strip()
        if isinstance(data, str) and data:
            return data, None
        if isinstance(data, dict):
            for name in _TOKEN_FIELDS:
                value = data.get(name)
                if isinstance(value, str) and value:
                    lifetime = next((data[k] for k in _EXPIRY_FIELDS
                                     if isinstance(data.get(k), int | float)
                                     and not isinstance(data.get(k), bool)), None)
                    return value, float(lifetime) if lifetime is not None else None
        raise ZigZagError("the ZigZag token response carries no token field we recognise")

    # -- transport -----------------------------------------------------------------------

    def _send(self, method: str, path: str, *, json_body: Any = None, content: bytes = b"",
              headers: dict[str, str] | None = None, auth: bool = True) -> httpx.Response:
        """One logical call: retried on timeouts, 429 and 5xx; a 401 renews the token once."""
        renewed = False
        policy = RetryPolicy(max_attempts=self.settings.max_attempts, retry_after_cap=_MAX_WAIT)

        def step(attempt: Attempt) -> httpx.Response | Retry:
            nonlocal renewed
            sent_headers = dict(headers or {})
            token = ""
            if auth:
                token = self.token()
                sent_headers["Authorization"] = f"Bearer {token}"
            try:
                if json_body is not None:
                    response = self._http.request(method, self._url(path), json=json_body,
                                                  headers=sent_headers)
                else:
                    sent_headers.setdefault("Content-Type", "application/json")
                    response = self._http.request(method, self._url(path), content=content,
                                                  headers=sent_headers)
            except httpx.TransportError as exc:
                if attempt.last:
                    raise ZigZagUnavailable(f"ZigZag {method} {path}: {exc}") from exc
                wait = policy.backoff(attempt.number)
                log.warning("zigzag call failed; retrying", path=path, error=str(exc),
                            wait=wait)
                return Retry(wait)
            if auth and response.status_code == 401 and not renewed:
                renewed = True
                self.invalidate_token(token)
                return Retry(wait=0, counted=False)  # a renewal is not a failed attempt
            if auth and response.status_code == 401:
                raise ZigZagAuthError(f"ZigZag refused a fresh token on {method} {path}")
            if policy.retryable(response.status_code):
                if attempt.last:
                    raise ZigZagUnavailable(f"ZigZag {method} {path} answered HTTP "
                                            f"{response.status_code} {attempt.number} times")
                wait = policy.wait(attempt.number, response)
                log.warning("zigzag busy; retrying", path=path,
                            status=response.status_code, wait=wait)
                return Retry(wait)
            return response

        return with_retries(step, policy, sleep=self._sleep)

    def _put_batches(self, path: str, envelope_key: str, items: list[dict[str, Any]],
                     size: int) -> list[BatchResult]:
        results: list[BatchResult] = []
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            body = json.dumps({"retailerCode": self.settings.retailer_code,
                               envelope_key: chunk}, separators=(",", ":")).encode()
            key = batch_key(body)
            response = self._send("PUT", path, content=body,
                                  headers={"Idempotency-Key": key})
            try:
                parsed: Any = response.json() if response.content else None
            except ValueError:
                parsed = response.text
            if response.status_code >= 300:
                raise ZigZagRejected(
                    f"ZigZag refused PUT {path} (HTTP {response.status_code}): "
                    f"{str(parsed)[:500]}", response.status_code, parsed)
            results.append(BatchResult(key, len(chunk), response.status_code, parsed))
        return results

    # -- endpoints -----------------------------------------------------------------------

    def update_exchange_stocks(self, lines: Sequence[StockLine],
                               batch_size: int | None = None) -> list[BatchResult]:
        """PUT ExchangeStocks/Update in batches; the last line per (sku, DC) wins."""
        latest: dict[tuple[str, str], StockLine] = {}
        for line in lines:
            latest[(line.sku, line.warehouse_dc_code)] = line
        ordered = [latest[k].as_json() for k in sorted(latest)]
        size = min(batch_size or self.settings.stock_push_batch_size, 40)
        return self._put_batches(self.settings.exchange_stocks_path, "exchangeStocks",
                                 ordered, size)

    def update_non_returnable(self, products: Sequence[NonReturnableProduct]
                              ) -> list[BatchResult]:
        """PUT NonReturnableProducts, at most 40 per call; the last per (sku, country) wins."""
        latest: dict[tuple[str, str], NonReturnableProduct] = {}
        for product in products:
            latest[(product.sku, product.country_iso)] = product
        ordered = [latest[k].as_json() for k in sorted(latest)]
        return self._put_batches(self.settings.non_returnable_path, "nonReturnableProducts",
                                 ordered, MAX_NON_RETURNABLE_PER_CALL)
