"""Tolerant readers for the value types platforms really send (Loop reference §3, §6.4-6.5;
ZigZag webhooks; Shopify GraphQL answers).

Every reader takes the JSON path of the value it reads, so that a bad value raises
PayloadInvalid naming where it is ("line_items[2].price: not an amount: 'abc'").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.domain.money import PENNY, ZERO, MoneyError, to_decimal

PLACEHOLDERS = frozenset({"", "n/a", "null", "none"})

# No single return moves this much money; anything larger is corrupt (and would overflow
# Decimal arithmetic further on).
MAX_AMOUNT_DIGITS = 12  # |amount| < 10**12


def is_placeholder(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().casefold() in PLACEHOLDERS)


def text(value: Any, path: str = "") -> str:
    """A display string: placeholders become "", numbers their plain spelling."""
    if is_placeholder(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str | Decimal):
        return str(value).strip()
    raise PayloadInvalid(f"expected text, got {type(value).__name__}", path=path)


def ident(value: Any, path: str = "") -> str:
    """An identifier sent as int or string."""
    if isinstance(value, bool):
        raise PayloadInvalid(f"expected an id, got {value!r}", path=path)
    return text(value, path)


def amount(value: Any, path: str = "") -> Decimal:
    """Money sent as a string or a number; placeholders are zero.

    Whole and one-decimal values are written with two decimals, so that ``20``, ``20.0`` and
    ``"20.00"`` give the same Decimal *and* the same stored text. Finer values are kept as
    sent, never rounded here.
    """
    if is_placeholder(value):
        return ZERO
    try:
        result = to_decimal(value)
    except MoneyError as exc:
        raise PayloadInvalid(str(exc), path=path) from None
    if result and result.adjusted() >= MAX_AMOUNT_DIGITS:
        raise PayloadInvalid(f"amount out of range: {value!r}", path=path)
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        result = result.quantize(PENNY)  # exact: only adds trailing zeros
    return result


def flag(value: Any, path: str = "") -> bool:
    """A boolean sent as true/false, 1/0 or their strings; placeholders are False."""
    if is_placeholder(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in ("true", "1"):
            return True
        if word in ("false", "0"):
            return False
    raise PayloadInvalid(f"expected true or false, got {value!r}", path=path)


_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_UTC_NAMES = frozenset({"utc", "z", "gmt", "+00:00", "-00:00", "+0000", "-0000"})


def _parse_text(raw: str, path: str) -> datetime:
    """The moment written in ``raw``, naive when it carries no zone."""
    iso = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw, fmt)  # noqa: DTZ007 - zone added by the caller
        except ValueError:
            continue
    raise PayloadInvalid(f"not a timestamp: {raw!r}", path=path)


def _zone(name: Any, path: str) -> tzinfo:
    """The zone of a PHP DateTime object: a name ("Europe/London") or an offset ("+02:00")."""
    if not isinstance(name, str):
        raise PayloadInvalid(f"expected a timezone name, got {type(name).__name__}", path=path)
    key = name.strip()
    if key.casefold() in _UTC_NAMES:
        return UTC
    match = _OFFSET.match(key)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta >= timedelta(hours=24):
            raise PayloadInvalid(f"timezone offset out of range: {name!r}", path=path)
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PayloadInvalid(f"unknown timezone {name!r}", path=path) from None


def timestamp(value: Any, path: str = "") -> datetime | None:
    """ISO 8601 with ``Z`` or an offset, or ``YYYY-MM-DD HH:MM:SS`` without a zone (read as
    UTC), or a PHP DateTime object ``{date, timezone, timezone_type}`` (its zone honoured).
    Placeholders are None. The result is always in UTC."""
    if is_placeholder(value):
        return None
    zone: tzinfo = UTC
    if isinstance(value, dict):
        if not value:
            return None
        if "date" not in value:
            raise PayloadInvalid("a date object without 'date'", path=path)
        date = value["date"]
        if is_placeholder(date):
            return None
        if not isinstance(date, str):
            raise PayloadInvalid(
                f"expected a timestamp, got {type(date).__name__}", path=f"{path}.date")
        if not is_placeholder(value.get("timezone")):
            zone = _zone(value["timezone"], f"{path}.timezone")
        value = date
    if not isinstance(value, str):
        raise PayloadInvalid(f"expected a timestamp, got {type(value).__name__}", path=path)
    raw = value.strip()
    parsed = _parse_text(raw, path)
    try:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadInvalid(f"timestamp out of range: {raw!r}", path=path) from None


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


def timestamp_or_none(value: Any) -> datetime | None:
    """Like :func:`timestamp`, but None for anything that is not a timestamp: for answers
    where an unreadable time is no reason to refuse the rest."""
    try:
        return timestamp(value)
    except PayloadInvalid:
        return None
