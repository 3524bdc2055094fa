"""Every kind of Loop return, moved through its whole life in the sandbox, arrives through
signed webhooks at the real app and ends as the right canonical return."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select

from returnbridge.domain.model import ReturnCase
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.store import returns_repo
from returnbridge.store.models import ExceptionRow, InboundEvent
from returnbridge.store.returns_repo import ReturnsRepository
from tests.conftest import LOOP_SECRET, start_live_app

from ._support import apply_pending


def test_each_kind_of_return_ends_right(runtime_factory: Callable[..., Runtime]) -> None:
    app = start_live_app(runtime_factory)
    try:
        dispatcher = WebhookDispatcher(f"{app.base_url}/webhooks/loop", LOOP_SECRET,
                                       immediate=True, concurrency=1)
        world = LoopWorld(dispatcher=dispatcher)
        kinds = {
            "refund": world.create(Scenario("refund", ("TEE-BLK-M", "TEE-BLK-M"))),
            "exchange": world.create(Scenario("exchange", ("JEAN-IND-32",))),
            "credit": world.create(Scenario("credit", ("BOOT-TAN-9",))),
            "keep_item": world.create(Scenario("keep_item", ("SCARF-GRY",))),
            "cancelled": world.create(Scenario("refund", ("TEE-BLK-L",))),
        }
        for kind, rid in kinds.items():
            if kind == "cancelled":
                world.cancel(rid)
            else:
                world.lifecycle(rid)
        failing = world.create(Scenario("refund", ("JEAN-IND-34",)))
        world.fail_processing(failing, "Insufficient funds in the gateway")
        assert dispatcher.stats.failed == 0
        apply_pending(app.rt)

        with app.rt.sessions() as session:
            def case(rid: int) -> ReturnCase:
                row = ReturnsRepository(session).find_for_update("loop", str(rid))
                assert row is not None, rid
                return returns_repo.case_of(row)

            refund = case(kinds["refund"])
            assert refund.state.value == "closed"
            assert refund.units == 2
            assert all(ln.disposition.value == "restock" and ln.physical_return_expected
                       and ln.received_at is not None for ln in refund.lines)
            assert refund.settlement.refund_to_original == Decimal("50.00")
            assert refund.parcel.label_status == "delivered"

            exchange = case(kinds["exchange"])
            assert [e.sku for e in exchange.exchanges] == ["JEAN-IND-34"]

            credit = case(kinds["credit"])
            assert credit.settlement.store_credit == Decimal("120.00")

            keep = case(kinds["keep_item"])
            assert keep.state.value == "closed"
            assert [ln.physical_return_expected for ln in keep.lines] == [False]

            cancelled = case(kinds["cancelled"])
            assert cancelled.state.value == "cancelled"

            statuses = set(session.scalars(select(InboundEvent.status)))
            assert "invalid" not in statuses
            problems = session.scalars(select(ExceptionRow).where(
                ExceptionRow.type == "source_processing_failed")).all()
            assert len(problems) == 1
            assert "Insufficient funds" in problems[0].message
    finally:
        app.stop()
