"""The Khaos mirror (ARCHITECTURE 5.7): stock items, stock levels per site, order statuses
and the customer email -> URN table, with the lookups validation needs.

Upserts are batched (one SELECT per 500 keys, one multi-row INSERT, one executemany UPDATE)
and idempotent: a row whose content did not change is not written, so its ``updated_at``
stays the time the content last changed. The same push twice therefore changes nothing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Text, cast, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from returnbridge.erp.khaos.pushes import PushedOrderStatus, StockItemRecord, StockLevelRecord
from returnbridge.store.models import (
    CustomerMirror,
    KhaosOrderStatus,
    StockBarcode,
    StockItem,
    StockLevel,
    utcnow,
)
from returnbridge.store.reads import reading

_CHUNK = 500
MappingType = Literal["StockCode", "OtherRef", "Barcode", "WebCode", "Automatic"]


@dataclass(frozen=True)
class MirrorChange:
    """What one upsert did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def __add__(self, other: MirrorChange) -> MirrorChange:
        return MirrorChange(self.inserted + other.inserted, self.updated + other.updated,
                            self.unchanged + other.unchanged, self.deleted + other.deleted)


def _chunks(keys: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start:start + _CHUNK]


def _last_wins(records: Iterable[Any], key: Any) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for record in records:
        out[key(record)] = record
    return out


def _item_values(r: StockItemRecord) -> dict[str, Any]:
    return {"stock_code": r.stock_code[:100], "other_ref": r.other_ref[:100],
            "description": r.description, "barcodes": [b[:100] for b in r.barcodes],
            "publish_on_web": r.publish_on_web, "discontinued": r.discontinued,
            "stock_controlled": r.stock_controlled, "deleted": False, "raw": r.raw}


# The one rule for which catalogue fields Khaos matches a served SKU against, per
# ``[khaos].sku_mapping``: the posting policy, the coverage audit and the console all use it.
# ``Automatic`` tries StockCode, then OtherRef, then barcode (Khaos's documented order).
# ``WebCode`` is not mirrored (the channel never pushes it), so it is matched as StockCode
# (inferred: shops usually use the stock code as the web code).
FIELDS_BY_MAPPING: dict[str, tuple[str, ...]] = {
    "StockCode": ("StockCode",), "WebCode": ("StockCode",), "OtherRef": ("OtherRef",),
    "Barcode": ("Barcode",), "Automatic": ("StockCode", "OtherRef", "Barcode"),
}


@dataclass(frozen=True)
class LevelReading:
    """A stock level with how old it is (the mirror's staleness for this item and site)."""

    stock_id: str
    site_id: str
    stock_code: str
    available: Decimal
    on_order: Decimal
    from_children: bool
    updated_at: datetime
    age: timedelta

    def is_stale(self, max_age: timedelta) -> bool:
        return self.age > max_age


@dataclass(frozen=True)
class Candidate:
    """A catalogue item that looks like an unmatched SKU, for ``sku_mismatch`` suggestions."""

    stock_id: str
    stock_code: str
    field: Literal["StockCode", "OtherRef", "Barcode"]
    value: str
    score: float  # 0..1, 1 = same text ignoring case


@dataclass(frozen=True)
class CustomerRecord:
    email: str
    urn: str
    name: str = ""
    postcode: str = ""  # "" when the source has none: an existing postcode is kept


def _email_key(email: str) -> str:
    return email.strip().casefold()


# The mirror tables: a read of them flushes only when one of them has unsaved changes.
_MIRROR = (StockItem, StockBarcode, StockLevel, KhaosOrderStatus, CustomerMirror)


class Catalogue:
    """The mirrors of Khaos (catalogue, stock levels, order statuses, customers) in one
    unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._loaded: bool | None = None  # loaded(), asked once per unit of work

    def upsert_stock_items(self, items: Sequence[StockItemRecord],
                           deleted: Sequence[str] = (), *, now: datetime | None = None
                           ) -> MirrorChange:
        """Insert or update items by StockID; mark ``deleted`` StockIDs deleted (kept, not removed,
        so that history still resolves). Unchanged rows are not touched."""
        now = now or utcnow()
        wanted = _last_wins(items, lambda r: r.stock_id[:40])
        existing: dict[str, dict[str, Any]] = {}
        keys = list(wanted)
        # ``raw`` is compared as stored text (json.dumps is deterministic for the same parsed
        # body), which spares decoding every stored document of a large upload.
        columns = [StockItem.stock_id, StockItem.stock_code, StockItem.other_ref,
                   StockItem.description, StockItem.barcodes, StockItem.publish_on_web,
                   StockItem.discontinued, StockItem.stock_controlled, StockItem.deleted,
                   cast(StockItem.raw, Text).label("raw")]
        for chunk in _chunks(keys):
            for row in self._session.execute(select(*columns).where(StockItem.stock_id.in_(chunk))):
                existing[row.stock_id] = dict(row._mapping)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        barcode_changes: dict[str, list[str]] = {}
        unchanged = 0
        for stock_id, record in wanted.items():
            values = _item_values(record)
            old = existing.get(stock_id)
            if old is None:
                inserts.append({"stock_id": stock_id, **values, "updated_at": now})
                barcode_changes[stock_id] = values["barcodes"]
            elif any(old[k] != (json.dumps(v) if k == "raw" else v) for k, v in values.items()):
                updates.append({"stock_id": stock_id, **values, "updated_at": now})
                if list(old["barcodes"] or []) != values["barcodes"]:
                    barcode_changes[stock_id] = values["barcodes"]
            else:
                unchanged += 1
        if inserts:
            self._session.execute(insert(StockItem), inserts)
            self._loaded = None  # ask again
        if updates:
            self._session.execute(update(StockItem), updates)
        self._replace_barcodes(barcode_changes)
        removed = self._mark_deleted([d[:40] for d in deleted if d[:40] not in wanted], now)
        self._session.flush()
        return MirrorChange(len(inserts), len(updates), unchanged, removed)

    def _replace_barcodes(self, changes: dict[str, list[str]]) -> None:
        ids = list(changes)
        for chunk in _chunks(ids):
            self._session.execute(delete(StockBarcode).where(StockBarcode.stock_id.in_(chunk)))
        rows = [{"barcode": code, "stock_id": stock_id}
                for stock_id, codes in changes.items() for code in dict.fromkeys(codes)]
        if rows:
            self._session.execute(insert(StockBarcode), rows)

    def _mark_deleted(self, stock_ids: Sequence[str], now: datetime) -> int:
        count = 0
        for chunk in _chunks(list(dict.fromkeys(stock_ids))):
            result = self._session.execute(
                update(StockItem)
                .where(StockItem.stock_id.in_(chunk), StockItem.deleted.is_(False))
                .values(deleted=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            count += int(getattr(result, "rowcount", 0) or 0)
        return count

    def upsert_stock_levels(self, levels: Sequence[StockLevelRecord], *,
                            now: datetime | None = None) -> MirrorChange:
        """Insert or update levels keyed StockID + SiteID; unchanged levels are not touched."""
        now = now or utcnow()
        wanted = _last_wins(levels, lambda r: (r.stock_id[:40], r.site_id[:40]))
        existing: dict[tuple[str, str], tuple[str, Decimal, Decimal, bool]] = {}
        keys = list(wanted)
        for chunk in _chunks(keys):
            rows = self._session.execute(
                select(StockLevel.stock_id, StockLevel.site_id, StockLevel.stock_code,
                       StockLevel.available, StockLevel.on_order, StockLevel.from_children)
                .where(tuple_(StockLevel.stock_id, StockLevel.site_id).in_(chunk))
            )
            for row in rows:
                existing[(row.stock_id, row.site_id)] = (row.stock_code, row.available,
                                                         row.on_order, row.from_children)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for (stock_id, site_id), r in wanted.items():
            values = {"stock_code": r.stock_code[:100], "available": r.available,
                      "on_order": r.on_order, "from_children": r.from_children}
            old = existing.get((stock_id, site_id))
            if old is None:
                inserts.append({"stock_id": stock_id, "site_id": site_id, **values,
                                "updated_at": now})
            elif old != (values["stock_code"], r.available, r.on_order, r.from_children):
                updates.append({"stock_id": stock_id, "site_id": site_id, **values,
                                "updated_at": now})
        if inserts:
            self._session.execute(insert(StockLevel), inserts)
        if updates:
            self._session.execute(update(StockLevel), updates)
        self._session.flush()
        return MirrorChange(len(inserts), len(updates), len(wanted) - len(inserts) - len(updates))

    def upsert_order_statuses(self, statuses: Sequence[PushedOrderStatus], *,
                              now: datetime | None = None) -> MirrorChange:
        """Insert or update order statuses by OrderID; unchanged ones are not touched."""
        now = now or utcnow()
        wanted = _last_wins(statuses, lambda r: r.order_id[:40])
        existing: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(wanted)):
            for row in self._session.execute(
                select(KhaosOrderStatus.order_id, KhaosOrderStatus.order_code,
                       KhaosOrderStatus.associated_ref, KhaosOrderStatus.order_type,
                       KhaosOrderStatus.invoice_code, KhaosOrderStatus.stage,
                       KhaosOrderStatus.total, KhaosOrderStatus.raw)
                .where(KhaosOrderStatus.order_id.in_(chunk))
            ):
                existing[row.order_id] = dict(row._mapping)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for order_id, r in wanted.items():
            values: dict[str, Any] = {
                "order_code": r.order_code[:50], "associated_ref": r.associated_ref[:80],
                "order_type": r.order_type[:10], "invoice_code": r.invoice_code[:50],
                "stage": r.stage[:40], "total": r.total, "raw": r.raw,
            }
            old = existing.get(order_id)
            if old is None:
                inserts.append({"order_id": order_id, **values, "updated_at": now})
            elif any(old[k] != v for k, v in values.items()):
                updates.append({"order_id": order_id, **values, "updated_at": now})
        if inserts:
            self._session.execute(insert(KhaosOrderStatus), inserts)
        if updates:
            self._session.execute(update(KhaosOrderStatus), updates)
        self._session.flush()
        return MirrorChange(len(inserts), len(updates), len(wanted) - len(inserts) - len(updates))

    def find_item(self, sku: str, mapping: MappingType | str = "StockCode", *,
                  include_deleted: bool = False) -> StockItem | None:
        """The live item Khaos would match ``sku`` to under ``mapping`` (FIELDS_BY_MAPPING);
        with ``include_deleted``, when no live item matches, a deleted one (so that a hold can
        say the item was deleted in Khaos)."""
        sku = sku.strip()
        if not sku:
            return None
        fields = FIELDS_BY_MAPPING.get(str(mapping))
        if fields is None:
            raise ValueError(f"unknown Khaos mapping type {mapping!r}")
        deleted: StockItem | None = None
        for kind in fields:
            stmt = select(StockItem)
            if kind == "StockCode":
                stmt = stmt.where(StockItem.stock_code == sku)
            elif kind == "OtherRef":
                stmt = stmt.where(StockItem.other_ref == sku)
            else:
                stmt = stmt.join(StockBarcode, StockBarcode.stock_id == StockItem.stock_id).where(
                    StockBarcode.barcode == sku)
            with reading(self._session, *_MIRROR):
                found = self._session.scalars(stmt.order_by(
                    StockItem.deleted, StockItem.discontinued, StockItem.stock_id).limit(1)).first()
            if found is not None and not found.deleted:
                return found
            deleted = deleted or found
        return deleted if include_deleted else None

    def level(self, stock_id: str, site_id: str | int, *,
              now: datetime | None = None) -> LevelReading | None:
        """The mirrored level of ``stock_id`` at ``site_id``, or None when Khaos never sent one."""
        row = self._session.get(StockLevel, (stock_id, str(site_id)))
        if row is None:
            return None
        now = now or utcnow()
        return LevelReading(row.stock_id, row.site_id, row.stock_code, row.available, row.on_order,
                            row.from_children, row.updated_at, max(now - row.updated_at,
                                                                   timedelta(0)))

    def nearest_candidates(self, sku: str, limit: int = 5, *,
                           cutoff: float = 0.6) -> list[Candidate]:
        """Live items whose StockCode, OtherRef or a barcode is closest to ``sku`` (difflib ratio,
        case-insensitive), best first, at most one entry per item."""
        needle = sku.strip().upper()
        if not needle or limit <= 0:
            return []
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(needle)
        best: dict[str, Candidate] = {}

        def consider(stock_id: str, code: str, field: Any, value: str) -> None:
            if not value:
                return
            matcher.set_seq1(value.upper())
            if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
                return
            score = round(matcher.ratio(), 3)
            if score < cutoff:
                return
            current = best.get(stock_id)
            if current is None or score > current.score:
                best[stock_id] = Candidate(stock_id, code, field, value, score)

        live = StockItem.deleted.is_(False)
        for stock_id, code, other in self._session.execute(
                select(StockItem.stock_id, StockItem.stock_code, StockItem.other_ref).where(live)):
            consider(stock_id, code, "StockCode", code)
            consider(stock_id, code, "OtherRef", other)
        for stock_id, code, barcode in self._session.execute(
                select(StockItem.stock_id, StockItem.stock_code, StockBarcode.barcode)
                .join(StockBarcode, StockBarcode.stock_id == StockItem.stock_id).where(live)):
            consider(stock_id, code, "Barcode", barcode)
        ranked = sorted(best.values(), key=lambda c: (-c.score, c.stock_code, c.stock_id))
        return ranked[:limit]

    def upsert_customers(self, customers: Iterable[CustomerRecord], *,
                         origin: str = "khaos", now: datetime | None = None) -> MirrorChange:
        """Insert or update email -> URN rows (emails stored stripped and casefolded)."""
        now = now or utcnow()
        wanted = {_email_key(c.email)[:255]: c for c in customers if c.email.strip() and c.urn}
        existing: dict[str, tuple[str, str, str, str]] = {}
        for chunk in _chunks(list(wanted)):
            for row in self._session.execute(
                    select(CustomerMirror.id, CustomerMirror.email, CustomerMirror.urn,
                           CustomerMirror.name, CustomerMirror.origin, CustomerMirror.postcode)
                    .where(CustomerMirror.email.in_(chunk))):
                existing[row.email] = (row.urn, row.name, row.origin, row.postcode)
        inserts: list[dict[str, Any]] = []
        changed = 0
        for email, c in wanted.items():
            old = existing.get(email)
            postcode = c.postcode.strip().upper()[:20] or (old[3] if old is not None else "")
            values = (c.urn[:50], c.name[:255], origin[:20], postcode)
            if old is None:
                inserts.append({"email": email, "urn": values[0], "name": values[1],
                                "origin": values[2], "postcode": values[3], "updated_at": now})
            elif old != values:
                self._session.execute(
                    update(CustomerMirror).where(CustomerMirror.email == email)
                    .values(urn=values[0], name=values[1], origin=values[2], postcode=values[3],
                            updated_at=now)
                    .execution_options(synchronize_session=False))
                changed += 1
        if inserts:
            self._session.execute(insert(CustomerMirror), inserts)
        self._session.flush()
        return MirrorChange(len(inserts), changed, len(wanted) - len(inserts) - changed)

    def find_urn_by_email(self, email: str) -> str | None:
        """The Khaos URN recorded for ``email`` (case-insensitive), or None."""
        key = _email_key(email)
        if not key:
            return None
        with reading(self._session, *_MIRROR):
            urn: str | None = self._session.scalars(
                select(CustomerMirror.urn).where(CustomerMirror.email == key)).first()
        return urn or None

    # --- what the posting policy looks up ---

    def loaded(self) -> bool:
        """Has Khaos pushed any catalogue item yet? Asked once per unit of work (the event
        worker asks for every return of a batch); a push in the same unit of work (through
        ``upsert_stock_items``) makes it ask again."""
        if self._loaded is None:
            with reading(self._session, *_MIRROR):
                self._loaded = self._session.scalar(
                    select(StockItem.stock_id).limit(1)) is not None
        return self._loaded

    def item(self, stock_id: str) -> StockItem | None:
        return self._session.get(StockItem, stock_id)

    def first_barcode(self, stock_id: str) -> str:
        """The item's first barcode in sort order, or ""."""
        with reading(self._session, *_MIRROR):
            return self._session.scalar(select(StockBarcode.barcode).where(
                StockBarcode.stock_id == stock_id).order_by(StockBarcode.barcode).limit(1)) or ""

    def total_level(self, stock_id: str, site_id: str) -> tuple[Decimal, datetime] | None:
        """The item's available stock summed over its levels (at ``site_id`` only, when
        given) and the oldest level's time; None when Khaos never sent a level."""
        stmt = select(func.count(), func.min(StockLevel.updated_at)).where(
            StockLevel.stock_id == stock_id)
        if site_id:
            stmt = stmt.where(StockLevel.site_id == site_id)
        with reading(self._session, *_MIRROR):
            count, oldest = self._session.execute(stmt).one()
            if not count:
                return None
            levels = select(StockLevel.available).where(StockLevel.stock_id == stock_id)
            if site_id:
                levels = levels.where(StockLevel.site_id == site_id)
            total = sum((a for (a,) in self._session.execute(levels).all()), Decimal(0))
        return total, oldest

    # --- stock pushed on to a returns platform ---

    def levels_to_push(self, site_ids: Sequence[str]) -> list[tuple[StockLevel, str | None]]:
        """Levels at these sites not yet pushed at their current quantity, with the
        item's StockCode (None when the item is not mirrored), by item and site."""
        rows = self._session.execute(
            select(StockLevel, StockItem.stock_code)
            .outerjoin(StockItem, StockItem.stock_id == StockLevel.stock_id)
            .where(StockLevel.site_id.in_(list(site_ids)),
                   or_(StockLevel.pushed_available.is_(None),
                       StockLevel.pushed_available != StockLevel.available))
            .order_by(StockLevel.stock_id, StockLevel.site_id)
        ).all()
        return [(level, code) for level, code in rows]

    def mark_pushed(self, stock_id: str, site_id: str, available: Decimal,
                    at: datetime) -> None:
        """The platform was sent ``available`` for this level at ``at``."""
        self._session.execute(
            update(StockLevel)
            .where(StockLevel.stock_id == stock_id, StockLevel.site_id == site_id)
            .values(pushed_available=available, pushed_at=at))
