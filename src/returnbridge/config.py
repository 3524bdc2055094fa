"""Configuration (ARCHITECTURE 8, 8.1): one TOML file plus ``RB_`` environment overrides.

Precedence, highest first: environment (``RB_SECTION__KEY``), the TOML file, defaults.
The file is ``--config PATH``, else ``$RB_CONFIG``, else ``./returnbridge.toml`` if present.
Every field's description is user documentation: ``returnbridge init`` writes it as
comments and ``docs/configuration.md`` is generated from it (a test keeps them equal).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from returnbridge.domain.exceptions import CATALOGUE
from returnbridge.domain.policy import DefaultReason
from returnbridge.domain.reasons import Processing, ReasonRule
from returnbridge.returns_platform import Registry, platform_name

DEFAULT_CONFIG_FILE = "returnbridge.toml"
CONFIG_ENV = "RB_CONFIG"
DISPOSITIONS = ("restock", "resale_hold", "write_off", "recycle", "donate", "missing", "unknown")


FILE_SUFFIX = "_file"


def _secret_field(model: type[BaseModel], name: str) -> bool:
    """Whether ``name`` may be read from a file: secrets, lists of secrets, database URLs."""
    info = model.model_fields.get(name)
    if info is None:
        return False
    return "SecretStr" in repr(info.annotation) or name in getattr(model, "_FILE_KEYS", ())


def _read_secret_file(key: str, path: Any, as_list: bool) -> Any:
    try:
        text = Path(str(path)).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{key} = {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if as_list:  # one secret per line; blank lines and # comments ignored
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return text.strip("\r\n")


class Section(BaseModel):
    """A configuration section. Every secret key ``x`` may instead be given as ``x_file``: a
    path whose content is the value (Docker and Kubernetes secrets); for a list of secrets,
    one per line."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in [k for k in data if isinstance(k, str) and k.endswith(FILE_SUFFIX)]:
            name = key[: -len(FILE_SUFFIX)]
            if not _secret_field(cls, name):
                continue  # left in place: "not a known setting"
            path = data.pop(key)
            if path in ("", None):
                continue
            if data.get(name) not in (None, "", []):
                raise ValueError(f"{name} and {key} are both set; keep one")
            as_list = "list" in repr(cls.model_fields[name].annotation)
            data[name] = _read_secret_file(key, path, as_list)
        return data


class DatabaseSettings(Section):
    _FILE_KEYS: ClassVar[tuple[str, ...]] = ("url", "system_url")  # may carry a password
    url: str = Field(
        "sqlite:///returnbridge.db",
        description="Where returnbridge keeps its data. SQLite (a file, WAL mode) by default; "
        "PostgreSQL for several processes: postgresql+psycopg://user:password@host/db.",
    )
    system_url: str = Field(
        "",
        description="Database for durable workflow state (DBOS). Empty: a file beside the "
        "SQLite database, or the same PostgreSQL database (schema 'dbos').",
    )


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="The address Loop, ZigZag and Khaos use to reach this service; written "
        "into the Khaos channel configuration file. Use https in production.",
    )
    executor_id: str = Field(
        "local",
        description="Name of this process for durable workflows. Give every serve/worker "
        "process sharing one database its own stable name; a restarted process resumes the "
        "unfinished work of the process with the same name.",
    )
    workflow_concurrency: int = Field(
        16, ge=1, le=256,
        description="Most event workflows queued by an earlier version this process runs at "
        "once while it finishes them after an upgrade (DBOS queue worker concurrency).",
    )
    queue_poll_seconds: float = Field(
        3.0, gt=0, le=10,
        description="How often this process looks for queued durable work (scheduled jobs, "
        "refunds, Khaos SOAP calls), in seconds. Lower reacts faster and costs idle CPU.",
    )
    worker_mode: Literal["auto", "process", "thread"] = Field(
        "auto",
        description="Where 'serve' runs the event worker, scheduled jobs and durable queues. "
        "process: a child process (restarted if it dies, stopped with serve), so webhook "
        "answers never wait for the interpreter lock of a batch; about 100 MB more memory. "
        "thread: threads of the serve process. auto: process on PostgreSQL, thread on "
        "SQLite (one writer at a time: a second process only queues for the write lock).")
    event_batch_size: int = Field(
        100, ge=1, le=1000,
        description="Most stored events the worker applies in one transaction. Events of one "
        "return are always applied in the order they arrived.",
    )
    event_poll_seconds: float = Field(
        2.0, gt=0, le=60,
        description="How often an idle worker looks for stored events it was not told about "
        "(events stored by this process wake it at once; on PostgreSQL other processes "
        "notify it).",
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest webhook body accepted (/webhooks/*), in "
        "bytes. Larger bodies get 413 before they are read. Khaos pushes have their own "
        "limit, [khaos].max_push_bytes.")
    max_api_body_bytes: int = Field(
        65_536, ge=1024, description="Largest body accepted on every other route "
        "(/api/v1 and the rest), in bytes.")
    body_read_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="Longest wait for the next piece of a request "
        "body; a client that stops sending gets 408 and its connection is closed.")
    body_read_deadline_seconds: float = Field(
        600.0, gt=0, le=86400, description="Longest time a whole request body may take to "
        "arrive (large Khaos stock uploads over slow links need minutes).")
    access_log: bool = Field(
        True, description="One log line per HTTP request (uvicorn's access log). Turn it off "
        "behind a reverse proxy that logs requests itself: under a burst of webhooks it costs "
        "about a tenth of the request thread. Lines are written together every quarter "
        "second; a killed process loses at most that much.")
    timeout_keep_alive_seconds: int = Field(
        5, ge=1, le=600, description="Idle keep-alive connections are closed after this many "
        "seconds (uvicorn timeout_keep_alive).")
    limit_concurrency: int = Field(
        200, ge=1, le=100_000, description="Most connections and requests handled at once; "
        "beyond it the server answers 503 at once (uvicorn limit_concurrency). Put a reverse "
        "proxy with its own limits in front (docs/operations.md).")
    api_docs: bool = Field(
        False, description="Serve the interactive API documentation at /api/docs and "
        "/api/openapi.json (public when on). Off by default.")


class ApiSettings(Section):
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Shared bearer tokens accepted on /api/v1 with the admin scope (operators "
        "and scripts). Prefer named tokens with a scope: 'returnbridge tokens create'. Empty "
        "and no named tokens: the API refuses every request.",
    )
    metrics_token: SecretStr = Field(
        SecretStr(""), description="Bearer token required on /metrics. Empty: /metrics "
        "answers 403 unless metrics_public is true."
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without a token (only on a private network). "
        "Ignored when metrics_token is set.")


class ConsoleSettings(Section):
    idle_timeout_minutes: int = Field(
        30, ge=1, le=24 * 60,
        description="A console session that has done nothing for this long is signed out.",
    )
    session_max_hours: int = Field(
        12, ge=1, le=24 * 14,
        description="A console session ends this long after sign-in, active or not.",
    )
    secure_cookies: str = Field(
        "auto",
        description="'auto': mark the session cookie Secure when the request arrived over "
        "https (directly or X-Forwarded-Proto from your TLS proxy); 'always'; 'never' (local "
        "testing over plain http only).",
    )
    login_attempts: int = Field(
        5, ge=1, le=100,
        description="Failed sign-ins allowed per user name (and per client address) in "
        "login_window_minutes before further attempts are refused.",
    )
    login_window_minutes: int = Field(
        15, ge=1, le=24 * 60, description="The window for login_attempts, in minutes."
    )

    @field_validator("secure_cookies")
    @classmethod
    def _known_secure(cls, value: str) -> str:
        if value not in ("auto", "always", "never"):
            raise ValueError("must be 'auto', 'always' or 'never'")
        return value


class KhaosSettings(Section):
    channel_username: str = Field(
        "", description="HTTP Basic user name Khaos uses on every /khaos/* route."
    )
    channel_password: SecretStr = Field(
        SecretStr(""), description="HTTP Basic password Khaos uses on every /khaos/* route."
    )
    format: Literal["JSON", "XML"] = Field(
        "JSON", description="Format of the documents exchanged with Khaos: JSON or XML."
    )
    poll_frequency_minutes: int = Field(
        15, ge=1, le=1440, description="How often Khaos should fetch returns, in minutes."
    )
    page_size: int = Field(
        100, ge=1, le=1000, description="Most returns handed to Khaos in one poll."
    )
    unit_price: Literal["Gross", "Net"] = Field(
        "Gross", description="Whether UnitPrice carries Gross or Net values (one per install)."
    )
    sku_mapping: Literal["StockCode", "OtherRef", "Barcode", "WebCode", "Automatic"] = Field(
        "StockCode", description="Khaos MappingType used to match returned SKUs."
    )
    soap_url: str = Field(
        "", description="Desktop Khaos SOAP endpoint; empty disables the SOAP features."
    )
    soap_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout of each desktop Khaos SOAP call, in seconds."
    )
    soap_calls_per_minute: int = Field(
        60, ge=1, le=6000,
        description="Most SOAP calls returnbridge makes to desktop Khaos per minute (all "
        "processes together, retries included), so that peaks never flood the ERP.",
    )
    soap_concurrency: int = Field(
        2, ge=1, le=50, description="Most SOAP calls in flight at once (all processes)."
    )
    soap_refs_per_call: int = Field(
        50, ge=1, le=500,
        description="AssociatedRefs asked for in one ExportOrderStatusEx call by the "
        "confirmation sweep.",
    )
    confirm_sweep_minutes: int = Field(
        15, ge=1, le=1440,
        description="How often served and imported returns are checked for their credit "
        "note (SOAP sweep, order-status pushes) and against the confirmation SLA.",
    )
    credit_confirm_sla_hours: float = Field(
        48.0, gt=0, le=24 * 90,
        description="Hours a served return may wait for confirmation that Khaos imported it "
        "before 'khaos_import_unconfirmed' opens.",
    )
    cleared_credit_note_stages: list[str] = Field(
        default_factory=lambda: ["16", "70", "71", "72", "73", "Issue", "Issue invoices",
                                 "Issued", "Issued - current", "Issued - archived",
                                 "Archived", "Complete"],
        description="Credit-note stages that count as cleared (matched against the stage "
        "ID or its description, ignoring case). Only a cleared credit note confirms a "
        "return ('credit_confirmed') and releases its refund; one seen at another stage (e.g. "
        "20 Processing) is recorded and waited for. A confirmation that carries no stage "
        "(operator, credit-note file) counts as cleared.",
    )
    credit_note_sla_hours: float = Field(
        72.0, gt=0, le=24 * 90,
        description="Hours a return may stay imported in Khaos without a cleared credit "
        "note before 'credit_note_missing' opens (someone has to process the return in "
        "Khaos, or the credit note is stuck at a stage that does not count as cleared).",
    )
    timezone: str = Field(
        "Europe/London",
        description="Time zone of the Khaos system; dates sent to Khaos carry no offset, "
        "so they are written in this zone.",
    )
    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    match_address_on: list[str] = Field(
        default_factory=lambda: ["Address1", "Postcode"],
        description="Config.MatchAddressOn sent with each CustomerReturnImport.",
    )
    match_contact_on: list[str] = Field(
        default_factory=lambda: ["Surname"],
        description="Config.MatchContactOn sent with each CustomerReturnImport.",
    )
    brand_id: str = Field(
        "", description="Khaos Brand ID sent on each served return (System Data > Brands); "
        "empty sends none. Khaos matches Brand by ID or Name, not by Code.",
    )
    sales_source_id: str = Field(
        "", description="Khaos Sales Source ID sent on each served return; empty sends none.",
    )
    source_order_ref_format: str = Field(
        "", description="How the original order's AssociatedRef in Khaos is built from the "
        "shop order reference, e.g. \"{order_ref}\" or \"{order_ref}SPY\" (your order "
        "channel's Order Ref format). Empty: each returned line names its original order only "
        "when the Khaos order code is known (SOrderCode).",
    )
    currency: str = Field(
        "GBP", min_length=3, max_length=3,
        description="ISO currency code of the Khaos account the returns go to. A return in "
        "another currency is held as currency_mismatch (Khaos documents carry plain "
        "numbers, so a USD return would otherwise be booked as pounds).",
    )

    @field_validator("currency")
    @classmethod
    def _upper_currency(cls, value: str) -> str:
        return value.strip().upper()

    max_push_bytes: int = Field(
        100_000_000, ge=1024,
        description="Largest body accepted on the Khaos push routes (/khaos/stock, "
        "/khaos/stock-status, /khaos/order-status), in bytes. A first StockUpload of a large "
        "catalogue can be tens of megabytes.",
    )


class ReasonMappingEntry(Section):
    source: str = Field("*", description="A returns platform's name (its settings section, "
                        "e.g. 'loop', 'zigzag'), or '*' for any.")
    reason: str = Field("*", description="Source reason text, case-insensitive glob.")
    condition: str = Field("*", description="Source condition or grade, glob.")
    disposition: str = Field("*", description="Canonical disposition or '*'.")
    khaos_reason_id: str = Field(
        ..., min_length=1, description="ID of the Khaos return reason to use."
    )
    processing: Processing = Field(
        ..., description="What that Khaos reason does: restock, write_off or no_stock."
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value != "*":
            try:
                platform_name(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a returns platform's name; use one "
                                 "(e.g. 'loop', 'zigzag') or '*'") from None
        return value

    @field_validator("disposition")
    @classmethod
    def _known_disposition(cls, value: str) -> str:
        if value != "*" and value not in DISPOSITIONS and not any(c in value for c in "*?["):
            raise ValueError(f"must be '*' or one of {', '.join(DISPOSITIONS)}")
        return value

    def rule(self) -> ReasonRule:
        return ReasonRule(
            source=self.source,
            reason=self.reason,
            disposition=self.disposition,
            condition=self.condition,
            khaos_reason_id=self.khaos_reason_id,
            processing=self.processing,
        )


class DefaultReasonEntry(Section):
    disposition: str = Field(..., description="Canonical disposition, or '*' for any.")
    khaos_reason_id: str = Field(..., min_length=1, description="Khaos return reason ID.")
    processing: Processing = Field(..., description="What that Khaos reason does.")

    @field_validator("disposition")
    @classmethod
    def _known_disposition(cls, value: str) -> str:
        if value != "*" and value not in DISPOSITIONS:
            raise ValueError(f"must be '*' or one of {', '.join(DISPOSITIONS)}")
        return value


class SkuMappingEntry(Section):
    """A Khaos StockCode for a shop variant that has no SKU (or a wrong one)."""

    variant_id: str = Field("", description="Shopify variant id as the source sends it.")
    barcode: str = Field("", description="The variant's barcode as the source sends it.")
    stock_code: str = Field(..., min_length=1, description="Khaos StockCode to send.")

    @model_validator(mode="after")
    def _needs_a_key(self) -> SkuMappingEntry:
        if not (self.variant_id.strip() or self.barcode.strip()):
            raise ValueError("a [[mapping.skus]] entry needs variant_id or barcode")
        return self


class MappingSettings(Section):
    skus: list[SkuMappingEntry] = Field(
        default_factory=list,
        description="Khaos StockCodes for returned or exchange items that come without a "
        "SKU (Shopify variants with no SKU send \"sku\": \"\"), [[mapping.skus]] tables "
        "keyed by variant_id or barcode. Checked before the Khaos catalogue's barcodes.",
    )
    reasons: list[ReasonMappingEntry] = Field(
        default_factory=list,
        description="Return reason mapping, [[mapping.reasons]] tables; first match wins.",
    )
    defaults: list[DefaultReasonEntry] = Field(
        default_factory=list,
        description="Per-disposition defaults, [[mapping.defaults]] tables, used when no "
        "[[mapping.reasons]] entry matches.",
    )

    def rules(self) -> tuple[ReasonRule, ...]:
        return tuple(entry.rule() for entry in self.reasons)

    def default_reasons(self) -> tuple[DefaultReason, ...]:
        return tuple(DefaultReason(d.disposition, d.khaos_reason_id, d.processing)
                     for d in self.defaults)


class ShopifySettings(Section):
    """Shopify Admin API, used by the refund gate (ARCHITECTURE 5.5)."""

    shop_domain: str = Field(
        "", description="Your shop's myshopify.com domain; empty disables Shopify refunds."
    )
    admin_token: SecretStr = Field(
        SecretStr(""), description="Admin API access token with read_orders and write_orders."
    )
    base_url: str = Field(
        "", description="Override the Admin API base URL (sandbox or proxy); empty: "
        "https://{shop_domain}/admin/api/{api_version}.",
    )
    refund_gate_seconds: float = Field(
        30.0, ge=1, description="How often credit-confirmed returns whose refund "
        "returnbridge owns are handed to the refund gate, in seconds.",
    )
    api_version: str = Field(
        "2026-04", description="Admin API version to call. refundCreate's @idempotent "
        "key needs 2026-01 or later.")
    timeout_seconds: float = Field(
        15.0, gt=0, description="Timeout for each Shopify API call, in seconds."
    )
    max_attempts: int = Field(
        5, ge=1, le=20, description="Attempts per Shopify call when throttled or on 5xx "
        "and timeouts (backoff from the returned throttle status or Retry-After).")
    calls_per_minute: int = Field(
        600, ge=1, le=100_000,
        description="Most requests returnbridge sends to the Shopify Admin API per minute, "
        "all processes together and retries included. Shopify limits by query cost, not "
        "requests: the Standard plan's bucket (2,000 points, 100 restored a second) admits "
        "about 800 queries of 10 points a minute, so the default keeps a quarter in hand "
        "for costlier queries; raise it on Shopify Plus (10 times the restore rate).")
    notify_customer: bool = Field(
        False, description="Ask Shopify to e-mail the customer about each refund.")


class PolicySettings(Section):
    """Posting policy knobs (ARCHITECTURE 6) that are not per-source."""

    tolerance: Decimal = Field(
        Decimal("0.01"), ge=0, description="Largest per-return money difference accepted "
        "without a tax_drift / amount_mismatch exception, in the return's currency. "
        "Differences up to it are allocated across lines to the penny.",
    )
    release_on_khaos: Literal["decided", "closed"] = Field(
        "decided", description="For sources whose goods_in_owner is 'khaos': release once "
        "the outcome is decided (not in review, not cancelled), or only once the source "
        "closed the return. ProcessReturn is false; the warehouse processes it in Khaos.",
    )
    release_on_returns_platform: Literal["graded", "received"] = Field(
        "graded", description="For sources whose goods_in_owner is 'returns_platform': "
        "release the units once received and graded, or once received. ProcessReturn is "
        "true and only units that arrived are credited; the rest stay open.",
    )
    keep_item_reason_id: str = Field(
        "", description="Khaos return reason (processing type: no stock movement) for "
        "keep-item lines. Empty: keep-item lines use [[mapping.reasons]], and a rule that "
        "would restock them holds the return.",
    )
    shipping_refund_sku: str = Field(
        "", description="Non-stock Khaos item for refunded shipping. Empty: shipping refunds "
        "are not on the Khaos document and are reconciled as their own category.",
    )
    handling_fee_sku: str = Field(
        "", description="Non-stock Khaos item for handling fees (sent with a negative "
        "price). Empty: fees are reconciled as their own category.",
    )
    non_stock_reason_id: str = Field(
        "", description="Khaos return reason used on shipping refund / handling fee lines.",
    )
    exchange_site_id: str = Field(
        "", description="Khaos SiteID whose Available stock must cover exchange items. "
        "Empty: the sum over all sites.",
    )
    stock_stale_hours: float = Field(
        24.0, gt=0, description="Stock levels older than this are not trusted for the "
        "exchange stock check (the exchange is held as exchange_out_of_stock).",
    )
    allow_non_stock_controlled_exchanges: bool = Field(
        False, description="Allow exchange items that are not stock controlled in Khaos.",
    )
    fallback_address_line1: str = Field(
        "", description="InvoiceAddress sent when the source gives no address for the "
        "customer (ZigZag's default events carry none): first line. Use the address of the "
        "fallback customer account. Empty: such returns are held as unknown_customer.",
    )
    fallback_address_town: str = Field("", description="Fallback InvoiceAddress: town.")
    fallback_address_postcode: str = Field(
        "", description="Fallback InvoiceAddress: postcode.")
    fallback_address_country_code: str = Field(
        "GB", description="Fallback InvoiceAddress: ISO country code.")
    fallback_contact_forename: str = Field(
        "", description="InvoiceContact Forename sent when the source gives no customer "
        "name (and Loop's return details have none). Khaos needs a Forename or Surname.",
    )
    fallback_contact_surname: str = Field(
        "", description="InvoiceContact Surname sent when the source gives no customer "
        "name. Empty (with an empty forename): such returns are held as unknown_customer, "
        "never served without a contact name.",
    )
    vat_rates: list[Decimal] = Field(
        default_factory=lambda: [Decimal("0"), Decimal("0.05"), Decimal("0.20")],
        description="VAT rates a returned line may carry (fractions: 0.20 is 20%). A line "
        "whose tax implies another rate raises tax_drift. Empty: no check.",
    )
    vat_rate_tolerance: Decimal = Field(
        Decimal("0.01"), ge=0, description="Penny rounding allowed per unit when checking a "
        "line's tax against the VAT rates, in the return's currency.",
    )
    validate_catalogue: Literal["auto", "always", "never"] = Field(
        "auto", description="Check SKUs and exchange items against the Khaos stock mirror: "
        "'auto' once Khaos has pushed at least one stock item, 'always' (an empty mirror "
        "holds everything), or 'never'.",
    )


class ReconciliationSettings(Section):
    """Three-way reconciliation (issue #13): the continuous check and the month-end pack."""

    interval_hours: float = Field(
        24.0, ge=0, description="How often the continuous reconciliation runs (hours; 0 "
        "turns the schedule off; 'returnbridge reconcile --continuous' runs it on demand).",
    )
    months_checked: int = Field(
        2, ge=1, le=12, description="How many months (this one and the ones before) the "
        "continuous check looks at; gaps in older months stay as they are.",
    )
    ignore_categories: list[str] = Field(
        default_factory=list, description="Difference categories the continuous check does "
        "not raise as exceptions (they are still in the month-end pack), e.g. [\"rounding\"].",
    )
    credit_note_clear_days: int = Field(
        7, ge=0, description="Days after the platform processed or closed a return by which "
        "its Khaos credit note must be cleared (else credit_note_not_cleared).",
    )
    stage_age_hours: dict[str, float] = Field(
        default_factory=lambda: {"pending": 48.0, "ready": 6.0, "served": 24.0,
                                 "imported": 336.0, "received_not_graded": 72.0,
                                 "refund_held": 48.0},
        description="Largest age per stage before a return counts as stuck (return_stuck, "
        "routed to the stage's owning team: pending/ready/served ops, imported and "
        "received_not_graded warehouse, refund_held finance). 0 turns a stage off.",
    )
    out_dir: str = Field(
        "reconciliation", description="Where the month-end pack is written (and served "
        "from by /api/v1/reconciliation/files).",
    )
    read_shopify_orders: bool = Field(
        True, description="Read each returned order's refunds from Shopify (refunds made "
        "by hand included) when Shopify is configured.",
    )


class AuditSettings(Section):
    hmac_key: SecretStr = Field(
        SecretStr(""), description="Key sealing the audit log's anchor (HMAC-SHA256), so that "
        "editing an entry and recomputing the chain is detected by 'returnbridge audit-log "
        "verify'. At least 32 random characters (e.g. 'openssl rand -hex 32'); keep it out "
        "of the database's backups. Empty: edits are detected only if the chain was not "
        "recomputed.")


ALERT_OWNERS = ("cx", "warehouse", "finance", "ops", "*")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def url_secrets(urls: list[str]) -> list[str]:
    """The URLs and the secret parts in them (user, password, long path segments such as
    webhook tokens), for redaction."""
    found = list(urls)
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        found.extend(p for p in (parts.password or "", parts.username or "") if p)
        found.extend(seg for seg in parts.path.split("/") if len(seg) >= 12)
    return found


class AlertRoute(Section):
    name: str = Field(
        "", max_length=60,
        description="A short name for this route, used in the delivery record, logs and the "
        "alert_channel_failing exception. Default: '<owner>-<mode>-<position>'. Changing it "
        "makes returnbridge treat the route as new (open exceptions are alerted again).",
    )
    owner: str = Field(
        ..., description="Which team's exceptions go here: cx, warehouse, finance, ops, or "
        "'*' for every team.",
    )
    urls: list[SecretStr] = Field(
        default_factory=list,
        description="Apprise URLs (mailto://, mailtos://, slack://, msteams://, json://, ...; "
        "see docs/alerts.md). '${NAME}' is replaced by the environment variable NAME, so "
        "tokens and passwords need not be in the file.",
    )
    urls_env: str = Field(
        "", description="Name of an environment variable holding more Apprise URLs "
        "(separated by spaces, commas or new lines).",
    )
    mode: Literal["immediate", "digest"] = Field(
        "immediate", description="'immediate': one message per exception as soon as it is "
        "seen; 'digest': one message per period listing what opened in it.",
    )
    digest: Literal["hourly", "daily"] = Field(
        "hourly", description="Digest period (mode = 'digest'): 'hourly' (sent at the top of "
        "each hour) or 'daily' (sent at [alerts].digest_hour).",
    )
    min_severity: Literal["warning", "blocking"] = Field(
        "warning", description="Least severe exception this route takes: 'warning' (all) or "
        "'blocking' (only exceptions that stop a return).",
    )
    max_severity: Literal["warning", "blocking"] = Field(
        "blocking", description="Most severe exception this route takes: 'warning' makes a "
        "route for 'the rest', e.g. a digest beside an immediate route with min_severity = "
        "'blocking' for the same team.",
    )
    types: list[str] = Field(
        default_factory=list, description="Only these exception types (empty: every type).",
    )
    quiet_hours: str = Field(
        "", description="'HH:MM-HH:MM' in [alerts].timezone during which nothing is sent on "
        "this route (held until the quiet hours end). Empty: none.",
    )

    @field_validator("owner")
    @classmethod
    def _owner_known(cls, value: str) -> str:
        if value not in ALERT_OWNERS:
            raise ValueError(f"owner must be one of {', '.join(ALERT_OWNERS)}")
        return value

    @field_validator("types")
    @classmethod
    def _types_known(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in CATALOGUE]
        if unknown:
            raise ValueError(f"unknown exception type(s): {', '.join(unknown)}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_shape(cls, value: str) -> str:
        if value and not _QUIET.match(value.strip()):
            raise ValueError("quiet_hours must look like '22:00-07:00'")
        return value.strip()

    @model_validator(mode="after")
    def _severities_ordered(self) -> AlertRoute:
        if self.min_severity == "blocking" and self.max_severity == "warning":
            raise ValueError("min_severity 'blocking' with max_severity 'warning' takes nothing")
        return self

    def resolved_urls(self) -> list[str]:
        """The route's Apprise URLs with ``${NAME}`` expanded and ``urls_env`` added."""
        raw = [u.get_secret_value() for u in self.urls]
        if self.urls_env:
            extra = os.environ.get(self.urls_env, "")
            raw.extend(p for p in re.split(r"[\s,]+", extra) if p)
        return [_ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), u) for u in raw]


class AlertsSettings(Section):
    routes: list[AlertRoute] = Field(
        default_factory=list,
        description="Where each team's alerts go: one [[alerts.routes]] table per route "
        "(keys below and in docs/alerts.md). No routes: no alerts are sent.",
    )
    console_base_url: str = Field(
        "", description="Base address of the web console, for links in alerts "
        "('{console_base_url}/exceptions/{id}'). Empty: alerts link to the API at "
        "[server].public_base_url.",
    )
    interval_seconds: int = Field(
        60, ge=5, le=3600,
        description="How often the alert job looks for new exceptions and sends what is due "
        "(the most an immediate alert waits).",
    )
    timezone: str = Field(
        "Europe/London", description="Time zone for quiet hours and daily digests."
    )
    digest_hour: int = Field(
        8, ge=0, le=23, description="Hour of the day (in [alerts].timezone) daily digests go.",
    )
    realert_after_hours: list[float] = Field(
        default_factory=lambda: [24.0, 72.0],
        description="An exception still open this many hours after it was first seen is "
        "alerted again (once per threshold), on immediate routes.",
    )
    max_immediate_per_run: int = Field(
        20, ge=1, le=1000,
        description="Most single alerts one immediate route gets from one run; beyond that "
        "the new exceptions go as one summary message (so switching alerts on, or a burst "
        "of problems, does not send hundreds of e-mails).",
    )
    channel_failure_threshold: int = Field(
        3, ge=1, le=100,
        description="Failed delivery attempts in a row after which the route is reported as "
        "an alert_channel_failing exception for ops.",
    )
    connection_failure_threshold: int = Field(
        5, ge=1, le=1000,
        description="Failed calls in a row to the Loop API, Khaos SOAP, Shopify or ZigZag "
        "after which a connection_failing exception is opened for ops.",
    )
    connection_failure_minutes: int = Field(
        15, ge=1, le=10080,
        description="Minutes of failing calls (without a success) to one of those systems "
        "after which connection_failing is opened, however few the calls.",
    )
    max_retry_minutes: int = Field(
        30, ge=1, le=1440,
        description="Longest wait between two delivery attempts on a failing route "
        "(attempts back off from 30 seconds up to this).",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("routes")
    @classmethod
    def _names_unique(cls, value: list[AlertRoute]) -> list[AlertRoute]:
        names = [r.name for r in value if r.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"route names must be unique: {', '.join(dupes)}")
        return value

    def secret_values(self) -> list[str]:
        """Every expanded alert URL and the secret parts in it, for redaction."""
        return url_secrets([u for route in self.routes for u in route.resolved_urls()])

    def route_name(self, index: int) -> str:
        route = self.routes[index]
        return route.name or f"{route.owner.replace('*', 'all')}-{route.mode}-{index + 1}"


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written."
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="'json' for log shippers, 'console' for people, 'auto' picks "
        "console on a terminal and json otherwise.",
    )


class Settings(BaseSettings):
    """The core's configuration. The composition root (``returnbridge.composition``) extends
    it with one section per returns platform plugged in, and sets ``platforms``; a
    subclass must have a section, named as the platform, for each platform it lists."""

    model_config = SettingsConfigDict(
        env_prefix="RB_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )
    platforms: ClassVar[Registry] = Registry()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for platform in cls.platforms:
            field = cls.model_fields.get(platform.name)
            if field is None or field.annotation is not platform.settings_model:
                raise TypeError(f"{cls.__name__} lists the returns platform {platform.name!r} "
                                f"but has no [{platform.name}] section of type "
                                f"{platform.settings_model.__name__}")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    khaos: KhaosSettings = Field(default_factory=KhaosSettings)
    mapping: MappingSettings = Field(default_factory=MappingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    reconciliation: ReconciliationSettings = Field(default_factory=ReconciliationSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    @model_validator(mode="after")
    def _mapped_sources_exist(self) -> Settings:
        known = self.platforms.names()
        for i, entry in enumerate(self.mapping.reasons):
            if entry.source != "*" and known and entry.source not in known:
                raise ValueError(f"[[mapping.reasons]] #{i + 1}: source {entry.source!r} is "
                                 f"not a returns platform here (use {', '.join(known)} or '*')")
        return self

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction (non-empty, longest first)."""
        found: list[str] = []
        _collect_secrets(self, found)
        found.extend(p for p in (_url_password(self.database.url),
                                 _url_password(self.database.system_url)) if p)
        found.extend(self.alerts.secret_values())
        return sorted({s for s in found if s}, key=len, reverse=True)


def _collect_secrets(model: BaseModel, out: list[str]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, SecretStr):
                out.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                _collect_secrets(item, out)


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


class ConfigError(Exception):
    """The configuration could not be loaded; ``problems`` says why in plain words."""

    def __init__(self, problems: list[str], path: Path | None) -> None:
        where = f" in {path}" if path else ""
        super().__init__(f"configuration problems{where}:\n  " + "\n  ".join(problems))
        self.problems = problems
        self.path = path


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to read, or None for defaults and environment only."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


S = TypeVar("S", bound=Settings)


def load_settings_as(settings_class: type[S], path: str | os.PathLike[str] | None = None,
                     **overrides: Any) -> S:
    """Read the configuration into ``settings_class``; raise ``ConfigError`` with
    plain-language problems."""
    file = config_path(path)
    if file is not None and not file.exists():
        raise ConfigError([f"the configuration file {file} does not exist "
                           "(create one with 'returnbridge init')"], file)

    class _FileSettings(settings_class):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=file))
            return tuple(sources)

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc), file) from None
    except (ValueError, OSError) as exc:  # TOML syntax errors arrive as ValueError
        raise ConfigError([f"the file could not be read: {exc}"], file) from None
    return loaded


def describe_validation_error(exc: ValidationError) -> list[str]:
    """Pydantic's errors as one plain sentence each, never echoing a secret value."""
    problems: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = _display_key(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(f"{key} is not a known setting (check the spelling; "
                            "'returnbridge init' writes every key with its meaning)")
        elif kind == "missing":
            problems.append(f"{key} is required but not set")
        else:
            msg = err["msg"]
            secretish = any(w in key for w in ("secret", "password", "token", "api_key"))
            shown = "" if secretish or "input" not in err else f" (got {err['input']!r})"
            problems.append(f"{key}: {msg[0].lower() + msg[1:]}{shown}")
    return problems


def _display_key(loc: list[str]) -> str:
    if not loc:
        return "the configuration"
    section, *rest = loc
    parts = [f"[{section}]"]
    for p in rest:
        parts.append(f"[{p}]" if p.isdigit() else f".{p}")
    return "".join(parts)


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use a name like Europe/London)") from None
    return value

