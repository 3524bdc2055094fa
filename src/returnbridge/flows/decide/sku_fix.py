"""The one-click fix for ``sku_mismatch``: a person picks one of the nearest catalogue
candidates, and from then on the shop's SKU is sent to Khaos as that item.

The choice is stored as an alias (``sku_aliases``, audited as ``sku.alias_add``) and applied
by the posting policy to every return still to be sent (never to one already with Khaos);
the return the exception blocks is re-evaluated at once. The value sent is the item's value
in the configured ``[khaos].sku_mapping`` field, so Khaos matches it exactly. Correcting the
SKU in Khaos or the shop stays the better fix when it is possible (see the runbook)."""

from __future__ import annotations

from typing import Any

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions import actions


def candidates(rt: Runtime, sku: str) -> list[dict[str, Any]]:
    """The catalogue items nearest to ``sku``, for the console to offer."""
    with rt.unit_of_work() as uow:
        return [{"stock_id": c.stock_id, "stock_code": c.stock_code, "field": c.field,
                 "value": c.value, "score": round(c.score * 100)}
                for c in uow.catalogue.nearest_candidates(sku)]


def apply_candidate(rt: Runtime, exception_id: int, stock_id: str, actor: str
                    ) -> actions.ActionResult:
    """Alias the exception's SKU to catalogue item ``stock_id``, then retry the exception."""
    with rt.unit_of_work() as uow:
        view = actions.show_exception(uow, exception_id)
        if view["type"] != "sku_mismatch" or view["status"] != "open":
            raise actions.ActionRefused(
                f"exception {exception_id} is not an open sku_mismatch; nothing to apply")
        sku = str(view["details"].get("sku") or "")
        item = uow.catalogue.item(stock_id)
        if not sku or item is None or item.deleted:
            raise actions.ActionRefused(f"catalogue item {stock_id!r} is not (or no longer) "
                                        "in the Khaos catalogue; reload the page")
        mapping = rt.settings.khaos.sku_mapping
        target = (item.other_ref if mapping == "OtherRef" else
                  uow.catalogue.first_barcode(item.stock_id) if mapping == "Barcode" else
                  item.stock_code)
        if not target:
            raise actions.ActionRefused(
                f"item {item.stock_code} has no {rt.settings.khaos.sku_mapping} value, so "
                "Khaos could not match it; fix the item in Khaos instead")
        uow.sku_aliases.set(sku, target, stock_id=item.stock_id, by=actor)
        uow.audit.record(actor=actor, action="sku.alias_add", subject=f"sku:{sku}"[:120],
                         details={"sku": sku, "khaos_sku": target, "stock_id": item.stock_id,
                                  "stock_code": item.stock_code, "exception_id": exception_id})
        if view["return_id"] is not None:
            ret = uow.returns.get(view["return_id"])
            if ret is not None:
                uow.returns.add_timeline(ret, "sku_alias",
                    f"SKU {sku} will be sent to Khaos as {target} (item {item.stock_code}), "
                    f"chosen by {actor}", {"exception_id": exception_id, "by": actor})
    return actions.retry(rt, exception_id, actor, f"applied candidate {item.stock_code} for "
                         f"SKU {sku}")
