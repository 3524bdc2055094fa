"""Look up what the policy needs to know from our mirrors of Khaos (ARCHITECTURE 6.5, 6.6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import Facts, ItemFacts, LevelFacts
from returnbridge.domain.source_checks import sku_keys
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import catalogue
from returnbridge.store.models import CustomerMirror, StockItem, StockLevel


def find_item(session: Session, sku: str, mapping: str) -> StockItem | None:
    """The catalogue item a served SKU will resolve to under Khaos's MappingType (a deleted
    one when no live item matches: the hold then says so)."""
    return catalogue.find_item(session, sku, mapping, include_deleted=True)


def catalogue_loaded(session: Session) -> bool:
    return session.scalar(select(StockItem.stock_id).limit(1)) is not None


def nearest_candidates(session: Session, sku: str, limit: int = 5) -> tuple[str, ...]:
    """Catalogue entries that look like ``sku`` (by StockCode, OtherRef or barcode), said
    for people. Suggestions only: the fix belongs in the master data, never applied
    automatically."""
    return tuple(_describe(c) for c in catalogue.nearest_candidates(session, sku, limit=limit))


def _describe(candidate: catalogue.Candidate) -> str:
    text = f"{candidate.field} {candidate.value}" + (
        f" (StockCode {candidate.stock_code})" if candidate.field != "StockCode" else "")
    return text + f", {round(candidate.score * 100)}% alike"


def customer_urn(session: Session, email: str) -> str:
    if not email:
        return ""
    urn = session.scalar(
        select(CustomerMirror.urn).where(CustomerMirror.email == email.strip().casefold())
    )
    return urn or ""


def _level(session: Session, stock_id: str, site_id: str) -> LevelFacts | None:
    stmt = select(func.count(), func.min(StockLevel.updated_at)).where(
        StockLevel.stock_id == stock_id)
    if site_id:
        stmt = stmt.where(StockLevel.site_id == site_id)
    count, oldest = session.execute(stmt).one()
    if not count:
        return None
    levels = select(StockLevel.available).where(StockLevel.stock_id == stock_id)
    if site_id:
        levels = levels.where(StockLevel.site_id == site_id)
    total = sum((a for (a,) in session.execute(levels).all()), Decimal(0))
    return LevelFacts(available=total, updated_at=oldest)


def resolve_blank_skus(rt: Runtime, session: Session, case: ReturnCase,
                       use_catalogue: bool) -> dict[str, str]:
    """StockCodes for the items ``case`` sent without a SKU, keyed by
    :func:`~returnbridge.domain.source_checks.sku_keys`: ``[[mapping.skus]]`` first, then
    (when the catalogue is used) a live Khaos item with that barcode, or with the variant
    id as its OtherRef."""
    wanted = [(ln.variant_id, ln.barcode) for ln in case.lines if not ln.sku]
    wanted += [(ex.variant_id, "") for ex in case.exchanges if not ex.sku]
    if not wanted:
        return {}
    configured: dict[str, str] = {}
    for entry in rt.settings.mapping.skus:
        for key in sku_keys(entry.variant_id.strip(), entry.barcode.strip()):
            configured.setdefault(key, entry.stock_code.strip())
    out: dict[str, str] = {}
    for variant_id, barcode in wanted:
        for key in sku_keys(variant_id, barcode):
            if key in configured:
                out[key] = configured[key]
                continue
            if not use_catalogue:
                continue
            kind, value = key.split(":", 1)
            item = find_item(session, value, "Barcode" if kind == "barcode" else "OtherRef")
            if item is not None and not item.deleted:
                out[key] = item.stock_code
    return out


def gather(rt: Runtime, session: Session, case: ReturnCase,
           now: datetime | None = None) -> Facts:
    now = now or datetime.now(UTC)
    mode = rt.settings.policy.validate_catalogue
    loaded = mode == "always" or (mode == "auto" and catalogue_loaded(session))
    urn = customer_urn(session, case.customer.email)
    resolved = resolve_blank_skus(rt, session, case, loaded)
    if resolved or any(not ln.sku for ln in case.lines) or any(
            not ex.sku for ex in case.exchanges):
        case = replace(case, lines=tuple(
            replace(ln, sku=ln.sku or _first(resolved, sku_keys(ln.variant_id, ln.barcode)))
            for ln in case.lines), exchanges=tuple(
            replace(ex, sku=ex.sku or _first(resolved, sku_keys(ex.variant_id)))
            for ex in case.exchanges))
    if not loaded:
        return Facts(now=now, customer_urn=urn, resolved_skus=resolved)
    mapping = rt.settings.khaos.sku_mapping
    items: dict[str, ItemFacts] = {}
    candidates: dict[str, tuple[str, ...]] = {}
    levels: dict[str, LevelFacts] = {}
    skus = [ln.sku for ln in case.lines if ln.sku] + [ex.sku for ex in case.exchanges
                                                     if ex.sku]
    for sku in dict.fromkeys(skus):
        item = find_item(session, sku, mapping)
        if item is None or item.deleted:
            candidates[sku] = nearest_candidates(session, sku)
        if item is not None:
            items[sku] = ItemFacts(stock_code=item.stock_code,
                                   publish_on_web=item.publish_on_web,
                                   discontinued=item.discontinued,
                                   stock_controlled=item.stock_controlled, deleted=item.deleted)
    for ex in case.exchanges:
        if not ex.sku:
            continue
        item = find_item(session, ex.sku, mapping)
        if item is not None:
            level = _level(session, item.stock_id, rt.settings.policy.exchange_site_id)
            if level is not None:
                levels[ex.sku] = level
    return Facts(now=now, catalogue_loaded=True, items=items, candidates=candidates,
                 levels=levels, customer_urn=urn, resolved_skus=resolved)


def _first(resolved: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((resolved[k] for k in keys if k in resolved), "")
