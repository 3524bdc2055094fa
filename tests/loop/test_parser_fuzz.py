"""Hypothesis variations of the real fixtures: the parser returns a case or says PayloadInvalid.

Mutations: swap value types (int <-> str ids, number <-> string money), delete keys, add
unknown keys, and replace values with "N/A", "", None or nested garbage. No other exception
type may escape, and whatever is returned must be complete (every unit accounted for) and
storable (it survives the codec round trip).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import amount, flag, ident, items, text, timestamp
from returnbridge.domain.model import ReturnCase
from returnbridge.sources.loop.parser import parse_return
from returnbridge.store.codec import case_from_json, case_to_json

from ._support import PREFIX, return_payloads, unit

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

BASES = [payload for _, payload in return_payloads()]
# A fourth base with a multi-unit line, so that grouping is fuzzed too.
_multi = copy.deepcopy(BASES[1])
_multi["line_items"] = [unit(line_item_id=1, tax="2.84"), unit(line_item_id="2", tax="2.74"),
                        unit(line_item_id=3, tax=2.74, return_reason="Damaged")]
BASES.append(_multi)

Path = tuple[str | int, ...]

# Values that real payloads, or plausible corruptions of them, put where a parser looks.
TRICKY_VALUES: list[Any] = [
    "N/A", "n/a", "", " ", "null", "0", "-1", "1e3", "12.345", "NaN", "Infinity", "1e999999999",
    "-1e20", 1e300, -1e300, float("inf"), float("nan"), 10**30, True, False,
    "2023-05-01T12:00:00Z", "2020-10-29 16:07:31", "2020-10-29T16:07:31+00:00",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2020-02-30 10:00:00",
    {"date": "2020-10-29 16:07:31.000000", "timezone": "UTC", "timezone_type": 3},
    {"date": "2020-06-01 12:00:00.000000", "timezone": "Europe/London", "timezone_type": 3},
    {"date": "2020-06-01 12:00:00", "timezone": "Nowhere/Special", "timezone_type": 3},
    {"date": None}, {"date": {"date": "2020-06-01"}}, {"timezone": "UTC"},
    "open", "review", "needs review", "in_transit", "delivered", "true", "false", "yes",
    {"email": "x@example.com"}, {"disposition_outcome": "donate"}, {"condition_category": 5},
    [], {}, [1, "a"], {"nested": {"deeper": [None]}},
]
tricky = st.sampled_from(TRICKY_VALUES)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
garbage = st.recursive(
    tricky | tricky | scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["date", "timezone", "email", "sku", "id", "x"]) | st.text(
        max_size=5), children, max_size=3),
    max_leaves=6,
)
placeholders = st.sampled_from(["N/A", "", None])

# Keys the parser reads: most random paths land on ignored fields, so one mutation kind aims
# at these (money, timestamps, ids, states, flags and the containers holding them).
READ_KEYS = frozenset({
    "id", "state", "label_status", "created_at", "updated_at", "edited_at", "order_name",
    "order_number", "provider_order_id", "currency", "customer", "customer_detail", "email",
    "first_name", "last_name", "address", "zip", "country_code", "name", "line_items",
    "line_item_id", "provider_line_item_id", "variant_id", "sku", "barcode", "title", "price",
    "discount", "tax", "return_reason", "parent_return_reason", "condition", "disposition",
    "returned_at", "exchanges", "out_of_stock", "refunds", "gateway", "amount",
    "provider_refund_id", "refund", "gift_card", "exchange_credit_total", "upsell",
    "handling_fee", "refund_shipping_total", "refund_shipping_tax_total",
    "gift_card_bonus_credit", "gift_card_bonus", "return_product_total",
    "return_discount_total", "return_tax_total", "return_total",
})


def all_paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a value inside ``node`` (not the root itself), in a stable order."""
    found: list[Path] = []
    if isinstance(node, dict):
        for key, child in node.items():
            found.append((*prefix, key))
            found.extend(all_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.append((*prefix, index))
            found.extend(all_paths(child, (*prefix, index)))
    return found


def container_paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Paths to every dict (including the root), where extra keys can be added."""
    found: list[Path] = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, child in node.items():
            found.extend(container_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(container_paths(child, (*prefix, index)))
    return found


def get(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def swapped(value: Any) -> Any:
    """The same value in the other wire type Loop is known to use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except ArithmeticError:
            return value
        if not number.is_finite():
            return value
        if number == number.to_integral_value() and "." not in value:
            return int(number)
        return float(number)
    return value


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    payload = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        kind = draw(st.sampled_from(
            ["swap", "swap", "delete", "add", "placeholder", "garbage", "tricky", "aimed",
             "aimed"]))
        if kind == "add":
            where = draw(st.sampled_from(container_paths(payload)))
            key = draw(st.text(max_size=8) | st.sampled_from(["new_field", "id", "sku", "date"]))
            get(payload, where)[key] = draw(garbage)
            continue
        paths = all_paths(payload)
        if kind == "aimed":
            paths = [p for p in paths if p[-1] in READ_KEYS] or paths
            kind = draw(st.sampled_from(["swap", "delete", "placeholder", "garbage", "tricky"]))
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent, last = get(payload, path[:-1]), path[-1]
        if kind == "delete":
            del parent[last]
        elif kind == "swap":
            parent[last] = swapped(parent[last])
        elif kind == "placeholder":
            parent[last] = draw(placeholders)
        elif kind == "tricky":
            parent[last] = copy.deepcopy(draw(tricky))
        else:
            parent[last] = draw(garbage)
    return payload


def unit_count(payload: dict[str, Any]) -> int:
    """How many returned units the payload lists (after parsing succeeded)."""
    return len(items(payload.get("line_items"), "line_items"))


def check_case(payload: dict[str, Any], case: ReturnCase) -> None:
    assert isinstance(case, ReturnCase)
    assert case.source_return_id
    assert case.associated_ref == PREFIX + case.source_return_id
    # Never silently drop data: every unit element ends up in exactly one line.
    assert case.units == unit_count(payload)
    for line in case.lines:
        # A unit without a SKU is kept (sku ""): the policy resolves it or holds the return.
        assert isinstance(line.sku, str) and line.sku == line.sku.strip()
        assert line.quantity == len(line.source_unit_ids) == len(line.unit_nets)
        assert len(line.unit_taxes) == line.quantity
        assert line.unit_gross == line.unit_net + line.unit_tax
        assert all(isinstance(uid, str) for uid in line.source_unit_ids)
    for stamp in (case.created_at, case.updated_at):
        assert stamp is None or stamp.utcoffset() is not None
    for value in (case.settlement.refund_to_original, case.totals.total,
                  *(ln.unit_gross for ln in case.lines)):
        assert value.is_finite()
    # Whatever is returned can be stored and read back unchanged.
    stored = json.dumps(case_to_json(case), allow_nan=False)
    assert case_from_json(json.loads(stored)) == case


@FUZZ
@given(payload=mutated())
def test_mutated_fixtures_parse_or_raise_payload_invalid(payload: dict[str, Any]) -> None:
    try:
        case = parse_return(payload, prefix=PREFIX)
    except PayloadInvalid as exc:
        assert str(exc), "PayloadInvalid must say what is wrong"
        return
    check_case(payload, case)


def test_each_tricky_value_in_each_read_field() -> None:
    """Deterministic sweep: every tricky value at every field the parser reads, in every base.

    The hypothesis tests combine mutations at random; this one guarantees that each single
    substitution is tried, whatever the random seed happens to explore.
    """
    crashes: list[str] = []
    tried = 0
    for base in BASES:
        targets = [p for p in all_paths(base) if p[-1] in READ_KEYS]
        for path in targets:
            for value in TRICKY_VALUES:
                payload = copy.deepcopy(base)
                get(payload, path[:-1])[path[-1]] = copy.deepcopy(value)
                tried += 1
                try:
                    case = parse_return(payload, prefix=PREFIX)
                except PayloadInvalid:
                    continue
                except Exception as exc:  # collected, reported below
                    crashes.append(f"{'.'.join(map(str, path))} = {value!r}: "
                                   f"{type(exc).__name__}: {exc}")
                    continue
                check_case(payload, case)
    assert tried > 1000
    assert not crashes, f"{len(crashes)} crashes, e.g.:\n" + "\n".join(crashes[:15])


@FUZZ
@given(payload=garbage)
def test_arbitrary_json_parses_or_raises_payload_invalid(payload: Any) -> None:
    try:
        case = parse_return(payload, prefix=PREFIX)
    except PayloadInvalid:
        return
    check_case(payload, case)


READERS: list[Callable[[Any], object]] = [
    lambda v: text(v, "x"), lambda v: ident(v, "x"), lambda v: amount(v, "x"),
    lambda v: timestamp(v, "x"), lambda v: items(v, "x"), lambda v: flag(v, "x"),
]


def test_value_readers_on_each_tricky_value() -> None:
    for value in TRICKY_VALUES:
        for reader in READERS:
            with contextlib.suppress(PayloadInvalid):
                reader(value)


@FUZZ
@given(value=tricky | scalars | garbage)
def test_value_readers_never_raise_anything_else(value: Any) -> None:
    for reader in READERS:
        with contextlib.suppress(PayloadInvalid):
            reader(value)


@FUZZ
@given(
    moment=st.datetimes(),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
    style=st.sampled_from(["iso", "z", "space", "php"]),
)
def test_timestamps_of_any_date_and_offset(moment: Any, offset_minutes: int, style: str) -> None:
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    zone = f"{sign}{hours:02d}:{minutes:02d}"
    # isoformat, not strftime: strftime("%Y") does not zero-pad years before 1000.
    seconds = moment.replace(microsecond=0)
    raw: Any = {
        "iso": seconds.isoformat(sep="T") + zone,
        "z": seconds.isoformat(sep="T") + "Z",
        "space": seconds.isoformat(sep=" "),
        "php": {"date": moment.isoformat(sep=" ", timespec="microseconds"),
                "timezone": zone, "timezone_type": 1},
    }[style]
    try:
        parsed = timestamp(raw, "t")
    except PayloadInvalid:
        return
    assert parsed is not None
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    if style in ("z", "space"):
        assert parsed.replace(tzinfo=None) == moment.replace(microsecond=0)


@FUZZ
@given(number=st.decimals(allow_nan=False, allow_infinity=False, places=2,
                          min_value=Decimal("-999999999.99"), max_value=Decimal("999999999.99")),
       form=st.sampled_from(["str", "float", "int"]))
def test_realistic_money_is_never_rejected(number: Decimal, form: str) -> None:
    wire: Any = {"str": str(number), "float": float(number),
                 "int": int(number)}[form]
    value = amount(wire, "m")
    expected = Decimal(str(wire)) if form != "str" else number
    assert value == expected
    assert not math.isnan(float(value))
