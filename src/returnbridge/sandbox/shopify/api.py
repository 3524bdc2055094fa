"""A Shopify Admin GraphQL emulator for the refund side (reference shopify_refunds.md).

Every request is validated against the Admin schema of the pinned API version
(``admin_schema.py``: the airbyte 2.4.24 SDL plus the documented 2026-04 additions) and
refused the way Shopify refuses it: HTTP 200, a top-level ``errors`` list (``message``,
``locations``, ``path``, ``extensions.code``) and no ``data``. A valid document is then
executed by graphql-core against the sandbox's state, so the answer holds exactly the
fields that were selected.

Implemented root fields: ``orders(query: "name:#1001")``, ``order(id:)``,
``customer(id:) { metafield(namespace:, key:) }``, ``shop { currencyCode }``,
``giftCards(query: "customer_id:N" | "source:api_client")``, and the mutations
``refundCreate`` (with the ``@idempotent(key:)`` directive, required from 2026-04, as
Shopify does), ``storeCreditAccountCredit``, ``giftCardCreate`` and ``metafieldsSet``.
Like Shopify, only ``refundCreate`` de-duplicates by key: a second
``storeCreditAccountCredit`` or ``giftCardCreate`` credits or issues again (returnbridge's
client is what makes those idempotent).

Awkward parts kept: HTTP 200 with ``userErrors`` (over-refund, unknown owner),
``THROTTLED`` errors with ``extensions.cost.throttleStatus`` when the cost bucket is empty,
amounts as strings. ``answer_lost`` makes the next call of a mutation apply and then
answer HTTP 502 (an answer lost on the way back). Inspect from Python: ``calls`` (each
with its idempotency key), ``order(name)``, ``customers``, ``store_credits``,
``gift_cards``; add a manual (goodwill) refund with ``add_manual_refund``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLString,
    OperationDefinitionNode,
    execute_sync,
    parse,
    value_from_ast,
)

from returnbridge.sandbox.shopify.admin_schema import admin_schema, validation_errors
from returnbridge.sandbox.threaded import ThreadedServer

IDEMPOTENCY_REQUIRED_FROM = "2026-04"
_NAME = re.compile(r"name:\s*['\"]?#?([^'\"\s]+)")
_CUSTOMER_ID = re.compile(r"customer_id:\s*(\d+)")
_OPERATIONS = {"orders": "find_order", "order": "get_order", "customer": "customer",
               "shop": "shop", "giftCards": "gift_cards", "refundCreate": "refund_create",
               "storeCreditAccountCredit": "store_credit", "giftCardCreate": "gift_card_create",
               "metafieldsSet": "metafields_set"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"shopMoney": _money_v2(amount, currency)}


def _money_v2(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"amount": f"{amount:.2f}", "currencyCode": currency}


def _user_error(field_path: list[str], message: str, code: str) -> dict[str, Any]:
    return {"field": field_path, "message": message, "code": code}


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
    customer_id: str = ""

    def refunded_from(self, parent_id: str) -> Decimal:
        return sum((t.amount for t in self.transactions
                    if t.kind == "REFUND" and t.parent_id == parent_id), Decimal("0"))


@dataclass
class SandboxCustomer:
    id: str
    email: str
    metafields: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


@dataclass
class SandboxStoreCreditAccount:
    id: str
    customer_id: str
    currency: str
    balance: Decimal = Decimal("0.00")


@dataclass
class SandboxStoreCredit:
    id: str
    account_id: str
    customer_id: str
    amount: Decimal
    currency: str
    balance_after: Decimal
    created_at: str = field(default_factory=_now)


@dataclass
class SandboxGiftCard:
    id: str
    code: str
    amount: Decimal
    currency: str
    note: str
    customer_id: str = ""
    source: str = "api_client"
    created_at: str = field(default_factory=_now)


@dataclass
class ShopifyCall:
    operation: str  # find_order | get_order | refund_create | store_credit | ... | invalid
    idempotency_key: str = ""
    order_id: str = ""
    refund_id: str = ""
    replayed: bool = False  # the key was seen before: the earlier refund was returned
    throttled: bool = False
    user_errors: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # top-level (refused)
    query: str = ""


@dataclass
class ShopifySandbox:
    access_token: str = "shpat_sandbox"
    bucket_size: float = 1000.0
    restore_rate: float = 50.0  # points per second
    query_cost: int = 10
    shop_currency: str = "GBP"
    store_credit_limit: Decimal | None = None  # per-account balance cap (CREDIT_LIMIT_EXCEEDED)
    calls: list[ShopifyCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orders: dict[str, SandboxOrder] = {}
        self.customers: dict[str, SandboxCustomer] = {}
        self.store_credit_accounts: dict[str, SandboxStoreCreditAccount] = {}
        self.store_credits: list[SandboxStoreCredit] = []
        self.gift_cards: list[SandboxGiftCard] = []
        self.answer_lost: set[str] = set()  # root mutation names whose next answer is lost
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

    def add_customer(self, email: str = "") -> SandboxCustomer:
        with self._lock:
            return self._add_customer(email)

    def _add_customer(self, email: str) -> SandboxCustomer:
        customer = SandboxCustomer(self._next_id("Customer"), email)
        customer.email = customer.email or f"customer{customer.id.rsplit('/', 1)[1]}@example.com"
        self.customers[customer.id] = customer
        return customer

    def add_order(self, name: str, total: Decimal | str, currency: str = "GBP",
                  gateway: str = "shopify_payments", *,
                  customer_id: str | None = None) -> SandboxOrder:
        """An order paid in full by one successful SALE transaction.

        It belongs to a new customer unless ``customer_id`` names one ("" for none).
        """
        with self._lock:
            name = name if name.startswith("#") else f"#{name}"
            amount = Decimal(str(total))
            if customer_id is None:
                customer_id = self._add_customer("").id
            order = SandboxOrder(self._next_id("Order"), name, currency, amount,
                                 customer_id=customer_id)
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

    def store_credit_balance(self, customer_id: str, currency: str) -> Decimal:
        return sum((a.balance for a in self.store_credit_accounts.values()
                    if a.customer_id == customer_id and a.currency == currency),
                   Decimal("0.00"))

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
        customer = self.customers.get(order.customer_id)
        return {"id": order.id, "name": order.name, "currencyCode": order.currency,
                "customer": self._customer_json(customer) if customer else None,
                "totalPriceSet": _money(order.total, order.currency),
                "transactions": [self._tx_json(t, order.currency) for t in order.transactions],
                "refunds": [self._refund_json(r, order.currency) for r in order.refunds]}

    def _customer_json(self, customer: SandboxCustomer) -> dict[str, Any]:
        def metafield(_info: Any, key: str,
                      namespace: str | None = None, **_: Any) -> dict[str, Any] | None:
            found = customer.metafields.get((namespace or "", key))
            return dict(found) if found else None

        return {"id": customer.id, "email": customer.email, "displayName": customer.email,
                "metafield": metafield}

    def _gift_card_json(self, card: SandboxGiftCard) -> dict[str, Any]:
        customer = self.customers.get(card.customer_id)
        return {"id": card.id, "note": card.note, "lastCharacters": card.code[-4:],
                "maskedCode": f"•••• •••• •••• {card.code[-4:]}", "enabled": True,
                "initialValue": _money_v2(card.amount, card.currency),
                "balance": _money_v2(card.amount, card.currency), "createdAt": card.created_at,
                "expiresOn": None, "disabledAt": None, "order": None,
                "customer": self._customer_json(customer) if customer else None}

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
            if not isinstance(variables, dict):
                return JSONResponse({"errors": "Bad Request"}, status_code=400)
            operation_name = body.get("operationName")
            with self._lock:
                answer, lost = self._answer(version, body["query"], variables,
                                            operation_name if isinstance(operation_name, str)
                                            else None)
            if lost:
                return JSONResponse({"errors": "Bad Gateway"}, status_code=502)
            return JSONResponse(answer)

        return app

    def _answer(self, version: str, query: str, variables: dict[str, Any],
                operation_name: str | None) -> tuple[dict[str, Any], bool]:
        errors = validation_errors(query)
        if errors:  # Shopify runs nothing and answers only with the errors
            self.calls.append(ShopifyCall("invalid", errors=errors, query=query))
            return {"errors": errors}, False
        document = parse(query)
        operation = _operation(document, operation_name)
        if operation is None:
            self.calls.append(ShopifyCall("invalid", query=query))
            return {"errors": [{"message": "An operation name is required",
                                "extensions": {"code": "operationNameRequired"}}]}, False
        roots = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
        names = [r.name.value for r in roots]
        unsupported = [n for n in names if n not in _OPERATIONS and not n.startswith("__")]
        call = ShopifyCall(_OPERATIONS.get(names[0], "unknown") if names else "unknown",
                           query=query)
        self.calls.append(call)
        if unsupported:
            return {"errors": [{"message": f"The Shopify sandbox does not implement "
                                f"{', '.join(unsupported)}",
                                "extensions": {"code": "sandboxUnsupported"}}]}, False
        for root in roots:
            if root.name.value == "refundCreate":
                key = _idempotency_key(root, variables)
                call.idempotency_key = key
                if not key and version >= IDEMPOTENCY_REQUIRED_FROM:
                    return {"errors": [{
                        "message": "The @idempotent directive with a key is required "
                                   "for refundCreate",
                        "extensions": {"code": "BAD_REQUEST"}}]}, False
        ok, extensions = self._spend(self.query_cost)
        if not ok:
            call.throttled = True
            return {"errors": [{"message": "Throttled",
                                "extensions": {"code": "THROTTLED",
                                               "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                    "extensions": extensions}, False
        result = execute_sync(admin_schema(), document, root_value=self._root(call),
                         variable_values=variables, operation_name=operation_name)
        if result.errors and result.data is None:  # variables Shopify refuses: nothing ran
            refused = [_variable_error(e) for e in result.errors]
            call.errors = refused
            return {"errors": refused}, False
        answer: dict[str, Any] = {"data": result.data, "extensions": extensions}
        if result.errors:
            call.errors = [dict(e.formatted) for e in result.errors]
            answer["errors"] = call.errors
        lost = bool(self.answer_lost & set(names)) and operation.operation.value == "mutation"
        if lost:
            self.answer_lost -= set(names)
        return answer, lost

    # -- resolvers -------------------------------------------------------------------------

    def _root(self, call: ShopifyCall) -> dict[str, Any]:
        def orders(_info: Any, **args: Any) -> dict[str, Any]:
            match = _NAME.search(str(args.get("query") or ""))
            nodes = [self._order_json(o) for o in self.orders.values()
                     if match and o.name == f"#{match.group(1)}"]
            return {"nodes": nodes[: args.get("first") or len(nodes)]}

        def order(_info: Any, id: str, **_: Any) -> dict[str, Any] | None:
            found = self.orders.get(id)
            return self._order_json(found) if found else None

        def customer(_info: Any, id: str, **_: Any) -> dict[str, Any] | None:
            found = self.customers.get(id)
            return self._customer_json(found) if found else None

        def shop(_info: Any, **_: Any) -> dict[str, Any]:
            return {"currencyCode": self.shop_currency, "name": "returnbridge sandbox"}

        def gift_cards(_info: Any, **args: Any) -> dict[str, Any]:
            search = str(args.get("query") or "")
            cards = list(self.gift_cards)
            wanted = _CUSTOMER_ID.search(search)
            if wanted:
                cards = [c for c in cards if c.customer_id.rsplit("/", 1)[-1] == wanted[1]]
            if "source:api_client" in search:
                cards = [c for c in cards if c.source == "api_client"]
            if args.get("sortKey") == "CREATED_AT":
                cards.sort(key=lambda c: (c.created_at, c.id))
            if args.get("reverse"):
                cards.reverse()
            first = args.get("first")
            return {"nodes": [self._gift_card_json(c) for c in cards[:first or len(cards)]]}

        return {"orders": orders, "order": order, "customer": customer, "shop": shop,
                "giftCards": gift_cards,
                "refundCreate": lambda info, **a: self._refund_create(call, a["input"]),
                "storeCreditAccountCredit": lambda info, **a: self._store_credit(call, a),
                "giftCardCreate": lambda info, **a: self._gift_card_create(call, a["input"]),
                "metafieldsSet": lambda info, **a: self._metafields_set(call, a["metafields"])}

    def _refund_create(self, call: ShopifyCall, refund_input: dict[str, Any]) -> dict[str, Any]:
        key = call.idempotency_key
        call.order_id = str(refund_input.get("orderId", ""))
        if key and key in self._by_key:
            refund_id, first_input = self._by_key[key]
            if first_input != refund_input:
                raise GraphQLError("The idempotency key was already used with different input",
                                   extensions={"code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"})
            first = next(o for o in self.orders.values()
                         if any(r.id == refund_id for r in o.refunds))
            earlier = next(r for r in first.refunds if r.id == refund_id)
            call.refund_id, call.replayed = earlier.id, True
            return self._refund_payload(earlier, first)
        order = self.orders.get(call.order_id)
        if order is None:
            return self._refund_errors(call, [(["orderId"], "Order does not exist")])
        txs = refund_input.get("transactions") or []
        if len(txs) != 1:
            return self._refund_errors(call, [(["transactions"], "This sandbox refunds one "
                                               "transaction per refund")])
        tx = txs[0]
        try:
            amount = Decimal(str(tx.get("amount")))
        except (InvalidOperation, ValueError):
            return self._refund_errors(call, [(["transactions", "0", "amount"],
                                               "Amount is invalid")])
        parent = next((t for t in order.transactions if t.id == tx.get("parentId")
                       and t.kind in ("SALE", "CAPTURE") and t.status == "SUCCESS"), None)
        if parent is None:
            return self._refund_errors(call, [(["transactions", "0", "parentId"],
                                               "Parent transaction does not exist")])
        left = parent.amount - order.refunded_from(parent.id)
        if not amount.is_finite() or amount <= 0:
            return self._refund_errors(call, [(["transactions", "0", "amount"],
                                               "Amount must be greater than 0")])
        if amount > left:
            return self._refund_errors(call, [(
                ["transactions", "0", "amount"],
                f"Refund amount £{amount:.2f} is greater than net payment received "
                f"£{left:.2f}")])
        refund = self._refund(order, amount, str(refund_input.get("note") or ""), parent, key)
        if key:
            self._by_key[key] = (refund.id, refund_input)
        call.refund_id = refund.id
        return self._refund_payload(refund, order)

    def _refund_errors(self, call: ShopifyCall,
                       errors: list[tuple[list[str], str]]) -> dict[str, Any]:
        # RefundCreatePayload.userErrors is [UserError!]!: field and message, no code
        call.user_errors = [message for _, message in errors]
        return {"refund": None, "order": None,
                "userErrors": [{"field": f, "message": m} for f, m in errors]}

    def _refund_payload(self, refund: SandboxRefund, order: SandboxOrder) -> dict[str, Any]:
        return {"refund": self._refund_json(refund, order.currency),
                "order": self._order_json(order), "userErrors": []}

    def _store_credit(self, call: ShopifyCall, args: dict[str, Any]) -> dict[str, Any]:
        owner_id = str(args["id"])
        credit_input = args["creditInput"]
        money = credit_input["creditAmount"]
        currency = str(money["currencyCode"])

        def refuse(field_path: list[str], message: str, code: str) -> dict[str, Any]:
            call.user_errors = [message]
            return {"storeCreditAccountTransaction": None,
                    "userErrors": [_user_error(field_path, message, code)]}

        account = self.store_credit_accounts.get(owner_id)
        if account is None:
            if "/StoreCreditAccount/" in owner_id:
                return refuse(["id"], "Store credit account does not exist", "ACCOUNT_NOT_FOUND")
            if owner_id not in self.customers:
                return refuse(["id"], "Owner does not exist", "OWNER_NOT_FOUND")
        elif account.currency != currency:
            return refuse(["creditInput", "creditAmount", "currencyCode"],
                          "The currency provided does not match the currency of the store "
                          "credit account", "MISMATCHING_CURRENCY")
        try:
            amount = Decimal(str(money["amount"]))
        except (InvalidOperation, ValueError):
            amount = Decimal(0)
        if not amount.is_finite() or amount <= 0:
            return refuse(["creditInput", "creditAmount", "amount"],
                          "A positive amount must be used to credit a store credit account",
                          "NEGATIVE_OR_ZERO_AMOUNT")
        if account is None:
            account = next((a for a in self.store_credit_accounts.values()
                            if a.customer_id == owner_id and a.currency == currency), None)
        balance = account.balance if account else Decimal("0.00")
        if self.store_credit_limit is not None and balance + amount > self.store_credit_limit:
            return refuse(["creditInput", "creditAmount", "amount"],
                          "The operation would cause the account's credit limit to be "
                          "exceeded", "CREDIT_LIMIT_EXCEEDED")
        if account is None:
            account = SandboxStoreCreditAccount(self._next_id("StoreCreditAccount"),
                                                owner_id, currency)
            self.store_credit_accounts[account.id] = account
        account.balance += amount
        credit = SandboxStoreCredit(self._next_id("StoreCreditAccountCreditTransaction"),
                                    account.id, account.customer_id, amount, currency,
                                    account.balance)
        self.store_credits.append(credit)
        return {"storeCreditAccountTransaction": {
            "id": credit.id, "amount": _money_v2(amount, currency),
            "balanceAfterTransaction": _money_v2(credit.balance_after, currency),
            "remainingAmount": _money_v2(amount, currency), "createdAt": credit.created_at,
            "expiresAt": credit_input.get("expiresAt"),
            "account": {"id": account.id, "balance": _money_v2(account.balance, currency)}},
            "userErrors": []}

    def _gift_card_create(self, call: ShopifyCall, card_input: dict[str, Any]) -> dict[str, Any]:
        def refuse(field_path: list[str], message: str, code: str) -> dict[str, Any]:
            call.user_errors = [message]
            return {"giftCard": None, "giftCardCode": None,
                    "userErrors": [_user_error(field_path, message, code)]}

        try:
            amount = Decimal(str(card_input["initialValue"]))
        except (InvalidOperation, ValueError):
            return refuse(["input", "initialValue"], "Initial value is invalid", "INVALID")
        if not amount.is_finite() or amount <= 0:
            return refuse(["input", "initialValue"], "Initial value must be greater than 0",
                          "GREATER_THAN")
        customer_id = str(card_input.get("customerId") or "")
        if customer_id and customer_id not in self.customers:
            return refuse(["input", "customerId"], "Customer does not exist", "INVALID")
        code = secrets.token_hex(8)
        card = SandboxGiftCard(self._next_id("GiftCard"), code, amount, self.shop_currency,
                               str(card_input.get("note") or ""), customer_id)
        self.gift_cards.append(card)
        return {"giftCard": self._gift_card_json(card), "giftCardCode": code,
                "userErrors": []}

    def _metafields_set(self, call: ShopifyCall,
                        metafields: list[dict[str, Any]]) -> dict[str, Any]:
        errors = []
        for i, m in enumerate(metafields):
            if m["ownerId"] not in self.customers:
                errors.append(_user_error(["metafields", str(i), "ownerId"],
                                          "Owner does not exist (this sandbox keeps "
                                          "metafields on customers only)", "INVALID_VALUE"))
            elif m.get("type") == "json":
                try:
                    json.loads(m["value"])
                except ValueError:
                    errors.append(_user_error(["metafields", str(i), "value"],
                                              "Value is invalid JSON", "INVALID_VALUE"))
        if errors:  # metafieldsSet is atomic: all or nothing
            call.user_errors = [e["message"] for e in errors]
            return {"metafields": None, "userErrors": errors}
        out = []
        for m in metafields:
            customer = self.customers[m["ownerId"]]
            stored = {"id": self._next_id("Metafield"), "namespace": m["namespace"],
                      "key": m["key"], "value": m["value"], "type": m.get("type") or "",
                      "createdAt": _now(), "updatedAt": _now()}
            customer.metafields[(m["namespace"], m["key"])] = stored
            out.append(dict(stored))
        return {"metafields": out, "userErrors": []}


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _idempotency_key(node: FieldNode, variables: dict[str, Any]) -> str:
    for directive in node.directives or ():
        if directive.name.value == "idempotent":
            for arg in directive.arguments or ():
                if arg.name.value == "key":
                    value = value_from_ast(arg.value, GraphQLString, variables)
                    return str(value) if isinstance(value, str) else ""
    return ""


def _variable_error(error: GraphQLError) -> dict[str, Any]:
    out = error.formatted
    out["extensions"] = {**(out.get("extensions") or {}), "code": "INVALID_VARIABLE"}
    return dict(out)
