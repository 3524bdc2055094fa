"""Configuration (ARCHITECTURE 8, 8.1): one TOML file plus ``RB_`` environment overrides.

Precedence, highest first: environment (``RB_SECTION__KEY``), the TOML file, defaults.
The file is ``--config PATH``, else ``$RB_CONFIG``, else ``./returnbridge.toml`` if present.
Every field's description is user documentation: ``returnbridge init`` writes it as
comments and ``docs/configuration.md`` is generated from it (a test keeps them equal).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from returnbridge.domain.policy import GoodsInOwner
from returnbridge.domain.reasons import Processing, ReasonRule

DEFAULT_CONFIG_FILE = "returnbridge.toml"
CONFIG_ENV = "RB_CONFIG"
DISPOSITIONS = ("restock", "resale_hold", "write_off", "recycle", "donate", "missing", "unknown")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(_Section):
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


class ServerSettings(_Section):
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
        description="Most events this process applies at once (DBOS queue worker concurrency).",
    )
    queue_poll_seconds: float = Field(
        0.05, gt=0, le=10,
        description="How often this process looks for queued events to apply, in seconds.",
    )
    max_body_bytes: int = Field(
        5_000_000, ge=1024, description="Largest webhook or upload body accepted, in bytes."
    )


class ApiSettings(_Section):
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer tokens accepted on /api/v1 (operators and scripts). Empty: the "
        "API refuses every request.",
    )
    metrics_token: SecretStr = Field(
        SecretStr(""), description="Bearer token required on /metrics; empty: open."
    )


class LoopSettings(_Section):
    api_key: SecretStr = Field(
        SecretStr(""), description="Loop API key (Returns scope), sent as X-Authorization."
    )
    base_url: str = Field(
        "https://api.loopreturns.com/api/v1", description="Loop API base URL."
    )
    webhook_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Webhook secrets from Loop Admin > Developer Tools, one per webhook "
        "subscription. A delivery is accepted if its X-Loop-Signature matches any of them.",
    )
    associated_ref_prefix: str = Field(
        "LR-", max_length=20, description="Prefix of the Khaos AssociatedRef for Loop returns."
    )
    goods_in_owner: GoodsInOwner = Field(
        GoodsInOwner.KHAOS,
        description="Who books goods in: 'khaos' (the warehouse processes the return in "
        "Khaos) or 'returns_platform' (Loop's grading decides; returns go in processed).",
    )
    fallback_customer_urn: str = Field(
        "",
        description="Khaos customer URN used when a Loop customer cannot be matched. Empty: "
        "no fallback; unmatched customers raise an unknown_customer exception.",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout for each call to the Loop API."
    )


class ZigZagSettings(_Section):
    base_url: str = Field("", description="ZigZag API base URL (from ZigZag onboarding).")
    username: str = Field("", description="ZigZag API user name for the token endpoint.")
    password: SecretStr = Field(SecretStr(""), description="ZigZag API password.")
    retailer_code: str = Field("", description="Your ZigZag retailer code.")
    webhook_secret_header: str = Field(
        "X-ZigZag-Secret", description="Header that carries the shared webhook secret."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="Shared secret ZigZag sends with each webhook."
    )
    associated_ref_prefix: str = Field(
        "ZZ-", max_length=20, description="Prefix of the Khaos AssociatedRef for ZigZag returns."
    )
    goods_in_owner: GoodsInOwner = Field(
        GoodsInOwner.RETURNS_PLATFORM,
        description="Who books goods in for ZigZag returns (see [loop].goods_in_owner).",
    )
    fallback_customer_urn: str = Field(
        "", description="Khaos customer URN used when a ZigZag customer cannot be matched."
    )


class KhaosSettings(_Section):
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


class ReasonMappingEntry(_Section):
    source: str = Field("*", description="'loop', 'zigzag' or '*'.")
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
        if value not in ("loop", "zigzag", "*"):
            raise ValueError("must be 'loop', 'zigzag' or '*'")
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


class MappingSettings(_Section):
    reasons: list[ReasonMappingEntry] = Field(
        default_factory=list,
        description="Return reason mapping, [[mapping.reasons]] tables; first match wins.",
    )

    def rules(self) -> tuple[ReasonRule, ...]:
        return tuple(entry.rule() for entry in self.reasons)


class ShopifySettings(_Section):
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
    api_version: str = Field("2025-10", description="Admin API version to call.")
    timeout_seconds: float = Field(
        15.0, gt=0, description="Timeout for each Shopify API call, in seconds."
    )


class PolicySettings(_Section):
    """Posting policy knobs (ARCHITECTURE 6) that are not per-source."""

    tolerance: str = Field(
        "0.01", description="Largest per-return money difference accepted without a "
        "tax_drift / amount_mismatch exception, in the return's currency.",
    )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written."
    )
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="'json' for log shippers, 'console' for people, 'auto' picks "
        "console on a terminal and json otherwise.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RB_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    zigzag: ZigZagSettings = Field(default_factory=ZigZagSettings)
    khaos: KhaosSettings = Field(default_factory=KhaosSettings)
    mapping: MappingSettings = Field(default_factory=MappingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    log: LogSettings = Field(default_factory=LogSettings)

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction (non-empty, longest first)."""
        found: list[str] = []
        _collect_secrets(self, found)
        found.extend(p for p in (_url_password(self.database.url),
                                 _url_password(self.database.system_url)) if p)
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


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the configuration; raise ``ConfigError`` with plain-language problems."""
    file = config_path(path)
    if file is not None and not file.exists():
        raise ConfigError([f"the configuration file {file} does not exist "
                           "(create one with 'returnbridge init')"], file)

    class _FileSettings(Settings):
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

