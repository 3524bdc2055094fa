"""Shopify Admin GraphQL subset for the refund gate (reference shopify_refunds.md).

- ``find_order(name)``: the order with its transactions and refunds (amounts as Decimal).
- ``existing_refunds(order_id)``: its refunds, for the duplicate-refund guard.
- ``create_refund(...)``: ``refundCreate`` with the ``@idempotent(key: ...)`` directive
  (accepted from API 2026-01, required from 2026-04), ``NO_RESTOCK`` (Khaos owns stock),
  a note carrying the credit note code. ``userErrors`` raise :class:`ShopifyUserError`:
  HTTP 200 does not mean success.

Throttling: cost-based; a ``THROTTLED`` error waits for the bucket to refill, computed
from ``extensions.cost.throttleStatus``, then retries. HTTP 429/5xx and timeouts back
off (``Retry-After`` honoured). Every call has the configured timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Self

import httpx
import structlog

from returnbridge.config import ShopifySettings

log = structlog.get_logger(__name__)

_MAX_WAIT = 60.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ShopifyError(Exception):
    """A Shopify call failed."""


class ShopifyAuthError(ShopifyError):
    """The access token was refused (HTTP 401/403)."""


class ShopifyUnavailable(ShopifyError):
    """Shopify did not answer successfully after every attempt (throttled, 5xx, timeouts)."""


class OrderNotFound(ShopifyError):
    """No order has that name."""


@dataclass(frozen=True)
class UserError:
    field: tuple[str, ...]
    message: str
    code: str = ""


class ShopifyUserError(ShopifyError):
    """``userErrors`` from a mutation: Shopify refused it (e.g. more than refundable)."""

    def __init__(self, errors: list[UserError]) -> None:
        super().__init__("; ".join(
            f"{'.'.join(e.field) or 'input'}: {e.message}" + (f" ({e.code})" if e.code else "")
            for e in errors) or "refused")
        self.errors = errors


@dataclass(frozen=True)
class Transaction:
    id: str
    kind: str  # SALE | CAPTURE | AUTHORIZATION | REFUND | ...
    status: str  # SUCCESS | PENDING | FAILURE | ...
    gateway: str
    amount: Decimal
    currency: str
    parent_id: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Refund:
    id: str
    created_at: datetime | None
    note: str
    amount: Decimal
    currency: str
    transactions: tuple[Transaction, ...] = ()


@dataclass(frozen=True)
class Order:
    id: str
    name: str
    currency: str
    total: Decimal
    transactions: tuple[Transaction, ...]
    refunds: tuple[Refund, ...]

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal("0.00"))

    def refundable_parents(self) -> list[tuple[Transaction, Decimal]]:
        """Successful sale/capture transactions and what is left to refund on each."""
        refunded: dict[str, Decimal] = {}
        for tx in self.transactions:
            if tx.kind == "REFUND" and tx.status == "SUCCESS" and tx.parent_id:
                refunded[tx.parent_id] = refunded.get(tx.parent_id, Decimal(0)) + tx.amount
        for refund in self.refunds:
            for tx in refund.transactions:
                if tx.status == "SUCCESS" and tx.parent_id and tx.id not in {
                        t.id for t in self.transactions}:
                    refunded[tx.parent_id] = refunded.get(tx.parent_id, Decimal(0)) + tx.amount
        return [(tx, tx.amount - refunded.get(tx.id, Decimal(0)))
                for tx in self.transactions
                if tx.kind in ("SALE", "CAPTURE") and tx.status == "SUCCESS"]


_MONEY = "shopMoney { amount currencyCode }"
_TX = f"id kind status gateway createdAt amountSet {{ {_MONEY} }} parentTransaction {{ id }}"
_REFUND = (f"id createdAt note totalRefundedSet {{ {_MONEY} }} "
           f"transactions(first: 20) {{ nodes {{ {_TX} }} }}")
_ORDER = (f"id name currencyCode totalPriceSet {{ {_MONEY} }} transactions {{ {_TX} }} "
          f"refunds {{ {_REFUND} }}")

FIND_ORDER = f"""query FindOrder($query: String!) {{
  orders(first: 5, query: $query) {{ nodes {{ {_ORDER} }} }}
}}"""

GET_ORDER = f"""query GetOrder($id: ID!) {{
  order(id: $id) {{ {_ORDER} }}
}}"""

REFUND_CREATE = f"""mutation RefundCreate($input: RefundInput!, $idempotencyKey: String!) {{
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {{
    refund {{ {_REFUND} }}
    userErrors {{ field message code }}
  }}
}}"""


def _decimal(value: Any, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ShopifyError(f"Shopify sent {what} {value!r}, not an amount") from None
    if not result.is_finite():
        raise ShopifyError(f"Shopify sent {what} {value!r}, not an amount")
    return result


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _money(node: Any, what: str) -> tuple[Decimal, str]:
    shop = (node or {}).get("shopMoney") or {}
    return _decimal(shop.get("amount"), what), str(shop.get("currencyCode") or "")


def _transaction(node: dict[str, Any]) -> Transaction:
    amount, currency = _money(node.get("amountSet"), "a transaction amount")
    parent = node.get("parentTransaction") or {}
    return Transaction(
        id=str(node.get("id", "")), kind=str(node.get("kind", "")),
        status=str(node.get("status", "")), gateway=str(node.get("gateway", "")),
        amount=amount, currency=currency, parent_id=str(parent.get("id") or ""),
        created_at=_time(node.get("createdAt")),
    )


def _refund(node: dict[str, Any]) -> Refund:
    amount, currency = _money(node.get("totalRefundedSet"), "a refund total")
    txs = (node.get("transactions") or {}).get("nodes") or []
    return Refund(id=str(node.get("id", "")), created_at=_time(node.get("createdAt")),
                  note=str(node.get("note") or ""), amount=amount, currency=currency,
                  transactions=tuple(_transaction(t) for t in txs))


def _order(node: dict[str, Any]) -> Order:
    total, currency = _money(node.get("totalPriceSet"), "an order total")
    return Order(
        id=str(node.get("id", "")), name=str(node.get("name", "")),
        currency=str(node.get("currencyCode") or currency), total=total,
        transactions=tuple(_transaction(t) for t in node.get("transactions") or []),
        refunds=tuple(_refund(r) for r in node.get("refunds") or []),
    )


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        raw = response.headers.get("retry-after", "").strip()
        if raw:
            try:
                return min(max(float(raw), 0.0), _MAX_WAIT)
            except ValueError:
                try:
                    when = parsedate_to_datetime(raw).timestamp()
                    return float(min(max(when - time.time(), 0.0), _MAX_WAIT))
                except (TypeError, ValueError):
                    pass
    return float(min(0.5 * 2.0 ** (attempt - 1), 30.0))


def throttle_wait(extensions: Any, attempt: int) -> float:
    """Seconds until the bucket holds the requested cost (from ``throttleStatus``)."""
    cost = (extensions or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        needed = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return _retry_after(None, attempt)
    if rate <= 0:
        return _retry_after(None, attempt)
    return min(max((needed - available) / rate, 0.05), _MAX_WAIT)


class ShopifyClient:
    def __init__(self, settings: ShopifySettings, *, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.base_url and not settings.shop_domain:
            raise ShopifyError("[shopify].shop_domain is not configured")
        base = settings.base_url.rstrip("/") or (
            f"https://{settings.shop_domain}/admin/api/{settings.api_version}")
        self.settings = settings
        self.endpoint = f"{base}/graphql.json"
        self._http = http or httpx.Client(timeout=settings.timeout_seconds)
        self._own_http = http is None
        self._sleep = sleep

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def execute(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL call's ``data``; throttling and transient failures are retried."""
        headers = {"X-Shopify-Access-Token": self.settings.admin_token.get_secret_value(),
                   "Content-Type": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.settings.max_attempts
            try:
                response = self._http.post(self.endpoint, json={"query": query,
                                                                "variables": variables},
                                           headers=headers)
            except httpx.TransportError as exc:
                if last:
                    raise ShopifyUnavailable(f"Shopify did not answer: {exc}") from exc
                self._sleep(_retry_after(None, attempt))
                continue
            if response.status_code in (401, 403):
                raise ShopifyAuthError(f"Shopify refused the access token "
                                       f"(HTTP {response.status_code})")
            if response.status_code in _RETRY_STATUSES:
                if last:
                    raise ShopifyUnavailable(f"Shopify answered HTTP {response.status_code} "
                                             f"{attempt} times")
                self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code >= 300:
                raise ShopifyError(f"Shopify answered HTTP {response.status_code}: "
                                   f"{response.text[:300]}")
            try:
                payload = response.json()
            except ValueError:
                raise ShopifyError("Shopify sent a response that is not JSON") from None
            errors = payload.get("errors") or []
            if any(((e.get("extensions") or {}).get("code") == "THROTTLED") for e in errors
                   if isinstance(e, dict)):
                if last:
                    raise ShopifyUnavailable(f"Shopify throttled {attempt} attempts")
                wait = throttle_wait(payload.get("extensions"), attempt)
                log.info("shopify throttled; waiting", wait=wait)
                self._sleep(wait)
                continue
            if errors:
                messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e)
                                     for e in errors)
                raise ShopifyError(f"Shopify GraphQL errors: {messages[:500]}")
            data = payload.get("data")
            if not isinstance(data, dict):
                raise ShopifyError("Shopify sent no data")
            return data

    def find_order(self, name: str) -> Order:
        """The order called ``name`` ("#1001" or "1001")."""
        wanted = name if name.startswith("#") else f"#{name}"
        data = self.execute(FIND_ORDER, {"query": f"name:{wanted}"})
        nodes = ((data.get("orders") or {}).get("nodes")) or []
        for node in nodes:
            if str(node.get("name", "")).lstrip("#") == wanted.lstrip("#"):
                return _order(node)
        raise OrderNotFound(f"Shopify has no order named {wanted}")

    def get_order(self, order_id: str) -> Order:
        data = self.execute(GET_ORDER, {"id": order_id})
        node = data.get("order")
        if not isinstance(node, dict):
            raise OrderNotFound(f"Shopify has no order {order_id}")
        return _order(node)

    def existing_refunds(self, order_id: str) -> list[Refund]:
        return list(self.get_order(order_id).refunds)

    def create_refund(self, order_id: str, amount: Decimal, currency: str, note: str,
                      idempotency_key: str, *, parent_transaction_id: str = "",
                      gateway: str = "", notify: bool | None = None) -> Refund:
        """Refund ``amount`` to the original payment; the same key returns the same refund.

        Without ``parent_transaction_id`` the order's first successful sale/capture with
        enough left to refund is used (its gateway too).
        """
        if not idempotency_key:
            raise ShopifyError("a refund needs an idempotency key")
        if amount <= 0:
            raise ShopifyError(f"refund amount must be positive, got {amount}")
        parent, gw = parent_transaction_id, gateway
        if not parent:
            order = self.get_order(order_id)
            if order.currency and currency and order.currency != currency:
                raise ShopifyError(f"order {order.name} is in {order.currency}, "
                                   f"not {currency}")
            candidates = order.refundable_parents()
            pick = next((tx for tx, left in candidates if left >= amount), None)
            if pick is None and candidates:
                pick = candidates[0][0]  # let Shopify say why (userErrors)
            if pick is None:
                raise ShopifyError(f"order {order.name} has no captured payment to refund")
            parent, gw = pick.id, gw or pick.gateway
        refund_input: dict[str, Any] = {
            "orderId": order_id,
            "note": note,
            "notify": self.settings.notify_customer if notify is None else notify,
            "transactions": [{"amount": str(amount), "gateway": gw, "kind": "REFUND",
                              "orderId": order_id, "parentId": parent}],
        }
        data = self.execute(REFUND_CREATE, {"input": refund_input,
                                            "idempotencyKey": idempotency_key})
        result = data.get("refundCreate") or {}
        errors = [UserError(tuple(str(f) for f in (e.get("field") or [])),
                            str(e.get("message", "")), str(e.get("code") or ""))
                  for e in result.get("userErrors") or [] if isinstance(e, dict)]
        if errors:
            raise ShopifyUserError(errors)
        node = result.get("refund")
        if not isinstance(node, dict):
            raise ShopifyError("refundCreate returned neither a refund nor userErrors")
        return _refund(node)
