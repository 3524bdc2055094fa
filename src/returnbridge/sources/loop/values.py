"""Tolerant readers for the value types Loop really sends (reference §3, §6.4-6.5)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from returnbridge.domain.money import ZERO, MoneyError, to_decimal
from returnbridge.sources.errors import PayloadInvalid

PLACEHOLDERS = frozenset({"", "n/a", "null", "none"})


def is_placeholder(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().casefold() in PLACEHOLDERS)


def text(value: Any) -> str:
    """A display string: placeholders become "", numbers their plain spelling."""
    if is_placeholder(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str | Decimal):
        return str(value).strip()
    raise PayloadInvalid(f"expected text, got {type(value).__name__}")


def ident(value: Any, path: str = "") -> str:
    """An identifier sent as int or string."""
    try:
        return text(value)
    except PayloadInvalid as exc:
        raise PayloadInvalid(str(exc), path=path) from None


def amount(value: Any, path: str = "") -> Decimal:
    """Money sent as a string or a number; placeholders are zero."""
    if is_placeholder(value):
        return ZERO
    try:
        return to_decimal(value)
    except MoneyError as exc:
        raise PayloadInvalid(str(exc), path=path) from None


_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d")


def timestamp(value: Any, path: str = "") -> datetime | None:
    """ISO 8601 with ``Z`` or an offset, or ``YYYY-MM-DD HH:MM:SS`` without a zone (read as
    UTC), or a PHP DateTime object ``{date, timezone}``. Placeholders are None."""
    if is_placeholder(value):
        return None
    if isinstance(value, dict):
        return timestamp(value.get("date"), path)
    if not isinstance(value, str):
        raise PayloadInvalid(f"expected a timestamp, got {type(value).__name__}", path=path)
    raw = value.strip()
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
        for fmt in _FORMATS:
            try:
                parsed = datetime.strptime(raw, fmt)  # noqa: DTZ007 - zone added below
                break
            except ValueError:
                continue
        if parsed is None:
            raise PayloadInvalid(f"not a timestamp: {raw!r}", path=path) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def obj(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadInvalid(f"expected an object, got {type(value).__name__}", path=path)
    return value


def items(value: Any, path: str) -> list[Any]:
    """A list, or an object keyed by id (its values), or nothing."""
    if is_placeholder(value):
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    raise PayloadInvalid(f"expected a list, got {type(value).__name__}", path=path)
