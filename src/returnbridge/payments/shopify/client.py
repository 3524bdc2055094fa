"""Shopify Admin GraphQL subset for the refund gate (reference shopify_refunds.md).

Every document here is valid against the Admin schema of the pinned API version (2026-04;
``sandbox/shopify/admin_schema.py``, checked by tests/shopify/test_documents.py).

- ``find_order(name)``: the order with its customer, transactions and refunds (Decimal).
- ``existing_refunds(order_id)``: its refunds, for the duplicate-refund guard.
- ``create_refund(...)``: ``refundCreate`` with the ``@idempotent(key: ...)`` directive
  (accepted from API 2026-01, required from 2026-04), ``NO_RESTOCK`` (Khaos owns stock),
  a note carrying the credit note code.
- ``credit_store_credit(...)``: ``storeCreditAccountCredit`` on the customer. Shopify has
  no idempotency key for it, so the key is kept in a customer metafield
  (``returnbridge.sc_<hash>``) written *before* the credit and completed after it: the
  same key returns the same credit; an interrupted credit is never repeated blindly
  (:class:`ShopifyOutcomeUnknown` until a person checks).
- ``create_gift_card(...)``: ``giftCardCreate``; no idempotency key either, so the key is
  written into the gift card's note and looked up first.

``userErrors`` on every mutation raise :class:`ShopifyUserError` (field + message):
HTTP 200 does not mean success. Top-level GraphQL ``errors`` (a document Shopify refuses,
e.g. a field that does not exist) raise :class:`ShopifyGraphQLError` at once, never retried.

Throttling: every request (retries included) first asks the client's ``limiter`` (in the
service: one pacing slot shared by every process, ``[shopify] calls_per_minute``), so
returnbridge keeps under Shopify's cost bucket instead of discovering it. A ``THROTTLED``
error still waits for the bucket to refill, computed from ``extensions.cost.throttleStatus``
(at least the time to restore one query's cost), then retries. HTTP 429/5xx and timeouts
back off (``Retry-After`` honoured). Every call has the configured timeout.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

import httpx
import structlog

from returnbridge.adapters.http import Attempt, Retry, RetryPolicy, http_client, with_retries
from returnbridge.adapters.ratelimit import CallLimiter
from returnbridge.adapters.values import timestamp_or_none
from returnbridge.config import ShopifySettings
from returnbridge.domain.money import MoneyError, to_decimal
from returnbridge.payments.provider import (
    PaymentOutcomeUnknown,
    PaymentRefused,
    PaymentUnavailable,
)

log = structlog.get_logger(__name__)

_MAX_WAIT = 60.0
_BACKOFF = RetryPolicy(max_attempts=1, retry_after_cap=_MAX_WAIT)


class ShopifyError(Exception):
    """A Shopify call failed."""


class ShopifyAuthError(ShopifyError, PaymentUnavailable):
    """The access token was refused (HTTP 401/403)."""


class ShopifyUnavailable(ShopifyError, PaymentUnavailable):
    """Shopify did not answer successfully after every attempt (throttled, 5xx, timeouts)."""


class ShopifyOutcomeUnknown(ShopifyError, PaymentOutcomeUnknown):
    """A mutation that Shopify cannot de-duplicate was sent and no answer came back (or an
    earlier attempt with the same key was interrupted): it may or may not have been applied,
    so it is not repeated until a person has checked in the Shopify admin. Not a transient
    error: retrying raises it again; surface it to finance."""


class OrderNotFound(ShopifyError):
    """No order has that name."""


@dataclass(frozen=True)
class GraphQLErrorDetail:
    message: str
    code: str = ""
    path: tuple[str, ...] = ()


class ShopifyGraphQLError(ShopifyError):
    """Top-level ``errors``: Shopify refused the document itself (validation, bad variables,
    access scope) and ran nothing. A programming or configuration error, not retried."""

    def __init__(self, errors: list[GraphQLErrorDetail], *, ran: bool = False) -> None:
        super().__init__("Shopify refused the request: " + "; ".join(
            e.message + (f" ({e.code})" if e.code else "") for e in errors)[:500])
        self.errors = errors
        # ``data`` came with the errors: execution started, so a mutation may have run
        self.ran = ran


@dataclass(frozen=True)
class UserError:
    field: tuple[str, ...]
    message: str


class ShopifyUserError(ShopifyError, PaymentRefused):
    """``userErrors`` from a mutation: Shopify refused it (e.g. more than refundable)."""

    def __init__(self, errors: list[UserError]) -> None:
        super().__init__("; ".join(f"{'.'.join(e.field) or 'input'}: {e.message}"
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

    @property
    def gateway(self) -> str:
        """The payment gateway refunded to (the first refund transaction's), "" if none."""
        return next((t.gateway for t in self.transactions if t.gateway), "")


@dataclass(frozen=True)
class StoreCreditResult:
    id: str  # the StoreCreditAccountCreditTransaction GID
    amount: Decimal
    currency: str = ""
    account_id: str = ""


@dataclass(frozen=True)
class GiftCardResult:
    id: str  # the GiftCard GID
    amount: Decimal
    last_characters: str
    currency: str = ""


@dataclass(frozen=True)
class Order:
    id: str
    name: str
    currency: str
    total: Decimal
    transactions: tuple[Transaction, ...]
    refunds: tuple[Refund, ...]
    customer_id: str = ""  # the Customer GID, "" for an order without a customer

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
_ORDER = (f"id name currencyCode customer {{ id }} totalPriceSet {{ {_MONEY} }} "
          f"transactions {{ {_TX} }} refunds {{ {_REFUND} }}")

FIND_ORDER = f"""query FindOrder($query: String!) {{
  orders(first: 5, query: $query) {{ nodes {{ {_ORDER} }} }}
}}"""

GET_ORDER = f"""query GetOrder($id: ID!) {{
  order(id: $id) {{ {_ORDER} }}
}}"""

REFUND_CREATE = f"""mutation RefundCreate($input: RefundInput!, $idempotencyKey: String!) {{
  refundCreate(input: $input) @idempotent(key: $idempotencyKey) {{
    refund {{ {_REFUND} }}
    userErrors {{ field message }}
  }}
}}"""

METAFIELD_NAMESPACE = "returnbridge"

STORE_CREDIT_MARKER = """query StoreCreditMarker($customerId: ID!, $namespace: String!,
                                $key: String!) {
  customer(id: $customerId) {
    id
    metafield(namespace: $namespace, key: $key) { value }
  }
}"""

SET_MARKER = """mutation SetMarker($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { key value }
    userErrors { field message code }
  }
}"""

STORE_CREDIT_CREDIT = """mutation StoreCreditCredit($id: ID!,
                                  $creditInput: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $creditInput) {
    storeCreditAccountTransaction {
      id
      amount { amount currencyCode }
      account { id balance { amount currencyCode } }
    }
    userErrors { field message code }
  }
}"""

SHOP_CURRENCY = """query ShopCurrency {
  shop { currencyCode }
}"""

GIFT_CARDS = """query GiftCards($query: String!) {
  giftCards(first: 100, reverse: true, sortKey: CREATED_AT, query: $query) {
    nodes { id note lastCharacters initialValue { amount currencyCode } }
  }
}"""

GIFT_CARD_CREATE = """mutation GiftCardCreate($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { id note lastCharacters initialValue { amount currencyCode } }
    userErrors { field message code }
  }
}"""

# Every document this client sends, by name (tests validate each against the schema).
DOCUMENTS: dict[str, str] = {
    "FindOrder": FIND_ORDER, "GetOrder": GET_ORDER, "RefundCreate": REFUND_CREATE,
    "StoreCreditMarker": STORE_CREDIT_MARKER, "SetMarker": SET_MARKER,
    "StoreCreditCredit": STORE_CREDIT_CREDIT, "ShopCurrency": SHOP_CURRENCY,
    "GiftCards": GIFT_CARDS, "GiftCardCreate": GIFT_CARD_CREATE,
}


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return to_decimal(value)
    except MoneyError:
        raise ShopifyError(f"Shopify sent {what} {value!r}, not an amount") from None


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
        created_at=timestamp_or_none(node.get("createdAt")),
    )


def _refund(node: dict[str, Any]) -> Refund:
    amount, currency = _money(node.get("totalRefundedSet"), "a refund total")
    txs = (node.get("transactions") or {}).get("nodes") or []
    return Refund(id=str(node.get("id", "")), created_at=timestamp_or_none(node.get("createdAt")),
                  note=str(node.get("note") or ""), amount=amount, currency=currency,
                  transactions=tuple(_transaction(t) for t in txs))


def _order(node: dict[str, Any]) -> Order:
    total, currency = _money(node.get("totalPriceSet"), "an order total")
    return Order(
        id=str(node.get("id", "")), name=str(node.get("name", "")),
        currency=str(node.get("currencyCode") or currency), total=total,
        transactions=tuple(_transaction(t) for t in node.get("transactions") or []),
        refunds=tuple(_refund(r) for r in node.get("refunds") or []),
        customer_id=str((node.get("customer") or {}).get("id") or ""),
    )


def _user_errors(result: Any) -> list[UserError]:
    return [UserError(tuple(str(f) for f in (e.get("field") or [])), str(e.get("message", "")))
            for e in (result or {}).get("userErrors") or [] if isinstance(e, dict)]


def _graphql_errors(errors: list[Any]) -> list[GraphQLErrorDetail]:
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append(GraphQLErrorDetail(
                str(e.get("message", "")), str((e.get("extensions") or {}).get("code") or ""),
                tuple(str(p) for p in e.get("path") or [])))
        else:
            out.append(GraphQLErrorDetail(str(e)))
    return out


def marker_key(idempotency_key: str) -> str:
    """The metafield key holding a store credit's idempotency record (2-64 safe chars)."""
    return "sc_" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


def gift_card_tag(idempotency_key: str) -> str:
    """What a gift card's note carries so that a retry finds it instead of issuing another."""
    return f"[returnbridge:{idempotency_key}]"


def _numeric_id(gid: str) -> str:
    return gid.rsplit("/", 1)[-1]


def throttle_wait(extensions: Any, attempt: int, policy: RetryPolicy = _BACKOFF) -> float:
    """Seconds until the bucket holds the requested cost (from ``throttleStatus``); the
    policy's backoff when Shopify did not say."""
    cost = (extensions or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        needed = float(cost.get("requestedQueryCost") or 0)
        available = float(status.get("currentlyAvailable") or 0)
        rate = float(status.get("restoreRate") or 0)
    except (TypeError, ValueError):
        return policy.backoff(attempt)
    if rate <= 0:
        return policy.backoff(attempt)
    # At least a whole query's cost: the points that trickle back in a few milliseconds go
    # to whichever client asks first, and every THROTTLED answer is a request too.
    return min(max((needed - available) / rate, needed / rate, 0.05), _MAX_WAIT)


class ShopifyClient:
    def __init__(self, settings: ShopifySettings, *, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 limiter: CallLimiter | None = None) -> None:
        """``limiter`` is asked before every request (retries included); the service passes
        the call rate shared by all its processes (``Runtime.shopify_client``)."""
        if not settings.base_url and not settings.shop_domain:
            raise ShopifyError("[shopify].shop_domain is not configured")
        base = settings.base_url.rstrip("/") or (
            f"https://{settings.shop_domain}/admin/api/{settings.api_version}")
        self.settings = settings
        self.endpoint = f"{base}/graphql.json"
        self._http = http or http_client(timeout=settings.timeout_seconds)
        self._own_http = http is None
        self._sleep = sleep
        self._limiter = limiter

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def execute(self, query: str, variables: dict[str, Any], *,
                retry_ambiguous: bool = True) -> dict[str, Any]:
        """One GraphQL call's ``data``; throttling and transient failures are retried.

        With ``retry_ambiguous=False`` (mutations Shopify cannot de-duplicate) a failure
        after the request may have reached Shopify (read timeout, HTTP 5xx) raises
        :class:`ShopifyOutcomeUnknown` instead of sending it again; refusals that prove
        nothing ran (connection refused, HTTP 429, ``THROTTLED``) are still retried.
        """
        headers = {"X-Shopify-Access-Token": self.settings.admin_token.get_secret_value(),
                   "Content-Type": "application/json"}
        policy = RetryPolicy(max_attempts=self.settings.max_attempts,
                             retry_after_cap=_MAX_WAIT)

        def step(attempt: Attempt) -> dict[str, Any] | Retry:
            if self._limiter is not None:
                self._limiter.acquire()
            try:
                response = self._http.post(self.endpoint, json={"query": query,
                                                                "variables": variables},
                                           headers=headers)
            except httpx.TransportError as exc:
                if not retry_ambiguous and not isinstance(
                        exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    raise ShopifyOutcomeUnknown(
                        f"Shopify did not answer ({exc}); the change may have been made") from exc
                if attempt.last:
                    raise ShopifyUnavailable(f"Shopify did not answer: {exc}") from exc
                return Retry()  # the policy's backoff
            if response.status_code in (401, 403):
                raise ShopifyAuthError(f"Shopify refused the access token "
                                       f"(HTTP {response.status_code})")
            if policy.retryable(response.status_code):
                if not retry_ambiguous and response.status_code != 429:
                    raise ShopifyOutcomeUnknown(
                        f"Shopify answered HTTP {response.status_code}; the change may "
                        "have been made")
                if attempt.last:
                    raise ShopifyUnavailable(f"Shopify answered HTTP {response.status_code} "
                                             f"{attempt.number} times")
                return Retry(policy.wait(attempt.number, response))
            if response.status_code >= 300:
                raise ShopifyError(f"Shopify answered HTTP {response.status_code}: "
                                   f"{response.text[:300]}")
            try:
                payload = response.json()
            except ValueError:
                raise ShopifyError("Shopify sent a response that is not JSON") from None
            if not isinstance(payload, dict):
                raise ShopifyError("Shopify sent a response that is not a GraphQL answer")
            errors = payload.get("errors") or []
            if any(((e.get("extensions") or {}).get("code") == "THROTTLED") for e in errors
                   if isinstance(e, dict)):
                if attempt.last:
                    raise ShopifyUnavailable(f"Shopify throttled {attempt.number} attempts")
                wait = throttle_wait(payload.get("extensions"), attempt.number, policy)
                log.info("shopify throttled; waiting", wait=wait)
                return Retry(wait)
            if errors:
                details = _graphql_errors(errors if isinstance(errors, list) else [errors])
                log.error("shopify refused the document", errors=[d.message for d in details])
                raise ShopifyGraphQLError(details, ran="data" in payload)
            data = payload.get("data")
            if not isinstance(data, dict):
                raise ShopifyError("Shopify sent no data")
            return data

        return with_retries(step, policy, sleep=self._sleep)

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
        errors = _user_errors(result)
        if errors:
            raise ShopifyUserError(errors)
        node = result.get("refund")
        if not isinstance(node, dict):
            raise ShopifyError("refundCreate returned neither a refund nor userErrors")
        return _refund(node)

    # -- store credit ----------------------------------------------------------------------

    def _set_marker(self, customer_id: str, key: str, record: dict[str, str]) -> None:
        data = self.execute(SET_MARKER, {"metafields": [{
            "ownerId": customer_id, "namespace": METAFIELD_NAMESPACE, "key": key,
            "type": "json", "value": json.dumps(record, sort_keys=True)}]})
        errors = _user_errors(data.get("metafieldsSet"))
        if errors:
            raise ShopifyUserError(errors)

    def credit_store_credit(self, customer_id: str, amount: Decimal, currency: str, note: str,
                            idempotency_key: str) -> StoreCreditResult:
        """Credit ``amount`` to the customer's store credit account in ``currency``.

        ``storeCreditAccountCredit`` takes no ``@idempotent`` key (the 2026-04 changelog
        lists only ``refundCreate`` and inventory mutations) and a credit transaction has no
        note, so the key lives in a customer metafield ``returnbridge.sc_<sha256(key)>``:
        ``pending`` before the credit, ``credited`` (with the transaction id) after it. The
        same key returns the recorded credit without crediting again; a key found
        ``pending`` (a crash or lost answer between the two) raises
        :class:`ShopifyOutcomeUnknown`: a person checks the customer's store credit and then
        deletes the metafield (not credited) or leaves the record to finance (credited).
        ``note`` is kept in the record (store credit itself has nowhere to show it).
        """
        if not idempotency_key:
            raise ShopifyError("a store credit needs an idempotency key")
        if not customer_id:
            raise ShopifyError("store credit needs a customer; the order has none")
        if not amount.is_finite() or amount <= 0:
            raise ShopifyError(f"store credit amount must be positive, got {amount}")
        key = marker_key(idempotency_key)
        data = self.execute(STORE_CREDIT_MARKER, {"customerId": customer_id,
                                                  "namespace": METAFIELD_NAMESPACE,
                                                  "key": key})
        customer = data.get("customer")
        if not isinstance(customer, dict):
            raise ShopifyError(f"Shopify has no customer {customer_id}")
        raw = (customer.get("metafield") or {}).get("value")
        record: dict[str, str] = {}
        if raw:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                raise ShopifyError(f"store credit record {METAFIELD_NAMESPACE}.{key} on "
                                   f"{customer_id} is not returnbridge's JSON; fix or delete it")
            record = {str(k): str(v) for k, v in loaded.items()}
        state = record.get("state", "")
        if state in ("pending", "credited"):
            if (record.get("idempotency_key") != idempotency_key
                    or _decimal(record.get("amount"), "a recorded amount") != amount
                    or record.get("currency") != currency):
                raise ShopifyError(
                    f"idempotency key {idempotency_key!r} was already used for "
                    f"{record.get('amount')} {record.get('currency')} on {customer_id}, "
                    f"not {amount} {currency}")
            if state == "credited" and record.get("transaction_id"):
                return StoreCreditResult(record["transaction_id"], amount, currency,
                                         record.get("account_id", ""))
            raise ShopifyOutcomeUnknown(
                f"a store credit of {amount} {currency} for {idempotency_key!r} was started "
                f"at {record.get('started_at', '?')} and its outcome is unknown: check "
                f"customer {customer_id}'s store credit in the Shopify admin, then delete "
                f"metafield {METAFIELD_NAMESPACE}.{key} if it was not credited")
        record = {"idempotency_key": idempotency_key, "amount": str(amount),
                  "currency": currency, "note": note, "state": "pending",
                  "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._set_marker(customer_id, key, record)
        try:
            data = self.execute(STORE_CREDIT_CREDIT, {"id": customer_id, "creditInput": {
                "creditAmount": {"amount": str(amount), "currencyCode": currency},
                "notify": self.settings.notify_customer}}, retry_ambiguous=False)
        except ShopifyOutcomeUnknown:
            raise  # the record stays pending: a person checks
        except ShopifyGraphQLError as exc:
            if exc.ran:  # an error while executing: the credit may have been made
                raise ShopifyOutcomeUnknown(f"storeCreditAccountCredit failed while running "
                                            f"({exc}); the credit may have been made") from exc
            self._set_marker(customer_id, key, {**record, "state": "failed"})
            raise
        except (ShopifyAuthError, ShopifyUnavailable):
            # refused before anything ran (bad document, token, throttled, unreachable):
            # the next attempt may credit
            self._set_marker(customer_id, key, {**record, "state": "failed"})
            raise
        result = data.get("storeCreditAccountCredit") or {}
        errors = _user_errors(result)
        if errors:
            self._set_marker(customer_id, key, {**record, "state": "failed"})
            raise ShopifyUserError(errors)
        node = result.get("storeCreditAccountTransaction")
        if not isinstance(node, dict) or not node.get("id"):
            raise ShopifyOutcomeUnknown("storeCreditAccountCredit returned neither a "
                                        "transaction nor userErrors")
        credited = _decimal((node.get("amount") or {}).get("amount"), "a credited amount")
        account_id = str((node.get("account") or {}).get("id") or "")
        self._set_marker(customer_id, key, {**record, "state": "credited",
                                            "transaction_id": str(node["id"]),
                                            "account_id": account_id})
        return StoreCreditResult(str(node["id"]), credited, currency, account_id)

    # -- gift cards ------------------------------------------------------------------------

    def create_gift_card(self, customer_id: str, amount: Decimal, currency: str, note: str,
                         idempotency_key: str) -> GiftCardResult:
        """Issue a gift card of ``amount`` (assigned to ``customer_id`` when given).

        ``giftCardCreate`` takes no ``@idempotent`` key, so the gift card's note carries
        ``[returnbridge:<key>]`` and the customer's most recent 100 gift cards (or, without a
        customer, the 100 most recent issued through the API) are searched for it first.
        Limits: Shopify's search index may lag a few seconds behind a creation, so two calls
        with the same key in quick succession could both create; a lost answer raises
        :class:`ShopifyOutcomeUnknown` (the next call finds the card by its note). Gift cards
        are in the shop's currency: another ``currency`` is refused before anything is made.
        The code itself is never read (Shopify shows it to the customer).
        """
        if not idempotency_key:
            raise ShopifyError("a gift card needs an idempotency key")
        if not amount.is_finite() or amount <= 0:
            raise ShopifyError(f"gift card amount must be positive, got {amount}")
        shop_currency = str((self.execute(SHOP_CURRENCY, {}).get("shop") or {})
                            .get("currencyCode") or "")
        if currency and shop_currency and currency != shop_currency:
            raise ShopifyError(f"gift cards are issued in the shop currency {shop_currency}, "
                               f"not {currency}")
        tag = gift_card_tag(idempotency_key)
        search = (f"customer_id:{_numeric_id(customer_id)}" if customer_id
                  else "source:api_client")
        nodes = ((self.execute(GIFT_CARDS, {"query": search}).get("giftCards") or {})
                 .get("nodes")) or []
        for node in nodes:
            if isinstance(node, dict) and tag in str(node.get("note") or ""):
                value, cur = _money({"shopMoney": node.get("initialValue")}, "a gift card value")
                if value != amount:
                    raise ShopifyError(f"idempotency key {idempotency_key!r} already issued "
                                       f"gift card {node.get('id')} for {value}, not {amount}")
                return GiftCardResult(str(node.get("id", "")), value,
                                      str(node.get("lastCharacters") or ""), cur)
        card_input: dict[str, Any] = {"initialValue": str(amount),
                                      "note": f"{note} {tag}".strip()}
        if customer_id:
            card_input["customerId"] = customer_id
        data = self.execute(GIFT_CARD_CREATE, {"input": card_input}, retry_ambiguous=False)
        result = data.get("giftCardCreate") or {}
        errors = _user_errors(result)
        if errors:
            raise ShopifyUserError(errors)
        node = result.get("giftCard")
        if not isinstance(node, dict):
            raise ShopifyOutcomeUnknown("giftCardCreate returned neither a gift card nor "
                                        "userErrors")
        value, cur = _money({"shopMoney": node.get("initialValue")}, "a gift card value")
        return GiftCardResult(str(node.get("id", "")), value,
                              str(node.get("lastCharacters") or ""), cur)
