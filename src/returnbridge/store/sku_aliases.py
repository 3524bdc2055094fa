"""SKU aliases a person chose in the console: a source SKU sent as another Khaos SKU."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.model import ReturnCase
from returnbridge.store.models import SkuAlias


def apply_aliases(session: Session, case: ReturnCase) -> ReturnCase:
    """``case`` with every aliased SKU (returned and exchange lines) replaced."""
    skus = {ln.sku for ln in case.lines} | {ex.sku for ex in case.exchanges}
    if not skus:
        return case
    aliases = {str(source): str(target) for source, target in session.execute(
        select(SkuAlias.source_sku, SkuAlias.khaos_sku).where(
            SkuAlias.source_sku.in_(sorted(skus)))).all()}
    if not aliases:
        return case
    return replace(
        case,
        lines=tuple(replace(ln, sku=aliases.get(ln.sku, ln.sku)) for ln in case.lines),
        exchanges=tuple(replace(ex, sku=aliases.get(ex.sku, ex.sku))
                        for ex in case.exchanges))
