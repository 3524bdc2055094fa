"""The one-click fix for ``sku_mismatch``: a person picks one of the nearest catalogue
candidates, and from then on the shop's SKU is sent to Khaos as that item.

The choice is stored as an alias (``sku_aliases``, audited as ``sku.alias_add``) and applied
by the posting policy to every return still to be sent (never to one already with Khaos);
the return the exception blocks is re-evaluated at once. The value sent is the item's value
in the configured ``[khaos].sku_mapping`` field, so Khaos matches it exactly. Correcting the
SKU in Khaos or the shop stays the better fix when it is possible (see the runbook)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions import actions
from returnbridge.store import catalogue
from returnbridge.store.audit import AuditLog
from returnbridge.store.models import ReturnRow, SkuAlias, StockBarcode, StockItem, utcnow
from returnbridge.store.returns_repo import ReturnsRepository


def candidates(session: Session, sku: str) -> list[dict[str, Any]]:
    return [{"stock_id": c.stock_id, "stock_code": c.stock_code, "field": c.field,
             "value": c.value, "score": round(c.score * 100)}
            for c in catalogue.nearest_candidates(session, sku)]


def _value_for(session: Session, item: StockItem, mapping: str) -> str:
    if mapping == "OtherRef":
        return item.other_ref
    if mapping == "Barcode":
        return session.scalar(select(StockBarcode.barcode).where(
            StockBarcode.stock_id == item.stock_id).order_by(StockBarcode.barcode).limit(1)) or ""
    return item.stock_code


def apply_candidate(rt: Runtime, exception_id: int, stock_id: str, actor: str
                    ) -> actions.ActionResult:
    """Alias the exception's SKU to catalogue item ``stock_id``, then retry the exception."""
    with rt.unit_of_work() as uow:
        session = uow.session
        view = actions.show_exception(uow, exception_id)
        if view["type"] != "sku_mismatch" or view["status"] != "open":
            raise actions.ActionRefused(
                f"exception {exception_id} is not an open sku_mismatch; nothing to apply")
        sku = str(view["details"].get("sku") or "")
        item = session.get(StockItem, stock_id)
        if not sku or item is None or item.deleted:
            raise actions.ActionRefused(f"catalogue item {stock_id!r} is not (or no longer) "
                                        "in the Khaos catalogue; reload the page")
        target = _value_for(session, item, rt.settings.khaos.sku_mapping)
        if not target:
            raise actions.ActionRefused(
                f"item {item.stock_code} has no {rt.settings.khaos.sku_mapping} value, so "
                "Khaos could not match it; fix the item in Khaos instead")
        existing = session.get(SkuAlias, sku)
        if existing is None:
            session.add(SkuAlias(source_sku=sku, khaos_sku=target, stock_id=item.stock_id,
                                 created_at=utcnow(), created_by=actor[:120]))
        else:
            existing.khaos_sku, existing.stock_id = target, item.stock_id
            existing.created_at, existing.created_by = utcnow(), actor[:120]
        AuditLog(session).record(actor=actor, action="sku.alias_add", subject=f"sku:{sku}"[:120],
                     details={"sku": sku, "khaos_sku": target, "stock_id": item.stock_id,
                              "stock_code": item.stock_code, "exception_id": exception_id})
        if view["return_id"] is not None:
            ret = session.get(ReturnRow, view["return_id"])
            if ret is not None:
                ReturnsRepository(session).add_timeline(ret, "sku_alias",
                    f"SKU {sku} will be sent to Khaos as {target} (item {item.stock_code}), "
                    f"chosen by {actor}", {"exception_id": exception_id, "by": actor})
    return actions.retry(rt, exception_id, actor, f"applied candidate {item.stock_code} for "
                         f"SKU {sku}")
