"""Read models for the team console: a return's whole story, the queues and the overview.

Everything here reads; nothing changes state (the dry run renders a document without
recording a delivery)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from returnbridge.domain.exceptions import CATALOGUE, Owner, Severity
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.money import ZERO, quantize
from returnbridge.erp.khaos.channel import customer_return_import
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.actions import exception_view
from returnbridge.flows.exceptions.coverage import ReasonCoverage, map_line
from returnbridge.flows.khaos.serve import channel_options, render, to_served
from returnbridge.store import reason_coverage as by_day
from returnbridge.store.models import (
    ExceptionRow,
    InboundEvent,
    KhaosDelivery,
    KhaosDeliveryItem,
    RefundRow,
    ReturnLineRow,
    ReturnRow,
    utcnow,
)
from returnbridge.store.returns_repo import ReturnsRepository

MAX_DOCUMENT_CHARS = 200_000


def _text(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    if len(text) > MAX_DOCUMENT_CHARS:
        return text[:MAX_DOCUMENT_CHARS] + f"\n… ({len(text) - MAX_DOCUMENT_CHARS} more " \
            "characters; download the full document)"
    return text


def waterfall(view: dict[str, Any]) -> list[tuple[str, str]]:
    """Where the money went: goods, adjustments, and what the customer received."""
    s = view.get("settlement") or {}
    goods = sum((Decimal(ln["unit_gross"]) * int(ln["quantity"]) for ln in view["lines"]),
                ZERO)

    def d(key: str) -> Decimal:
        return Decimal(str(s.get(key) or "0"))

    shipping, fee, bonus = d("shipping_refund"), d("handling_fee"), d("bonus_credit")
    refund, store, exchange = d("refund_to_original"), d("store_credit"), d("exchange_credit")
    expected = goods + shipping - fee + bonus
    received = refund + store + exchange
    rows = [("Goods returned (gross)", goods), ("+ shipping refund", shipping),
            ("- handling fee", -fee), ("+ bonus credit", bonus),
            ("= credit due", expected), ("Refund to original payment", refund),
            ("Store credit", store), ("Exchange credit", exchange),
            ("= customer received", received), ("Difference (received - due)",
                                                received - expected)]
    if view["credit_note"]["value"] is not None:
        rows.append(("Khaos credit note " + (view["credit_note"]["code"] or ""),
                     Decimal(view["credit_note"]["value"])))
    return [(label, str(quantize(value))) for label, value in rows]


def return_page(rt: Runtime, associated_ref: str) -> dict[str, Any] | None:
    """``return_view`` plus the documents served, the raw events and the money waterfall."""
    view = return_view(rt, associated_ref)
    if view is None:
        return None
    with rt.sessions() as session:
        row = ReturnsRepository(session).by_ref(associated_ref)
        assert row is not None
        deliveries = session.execute(
            select(KhaosDelivery, KhaosDeliveryItem.redelivery)
            .join(KhaosDeliveryItem, KhaosDeliveryItem.delivery_id == KhaosDelivery.id)
            .where(KhaosDeliveryItem.return_id == row.id).order_by(KhaosDelivery.id)).all()
        view["documents"] = [{
            "delivery_id": d.id, "delivered_at": d.delivered_at.isoformat(),
            "format": d.format, "return_count": d.return_count, "redelivery": redelivery,
            "specific_ids": d.specific_ids, "document": _text(d.document),
        } for d, redelivery in deliveries]
        events = session.scalars(
            select(InboundEvent).where(InboundEvent.source == row.source,
                                       InboundEvent.source_ref == row.source_return_id)
            .order_by(InboundEvent.id).limit(200)).all()
        view["raw_events"] = [{
            "id": e.id, "channel": e.channel, "topic": e.topic, "trigger": e.trigger,
            "received_at": e.received_at.isoformat(), "status": e.status, "error": e.error,
            "duplicates": e.duplicates, "body": _text(e.body),
        } for e in events]
        view["all_exceptions"] = [exception_view(e) for e in session.scalars(
            select(ExceptionRow).where(ExceptionRow.return_id == row.id)
            .order_by(ExceptionRow.id))]
    view["waterfall"] = waterfall(view)
    return view


def dry_run(rt: Runtime, associated_ref: str) -> dict[str, Any] | None:
    """What Khaos would receive for this return if it polled now (nothing is recorded)."""
    k = rt.settings.khaos
    with rt.sessions() as session:
        row = ReturnsRepository(session).by_ref(associated_ref)
        if row is None:
            return None
        document = customer_return_import([to_served(row, k, rt.settings.policy)],
                                          channel_options(rt))
        body, media_type = render(document, k.format)
        status = KhaosStatus(row.khaos_status)
    if media_type == "application/json":
        import json

        text = json.dumps(json.loads(body), indent=2)
    else:
        text = body.decode("utf-8", errors="replace")
    note = ("Khaos would receive this on its next poll." if status is KhaosStatus.READY
            else "Already handed to Khaos: it is never sent again as this AssociatedRef; "
            "this is what it would look like now." if status in DELIVERED
            else f"The return is {status.value}: Khaos receives nothing until it is ready; "
            "this is what it would receive if it were ready now.")
    return {"format": k.format, "media_type": media_type, "document": text, "note": note}


# --- exception queue -------------------------------------------------------------------

_SEVERITY_ORDER = {Severity.BLOCKING.value: 0, Severity.WARNING.value: 1}


def exception_queue(session: Session, owner: str, *, status: str = "open",
                    type: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """An owning team's queue: blocking first, then oldest first."""
    stmt = select(ExceptionRow).where(ExceptionRow.status == status)
    if owner != "all":
        stmt = stmt.where(ExceptionRow.owner == owner)
    if type:
        stmt = stmt.where(ExceptionRow.type == type)
    severity_rank = case((ExceptionRow.severity == Severity.BLOCKING.value, 0), else_=1)
    stmt = stmt.order_by(severity_rank, ExceptionRow.first_seen_at, ExceptionRow.id).limit(limit)
    now = utcnow()
    return [exception_view(r, now) for r in session.scalars(stmt)]


def queue_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(ExceptionRow.owner, func.count())
                           .where(ExceptionRow.status == "open")
                           .group_by(ExceptionRow.owner)).all()
    counts = {o.value: 0 for o in Owner}
    for owner, n in rows:
        counts[str(owner)] = int(n)
    counts["all"] = sum(counts.values())
    return counts


# --- overview ----------------------------------------------------------------------------

AGE_BUCKETS = (("< 1 day", 1), ("1-3 days", 3), ("3-7 days", 7), ("> 7 days", None))
STAGES = ("received", "held", "ready", "served", "imported", "credit_cleared", "refunded",
          "done")


@dataclass(frozen=True)
class Bar:
    day: str
    received: int
    served: int


def _flows(session: Session, periods: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """Every period's stage counts from one grouped pass over the longest period."""
    since = min(periods.values())
    names = list(periods)
    flags = [(ReturnRow.first_seen_at >= periods[n]).label(f"p{i}")
             for i, n in enumerate(names)]
    imported = ReturnRow.imported_at.is_not(None).label("imported")
    cleared = ReturnRow.credit_confirmed_at.is_not(None).label("cleared")
    rows = session.execute(
        select(ReturnRow.khaos_status, imported, cleared, *flags, func.count())
        .where(ReturnRow.first_seen_at >= since)
        .group_by(ReturnRow.khaos_status, imported, cleared, *flags)).all()
    refunded_rows = session.execute(
        select(ReturnRow.first_seen_at).join(RefundRow, RefundRow.return_id == ReturnRow.id)
        .where(ReturnRow.first_seen_at >= since).distinct()).all()
    delivered = {s.value for s in DELIVERED}
    result: dict[str, dict[str, int]] = {}
    for i, name in enumerate(names):
        counts = dict.fromkeys(STAGES, 0)
        for row in rows:
            if not row[3 + i]:
                continue
            n = int(row[-1])
            status = str(row[0])
            counts["received"] += n
            counts["held"] += n if status == "held" else 0
            counts["ready"] += n if status == "ready" else 0
            counts["served"] += n if status in delivered else 0
            counts["done"] += n if status == "done" else 0
            counts["imported"] += n if row[1] else 0
            counts["credit_cleared"] += n if row[2] else 0
        counts["refunded"] = sum(1 for (seen,) in refunded_rows if seen >= periods[name])
        result[name] = counts
    return result


def overview(session: Session, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    periods = {"today": today, "7 days": now - timedelta(days=7),
               "30 days": now - timedelta(days=30)}
    flow = _flows(session, periods)

    ageing: dict[str, list[int]] = {o.value: [0] * len(AGE_BUCKETS) for o in Owner}
    by_type: dict[tuple[str, str], int] = defaultdict(int)
    for owner, type_, first_seen in session.execute(
            select(ExceptionRow.owner, ExceptionRow.type, ExceptionRow.first_seen_at)
            .where(ExceptionRow.status == "open")):
        days = (now - first_seen).total_seconds() / 86400
        for i, (_, upper) in enumerate(AGE_BUCKETS):
            if upper is None or days < upper:
                ageing.setdefault(str(owner), [0] * len(AGE_BUCKETS))[i] += 1
                break
        by_type[(str(type_), str(owner))] += 1

    stale = now - timedelta(hours=1)
    served_not_imported = int(session.scalar(select(func.count()).select_from(ReturnRow).where(
        ReturnRow.khaos_status == KhaosStatus.SERVED.value, ReturnRow.served_at <= stale)) or 0)
    # Later statuses (credit_confirmed, refund_recorded, done) have their credit cleared.
    processed_not_cleared = int(session.scalar(select(func.count()).select_from(ReturnRow).where(
        ReturnRow.process_return.is_(True), ReturnRow.credit_confirmed_at.is_(None),
        ReturnRow.khaos_status.in_([KhaosStatus.SERVED.value,
                                    KhaosStatus.IMPORTED.value]))) or 0)

    start = today - timedelta(days=29)
    received_days: dict[str, int] = defaultdict(int)
    served_days: dict[str, int] = defaultdict(int)
    day = func.date(ReturnRow.first_seen_at)
    for d, n in session.execute(select(day, func.count()).where(
            ReturnRow.first_seen_at >= start).group_by(day)):
        received_days[str(d)[:10]] = int(n)
    sday = func.date(ReturnRow.served_at)
    for d, n in session.execute(select(sday, func.count()).where(
            ReturnRow.served_at >= start).group_by(sday)):
        served_days[str(d)[:10]] = int(n)
    bars = []
    for i in range(30):
        key = (start + timedelta(days=i)).date().isoformat()
        bars.append(Bar(key, received_days.get(key, 0), served_days.get(key, 0)))
    return {
        "flow": flow, "stages": STAGES,
        "ageing": ageing, "age_buckets": [b[0] for b in AGE_BUCKETS],
        "by_type": sorted(((t, o, n) for (t, o), n in by_type.items()),
                          key=lambda x: (-x[2], x[0])),
        "gaps": {"served_not_imported": served_not_imported,
                 "processed_not_cleared": processed_not_cleared},
        "bars": bars, "bar_max": max([1, *(max(b.received, b.served) for b in bars)]),
        "known_types": sorted(CATALOGUE),
    }


IN_FLIGHT = (KhaosStatus.PENDING.value, KhaosStatus.HELD.value, KhaosStatus.READY.value)


def reason_coverage(session: Session, config: Any, days: int | None = None) -> dict[str, Any]:
    """The Mapping page's coverage, grouped in the database and mapped exactly as
    ``returnbridge audit`` and the posting policy map.

    By default over the returns still to be sent to Khaos (pending, held, ready): the ones
    a mapping change can still affect, and a small set however large the history. With
    ``days``, over every return seen in that many days, from the per-day coverage table
    (``store/reason_coverage.py``: its dirty days are rebuilt first, so ``session`` must
    not be inside a transaction)."""

    cutoff = utcnow() - timedelta(days=days or 0)
    scope = (ReturnRow.last_event_at >= cutoff if days
             else ReturnRow.khaos_status.in_(IN_FLIGHT))
    if days:
        groups = by_day.since(session, cutoff, by_day.refresh(session))
        rows: list[Any] = [(g.source, g.reason, g.condition, g.disposition,
                            g.physical_return_expected, g.returns, g.lines, g.units,
                            g.last_seen, g.example_ref) for g in groups]
    else:
        rows = list(session.execute(
            select(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                   ReturnLineRow.disposition, ReturnLineRow.physical_return_expected,
                   func.count(func.distinct(ReturnRow.id)), func.count(),
                   func.sum(ReturnLineRow.quantity), func.max(ReturnRow.last_event_at),
                   func.max(ReturnRow.associated_ref))
            .join(ReturnRow, ReturnRow.id == ReturnLineRow.return_id)
            .where(scope)
            .group_by(ReturnRow.source, ReturnLineRow.reason, ReturnLineRow.condition,
                      ReturnLineRow.disposition, ReturnLineRow.physical_return_expected)))
    reasons = []
    for source, reason, condition, disposition, physical, n_returns, n_lines, units, last, \
            example in rows:
        status, reason_id, processing, by = map_line(config, source, reason, condition,
                                                     disposition, not physical)
        reasons.append(ReasonCoverage(
            source=source, reason=reason, condition=condition, disposition=disposition,
            returns=int(n_returns), lines=int(n_lines), units=int(units or 0),
            last_seen=last.isoformat() if last else "", status=status,
            keep_item=not physical, khaos_reason_id=reason_id, processing=processing,
            mapped_by=by, example_ref=str(example or "")))
    order = {"unmapped": 0, "unsafe": 1, "mapped": 2}
    reasons.sort(key=lambda r: (order[r.status], -r.returns, r.source, r.reason))
    seen = int(session.scalar(select(func.count()).select_from(ReturnRow).where(scope)) or 0)
    return {"days": days, "returns_seen": seen, "reasons": reasons,
            "unmapped": [r for r in reasons if r.status != "mapped"],
            "unmapped_lines": sum(r.lines for r in reasons if r.status != "mapped")}
