"""Helpers for the Loop end-to-end tests: the sandbox, clients and database counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from returnbridge.adapters.ratelimit import TokenBucket
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import DEMO_SCENARIOS, Scenario
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.client import LoopClient
from returnbridge.sources.loop.settings import LoopSettings
from returnbridge.store.events import EventsRepository
from returnbridge.store.models import InboundEvent, ReturnRow

LOOP_KEY = "e2e-loop-api-key"
SCENARIOS = [*DEMO_SCENARIOS, Scenario("keep_item", ("SCARF-GRY",))]


def loop_section(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"api_key": LOOP_KEY, "base_url": base_url, **extra}


def client_for(settings: LoopSettings, *, rate: int = 1000, period: float = 1.0,
               burst: int | None = None) -> LoopClient:
    """A client with its own limiter (not the process-wide one), so tests stay independent."""
    return LoopClient(settings, limiter=TokenBucket(rate, period, burst=burst))


def create_many(world: LoopWorld, count: int, *, at: datetime | None = None,
                notify: bool = True) -> list[int]:
    return [world.create(SCENARIOS[i % len(SCENARIOS)], at=at, notify=notify)
            for i in range(count)]


def apply_pending(rt: Runtime) -> int:
    """Apply every stored event not yet processed (what the event pump does), in id order."""
    from datetime import timedelta

    applied = 0
    while True:
        with rt.sessions() as session:
            batch = EventsRepository(session).pending(older_than=timedelta(0), limit=500)
        if not batch:
            return applied
        for event_id, _source, _key in batch:
            apply_event(rt, event_id)
            applied += 1


def count_returns(rt: Runtime) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ReturnRow).where(
            ReturnRow.source == "loop")) or 0)


def count_events(rt: Runtime, channel: str) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.source == "loop", InboundEvent.channel == channel)) or 0)
