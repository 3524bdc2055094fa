"""What the mapping coverage and catalogue gap report reads (``returnbridge audit``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from returnbridge.store.models import (
    ExchangeLineRow,
    ReturnLineRow,
    ReturnRow,
    StockBarcode,
    StockItem,
    StockLevel,
)

_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i:i + _CHUNK])


class CoverageRepository:
    """The coverage report's reads in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def returns_seen_since(self, cutoff: datetime) -> int:
        return int(self._session.scalar(select(func.count()).select_from(ReturnRow)
                                        .where(ReturnRow.last_event_at >= cutoff)) or 0)

    def live_catalogue_items(self) -> int:
        return int(self._session.scalar(select(func.count()).select_from(StockItem)
                                        .where(StockItem.deleted.is_(False))) or 0)

    def stock_levels(self) -> int:
        return int(self._session.scalar(select(func.count()).select_from(StockLevel)) or 0)

    def reason_lines_since(self, cutoff: datetime) -> Sequence[Any]:
        """(source, reason, condition, disposition, physical, quantity, return id, ref, last
        event) per line of the returns seen since ``cutoff``."""
        return self._session.execute(
            select(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                   ReturnLineRow.disposition, ReturnLineRow.physical_return_expected,
                   ReturnLineRow.quantity, ReturnRow.id, ReturnRow.associated_ref,
                   ReturnRow.last_event_at)
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnRow.last_event_at >= cutoff)
        ).all()

    def returned_skus_since(self, cutoff: datetime) -> Sequence[Any]:
        """(sku, return id, ref) per returned line."""
        return self._session.execute(
            select(ReturnLineRow.sku, ReturnRow.id, ReturnRow.associated_ref)
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(ReturnRow.last_event_at >= cutoff)
        ).all()

    def exchanged_skus_since(self, cutoff: datetime) -> Sequence[Any]:
        """(sku, return id, ref) per exchange line."""
        return self._session.execute(
            select(ExchangeLineRow.sku, ReturnRow.id, ReturnRow.associated_ref)
            .join(ReturnRow, ReturnRow.id == ExchangeLineRow.return_id)
            .where(ReturnRow.last_event_at >= cutoff)
        ).all()

    def catalogue_lookup(self, skus: set[str]) -> dict[str, dict[str, list[StockItem]]]:
        """SKU -> field (StockCode, OtherRef, Barcode) -> mirror items, exact match like Khaos."""
        found: dict[str, dict[str, list[StockItem]]] = defaultdict(lambda: defaultdict(list))
        for chunk in _chunks(sorted(skus)):
            for item in self._session.scalars(
                    select(StockItem).where(StockItem.stock_code.in_(chunk))):
                found[item.stock_code]["StockCode"].append(item)
            for item in self._session.scalars(
                    select(StockItem).where(StockItem.other_ref.in_(chunk))):
                found[item.other_ref]["OtherRef"].append(item)
            pairs = self._session.execute(select(StockBarcode.barcode, StockItem).join(
                StockItem, StockItem.stock_id == StockBarcode.stock_id).where(
                StockBarcode.barcode.in_(chunk))).all()
            for barcode, item in pairs:
                found[str(barcode)]["Barcode"].append(item)
        return found

    def levels_updated_before(self, before: datetime) -> list[StockLevel]:
        return list(self._session.scalars(
            select(StockLevel).where(StockLevel.updated_at < before)
            .order_by(StockLevel.updated_at, StockLevel.stock_code, StockLevel.site_id)))
