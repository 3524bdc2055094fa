"""Found by the chaos campaign (issue #16): the refund gate's scheduler decided "no refund
request yet" from a stale read while the event worker was recording ZigZag's request, then
wrote the wait over it. The return stayed 'waiting for the platform's refund decision' with
the request on it, left out of the gate for good: a refund never paid.

On PostgreSQL (row locks; SQLite runs one writer at a time): the request is recorded in an
open transaction that holds the return, the scheduler's ``workflow_id`` runs meanwhile, then
the request commits. The scheduler must see the request and start the refund."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from returnbridge.flows.confirm.by_hand import confirm_credit
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.flows.refunds.gate import (
    WAITING_FOR_DECISION,
    due_refs,
    record_refund_request,
    workflow_id,
)
from returnbridge.sandbox.shopify.api import ShopifySandbox
from returnbridge.sandbox.zigzag.samples import journey
from returnbridge.store.models import ReturnRow
from tests.conftest import LiveApp, start_live_app
from tests.refunds.test_refund_gate import ITEMS, MAPPING, ORDER, POLICY, ZZ, _send


@pytest.fixture
def app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    shopify = ShopifySandbox().start()
    shopify.add_order(ORDER, "44.99")
    live = start_live_app(runtime_factory, zigzag=ZZ, mapping=MAPPING, policy=POLICY,
                          shopify=shopify.settings())
    try:
        yield live
    finally:
        live.stop()
        shopify.stop()


def _waiting_on_a_lock(rt: Runtime, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    # Autocommit: PostgreSQL keeps one pg_stat_activity snapshot per transaction, so a poll
    # inside one transaction would never see the scheduler start waiting.
    with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while time.monotonic() < deadline:
            waiting = conn.scalar(text(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock'"))
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the scheduler never reached the return held by the event worker")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_refund_request_recorded_while_the_scheduler_looks_is_paid_not_waited_for(
        app: LiveApp) -> None:
    rt = app.rt
    _send(app, journey("RTN-RACE", ITEMS))  # graded; no refund request yet
    ref = "ZZ-RTN-RACE"
    assert ref in serve_page(rt).refs
    confirm_credit(rt, ref, "CN000777", Decimal("44.99"), "finance@shop", "seen in Khaos")
    assert due_refs(rt) == [ref]

    started: list[str | None] = []
    with rt.unit_of_work() as uow:
        # The event worker applies ZigZag's RefundRequested: it holds the return...
        row = uow.returns.lock_by_ref(ref)
        assert row is not None
        record_refund_request(uow, row, amount=Decimal("44.99"),
                              method="original_payment", currency="GBP",
                              event_id="zigzag:race", at="2026-03-12T00:00:00+00:00")
        uow.flush()
        # ...while the scheduler asks whether the return's refund can start.
        scheduler = threading.Thread(target=lambda: started.append(workflow_id(rt, ref)))
        scheduler.start()
        _waiting_on_a_lock(rt)
    scheduler.join(30)

    assert started == [f"refund:{ref}"]
    with rt.sessions() as session:
        row = session.scalars(select(ReturnRow).where(ReturnRow.associated_ref == ref)).one()
        assert row.refund_request and row.refund_request["amount"] == "44.99"
        assert row.wait_reason != WAITING_FOR_DECISION
    assert due_refs(rt) == [ref]
