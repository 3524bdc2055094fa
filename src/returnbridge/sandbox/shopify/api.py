"""A Shopify Admin GraphQL emulator for the refund side (reference shopify_refunds.md).

Only the subset returnbridge uses: ``orders(query: "name:#1001")``, ``order(id:)`` with
transactions and refunds, and ``refundCreate`` with the ``@idempotent(key:)`` directive
(required from API version 2026-04, as Shopify does). It is not a GraphQL engine: it
recognises those operations and always answers with every field of their selection.

Awkward parts kept: HTTP 200 with ``userErrors`` (over-refund), ``THROTTLED`` errors with
``extensions.cost.throttleStatus`` when the cost bucket is empty, amounts as strings.
Inspect from Python: ``calls`` (each with its idempotency key), ``order(name)``;
add a manual (goodwill) refund with ``add_manual_refund``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from returnbridge.sandbox.threaded import ThreadedServer

IDEMPOTENCY_REQUIRED_FROM = "2026-04"
_KEY = re.compile(r"@idempotent\s*\(\s*key\s*:\s*(\$\w+|\"(?:[^\"\\]|\\.)*\")\s*\)")
_NAME = re.compile(r"name:\s*['\"]?#?([^'\"\s]+)")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"shopMoney": {"amount": f"{amount:.2f}", "currencyCode": currency}}


@dataclass
class SandboxTransaction:
    id: str
    kind: str
    status: str
    gateway: str
    amount: Decimal
    parent_id: str = ""
    created_at: str = field(default_factory=_now)


@dataclass
class SandboxRefund:
    id: str
    note: str
    amount: Decimal
    transactions: list[SandboxTransaction]
    created_at: str = field(default_factory=_now)
    idempotency_key: str = ""  # "" for refunds made by hand in the admin


@dataclass
class SandboxOrder:
    id: str
    name: str
    currency: str
    total: Decimal
    transactions: list[SandboxTransaction] = field(default_factory=list)
    refunds: list[SandboxRefund] = field(default_factory=list)

    def refunded_from(self, parent_id: str) -> Decimal:
        return sum((t.amount for t in self.transactions
                    if t.kind == "REFUND" and t.parent_id == parent_id), Decimal("0"))


@dataclass
class ShopifyCall:
    operation: str  # find_order | get_order | refund_create | unknown
    idempotency_key: str = ""
    order_id: str = ""
    refund_id: str = ""
    replayed: bool = False  # the key was seen before: the earlier refund was returned
    throttled: bool = False
    user_errors: list[str] = field(default_factory=list)


@dataclass
class ShopifySandbox:
    access_token: str = "shpat_sandbox"
    bucket_size: float = 1000.0
    restore_rate: float = 50.0  # points per second
    query_cost: int = 10
    calls: list[ShopifyCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orders: dict[str, SandboxOrder] = {}
        self._by_key: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (refund id, input)
        self._ids = 1000
        self._available = self.bucket_size
        self._refilled = time.monotonic()
        self._lock = threading.Lock()
        self._server: ThreadedServer | None = None
        self.app = self._make_app()

    # -- Python API ----------------------------------------------------------------------

    def start(self, port: int | None = None) -> ShopifySandbox:
        self._server = ThreadedServer(self.app, port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the sandbox first"
        return self._server.base_url

    def admin_url(self, version: str = "2026-04") -> str:
        """The value for ``[shopify].base_url``."""
        return f"{self.base_url}/admin/api/{version}"

    def settings(self, version: str = "2026-04", **overrides: Any) -> dict[str, Any]:
        """A ``[shopify]`` section (as a dict) pointing returnbridge at this sandbox."""
        return {"shop_domain": "sandbox.myshopify.com", "admin_token": self.access_token,
                "base_url": self.admin_url(version), "api_version": version, **overrides}

    def _next_id(self, kind: str) -> str:
        self._ids += 1
        return f"gid://shopify/{kind}/{self._ids}"

    def add_order(self, name: str, total: Decimal | str, currency: str = "GBP",
                  gateway: str = "shopify_payments") -> SandboxOrder:
        """An order paid in full by one successful SALE transaction."""
        with self._lock:
            name = name if name.startswith("#") else f"#{name}"
            amount = Decimal(str(total))
            order = SandboxOrder(self._next_id("Order"), name, currency, amount)
            order.transactions.append(SandboxTransaction(
                self._next_id("OrderTransaction"), "SALE", "SUCCESS", gateway, amount))
            self.orders[order.id] = order
            return order

    def order(self, name: str) -> SandboxOrder:
        wanted = name if name.startswith("#") else f"#{name}"
        return next(o for o in self.orders.values() if o.name == wanted)

    def add_manual_refund(self, name: str, amount: Decimal | str,
                          note: str = "Goodwill refund") -> SandboxRefund:
        """A refund made by hand in the Shopify admin (not by returnbridge)."""
        with self._lock:
            order = self.order(name)
            return self._refund(order, Decimal(str(amount)), note, order.transactions[0], "")

    def refund_calls(self, key: str | None = None) -> list[ShopifyCall]:
        return [c for c in self.calls if c.operation == "refund_create"
                and (key is None or c.idempotency_key == key)]

    def _refund(self, order: SandboxOrder, amount: Decimal, note: str,
                parent: SandboxTransaction, key: str) -> SandboxRefund:
        tx = SandboxTransaction(self._next_id("OrderTransaction"), "REFUND", "SUCCESS",
                                parent.gateway, amount, parent.id)
        order.transactions.append(tx)
        refund = SandboxRefund(self._next_id("Refund"), note, amount, [tx],
                               idempotency_key=key)
        order.refunds.append(refund)
        return refund

    # -- rendering -------------------------------------------------------------------------

    def _tx_json(self, tx: SandboxTransaction, currency: str) -> dict[str, Any]:
        return {"id": tx.id, "kind": tx.kind, "status": tx.status, "gateway": tx.gateway,
                "createdAt": tx.created_at, "amountSet": _money(tx.amount, currency),
                "parentTransaction": {"id": tx.parent_id} if tx.parent_id else None}

    def _refund_json(self, refund: SandboxRefund, currency: str) -> dict[str, Any]:
        return {"id": refund.id, "createdAt": refund.created_at, "note": refund.note,
                "totalRefundedSet": _money(refund.amount, currency),
                "transactions": {"nodes": [self._tx_json(t, currency)
                                           for t in refund.transactions]}}

    def _order_json(self, order: SandboxOrder) -> dict[str, Any]:
        return {"id": order.id, "name": order.name, "currencyCode": order.currency,
                "totalPriceSet": _money(order.total, order.currency),
                "transactions": [self._tx_json(t, order.currency) for t in order.transactions],
                "refunds": [self._refund_json(r, order.currency) for r in order.refunds]}

    # -- throttling ------------------------------------------------------------------------

    def _spend(self, cost: int) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        self._available = min(self.bucket_size,
                              self._available + (now - self._refilled) * self.restore_rate)
        self._refilled = now
        ok = self._available >= cost
        if ok:
            self._available -= cost
        return ok, {"cost": {
            "requestedQueryCost": cost, "actualQueryCost": cost if ok else None,
            "throttleStatus": {"maximumAvailable": self.bucket_size,
                               "currentlyAvailable": round(self._available, 2),
                               "restoreRate": self.restore_rate}}}

    # -- HTTP ------------------------------------------------------------------------------

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="Shopify Admin sandbox")

        @app.post("/admin/api/{version}/graphql.json")
        async def graphql(version: str, request: Request) -> Response:
            if request.headers.get("x-shopify-access-token") != self.access_token:
                return JSONResponse({"errors": "[API] Invalid API key or access token "
                                     "(unrecognized login or wrong password)"}, status_code=401)
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"errors": "Bad Request"}, status_code=400)
            if not isinstance(body, dict) or not isinstance(body.get("query"), str):
                return JSONResponse({"errors": "Bad Request"}, status_code=400)
            variables = body.get("variables") or {}
            with self._lock:
                return JSONResponse(self._answer(version, body["query"], variables))

        return app

    def _answer(self, version: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        if "refundCreate" in query:
            call = ShopifyCall("refund_create")
        elif "orders(" in query:
            call = ShopifyCall("find_order")
        elif "order(" in query:
            call = ShopifyCall("get_order")
        else:
            self.calls.append(ShopifyCall("unknown"))
            return {"errors": [{"message": "This sandbox supports orders, order and "
                                "refundCreate only"}]}
        self.calls.append(call)
        ok, extensions = self._spend(self.query_cost)
        if not ok:
            call.throttled = True
            return {"errors": [{"message": "Throttled",
                                "extensions": {"code": "THROTTLED",
                                               "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                    "extensions": extensions}
        if call.operation == "find_order":
            match = _NAME.search(str(variables.get("query", "")))
            nodes = [self._order_json(o) for o in self.orders.values()
                     if match and o.name == f"#{match.group(1)}"]
            return {"data": {"orders": {"nodes": nodes}}, "extensions": extensions}
        if call.operation == "get_order":
            order = self.orders.get(str(variables.get("id", "")))
            return {"data": {"order": self._order_json(order) if order else None},
                    "extensions": extensions}
        return self._refund_create(version, query, variables, call, extensions)

    def _refund_create(self, version: str, query: str, variables: dict[str, Any],
                       call: ShopifyCall, extensions: dict[str, Any]) -> dict[str, Any]:
        match = _KEY.search(query)
        key = ""
        if match:
            token = match.group(1)
            key = (str(variables.get(token[1:], "")) if token.startswith("$")
                   else token[1:-1])
        call.idempotency_key = key
        if not key and version >= IDEMPOTENCY_REQUIRED_FROM:
            return {"errors": [{"message": "The @idempotent directive with a key is required "
                                "for refundCreate", "extensions": {"code": "BAD_REQUEST"}}]}
        refund_input = variables.get("input")
        if not isinstance(refund_input, dict):
            return {"errors": [{"message": "Variable $input of type RefundInput! was "
                                "provided invalid value"}]}
        call.order_id = str(refund_input.get("orderId", ""))
        if key and key in self._by_key:
            refund_id, first_input = self._by_key[key]
            if first_input != refund_input:
                return {"errors": [{"message": "The idempotency key was already used with "
                                    "different input",
                                    "extensions": {"code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"}}]}
            first = next(o for o in self.orders.values()
                         if any(r.id == refund_id for r in o.refunds))
            earlier = next(r for r in first.refunds if r.id == refund_id)
            call.refund_id, call.replayed = earlier.id, True
            return self._refund_payload(earlier, first, [], extensions)
        order = self.orders.get(call.order_id)
        if order is None:
            return self._user_errors(call, [(["orderId"], "Order does not exist", "NOT_FOUND")],
                                     extensions)
        txs = refund_input.get("transactions") or []
        if not isinstance(txs, list) or len(txs) != 1 or not isinstance(txs[0], dict):
            return self._user_errors(call, [(["transactions"], "This sandbox refunds one "
                                             "transaction per refund", "INVALID")], extensions)
        tx = txs[0]
        try:
            amount = Decimal(str(tx.get("amount")))
        except (InvalidOperation, ValueError):
            return self._user_errors(call, [(["transactions", "0", "amount"],
                                             "Amount is invalid", "INVALID")], extensions)
        parent = next((t for t in order.transactions if t.id == tx.get("parentId")
                       and t.kind in ("SALE", "CAPTURE") and t.status == "SUCCESS"), None)
        if parent is None:
            return self._user_errors(call, [(["transactions", "0", "parentId"],
                                             "Parent transaction does not exist", "INVALID")],
                                     extensions)
        left = parent.amount - order.refunded_from(parent.id)
        if not amount.is_finite() or amount <= 0:
            return self._user_errors(call, [(["transactions", "0", "amount"],
                                             "Amount must be greater than 0", "INVALID")],
                                     extensions)
        if amount > left:
            return self._user_errors(call, [(
                ["transactions", "0", "amount"],
                f"Refund amount £{amount:.2f} is greater than net payment received "
                f"£{left:.2f}", "INVALID")], extensions)
        refund = self._refund(order, amount, str(refund_input.get("note") or ""), parent, key)
        if key:
            self._by_key[key] = (refund.id, refund_input)
        call.refund_id = refund.id
        return self._refund_payload(refund, order, [], extensions)

    def _user_errors(self, call: ShopifyCall, errors: list[tuple[list[str], str, str]],
                     extensions: dict[str, Any]) -> dict[str, Any]:
        call.user_errors = [message for _, message, _ in errors]
        return {"data": {"refundCreate": {
            "refund": None, "order": None,
            "userErrors": [{"field": f, "message": m, "code": c} for f, m, c in errors]}},
            "extensions": extensions}

    def _refund_payload(self, refund: SandboxRefund, order: SandboxOrder, errors: list[Any],
                        extensions: dict[str, Any]) -> dict[str, Any]:
        return {"data": {"refundCreate": {
            "refund": self._refund_json(refund, order.currency),
            "order": {"id": order.id}, "userErrors": errors}},
            "extensions": extensions}
