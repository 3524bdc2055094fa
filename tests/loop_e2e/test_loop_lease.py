"""Found by the chaos campaign (issue #16): Loop backstop passes (and the notes write-back)
running at the same time in several processes, each with its own 280-a-minute bucket, sent
Loop over 500 calls in a minute. One Loop job runs at a time across processes now; a job
that finds another running is skipped and calls nothing (PostgreSQL: the processes share it
through the database)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from returnbridge.flows.engine.jobs import job_named, run_recorded
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import Scenario
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.lease import SKIPPED, loop_api_lease

from ._support import LOOP_KEY, loop_section


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_loop_job_is_skipped_while_another_process_runs_one(
        runtime_factory: Callable[..., Runtime]) -> None:
    world = LoopWorld()
    for _ in range(3):
        world.create(Scenario("refund", ("TEE-BLK-M",)), notify=False)
    with LoopSandboxServer(world, api_key=LOOP_KEY) as loop:
        section = loop_section(loop.base_url)
        first = runtime_factory(loop=section)  # two processes: two engines, one database
        second = runtime_factory(loop=section)
        backstop, notes = job_named(second, "loop-backstop"), job_named(second, "loop-notes")
        with loop_api_lease(first) as mine:
            assert mine
            assert run_recorded(second, backstop) == SKIPPED
            assert run_recorded(second, notes) == SKIPPED
            assert loop.stats.requests == 0  # nothing was sent to Loop
            with loop_api_lease(second) as theirs:
                assert not theirs
        summary = run_recorded(second, backstop)  # free again: the pass runs
        assert summary.startswith("BackstopResult(") and "returns_seen=3" in summary
        assert loop.stats.requests > 0
