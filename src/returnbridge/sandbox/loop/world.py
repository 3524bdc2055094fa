"""The Loop sandbox's returns, held in memory, and how they move.

Tests and the demo create returns and advance them (created -> label -> in transit ->
delivered -> graded / restock -> closed; exchanges, gift cards, keep item, cancel, processing
failures). Every change bumps ``updated_at`` and emits the webhooks Loop would send. Values
keep Loop's awkward types (ids int or string, money strings, "N/A" placeholders, timestamps
with and without zones).
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario, return_payload

LIST_STATES = ("open", "closed", "cancelled", "expired", "review")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _naive(moment: datetime) -> str:
    """Loop's zone-less spelling (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class SandboxReturn:
    id: int
    scenario: Scenario
    data: dict[str, Any]  # the return object as the webhook shows it (no topic/trigger)
    created_at: datetime
    updated_at: datetime
    notes: list[dict[str, Any]] = field(default_factory=list)
    delivered_at: datetime | None = None
    restocked: bool = False
    listed_as_is: bool = False  # imported from a real list element: served as it was

    @property
    def state(self) -> str:
        raw = str(self.data["state"]).casefold()
        return "review" if raw in ("needs review", "needs_review") else raw


class LoopWorld:
    def __init__(self, *, dispatcher: WebhookDispatcher | None = None,
                 clock: Callable[[], datetime] | None = None, first_id: int = 40001,
                 third_party_gift_cards: bool = True) -> None:
        self.dispatcher = dispatcher or WebhookDispatcher()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.returns: dict[int, SandboxReturn] = {}
        self.next_id = first_id
        self.third_party_gift_cards = third_party_gift_cards
        self.lock = threading.RLock()
        # (key, id) in order, per list filter, rebuilt after a change of either key: a page
        # of the list API costs its own size, not a sort of the whole world
        self._orders: dict[str, list[tuple[datetime, int]]] = {}

    def in_key_order(self, filter_by: str, after: tuple[datetime, int] | None,
                     start: datetime) -> list[tuple[datetime, int]]:
        """(key, id) of every return in ``filter_by`` (created_at or updated_at) order,
        from the first one past ``after`` (a cursor) or at ``start``. Call holding
        ``lock``; the list is the world's own, not to be changed."""
        order = self._orders.get(filter_by)
        if order is None:
            order = self._orders[filter_by] = sorted(
                (getattr(r, filter_by), r.id) for r in self.returns.values())
        if after is not None and after >= (start, -1):
            at = bisect.bisect_right(order, after)
        else:
            at = bisect.bisect_left(order, (start, -1))
        return order[at:]

    def _reordered(self) -> None:
        self._orders.clear()

    # --- creating and reading -----------------------------------------------------------

    def create(self, scenario: Scenario | None = None, *, at: datetime | None = None,
               order: int | None = None, notify: bool = True) -> int:
        scenario = scenario or Scenario("refund", ("TEE-BLK-M",))
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            when = at or self.clock()
            payload = return_payload(rid, scenario, order=order or 1000 + rid % 9000)
            payload.pop("topic")
            payload.pop("trigger")
            payload["created_at"] = _iso(when) if rid % 3 else when.isoformat()
            state = "cancelled" if scenario.outcome == "cancelled" else scenario.state
            payload["state"] = state
            ret = SandboxReturn(rid, scenario, payload, when, when)
            self.returns[rid] = ret
            self._reordered()
        if notify:
            self._emit_return(ret, "return.created")
        return rid

    def import_listed(self, element: dict[str, Any], *, at: datetime | None = None) -> int:
        """Serve a real list-API element (e.g. one published by a public integration) as it
        is from the list and details endpoints. Its id must be numeric."""
        with self.lock:
            rid = int(str(element["id"]))
            when = at or self.clock()
            skus = tuple(str(u.get("sku") or "") for u in element.get("line_items") or [])
            self.returns[rid] = SandboxReturn(
                rid, Scenario("refund", skus or ("",), state=str(element.get("state", ""))),
                copy.deepcopy(element), when, when, listed_as_is=True)
            self.next_id = max(self.next_id, rid + 1)
            self._reordered()
        return rid

    def get(self, rid: int | str) -> SandboxReturn:
        try:
            return self.returns[int(rid)]
        except (KeyError, ValueError):
            raise KeyError(f"no sandbox return {rid}") from None

    def webhook_view(self, ret: SandboxReturn, trigger: str) -> dict[str, Any]:
        body: dict[str, Any] = {"topic": "return", "trigger": trigger}
        body.update(copy.deepcopy(ret.data))
        if body["state"] == "review":
            body["state"] = "needs review"  # the webhook pages' spelling
        return body

    def list_view(self, ret: SandboxReturn) -> dict[str, Any]:
        """The element of GET /warehouse/return/list (L view): updated_at and outcome too."""
        if ret.listed_as_is:
            body = copy.deepcopy(ret.data)
            body.setdefault("updated_at", _iso(ret.updated_at))
            return body
        body = copy.deepcopy(ret.data)
        body.pop("shop_id", None)
        # The list view documents the customer's email only: no name, no address
        # (reference §3.1); it has the address's country instead.
        body.pop("customer_detail", None)
        address = body.pop("address", None)
        if isinstance(address, dict):
            body["origin_country"] = address.get("country", "")
            body["origin_country_code"] = address.get("country_code", "")
        body["updated_at"] = _iso(ret.updated_at)
        body["outcome"] = {"refund": "refund", "exchange": "exchange", "credit": "credit",
                           "keep_item": "refund", "cancelled": "refund"}[ret.scenario.outcome]
        return body

    def details_view(self, ret: SandboxReturn) -> dict[str, Any]:
        """GET /warehouse/return/details (R view). Loop's example types ``customer`` as
        <any>; the sandbox answers with the customer's name and address as the webhook
        carries them (``customer_detail``, ``address``) [I], so that a return first read
        from the list API can be completed."""
        body = self.list_view(ret)
        if ret.listed_as_is:
            return body  # what was published: no name to add
        body["created_at"] = _naive(ret.created_at)  # R's example has no zone
        for key in ("customer_detail", "address"):
            if key in ret.data:
                body[key] = copy.deepcopy(ret.data[key])
        return body

    def asn_rows(self, ret: SandboxReturn) -> list[dict[str, Any]]:
        d = ret.data
        rows = []
        for unit in d["line_items"]:
            rows.append({
                "id": d["id"], "return_line_item_id": unit["line_item_id"],
                "order_id": d["order_id"], "order_name": d["order_name"],
                "state": ret.state, "customer_email": d["customer"], "title": unit["title"],
                "purchase_price": unit["price"], "sku": unit["sku"], "barcode": unit["barcode"],
                "carrier": d["carrier"], "label_status": d["label_status"],
                "tracking_number": d["tracking_number"],
                "restock_status": "restocked" if ret.restocked else "N/A",
                "currency": d["currency"], "updated_at": _iso(ret.updated_at),
                "created_at": _iso(ret.created_at),
                "date_delivered": _naive(ret.delivered_at) if ret.delivered_at else None,
                "outcome": self.list_view(ret)["outcome"],
            })
        return rows

    # --- moving returns -------------------------------------------------------------------

    def _touch(self, ret: SandboxReturn) -> None:
        now = self.clock()
        if now > ret.updated_at:
            ret.updated_at = now
            self._reordered()
        ret.data["edited_at"] = _iso(ret.updated_at)

    def _emit_return(self, ret: SandboxReturn, trigger: str) -> None:
        self.dispatcher.emit(self.webhook_view(ret, trigger))

    def label(self, rid: int, status: str = "pre_transit") -> None:
        with self.lock:
            ret = self.get(rid)
            if ret.scenario.outcome == "keep_item":
                raise ValueError("a keep-item return has no label")
            d = ret.data
            first = d["label_status"] == "N/A"
            self._touch(ret)
            d["carrier"] = "Royal Mail"
            d["tracking_number"] = f"RM{ret.id:09d}GB"
            d["label_status"] = status
            d["label_updated_at"] = _iso(ret.updated_at)
            d["labels"] = [{"status": status, "updated_at": _iso(ret.updated_at),
                            "url": f"https://partner.loopreturns.com/label/{ret.id}",
                            "rate": 395, "carrier": "Royal Mail",
                            "tracking_number": d["tracking_number"],
                            "line_items": [u["line_item_id"] for u in d["line_items"]]}]
            if status == "delivered":
                ret.delivered_at = ret.updated_at
            label_event = {
                "topic": "label", "trigger": "label.created" if first else "label.updated",
                "shop_id": d["shop_id"], "id": d["id"], "order_id": d["order_id"],
                "provider_order_id": int(d["provider_order_id"]), "carrier": d["carrier"],
                "tracking_number": d["tracking_number"], "label_status": status,
                "label_updated_at": d["label_updated_at"], "shipment_id": str(ret.id * 3),
            }
        self.dispatcher.emit(label_event)
        self._emit_return(ret, "return.updated")

    def in_transit(self, rid: int) -> None:
        self.label(rid, "in_transit")

    def deliver(self, rid: int) -> None:
        self.label(rid, "delivered")

    def grade(self, rid: int, outcome: str = "back_to_stock", grade: str = "grade_a") -> None:
        with self.lock:
            ret = self.get(rid)
            self._touch(ret)
            inspected = _naive(ret.updated_at)
            for unit in ret.data["line_items"]:
                unit["condition"] = {"description": grade.replace("_", " ").title(),
                                     "condition_category": grade,
                                     "return_processor": "goods-in@example.co.uk",
                                     "note": None, "inspected_at": inspected, "images": []}
                unit["disposition"] = {"disposition_outcome": outcome,
                                       "return_processor": "goods-in@example.co.uk",
                                       "note": None, "inspected_at": inspected}
        self._emit_return(ret, "return.updated")

    def restock(self, rid: int) -> None:
        """restock.requested ("Restock = webhooks"): a list, or an object keyed by the
        Shopify line item id with string values, alternating by return id."""
        with self.lock:
            ret = self.get(rid)
            self._touch(ret)
            ret.restocked = True
            d = ret.data
            counts: dict[str, int] = {}
            for unit in d["line_items"]:
                counts[str(unit["variant_id"])] = counts.get(str(unit["variant_id"]), 0) + 1
            items = [{"location_id": 61000001, "variant_id": int(v),
                      "inventory_item_id": int(v) + 7, "available_adjustment": n,
                      "inventory_management": "shopify"} for v, n in counts.items()]
            restock_items: Any = items
            if ret.id % 2:
                restock_items = {str(900000 + ret.id + i): {k: str(v) for k, v in it.items()}
                                 for i, it in enumerate(items)}
            event = {"topic": "restock", "trigger": "restock.requested", "id": d["id"],
                     "order_id": d["order_id"], "provider_order_id": d["provider_order_id"],
                     "restock_items": restock_items}
        self.dispatcher.emit(event)

    def close(self, rid: int) -> None:
        """Process the return: outcomes fulfilled, refunds recorded, state closed."""
        with self.lock:
            ret = self.get(rid)
            if ret.state in ("closed", "cancelled"):
                raise ValueError(f"return {rid} is {ret.state}")
            self._touch(ret)
            d = ret.data
            d["state"] = "closed"
            refund = Decimal(d["refund"])
            if refund:
                d["refunds"] = [{"gateway": "shopify_payments",
                                 "amount": float(refund) if ret.id % 2 else d["refund"],
                                 "currency": d["currency"],
                                 "provider_refund_id": 880000000 + ret.id}]
            for ex in d["exchanges"]:
                ex["exchange_order_id"] = 5600000000 + ret.id
                ex["exchange_order_name"] = f"#EX{ret.id}"
            gift = Decimal(d["gift_card"])
            giftcard = None
            if gift and self.third_party_gift_cards:
                giftcard = {"topic": "giftcard", "trigger": "giftcard.requested",
                            "id": 70000 + ret.id, "total_credit_issued": d["gift_card"],
                            "gift_card_subtotal": d["gift_card"], "gift_card_tax": "0.00",
                            "gift_card_bonus_credit" if ret.id % 2 else "gift_card_bonus":
                            "0.00", "currency": d["currency"], "return_id": str(ret.id),
                            "email": d["customer"], "first_name": "Sam",
                            "last_name": f"Tester{ret.id}",
                            "external_order_id": int(d["provider_order_id"]),
                            "external_order_name": d["order_name"],
                            "external_order_number": int(d["order_number"])}
        if giftcard:
            self.dispatcher.emit(giftcard)
        self._emit_return(ret, "return.closed")

    def cancel(self, rid: int) -> None:
        with self.lock:
            ret = self.get(rid)
            self._touch(ret)
            ret.data["state"] = "cancelled"
        self._emit_return(ret, "return.updated")

    def expire(self, rid: int) -> None:
        with self.lock:
            ret = self.get(rid)
            self._touch(ret)
            ret.data["state"] = "expired"
        self._emit_return(ret, "return.updated")

    def flag(self, rid: int) -> None:
        with self.lock:
            ret = self.get(rid)
            self._touch(ret)
            ret.data["state"] = "review"
        self._emit_return(ret, "return.updated")

    def fail_processing(self, rid: int, message: str | None = "Insufficient funds") -> None:
        with self.lock:
            ret = self.get(rid)
            event = {"topic": "return.processing", "trigger": "return.processing.failed",
                     "return_id": ret.id, "return_state": ret.state, "message": message,
                     "source": "api"}
        self.dispatcher.emit(event)

    def add_note(self, rid: int, content: str) -> None:
        with self.lock:
            ret = self.get(rid)
            ret.notes.append({"id": len(ret.notes) + 1, "content": content,
                              "created_at": _naive(self.clock())})

    def lifecycle(self, rid: int) -> None:
        """Everything Loop would do for the return's scenario, to the end."""
        ret = self.get(rid)
        outcome = ret.scenario.outcome
        if outcome == "cancelled":
            if ret.state != "cancelled":
                self.cancel(rid)
            return
        if outcome != "keep_item":
            self.label(rid)
            self.in_transit(rid)
            self.deliver(rid)
            self.grade(rid)
            self.restock(rid)
        self.close(rid)

    STEPS = ("label", "in_transit", "deliver", "grade", "restock", "close", "cancel",
             "expire", "flag", "fail_processing", "lifecycle")

    def step(self, rid: int, name: str) -> None:
        if name not in self.STEPS:
            raise ValueError(f"unknown step {name!r}; one of {', '.join(self.STEPS)}")
        getattr(self, name)(rid)
