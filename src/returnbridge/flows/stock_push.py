"""Stock push for ZigZag live exchanges (ARCHITECTURE 5.7).

Changed levels in the Khaos stock mirror (``available`` differs from ``pushed_available``)
at sites mapped in ``[zigzag].warehouse_dc_codes`` go to ``PUT ExchangeStocks/Update``,
batched (at most ``stock_push_batch_size`` per call, at most ``max_lines`` per run so a
peak is spread over several runs). Only SKUs ZigZag knows are sent: the configured
``stock_push_skus``, else the SKUs seen in ZigZag returns. A level is marked pushed only
after ZigZag accepted its batch, with the value that was sent, so a failed or interrupted
run is simply repeated by the next one (the PUT overwrites: repeating is harmless).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from returnbridge.flows.runtime import Runtime
from returnbridge.sources.zigzag.client import (
    MAX_QUANTITY,
    StockLine,
    ZigZagClient,
    ZigZagError,
    ZigZagRejected,
)
from returnbridge.store.models import ReturnLineRow, ReturnRow, StockItem, StockLevel, utcnow

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PushResult:
    pushed: int  # stock lines ZigZag accepted
    batches: int  # successful PUTs
    skipped_unknown: int  # changed levels of SKUs ZigZag does not know
    remaining: int  # changed levels left for the next run (max_lines reached or failure)
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Pending:
    stock_id: str
    site_id: str
    available: Decimal
    line: StockLine


def zigzag_skus(session: Session) -> set[str]:
    """SKUs that appeared on ZigZag returns: ZigZag knows them from its order feed."""
    rows = session.scalars(
        select(ReturnLineRow.sku).join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
        .where(ReturnRow.source == "zigzag").distinct())
    return {sku for sku in rows if sku}


def _quantity(available: Decimal) -> int:
    whole = int(available.to_integral_value(rounding=ROUND_FLOOR))
    return max(0, min(whole, MAX_QUANTITY))


def changed_levels(session: Session, dc_codes: dict[str, str], allowed: Collection[str],
                   max_lines: int) -> tuple[list[_Pending], int, int]:
    """(levels to push, how many changed levels of unknown SKUs, how many left over)."""
    rows = session.execute(
        select(StockLevel, StockItem.stock_code)
        .outerjoin(StockItem, StockItem.stock_id == StockLevel.stock_id)
        .where(StockLevel.site_id.in_(list(dc_codes)),
               or_(StockLevel.pushed_available.is_(None),
                   StockLevel.pushed_available != StockLevel.available))
        .order_by(StockLevel.stock_id, StockLevel.site_id)
    ).all()
    pending: list[_Pending] = []
    unknown = 0
    for level, item_code in rows:
        sku = level.stock_code or item_code or ""
        if not sku or sku not in allowed:
            unknown += 1
            continue
        pending.append(_Pending(level.stock_id, level.site_id, level.available,
                                StockLine(sku, dc_codes[level.site_id],
                                          _quantity(level.available))))
    return pending[:max_lines], unknown, max(0, len(pending) - max_lines)


def _mark_pushed(rt: Runtime, batch: list[_Pending]) -> None:
    now = utcnow()
    with rt.sessions() as session, session.begin():
        for item in batch:
            session.execute(
                update(StockLevel)
                .where(StockLevel.stock_id == item.stock_id, StockLevel.site_id == item.site_id)
                .values(pushed_available=item.available, pushed_at=now))


def push_stock(rt: Runtime, client: ZigZagClient, *, skus: Collection[str] | None = None,
               max_lines: int = 2000) -> PushResult:
    """Push changed stock levels to ZigZag; see the module docstring."""
    settings = rt.settings.zigzag
    dc_codes = dict(settings.warehouse_dc_codes)
    if not dc_codes:
        return PushResult(0, 0, 0, 0)
    with rt.sessions() as session:
        allowed: Collection[str] = (set(skus) if skus is not None
                                    else set(settings.stock_push_skus) or zigzag_skus(session))
        pending, unknown, left = changed_levels(session, dc_codes, allowed, max_lines)
    size = settings.stock_push_batch_size
    pushed = batches = 0
    errors: list[str] = []
    for start in range(0, len(pending), size):
        batch = pending[start:start + size]
        try:
            client.update_exchange_stocks([p.line for p in batch], batch_size=size)
        except ZigZagRejected as exc:
            errors.append(str(exc))
            log.warning("zigzag refused a stock batch", error=str(exc), lines=len(batch))
            left += len(batch)
            continue
        except ZigZagError as exc:  # unavailable or auth: the rest waits for the next run
            errors.append(str(exc))
            log.warning("zigzag stock push stopped", error=str(exc))
            left += len(pending) - start
            break
        _mark_pushed(rt, batch)
        pushed += len(batch)
        batches += 1
    return PushResult(pushed, batches, unknown, left, tuple(errors))
