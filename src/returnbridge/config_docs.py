"""The commented configuration file (``returnbridge init``) and docs/configuration.md,
both generated from the settings model so that neither can drift from the code."""

from __future__ import annotations

import json
import textwrap
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from returnbridge.config import ReasonMappingEntry, Settings

_SECTION_INTRO = {
    "database": "Storage.",
    "server": "The HTTP server (webhooks, Khaos channel, API).",
    "api": "Operator API (/api/v1) and metrics.",
    "loop": "Loop Returns.",
    "zigzag": "ZigZag.",
    "khaos": "Khaos Control channel (Khaos polls this service).",
    "mapping": "Reason mapping: (source, reason, condition, disposition) -> Khaos return "
    "reason. First match wins.",
    "policy": "Posting policy (what each return becomes in Khaos, and when).",
    "shopify": "Shopify Admin API (refunds made by returnbridge after the credit note).",
    "log": "Logging.",
}

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
    raise TypeError(f"cannot render {value!r} as TOML")


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return list(model.model_fields.items())


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
        out.append(f"[{section}]")
        for key, info in _fields(model):
            out.extend(textwrap.wrap(info.description or "", 88, initial_indent="# ",
                                     subsequent_indent="# "))
            out.append(f"{key} = {_toml_value(_default(info))}")
        out.append("")
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
    ]
    for section, section_info in _fields(Settings):
        model = section_info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out.append(f"## [{section}]")
        out.append("")
        out.append(_SECTION_INTRO[section])
        out.append("")
        rows = _fields(ReasonMappingEntry) if section == "mapping" else _fields(model)
        if section == "mapping":
            out.append("Each `[[mapping.reasons]]` table has these keys:")
            out.append("")
        out.append("| key | default | environment | meaning |")
        out.append("|---|---|---|---|")
        for key, info in rows:
            secret = info.annotation is SecretStr or "SecretStr" in str(info.annotation)
            env = ("`RB_MAPPING__REASONS` (JSON list)" if section == "mapping"
                   else f"`RB_{section.upper()}__{key.upper()}`")
            desc = (info.description or "").replace("|", "\\|")
            out.append(f"| `{key}`{' 🔒' if secret else ''} | {_md_default(info)} | {env} | "
                       f"{desc} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
