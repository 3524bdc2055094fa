"""Receipt evidence: which returned units physically arrived, and how they were graded.

Sources state receipts separately from the return itself (a restock request, a "received"
or "graded" event). We keep the latest statement per unit key
on the case and derive *effective lines* from the source's lines: each line is split
into the part that arrived (with the grade's disposition and the arrival time) and the
part still expected. Duplicate and out-of-order deliveries give the same answer because
a statement only replaces an older one (by its time; graded beats ungraded on a tie).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from returnbridge.domain.model import ReturnCase, ReturnLine, UnitReceipt


def _newer(candidate: list[UnitReceipt], existing: list[UnitReceipt]) -> bool:
    def at(group: list[UnitReceipt]) -> datetime | None:
        times = [r.at for r in group if r.at is not None]
        return max(times) if times else None

    new_at, old_at = at(candidate), at(existing)
    if new_at is not None and old_at is not None and new_at != old_at:
        return new_at > old_at
    new_graded = all(r.disposition is not None for r in candidate)
    old_graded = all(r.disposition is not None for r in existing)
    if new_graded != old_graded:
        return new_graded
    # Same time and grading: the later delivery wins; an undated one never beats a dated one.
    return not (new_at is None and old_at is not None)


def merge_receipts(
    existing: tuple[UnitReceipt, ...], incoming: tuple[UnitReceipt, ...]
) -> tuple[UnitReceipt, ...]:
    """Replace, per unit key, older statements with ``incoming`` ones (one event's set)."""
    by_key: dict[str, list[UnitReceipt]] = {}
    order: list[str] = []
    for receipt in existing:
        if receipt.key not in by_key:
            order.append(receipt.key)
        by_key.setdefault(receipt.key, []).append(receipt)
    fresh: dict[str, list[UnitReceipt]] = {}
    for receipt in incoming:
        if receipt.quantity > 0:
            fresh.setdefault(receipt.key, []).append(receipt)
    for key, group in fresh.items():
        if key not in by_key:
            order.append(key)
            by_key[key] = group
        elif _newer(group, by_key[key]):
            by_key[key] = group
    return tuple(r for key in order for r in by_key[key])


def _matches(receipt: UnitReceipt, line: ReturnLine) -> bool:
    if receipt.line_item_id:
        return receipt.line_item_id in line.source_unit_ids or (
            receipt.line_item_id == line.source_order_line_id
        )
    if receipt.variant_id:
        return receipt.variant_id == line.variant_id
    return bool(receipt.sku) and receipt.sku == line.sku


def effective_lines(case: ReturnCase) -> tuple[ReturnLine, ...]:
    """The case's lines split by what arrived: received (graded or not) and still expected.

    Units are taken from a line's unit ids in order, so each unit id ends up on exactly one
    effective line. Receipts for units the return does not contain are ignored here (the
    flow reports them); receipts never raise a quantity above what was returned.
    """
    remaining = {i: line.quantity for i, line in enumerate(case.lines)}
    parts: dict[int, list[ReturnLine]] = {i: [] for i in remaining}
    for receipt in case.receipts:
        want = receipt.quantity
        for i, line in enumerate(case.lines):
            if want <= 0:
                break
            if remaining[i] <= 0 or not _matches(receipt, line):
                continue
            take = min(want, remaining[i])
            parts[i].append(replace(
                line,
                quantity=take,
                received_at=receipt.at or line.received_at,
                disposition=receipt.disposition or line.disposition,
                condition=receipt.condition or line.condition,
            ))
            remaining[i] -= take
            want -= take
    out: list[ReturnLine] = []
    for i, line in enumerate(case.lines):
        received = parts[i]
        ids = list(line.source_unit_ids)
        for part in received:
            taken, ids = ids[: part.quantity], ids[part.quantity:]
            out.append(replace(part, source_unit_ids=tuple(taken)))
        if remaining[i] > 0:
            rest = replace(line, quantity=remaining[i], source_unit_ids=tuple(ids))
            if received:
                rest = replace(rest, received_at=None)
            out.append(rest)
    return _regroup(out)


def _regroup(lines: list[ReturnLine]) -> tuple[ReturnLine, ...]:
    """Join parts that ended up identical apart from quantity and unit ids."""
    grouped: list[ReturnLine] = []
    for line in lines:
        for j, seen in enumerate(grouped):
            if replace(seen, quantity=0, source_unit_ids=()) == replace(
                line, quantity=0, source_unit_ids=()
            ):
                grouped[j] = replace(seen, quantity=seen.quantity + line.quantity,
                                     source_unit_ids=seen.source_unit_ids + line.source_unit_ids)
                break
        else:
            grouped.append(line)
    return tuple(grouped)


def unmatched_receipts(case: ReturnCase) -> tuple[UnitReceipt, ...]:
    """Receipts that match no line of the return (wrong SKU in the parcel, or our data)."""
    return tuple(r for r in case.receipts if not any(_matches(r, ln) for ln in case.lines))

