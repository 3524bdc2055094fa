"""Read models for the team console: a return's whole story, the queues and the overview.

Everything here reads; nothing changes state (the dry run renders a document without
recording a delivery)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from returnbridge.domain.exceptions import CATALOGUE, Owner, Severity
from returnbridge.domain.khaos_status import DELIVERED, KhaosStatus
from returnbridge.domain.money import ZERO, quantize
from returnbridge.erp.khaos.channel import customer_return_import
from returnbridge.flows.console.mapping import console_rules_view
from returnbridge.flows.console.queries import return_view
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.actions import exception_view
from returnbridge.flows.exceptions.coverage import ReasonCoverage, map_line
from returnbridge.flows.khaos.serve import channel_options, render, to_served
from returnbridge.store.khaos_repo import page_row_of
from returnbridge.store.models import utcnow
from returnbridge.store.unit_of_work import UnitOfWork

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
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        assert row is not None
        deliveries = uow.console.deliveries(row.id)
        view["documents"] = [{
            "delivery_id": d.id, "delivered_at": d.delivered_at.isoformat(),
            "format": d.format, "return_count": d.return_count, "redelivery": redelivery,
            "specific_ids": d.specific_ids, "document": _text(d.document),
        } for d, redelivery in deliveries]
        events = uow.console.raw_events(row.source, row.source_return_id, 200)
        view["raw_events"] = [{
            "id": e.id, "channel": e.channel, "topic": e.topic, "trigger": e.trigger,
            "received_at": e.received_at.isoformat(), "status": e.status, "error": e.error,
            "duplicates": e.duplicates, "body": _text(e.body),
        } for e in events]
        view["all_exceptions"] = [exception_view(e)
                                  for e in uow.console.all_exceptions(row.id)]
    view["waterfall"] = waterfall(view)
    return view


def dry_run(rt: Runtime, associated_ref: str) -> dict[str, Any] | None:
    """What Khaos would receive for this return if it polled now (nothing is recorded)."""
    k = rt.settings.khaos
    with rt.unit_of_work() as uow:
        row = uow.returns.by_ref(associated_ref)
        if row is None:
            return None
        document = customer_return_import([to_served(page_row_of(row), k, rt.settings.policy)],
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


def exception_queue(uow: UnitOfWork, owner: str, *, status: str = "open",
                    type: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """An owning team's queue: blocking first, then oldest first."""
    rows = uow.console.queue(owner, status=status, type=type,
                             blocking=Severity.BLOCKING.value, limit=limit)
    now = utcnow()
    return [exception_view(r, now) for r in rows]


def queue_counts(uow: UnitOfWork) -> dict[str, int]:
    rows = uow.console.open_by_owner()
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


def _flows(uow: UnitOfWork, periods: dict[str, datetime]) -> dict[str, dict[str, int]]:
    """Every period's stage counts from one grouped pass over the longest period."""
    since = min(periods.values())
    names = list(periods)
    rows = uow.console.stage_counts([periods[n] for n in names])
    refunded_rows = uow.console.refunded_first_seen(since)
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


def overview(uow: UnitOfWork, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    periods = {"today": today, "7 days": now - timedelta(days=7),
               "30 days": now - timedelta(days=30)}
    flow = _flows(uow, periods)

    ageing: dict[str, list[int]] = {o.value: [0] * len(AGE_BUCKETS) for o in Owner}
    by_type: dict[tuple[str, str], int] = defaultdict(int)
    for owner, type_, first_seen in uow.console.open_exception_ages():
        days = (now - first_seen).total_seconds() / 86400
        for i, (_, upper) in enumerate(AGE_BUCKETS):
            if upper is None or days < upper:
                ageing.setdefault(str(owner), [0] * len(AGE_BUCKETS))[i] += 1
                break
        by_type[(str(type_), str(owner))] += 1

    stale = now - timedelta(hours=1)
    served_not_imported = uow.console.served_not_imported(KhaosStatus.SERVED.value, stale)
    # Later statuses (credit_confirmed, refund_recorded, done) have their credit cleared.
    processed_not_cleared = uow.console.processed_not_cleared(
        [KhaosStatus.SERVED.value, KhaosStatus.IMPORTED.value])

    start = today - timedelta(days=29)
    received_days: dict[str, int] = defaultdict(int)
    served_days: dict[str, int] = defaultdict(int)
    for d, n in uow.console.received_per_day(start):
        received_days[str(d)[:10]] = int(n)
    for d, n in uow.console.served_per_day(start):
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


def reason_coverage(rt: Runtime, days: int | None = None) -> dict[str, Any]:
    """The Mapping page's coverage, grouped in the database and mapped exactly as
    ``returnbridge audit`` and the posting policy map.

    By default over the returns still to be sent to Khaos (pending, held, ready): the ones
    a mapping change can still affect, and a small set however large the history. With
    ``days``, over every return seen in that many days, from the per-day coverage table
    (``store/reason_coverage.py``: its dirty days are rebuilt first, in a unit of work of
    their own)."""
    still_dirty = _refresh(rt, days)
    with rt.unit_of_work() as uow:
        return _reason_coverage(uow, rt.policy_config(uow.mapping_rules), days, still_dirty)


def mapping_page(rt: Runtime, days: int | None = None
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``reason_coverage`` and the console's rules, read in one unit of work."""
    still_dirty = _refresh(rt, days)
    with rt.unit_of_work() as uow:
        report = _reason_coverage(uow, rt.policy_config(uow.mapping_rules), days, still_dirty)
        return report, console_rules_view(uow)


def _refresh(rt: Runtime, days: int | None) -> set[str]:
    """The per-day coverage table brought up to date (only needed with ``days``)."""
    if not days:
        return set()
    with rt.unit_of_work() as uow:
        return uow.reason_coverage.refresh()


def _reason_coverage(uow: UnitOfWork, config: Any, days: int | None,
                     still_dirty: set[str]) -> dict[str, Any]:
    cutoff = utcnow() - timedelta(days=days or 0)
    if days:
        groups = uow.reason_coverage.since(cutoff, still_dirty)
        rows: list[Any] = [(g.source, g.reason, g.condition, g.disposition,
                            g.physical_return_expected, g.returns, g.lines, g.units,
                            g.last_seen, g.example_ref) for g in groups]
    else:
        rows = uow.reason_coverage.in_status(IN_FLIGHT)
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
    seen = (uow.reason_coverage.seen_since(cutoff) if days
            else uow.reason_coverage.count_in_status(IN_FLIGHT))
    return {"days": days, "returns_seen": seen, "reasons": reasons,
            "unmapped": [r for r in reasons if r.status != "mapped"],
            "unmapped_lines": sum(r.lines for r in reasons if r.status != "mapped")}
