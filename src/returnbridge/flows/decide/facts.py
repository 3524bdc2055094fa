"""Look up what the policy needs to know from our mirrors of Khaos (ARCHITECTURE 6.5, 6.6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from returnbridge.domain.model import ReturnCase
from returnbridge.domain.policy import Facts, ItemFacts, LevelFacts
from returnbridge.domain.source_checks import sku_keys
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import catalogue
from returnbridge.store.models import StockItem
from returnbridge.store.unit_of_work import UnitOfWork


def find_item(uow: UnitOfWork, sku: str, mapping: str) -> StockItem | None:
    """The catalogue item a served SKU will resolve to under Khaos's MappingType (a deleted
    one when no live item matches: the hold then says so)."""
    return uow.catalogue.find_item(sku, mapping, include_deleted=True)


def catalogue_loaded(uow: UnitOfWork) -> bool:
    return uow.catalogue.loaded()


def nearest_candidates(uow: UnitOfWork, sku: str, limit: int = 5) -> tuple[str, ...]:
    """Catalogue entries that look like ``sku`` (by StockCode, OtherRef or barcode), said
    for people. Suggestions only: the fix belongs in the master data, never applied
    automatically."""
    return tuple(_describe(c) for c in uow.catalogue.nearest_candidates(sku, limit=limit))


def _describe(candidate: catalogue.Candidate) -> str:
    text = f"{candidate.field} {candidate.value}" + (
        f" (StockCode {candidate.stock_code})" if candidate.field != "StockCode" else "")
    return text + f", {round(candidate.score * 100)}% alike"


def customer_urn(uow: UnitOfWork, email: str) -> str:
    if not email:
        return ""
    return uow.catalogue.find_urn_by_email(email) or ""


def _level(uow: UnitOfWork, stock_id: str, site_id: str) -> LevelFacts | None:
    found = uow.catalogue.total_level(stock_id, site_id)
    if found is None:
        return None
    total, oldest = found
    return LevelFacts(available=total, updated_at=oldest)


def resolve_blank_skus(rt: Runtime, uow: UnitOfWork, case: ReturnCase,
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
            item = find_item(uow, value, "Barcode" if kind == "barcode" else "OtherRef")
            if item is not None and not item.deleted:
                out[key] = item.stock_code
    return out


def gather(rt: Runtime, uow: UnitOfWork, case: ReturnCase,
           now: datetime | None = None) -> Facts:
    now = now or datetime.now(UTC)
    mode = rt.settings.policy.validate_catalogue
    loaded = mode == "always" or (mode == "auto" and catalogue_loaded(uow))
    urn = customer_urn(uow, case.customer.email)
    resolved = resolve_blank_skus(rt, uow, case, loaded)
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
        item = find_item(uow, sku, mapping)
        if item is None or item.deleted:
            candidates[sku] = nearest_candidates(uow, sku)
        if item is not None:
            items[sku] = ItemFacts(stock_code=item.stock_code,
                                   publish_on_web=item.publish_on_web,
                                   discontinued=item.discontinued,
                                   stock_controlled=item.stock_controlled, deleted=item.deleted)
    for ex in case.exchanges:
        if not ex.sku:
            continue
        item = find_item(uow, ex.sku, mapping)
        if item is not None:
            level = _level(uow, item.stock_id, rt.settings.policy.exchange_site_id)
            if level is not None:
                levels[ex.sku] = level
    return Facts(now=now, catalogue_loaded=True, items=items, candidates=candidates,
                 levels=levels, customer_urn=urn, resolved_skus=resolved)


def _first(resolved: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((resolved[k] for k in keys if k in resolved), "")
