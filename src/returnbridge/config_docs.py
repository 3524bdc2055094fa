"""The commented configuration file (``returnbridge init``) and docs/configuration.md,
both generated from the settings model so that neither can drift from the code."""

from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from returnbridge.composition import Settings
from returnbridge.config import AlertRoute, MappingSettings, ReasonMappingEntry, SkuMappingEntry

_SECTION_INTRO = {
    "database": "Storage.",
    "server": "The HTTP server (webhooks, Khaos channel, API).",
    "api": "Operator API (/api/v1) and metrics.",
    "console": "The team console (/console): sessions and sign-in limits.",
    "loop": "Loop Returns.",
    "zigzag": "ZigZag.",
    "khaos": "Khaos Control channel (Khaos polls this service).",
    "mapping": "Reason mapping: (source, reason, condition, disposition) -> Khaos return "
    "reason. First match wins.",
    "policy": "Posting policy (what each return becomes in Khaos, and when).",
    "shopify": "Shopify Admin API (refunds made by returnbridge after the credit note).",
    "reconciliation": "Three-way reconciliation: the daily continuous check and the "
    "month-end pack (docs/reconciliation.md).",
    "audit": "Audit log integrity ('returnbridge audit-log verify').",
    "log": "Logging.",
    "alerts": "Alerts to the owning teams (e-mail, Slack, Teams, webhooks through Apprise; "
    "see docs/alerts.md).",
}

_EXAMPLE_ROUTES = """\
# Example: uncomment and adapt (docs/alerts.md has one example per channel).
# [[alerts.routes]]
# owner = "warehouse"
# mode = "immediate"
# min_severity = "blocking"
# urls = ["mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.com?to=warehouse@example.com"]
#
# [[alerts.routes]]
# owner = "*"
# mode = "digest"
# digest = "daily"
# urls_env = "RB_ALERT_DIGEST_URLS"
"""

_EXAMPLE_REASONS = """\
# Example: uncomment and use your own Khaos return reason IDs (System Data > Return Reasons).
# [[mapping.reasons]]
# source = "*"
# reason = "*"
# disposition = "restock"
# khaos_reason_id = "6"          # a reason whose processing type is "Return to Stock"
# processing = "restock"
#
# [[mapping.reasons]]
# source = "*"
# reason = "*"
# disposition = "*"
# khaos_reason_id = "7"          # a reason whose processing type is "Stock Missing/Write off"
# processing = "write_off"
#
# Items that come without a SKU (Shopify variants with no SKU): their Khaos StockCode.
# [[mapping.skus]]
# variant_id = "32725922578529"  # or: barcode = "5012345678900"
# stock_code = "TEE-BLK-M"
"""


def _toml_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return json.dumps(value.get_secret_value())
    if isinstance(value, Enum):
        return json.dumps(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return json.dumps(str(value))  # a string: TOML floats are not exact
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {value!r} as TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return list(model.model_fields.items())


def _template_section(name: str, model: type[BaseModel], out: list[str]) -> None:
    """``[name]`` with its keys; nested models and non-empty tables as sub-sections."""
    out.append(f"[{name}]")
    later: list[tuple[str, FieldInfo, Any]] = []
    for key, info in _fields(model):
        value = _default(info)
        if isinstance(value, BaseModel) or (isinstance(value, dict) and value):
            later.append((key, info, value))
            continue
        out.extend(textwrap.wrap(info.description or "", 88, initial_indent="# ",
                                 subsequent_indent="# "))
        out.append(f"{key} = {_toml_value(value)}")
    out.append("")
    for key, info, value in later:
        out.extend(textwrap.wrap(info.description or "", 88, initial_indent="# ",
                                 subsequent_indent="# "))
        if isinstance(value, BaseModel):
            _template_section(f"{name}.{key}", type(value), out)
        else:
            out.append(f"[{name}.{key}]")
            out.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
            out.append("")


def _flat_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    """Every key, nested models flattened to dotted keys (``webhook.fields.event_id``)."""
    rows: list[tuple[str, FieldInfo]] = []
    for key, info in _fields(model):
        value = _default(info)
        if isinstance(value, BaseModel):
            rows.extend(_flat_fields(type(value), f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", info))
    return rows


def _default(info: FieldInfo) -> Any:
    return info.get_default(call_default_factory=True)


def config_template() -> str:
    """A complete, commented returnbridge.toml with every key at its default."""
    out = [
        "# returnbridge configuration. Every key can also be set in the environment as",
        "# RB_SECTION__KEY (for example RB_LOOP__API_KEY). Secrets are best kept there.",
        "# Check this file with: returnbridge check-config",
        "",
    ]
    for section, section_info in _fields(Settings):
        model = section_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        if section == "mapping":
            out.append(f"# {_SECTION_INTRO[section]}")
            out.append(_EXAMPLE_REASONS)
            continue
        out.append(f"# {_SECTION_INTRO[section]}")
        _template_section(section, model, out)
        if section == "alerts":
            out.append(_EXAMPLE_ROUTES)
    return "\n".join(out).rstrip() + "\n"


def _md_default(info: FieldInfo) -> str:
    if info.is_required():
        return "(required)"
    value = _default(info)
    return f"`{_toml_value(value)}`"


def configuration_markdown() -> str:
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from src/returnbridge/config.py by "
        "`returnbridge config-docs > docs/configuration.md`; a test fails if they differ. -->",
        "",
        "returnbridge reads one TOML file: `--config PATH`, else `$RB_CONFIG`, else",
        "`./returnbridge.toml` if it exists. Every key can be overridden by an environment",
        "variable `RB_<SECTION>__<KEY>` (lists as JSON, e.g.",
        "`RB_LOOP__WEBHOOK_SECRETS='[\"s1\",\"s2\"]'`). The environment wins over the file.",
        "`returnbridge init` writes a commented file with every key below;",
        "`returnbridge check-config` explains every problem it finds.",
        "",
        "Secrets (marked 🔒) are never written to logs, error messages or the database.",
        "",
        "**Secrets from files.** Every secret key (and `[database].url` / `system_url`) can",
        "instead be given as the same key with `_file` appended, naming a file whose content",
        "is the value: Docker and Kubernetes secrets, e.g. `api_key_file =",
        "\"/run/secrets/loop_api_key\"` or `RB_LOOP__WEBHOOK_SECRETS_FILE=/run/secrets/loop`.",
        "For a list of secrets (`[loop].webhook_secrets`, `[api].tokens`) the file holds one",
        "per line (blank lines and `#` comments ignored). Setting both a key and its `_file`",
        "is an error.",
        "",
    ]
    for section, section_info in _fields(Settings):
        model = section_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out.append(f"## [{section}]")
        out.append("")
        out.append(_SECTION_INTRO[section])
        out.append("")
        rows = _fields(ReasonMappingEntry) if section == "mapping" else _flat_fields(model)
        if section == "mapping":
            out.append("Each `[[mapping.reasons]]` table has these keys:")
            out.append("")
        out.append("| key | default | environment | meaning |")
        out.append("|---|---|---|---|")
        for key, info in rows:
            secret = info.annotation is SecretStr or "SecretStr" in str(info.annotation)
            env = ("`RB_MAPPING__REASONS` (JSON list)" if section == "mapping"
                   else f"`RB_{section.upper()}__{key.upper().replace('.', '__')}`")
            desc = (info.description or "").replace("|", "\\|")
            out.append(f"| `{key}`{' 🔒' if secret else ''} | {_md_default(info)} | {env} | "
                       f"{desc} |")
        out.append("")
        if section == "alerts":
            out.append("Each `[[alerts.routes]]` table has these keys (environment: "
                       "`RB_ALERTS__ROUTES` as a JSON list):")
            out.append("")
            out.append("| key | default | meaning |")
            out.append("|---|---|---|")
            for key, info in _fields(AlertRoute):
                secret = "SecretStr" in str(info.annotation)
                desc = (info.description or "").replace("|", "\\|")
                out.append(f"| `{key}`{' 🔒' if secret else ''} | {_md_default(info)} | "
                           f"{desc} |")
            out.append("")
        if section == "mapping":
            out.extend(_sku_mapping_markdown())
    return "\n".join(out).rstrip() + "\n"


def _sku_mapping_markdown() -> list[str]:
    intro = MappingSettings.model_fields["skus"].description or ""
    out = [intro, "", "Each `[[mapping.skus]]` table has these keys:", "",
           "| key | default | environment | meaning |", "|---|---|---|---|"]
    for key, info in _fields(SkuMappingEntry):
        desc = (info.description or "").replace("|", "\\|")
        out.append(f"| `{key}` | {_md_default(info)} | `RB_MAPPING__SKUS` (JSON list) | "
                   f"{desc} |")
    out.append("")
    return out
