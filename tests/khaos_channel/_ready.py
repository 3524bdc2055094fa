"""Many ready returns, fast: one real Loop return is parsed once, then cloned with bulk inserts
(the same rows the normal flow writes, with distinct refs and increasing ready times)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.sources.loop.parser import parse_return
from returnbridge.store.codec import case_to_json
from returnbridge.store.models import ReturnLineRow, ReturnRow, utcnow


def make_ready_returns(rt: Runtime, count: int, first_id: int = 10_000) -> list[str]:
    """Insert ``count`` ready returns LR-<first_id>...; their refs, oldest first."""
    case = parse_return(return_payload(first_id, Scenario("refund", ("TEE-BLK-M",))),
                        prefix="LR-")
    case_json = case_to_json(case)
    line = case.lines[0]
    start = utcnow() - timedelta(days=1)
    refs = [f"LR-{first_id + i}" for i in range(count)]
    with rt.sessions() as session, session.begin():
        session.execute(insert(ReturnRow), [
            {"associated_ref": ref, "source": "loop", "source_return_id": ref[3:],
             "order_ref": case.order_ref, "customer_email": case.customer.email,
             "currency": case.currency, "state": case.state.value, "khaos_status": "ready",
             "khaos_urn": "LOOPWEB", "process_return": False, "first_seen_at": start,
             "last_event_at": start, "ready_at": start + timedelta(seconds=i),
             "case_json": case_json}
            for i, ref in enumerate(refs)
        ])
        ids = {ref: row_id for ref, row_id in session.execute(
            select(ReturnRow.associated_ref, ReturnRow.id).where(ReturnRow.associated_ref.in_(
                refs)))}
        session.execute(insert(ReturnLineRow), [
            {"return_id": ids[ref], "position": 0, "sku": line.sku, "quantity": line.quantity,
             "unit_net": line.unit_net, "unit_tax": line.unit_tax,
             "unit_gross": line.unit_gross, "discount": Decimal(0),
             "khaos_reason_id": "6", "processing": "restock"}
            for ref in refs
        ])
    return refs
