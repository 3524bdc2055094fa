"""The ``[zigzag]`` settings section: ZigZag's API, its webhook contract and its stock push.

Every field's description is user documentation (``returnbridge init``,
docs/configuration.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from returnbridge.config import DISPOSITIONS, Section
from returnbridge.domain.policy import GoodsInOwner

ZIGZAG_TRIGGERS = ("requested", "updated", "in_transit", "received", "inspected",
                   "refund_requested", "refund_issued", "cancelled", "ignore")

DEFAULT_ZIGZAG_EVENT_TYPES: dict[str, str] = {
    "ReturnCreated": "requested",
    "ReturnInTransit": "in_transit",
    "ReturnReceived": "received",
    "ReturnGraded": "inspected",
    "RefundRequested": "refund_requested",
    "RefundIssued": "refund_issued",
    "ReturnCancelled": "cancelled",
}

DEFAULT_ZIGZAG_DISPOSITIONS: dict[str, str] = {
    "Resellable": "restock",
    "Damaged": "write_off",
    "Faulty": "write_off",
    "Quarantine": "resale_hold",
    "Recycle": "recycle",
    "Donate": "donate",
    "Missing": "missing",
}


PATH_STEP = re.compile(r"^[^\[\]]*(\[\d*\])?$")


def check_path(value: str) -> str:
    if not all(PATH_STEP.match(step) for step in value.strip().split(".")):
        raise ValueError(f"{value!r} is not a dot path (like 'customer.email', 'items[]' "
                         "or 'lines[0].sku')")
    return value.strip()


class ZigZagFieldPaths(Section):
    """Where each fact sits in a ZigZag webhook body: dot paths (``customer.email``); the
    ``item_*`` paths are relative to one element of the ``items`` list."""

    event_id: str = Field("eventId", description="Unique id of the delivery's event; "
                          "deliveries without one are deduplicated on the body's SHA-256.")
    event_type: str = Field("eventType", description="The event's name (see event_types).")
    occurred_at: str = Field("occurredAt", description="When the event happened (ISO 8601).")
    retailer_code: str = Field("retailerCode", description="Your retailer code.")
    return_ref: str = Field("returnReference", description="ZigZag's return reference; "
                            "the AssociatedRef is associated_ref_prefix + this.")
    order_ref: str = Field("orderNumber", description="The original order number.")
    currency: str = Field("currency", description="ISO currency of the amounts.")
    customer_email: str = Field("customer.email", description="Customer e-mail address.")
    customer_first_name: str = Field("customer.firstName", description="Customer first name.")
    customer_last_name: str = Field("customer.lastName", description="Customer last name.")
    tracking_number: str = Field("trackingNumber", description="Parcel tracking number.")
    carrier: str = Field("carrier", description="Parcel carrier.")
    warehouse_dc_code: str = Field("warehouseDcCode", description="Receiving DC code.")
    items: str = Field("items[]", description="The list of returned items ('[]' marks a "
                       "list; a path without it is read as a list too).")
    item_id: str = Field("itemId", description="An item's line id within the return.")
    item_sku: str = Field("sku", description="An item's SKU.")
    item_quantity: str = Field("quantity", description="Units requested for return.")
    item_quantity_received: str = Field(
        "quantityReceived", description="Units that arrived, when ZigZag sends it "
        "separately; missing: a received/graded event's quantity is what arrived.")
    item_unit_price: str = Field("unitPrice", description="Price of one unit (see "
                                 "[zigzag.webhook].prices_include_tax).")
    item_unit_tax: str = Field("unitTax", description="Tax of one unit.")
    item_reason: str = Field("returnReason", description="The customer's return reason.")
    item_condition: str = Field("condition", description="Grade given at inspection.")
    item_disposition: str = Field("disposition", description="What happens to the unit "
                                  "(see dispositions).")
    item_received_at: str = Field("receivedAt", description="When the item arrived.")
    refund_amount: str = Field("refund.amount", description="Refund amount (refund events).")
    refund_method: str = Field("refund.method", description="Refund method.")
    refund_reference: str = Field("refund.reference", description="Refund reference at the "
                                  "payment provider, if ZigZag sends one.")

    @field_validator("*")
    @classmethod
    def _dot_path(cls, value: str) -> str:
        return check_path(value)


class ZigZagWebhookSettings(Section):
    """How ZigZag's webhook payloads map onto returnbridge (docs/zigzag.md)."""

    prices_include_tax: bool = Field(
        True, description="Whether item unit prices include the unit tax (gross).")
    fields: ZigZagFieldPaths = Field(default_factory=ZigZagFieldPaths)
    event_types: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ZIGZAG_EVENT_TYPES),
        description="Event name -> canonical trigger (requested, updated, in_transit, "
        "received, inspected, refund_requested, refund_issued, cancelled, ignore). Entries "
        "are added to the default contract's table; matching ignores case; names not listed "
        "are stored, not used.",
    )
    dispositions: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ZIGZAG_DISPOSITIONS),
        description="Disposition value -> canonical disposition (restock, resale_hold, "
        "write_off, recycle, donate, missing, unknown). Entries are added to the default "
        "table; matching ignores case; unknown values open an exception, never a guess.",
    )

    @field_validator("event_types")
    @classmethod
    def _known_triggers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, trigger in value.items():
            if trigger not in ZIGZAG_TRIGGERS:
                raise ValueError(f"{name} = {trigger!r}: must be one of "
                                 f"{', '.join(ZIGZAG_TRIGGERS)}")
        return value

    @field_validator("dispositions")
    @classmethod
    def _known_dispositions(cls, value: dict[str, str]) -> dict[str, str]:
        for name, disposition in value.items():
            if disposition not in DISPOSITIONS:
                raise ValueError(f"{name} = {disposition!r}: must be one of "
                                 f"{', '.join(DISPOSITIONS)}")
        return value


class ZigZagSettings(Section):
    base_url: str = Field("", description="ZigZag API base URL (from ZigZag onboarding), "
                          "e.g. https://api.returns.international.")
    username: str = Field("", description="ZigZag API user name for the token endpoint.")
    password: SecretStr = Field(SecretStr(""), description="ZigZag API password.")
    retailer_code: str = Field("", description="Your ZigZag retailer code.")
    token_path: str = Field(
        "/Return/api/v1/Account/Token",
        description="Token endpoint, relative to base_url (confirm with ZigZag: the public "
        "docs also name POST /token).")
    token_lifetime_seconds: int = Field(
        1800, ge=60, description="Token lifetime when the token response does not say "
        "(ZigZag documents 30 minutes).")
    token_renew_seconds: int = Field(
        120, ge=0, description="Renew the token this many seconds before it expires.")
    exchange_stocks_path: str = Field(
        "/Return/api/v1/ExchangeStocks/Update", description="Stock update endpoint (PUT).")
    non_returnable_path: str = Field(
        "/Return/api/v1/NonReturnableProducts",
        description="Non-returnable products endpoint (PUT).")
    timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout for each call to the ZigZag API.")
    max_attempts: int = Field(
        4, ge=1, le=10, description="Attempts per ZigZag API call on 429/5xx/timeouts "
        "(exponential backoff, Retry-After honoured).")
    webhook_secret_header: str = Field(
        "X-ZigZag-Secret", description="Header that carries the shared webhook secret."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="Shared secret ZigZag sends with each webhook."
    )
    webhook_username: str = Field(
        "", description="HTTP Basic user name ZigZag sends with each webhook; empty: "
        "no Basic auth. With both a secret and Basic configured, both must match.")
    webhook_password: SecretStr = Field(
        SecretStr(""), description="HTTP Basic password ZigZag sends with each webhook.")
    associated_ref_prefix: str = Field(
        "ZZ-", max_length=20, description="Prefix of the Khaos AssociatedRef for ZigZag returns."
    )
    goods_in_owner: GoodsInOwner = Field(
        GoodsInOwner.RETURNS_PLATFORM,
        description="Who books goods in for ZigZag returns (see [loop].goods_in_owner).",
    )
    refund_owner: Literal["platform", "returnbridge"] = Field(
        "returnbridge", description="Who pays the customer back: 'returnbridge' (the refund "
        "gate refunds through Shopify once the Khaos credit note is confirmed) or 'platform'.",
    )
    fallback_customer_urn: str = Field(
        "", description="Khaos customer URN used when a ZigZag customer cannot be matched."
    )
    store_credit_action: Literal["finance_task", "shopify_store_credit", "gift_card"] = Field(
        "finance_task",
        description="What the refund gate does when ZigZag asks for store credit (or a gift "
        "card) instead of money back: 'shopify_store_credit' credits the customer's Shopify "
        "store credit account, 'gift_card' issues a Shopify gift card to the customer, "
        "'finance_task' opens a finance_task exception naming the amount, the customer and "
        "the credit note for finance to settle by hand. Never a card refund.",
    )
    refund_without_request: bool = Field(
        False,
        description="Refund the confirmed credit note value to the original payment even "
        "when ZigZag sent no RefundRequested event. Only for retailers whose ZigZag contract "
        "has no refund event; otherwise a return without a refund request is not paid and "
        "shows 'waiting for the platform's refund decision'.",
    )
    warehouse_dc_codes: dict[str, str] = Field(
        default_factory=dict,
        description="Khaos SiteID -> ZigZag warehouseDcCode for the live-exchange stock "
        "push; sites not listed are not pushed. Empty: no stock push.")
    stock_push_skus: list[str] = Field(
        default_factory=list,
        description="SKUs whose stock is pushed to ZigZag. Empty: the SKUs ZigZag knows "
        "(those seen in ZigZag returns).")
    stock_push_batch_size: int = Field(
        40, ge=1, le=40, description="Most stock lines per ExchangeStocks/Update call.")
    stock_push_minutes: int = Field(
        15, ge=0, le=1440, description="How often changed stock levels are pushed to "
        "ZigZag, in minutes; 0 disables the push.")
    webhook: ZigZagWebhookSettings = Field(
        default_factory=ZigZagWebhookSettings,
        description="Payload mapping: [zigzag.webhook], [zigzag.webhook.fields], "
        "[zigzag.webhook.event_types], [zigzag.webhook.dispositions].")


def zigzag_settings(settings: BaseModel) -> ZigZagSettings:
    """The ``[zigzag]`` section of the whole configuration."""
    section = getattr(settings, "zigzag", None)
    if not isinstance(section, ZigZagSettings):
        raise LookupError("the configuration has no [zigzag] section")
    return section
