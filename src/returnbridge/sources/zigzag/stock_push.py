"""Stock push for ZigZag live exchanges (ARCHITECTURE 5.7).

Changed levels in the Khaos stock mirror (``available`` differs from ``pushed_available``)
at sites mapped in ``[zigzag].warehouse_dc_codes`` go to ``PUT ExchangeStocks/Update``,
batched (at most ``stock_push_batch_size`` per call, at most ``max_lines`` per run so a
peak is spread over several runs). Only SKUs ZigZag knows are sent: the configured
``stock_push_skus``, else the SKUs seen in ZigZag returns. A level is marked pushed only
after ZigZag accepted its batch, with the value that was sent, so a failed or interrupted
run is simply repeated by the next one (the PUT overwrites: repeating is harmless).

ZigZag refuses a whole batch when one line is wrong (a SKU it does not know). A refused
batch is split in halves and each half sent again, down to the single line ZigZag refuses,
so the good SKUs still go through; the refused SKU opens a ``stock_push_rejected``
exception for the warehouse naming the SKU and ZigZag's error. A SKU with such an open
exception is sent on its own in later runs, and its exception resolves when ZigZag accepts it.
Unavailability and authentication failures count towards ``connection_failing``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

import structlog

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success
from returnbridge.sources.zigzag.client import (
    MAX_QUANTITY,
    StockLine,
    ZigZagClient,
    ZigZagError,
    ZigZagRejected,
)
from returnbridge.sources.zigzag.settings import zigzag_settings
from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PushResult:
    pushed: int  # stock lines ZigZag accepted
    batches: int  # successful PUTs
    skipped_unknown: int  # changed levels of SKUs ZigZag does not know
    remaining: int  # changed levels left for the next run (max_lines reached or failure)
    errors: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()  # SKUs ZigZag refused (each has an exception)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Pending:
    stock_id: str
    site_id: str
    available: Decimal
    line: StockLine


def zigzag_skus(uow: UnitOfWork) -> set[str]:
    """SKUs that appeared on ZigZag returns: ZigZag knows them from its order feed."""
    return uow.returns.skus_of_source("zigzag")


def _quantity(available: Decimal) -> int:
    whole = int(available.to_integral_value(rounding=ROUND_FLOOR))
    return max(0, min(whole, MAX_QUANTITY))


def changed_levels(uow: UnitOfWork, dc_codes: dict[str, str], allowed: Collection[str],
                   max_lines: int) -> tuple[list[_Pending], int, int]:
    """(levels to push, how many changed levels of unknown SKUs, how many left over)."""
    rows = uow.catalogue.levels_to_push(list(dc_codes))
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
    with rt.unit_of_work() as uow:
        for item in batch:
            uow.catalogue.mark_pushed(item.stock_id, item.site_id, item.available, now)


def _rejected_key(line: StockLine) -> str:
    return f"{line.sku}@{line.warehouse_dc_code}"


def _open_rejections(uow: UnitOfWork) -> set[str]:
    return uow.exceptions.open_keys("stock_push_rejected")


def _reject(rt: Runtime, item: _Pending, error: str) -> None:
    line = item.line
    with rt.unit_of_work() as uow:
        uow.exceptions.raise_problem(Problem(
            "stock_push_rejected",
            f"ZigZag refused the stock level of SKU {line.sku} at DC {line.warehouse_dc_code} "
            f"({line.available_quantity} available): {error}",
            dedupe_key=_rejected_key(line),
            details={"sku": line.sku, "dc_code": line.warehouse_dc_code,
                     "quantity": str(line.available_quantity), "error": error[:1000]}))


def _accepted(rt: Runtime, batch: list[_Pending], open_keys: set[str]) -> None:
    _mark_pushed(rt, batch)
    cleared = [p for p in batch if _rejected_key(p.line) in open_keys]
    if cleared:
        with rt.unit_of_work() as uow:
            for item in cleared:
                uow.exceptions.resolve_by_key(
                    "stock_push_rejected", _rejected_key(item.line),
                    by="returnbridge", how="ZigZag accepted the SKU's stock level")
                open_keys.discard(_rejected_key(item.line))


@dataclass
class _Tally:
    pushed: int = 0
    batches: int = 0
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _send(rt: Runtime, client: ZigZagClient, batch: list[_Pending], size: int,
          open_keys: set[str], tally: _Tally) -> None:
    """Send ``batch``; when ZigZag refuses it, halve it until the refused line is alone.
    ZigZagError other than a refusal propagates (the rest of the run waits)."""
    try:
        client.update_exchange_stocks([p.line for p in batch], batch_size=size)
    except ZigZagRejected as exc:
        if len(batch) == 1:
            tally.rejected.append(batch[0].line.sku)
            tally.errors.append(str(exc))
            log.warning("zigzag refused a SKU's stock level", sku=batch[0].line.sku,
                        error=str(exc))
            _reject(rt, batch[0], str(exc))
            return
        middle = len(batch) // 2
        _send(rt, client, batch[:middle], size, open_keys, tally)
        _send(rt, client, batch[middle:], size, open_keys, tally)
        return
    _accepted(rt, batch, open_keys)
    tally.pushed += len(batch)
    tally.batches += 1


def push_stock(rt: Runtime, client: ZigZagClient, *, skus: Collection[str] | None = None,
               max_lines: int = 2000) -> PushResult:
    """Push changed stock levels to ZigZag; see the module docstring."""
    settings = zigzag_settings(rt.settings)
    dc_codes = dict(settings.warehouse_dc_codes)
    if not dc_codes:
        return PushResult(0, 0, 0, 0)
    with rt.unit_of_work() as uow:
        allowed: Collection[str] = (set(skus) if skus is not None
                                    else set(settings.stock_push_skus) or zigzag_skus(uow))
        pending, unknown, left = changed_levels(uow, dc_codes, allowed, max_lines)
        open_keys = _open_rejections(uow)
    size = settings.stock_push_batch_size
    # SKUs ZigZag refused before go on their own, so they cannot hold back a batch again.
    suspects = [p for p in pending if _rejected_key(p.line) in open_keys]
    batches = _chunks([p for p in pending if _rejected_key(p.line) not in open_keys], size)
    batches.extend([p] for p in suspects)
    tally = _Tally()
    for batch in batches:
        try:
            _send(rt, client, batch, size, open_keys, tally)
        except ZigZagError as exc:  # unavailable or auth: the rest waits for the next run
            tally.errors.append(str(exc))
            log.warning("zigzag stock push stopped", error=str(exc))
            record_failure(rt, "zigzag", str(exc))
            break
    else:
        if batches:
            record_success(rt, "zigzag")
    # Not pushed: left over by max_lines, refused, or waiting after a failure.
    remaining = left + len(pending) - tally.pushed
    return PushResult(tally.pushed, tally.batches, unknown, remaining, tuple(tally.errors),
                      tuple(tally.rejected))


def _chunks(items: list[_Pending], size: int) -> list[list[_Pending]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
