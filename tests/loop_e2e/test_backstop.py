"""Must-show: with Loop dropping 10% of webhooks and duplicating 20%, 1,000 returns end as
exactly 1,000 canonical returns after a backstop pass, and the dropped ones are counted as
webhook gaps.

End to end over real HTTP: the Loop sandbox (real uvicorn) sends signed webhooks to the real
app (``start_live_app``, events applied inline), the backstop lists the sandbox's API and
stores what it reads, and ``flows.process.apply_event`` applies the stored events the way
the event pump would. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.dispatch import WebhookDispatcher
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.backstop import (
    BACKSTOP_WATERMARK,
    backstop_watermark,
    run_backstop,
    webhook_gap_count,
)
from returnbridge.store.models import Watermark
from tests.conftest import LOOP_SECRET, start_live_app

from ._support import (
    LOOP_KEY,
    apply_pending,
    client_for,
    count_events,
    count_returns,
    create_many,
    loop_section,
)

RETURNS = 1000  # on SQLite and on PostgreSQL (about 50 s there)


def test_backstop_recovers_dropped_webhooks_exactly_once(
        runtime_factory: Callable[..., Runtime], db_url: str) -> None:
    total = RETURNS
    dispatcher = WebhookDispatcher(drop_rate=0.10, duplicate_rate=0.20, reorder=True, seed=42,
                                   concurrency=8)
    world = LoopWorld(dispatcher=dispatcher)
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        app = start_live_app(runtime_factory, loop=loop_section(loop.base_url, page_size=200))
        try:
            dispatcher.url = f"{app.base_url}/webhooks/loop"
            dispatcher.secret = LOOP_SECRET
            create_many(world, total)
            stats = dispatcher.flush()
            rt = app.rt
            assert stats.failed == 0
            # About 10% dropped and 20% duplicated.
            assert 0.06 * total <= stats.dropped <= 0.14 * total
            assert 0.12 * total <= stats.duplicated <= 0.28 * total
            apply_pending(rt)  # nothing should be waiting, but be the pump anyway
            assert count_returns(rt) == total - stats.dropped

            with client_for(rt.settings.loop) as client:
                result = run_backstop(rt, client=client)
            assert result.returns_seen == total
            assert result.gaps == stats.dropped
            # Every listed return is stored as a backstop event; the pump applies them.
            assert len(result.new_event_ids) == total
            apply_pending(rt)

            assert count_returns(rt) == total  # exactly: none lost, none doubled
            with rt.unit_of_work() as uow:
                assert webhook_gap_count(uow) == stats.dropped
            assert count_events(rt, "backstop") == total

            # A second pass finds nothing new: unchanged returns are duplicates.
            first_mark = backstop_watermark(rt)
            with client_for(rt.settings.loop) as client:
                again = run_backstop(rt, client=client)
            assert again.new_event_ids == [] and again.already_known == total
            assert again.start < (first_mark or again.start) + timedelta(seconds=1)
            assert count_returns(rt) == total
        finally:
            app.stop()


def test_backstop_moves_the_watermark_only_after_a_complete_pass(
        runtime_factory: Callable[..., Runtime]) -> None:
    world = LoopWorld()
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        rt = runtime_factory(loop=loop_section(loop.base_url, page_size=5))
        for _ in range(12):
            world.create(Scenario("refund", ("TEE-BLK-M",)), notify=False)
        now = datetime.now(UTC)
        with client_for(rt.settings.loop) as client:
            # Fail in the middle of the pass: the third page of the open returns answers
            # HTTP 200 with an error body.
            calls: dict[str, Any] = {"n": 0}
            original = client.list_page

            def flaky(**kwargs: Any) -> Any:
                calls["n"] += 1
                if calls["n"] == 3:
                    loop.faults.error_body = 1
                return original(**kwargs)

            client.list_page = flaky  # type: ignore[method-assign]
            try:
                run_backstop(rt, client=client, now=now)
                raise AssertionError("the pass should have failed")
            except Exception as exc:
                assert "Something went wrong" in str(exc)
        assert backstop_watermark(rt) is None  # not moved
        assert count_events(rt, "backstop") == 10  # two full pages were stored anyway

        with client_for(rt.settings.loop) as client:
            done = run_backstop(rt, client=client, now=now)
        assert len(done.new_event_ids) == 2 and done.already_known == 10
        assert backstop_watermark(rt) == now
        with rt.sessions() as session:
            assert session.get(Watermark, BACKSTOP_WATERMARK) is not None
        # The next pass starts at the watermark minus the overlap.
        later = now + timedelta(minutes=30)
        with client_for(rt.settings.loop) as client:
            nxt = run_backstop(rt, client=client, now=later)
        assert nxt.start == now - timedelta(minutes=rt.settings.loop.backstop_overlap_minutes)
