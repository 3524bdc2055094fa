"""``returnbridge audit``: mapping coverage and catalogue gaps, before they become exceptions.

Looks at the returns seen in the last N days (``returns.last_event_at``) and reports:

- every (source, reason, condition, disposition) combination on their lines, how many
  returns and units it affected, and which Khaos return reason it maps to: a
  ``[[mapping.reasons]]`` rule (first match wins), the per-disposition default, or nothing
  (``unmapped``); a mapping that would put graded-unsellable goods back to stock (or the
  reverse) is ``unsafe``;
- exchange SKUs (from exchange lines) that the Khaos mirror has but Khaos would refuse for an
  exchange: not published to web or discontinued;
- SKUs seen on returned or exchange lines that the catalogue does not know under the
  configured ``[khaos].sku_mapping`` (exact match, as Khaos and the posting policy do), with
  a hint when the SKU is found under another field or only on a deleted item;
- stock levels older than the staleness limit (exchange checks distrust them).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from returnbridge.domain.policy import PolicyConfig
from returnbridge.domain.reasons import Processing, match_reason
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.catalogue import FIELDS_BY_MAPPING
from returnbridge.store.models import StockItem, utcnow
from returnbridge.store.unit_of_work import UnitOfWork

DEFAULT_DAYS = 90
_RESTOCK_DISPOSITIONS = frozenset({"restock"})
_NEVER_RESTOCK = frozenset({"write_off", "recycle", "donate", "missing", "resale_hold"})
@dataclass(frozen=True)
class ReasonCoverage:
    source: str
    reason: str
    condition: str
    disposition: str
    returns: int
    lines: int
    units: int
    last_seen: str
    status: str  # mapped | unmapped | unsafe
    keep_item: bool = False  # the customer keeps the goods (no parcel comes back)
    khaos_reason_id: str = ""
    processing: str = ""
    mapped_by: str = ""  # "rule 3" | "default for write_off" | ""
    example_ref: str = ""


@dataclass(frozen=True)
class ExchangeSkuIssue:
    sku: str
    returns: int
    stock_code: str
    problem: str  # not_published_to_web | discontinued


@dataclass(frozen=True)
class UnknownSku:
    sku: str
    returns: int
    seen_on: str  # returned | exchange | returned+exchange
    example_ref: str
    hint: str = ""  # e.g. "is the OtherRef of TEE-01 (sku_mapping is StockCode)"


@dataclass(frozen=True)
class StaleLevel:
    stock_code: str
    stock_id: str
    site_id: str
    available: str
    updated_at: str
    age_hours: float


@dataclass
class CoverageReport:
    generated_at: str
    days: int
    stale_after_hours: float
    returns_seen: int
    catalogue_items: int
    stock_levels: int
    unmapped_returns: int = 0  # distinct returns with an unmapped or unsafe line
    reasons: list[ReasonCoverage] = field(default_factory=list)
    exchange_skus: list[ExchangeSkuIssue] = field(default_factory=list)
    unknown_skus: list[UnknownSku] = field(default_factory=list)
    stale_levels: list[StaleLevel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unmapped(self) -> list[ReasonCoverage]:
        return [r for r in self.reasons if r.status != "mapped"]

    @property
    def has_gaps(self) -> bool:
        return bool(self.unmapped or self.exchange_skus or self.unknown_skus
                    or self.stale_levels)

    def summary(self) -> str:
        """One line an operator can act on."""
        unmapped = [r for r in self.reasons if r.status == "unmapped"]
        unsafe = [r for r in self.reasons if r.status == "unsafe"]
        affected = self.unmapped_returns
        if not self.has_gaps:
            return (f"All clear: {len(self.reasons)} reason combination(s) from "
                    f"{self.returns_seen} return(s) in {self.days} days all map to a Khaos "
                    "reason; no catalogue or stock gaps found.")
        parts: list[str] = []
        todo: list[str] = []
        if unmapped:
            parts.append(f"{len(unmapped)} of {len(self.reasons)} reason combination(s) "
                         f"unmapped")
        if unsafe:
            parts.append(f"{len(unsafe)} mapped to a reason with the wrong stock effect")
        if unmapped or unsafe:
            parts[-1] += f" ({affected} return(s) affected)"
            todo.append("add or fix [[mapping.reasons]] entries and run 'returnbridge "
                        "check-config'")
        if self.exchange_skus:
            parts.append(f"{len(self.exchange_skus)} exchange SKU(s) Khaos would refuse")
            todo.append("tick 'Publish to web' (or replace discontinued items) in Khaos")
        if self.unknown_skus:
            parts.append(f"{len(self.unknown_skus)} SKU(s) unknown to Khaos")
            todo.append("fix those SKUs in Khaos (StockCode/OtherRef/barcode) or the shop")
        if self.stale_levels:
            parts.append(f"{len(self.stale_levels)} stock level(s) older than "
                         f"{_hours(self.stale_after_hours)}")
            todo.append("check the Khaos StockStatusUpload schedule")
        return "; ".join(parts) + ". Next: " + "; ".join(todo) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at, "days": self.days,
            "stale_after_hours": self.stale_after_hours, "returns_seen": self.returns_seen,
            "catalogue_items": self.catalogue_items, "stock_levels": self.stock_levels,
            "unmapped_returns": self.unmapped_returns, "summary": self.summary(),
            "reasons": [asdict(r) for r in self.reasons],
            "exchange_skus": [asdict(x) for x in self.exchange_skus],
            "unknown_skus": [asdict(x) for x in self.unknown_skus],
            "stale_levels": [asdict(x) for x in self.stale_levels],
            "notes": list(self.notes),
        }

    def to_csv(self) -> str:
        """All sections in one long table; ``section`` says which one a row belongs to.
        Text cells a spreadsheet would run as a formula are neutralised."""
        buf = io.StringIO()
        writer = _SafeWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.reasons:
            writer.writerow({"section": "reason", "source": r.source, "reason": r.reason,
                             "condition": r.condition, "disposition": r.disposition,
                             "returns": r.returns, "units": r.units, "status": r.status,
                             "khaos_reason_id": r.khaos_reason_id,
                             "processing": r.processing,
                             "detail": r.mapped_by + ("; keep item" if r.keep_item else ""),
                             "when": r.last_seen, "example_ref": r.example_ref})
        for x in self.exchange_skus:
            writer.writerow({"section": "exchange_sku", "sku": x.sku, "returns": x.returns,
                             "status": x.problem, "detail": f"Khaos StockCode {x.stock_code}"})
        for u in self.unknown_skus:
            writer.writerow({"section": "unknown_sku", "sku": u.sku, "returns": u.returns,
                             "status": "unknown",
                             "detail": f"seen on {u.seen_on} lines"
                             + (f"; {u.hint}" if u.hint else ""),
                             "example_ref": u.example_ref})
        for s in self.stale_levels:
            writer.writerow({"section": "stale_level", "sku": s.stock_code,
                             "status": "stale", "when": s.updated_at,
                             "detail": f"site {s.site_id}, available {s.available}, "
                             f"{s.age_hours}h old"})
        return buf.getvalue()

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell that starts like a spreadsheet formula gets a leading apostrophe
    (OWASP CSV injection); numbers are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _SafeWriter(csv.DictWriter):  # type: ignore[type-arg]
    def writerow(self, rowdict: Any) -> Any:
        return super().writerow({k: csv_cell(v) for k, v in rowdict.items()})


CSV_COLUMNS = ["section", "source", "reason", "condition", "disposition", "sku", "returns",
               "units", "status", "khaos_reason_id", "processing", "detail", "when",
               "example_ref"]


def _hours(hours: float) -> str:
    return f"{hours / 24:g} day(s)" if hours >= 48 and hours % 24 == 0 else f"{hours:g}h"


def map_line(config: PolicyConfig, source: str, reason: str, condition: str,
         disposition: str, keep_item: bool = False) -> tuple[str, str, str, str]:
    """(status, khaos_reason_id, processing, mapped_by), the way the posting policy maps."""
    if keep_item and config.keep_item_reason_id:
        return ("mapped", config.keep_item_reason_id, Processing.NO_STOCK.value,
                "policy.keep_item_reason_id")
    rule = match_reason(config.rules, source=source, reason=reason, disposition=disposition,
                        condition=condition)
    found: tuple[str, Processing, str] | None = None
    if rule is not None:
        found = rule.khaos_reason_id, rule.processing, f"rule {config.rules.index(rule) + 1}"
    else:
        for default in config.defaults:
            if default.disposition in (disposition, "*"):
                found = (default.khaos_reason_id, default.processing,
                         f"default for {default.disposition}")
                break
    if found is None:
        return "unmapped", "", "", ""
    reason_id, processing, by = found
    unsafe = ((processing is Processing.RESTOCK and (disposition in _NEVER_RESTOCK or keep_item))
              or (processing is not Processing.RESTOCK
                  and disposition in _RESTOCK_DISPOSITIONS))
    return ("unsafe" if unsafe else "mapped"), reason_id, processing.value, by


def _live(items: list[StockItem]) -> list[StockItem]:
    return [i for i in items if not i.deleted]


def coverage_report(uow: UnitOfWork, config: PolicyConfig, *, days: int = DEFAULT_DAYS,
                    stale_after: timedelta | None = None, sku_mapping: str = "StockCode",
                    now: datetime | None = None) -> CoverageReport:
    """The mapping coverage and catalogue gap report for returns seen in the last ``days``."""
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    stale_after = stale_after if stale_after is not None else config.stock_stale_after
    report = CoverageReport(
        generated_at=now.isoformat(), days=days,
        stale_after_hours=round(stale_after.total_seconds() / 3600, 2),
        returns_seen=uow.coverage.returns_seen_since(cutoff),
        catalogue_items=uow.coverage.live_catalogue_items(),
        stock_levels=uow.coverage.stock_levels(),
    )
    _reasons(uow, config, cutoff, report)
    _skus(uow, cutoff, sku_mapping, report)
    _stale(uow, now, stale_after, report)
    return report


def _reasons(uow: UnitOfWork, config: PolicyConfig, cutoff: datetime,
             report: CoverageReport) -> None:
    rows = uow.coverage.reason_lines_since(cutoff)
    groups: dict[tuple[str, str, str, str, bool], dict[str, Any]] = {}
    for source, reason, condition, disposition, physical, qty, rid, ref, seen in rows:
        key = (source, reason, condition, disposition, not physical)
        g = groups.setdefault(key, {"returns": set(), "lines": 0, "units": 0, "last": seen,
                                    "ref": ref})
        g["returns"].add(rid)
        g["lines"] += 1
        g["units"] += int(qty)
        if seen > g["last"]:
            g["last"], g["ref"] = seen, ref
    affected: set[int] = set()
    for (source, reason, condition, disposition, keep), g in groups.items():
        status, reason_id, processing, by = map_line(config, source, reason, condition,
                                                 disposition, keep)
        if status != "mapped":
            affected |= g["returns"]
        report.reasons.append(ReasonCoverage(
            source=source, reason=reason, condition=condition, disposition=disposition,
            returns=len(g["returns"]), lines=g["lines"], units=g["units"],
            last_seen=g["last"].isoformat(), status=status, keep_item=keep,
            khaos_reason_id=reason_id,
            processing=processing, mapped_by=by, example_ref=g["ref"]))
    report.unmapped_returns = len(affected)
    order = {"unmapped": 0, "unsafe": 1, "mapped": 2}
    report.reasons.sort(key=lambda r: (order[r.status], -r.returns, r.source, r.reason,
                                       r.condition, r.disposition))


def _skus(uow: UnitOfWork, cutoff: datetime, mapping: str,
          report: CoverageReport) -> None:
    returned = uow.coverage.returned_skus_since(cutoff)
    exchanged = uow.coverage.exchanged_skus_since(cutoff)
    seen_returns: dict[str, set[int]] = defaultdict(set)
    where: dict[str, set[str]] = defaultdict(set)
    example: dict[str, str] = {}
    exchange_returns: dict[str, set[int]] = defaultdict(set)
    for rows, label in ((returned, "returned"), (exchanged, "exchange")):
        for raw_sku, rid, ref in rows:
            sku = str(raw_sku)
            if not sku.strip():
                continue
            seen_returns[sku].add(rid)
            where[sku].add(label)
            example.setdefault(sku, ref)
            if label == "exchange":
                exchange_returns[sku].add(rid)
    if not seen_returns:
        return
    if report.catalogue_items == 0:
        report.notes.append("The Khaos catalogue mirror is empty (no StockUpload received "
                            "yet), so unknown and unpublished SKUs cannot be checked.")
        return
    fields = FIELDS_BY_MAPPING.get(mapping, ("StockCode",))
    catalogue = uow.coverage.catalogue_lookup(set(seen_returns))
    resolved: dict[str, list[StockItem]] = {}
    for sku in sorted(seen_returns):
        by_field = catalogue.get(sku, {})
        every = [item for f in fields for item in by_field.get(f, [])]
        resolved[sku] = every
        if _live(every):
            continue
        others = [(f, items) for f, items in by_field.items()
                  if f not in fields and _live(items)]
        hint = ""
        if others:
            f, items = others[0]
            hint = (f"is the {f} of {items[0].stock_code}, but [khaos].sku_mapping is "
                    f"{mapping}")
        elif every:
            hint = f"{every[0].stock_code} is deleted in Khaos"
        labels = sorted(where[sku], key=lambda s: s != "returned")
        report.unknown_skus.append(UnknownSku(
            sku=sku, returns=len(seen_returns[sku]), seen_on="+".join(labels),
            example_ref=example[sku], hint=hint))
    for sku in sorted(exchange_returns):
        items = _live(resolved[sku])
        if not items:
            continue  # listed as unknown above
        item = items[0]
        problem = ("not_published_to_web" if not item.publish_on_web
                   else "discontinued" if item.discontinued else "")
        if problem:
            report.exchange_skus.append(ExchangeSkuIssue(
                sku, len(exchange_returns[sku]), item.stock_code, problem))
    report.exchange_skus.sort(key=lambda x: (-x.returns, x.sku))
    report.unknown_skus.sort(key=lambda x: (-x.returns, x.sku))


def _stale(uow: UnitOfWork, now: datetime, stale_after: timedelta,
           report: CoverageReport) -> None:
    if report.stock_levels == 0:
        if report.catalogue_items:
            report.notes.append("No stock levels in the mirror (no StockStatusUpload "
                                "received yet); exchange stock checks cannot pass.")
        return
    for level in uow.coverage.levels_updated_before(now - stale_after):
        age = (now - level.updated_at).total_seconds() / 3600
        report.stale_levels.append(StaleLevel(
            stock_code=level.stock_code, stock_id=level.stock_id, site_id=level.site_id,
            available=str(level.available), updated_at=level.updated_at.isoformat(),
            age_hours=round(age, 1)))


def audit_report(rt: Runtime, *, days: int = DEFAULT_DAYS,
                 stale_hours: float | None = None) -> CoverageReport:
    """``coverage_report`` with the configured mapping, in its own unit of work."""
    config = rt.policy_config()
    stale = timedelta(hours=stale_hours) if stale_hours is not None else None
    with rt.unit_of_work() as uow:
        return coverage_report(uow, config, days=days, stale_after=stale,
                               sku_mapping=rt.settings.khaos.sku_mapping)
