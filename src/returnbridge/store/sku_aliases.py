"""SKU aliases a person chose in the console: a source SKU sent as another Khaos SKU."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.domain.model import ReturnCase
from returnbridge.store.models import SkuAlias, utcnow
from returnbridge.store.reads import reading


class SkuAliases:
    """The SKU aliases in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # Whether any alias exists, asked once per unit of work (the event worker applies a
        # batch in one): most deployments have none or few, and the question costs a query
        # per return otherwise.
        self._any: bool | None = None

    def apply(self, case: ReturnCase) -> ReturnCase:
        """``case`` with every aliased SKU (returned and exchange lines) replaced."""
        skus = {ln.sku for ln in case.lines} | {ex.sku for ex in case.exchanges}
        if not skus:
            return case
        if self._any is None:
            with reading(self._session, SkuAlias):
                self._any = self._session.scalar(
                    select(SkuAlias.source_sku).limit(1)) is not None
        if not self._any:
            return case
        aliases = {str(source): str(target) for source, target in self._session.execute(
            select(SkuAlias.source_sku, SkuAlias.khaos_sku).where(
                SkuAlias.source_sku.in_(sorted(skus)))).all()}
        if not aliases:
            return case
        return replace(
            case,
            lines=tuple(replace(ln, sku=aliases.get(ln.sku, ln.sku)) for ln in case.lines),
            exchanges=tuple(replace(ex, sku=aliases.get(ex.sku, ex.sku))
                            for ex in case.exchanges))

    def set(self, source_sku: str, khaos_sku: str, *, stock_id: str, by: str) -> None:
        """Send ``source_sku`` to Khaos as ``khaos_sku`` from now on (replacing an earlier
        choice)."""
        self._any = True
        existing = self._session.get(SkuAlias, source_sku)
        if existing is None:
            self._session.add(SkuAlias(source_sku=source_sku, khaos_sku=khaos_sku,
                                       stock_id=stock_id, created_at=utcnow(),
                                       created_by=by[:120]))
        else:
            existing.khaos_sku, existing.stock_id = khaos_sku, stock_id
            existing.created_at, existing.created_by = utcnow(), by[:120]
