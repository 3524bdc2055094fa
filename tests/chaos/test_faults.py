"""The sandboxes' fault injection and call-rate meters (sandbox/faults.py), and what the
chaos campaign relies on from the Khaos channel: a page whose answer was lost is asked for
again with the same continuation and handed over again, never lost and never doubled."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.chaos import khaos_answer_recoverable
from returnbridge.sandbox.faults import FaultInjector, FaultPlan, FaultyTransport, RateMeter
from returnbridge.sandbox.threaded import ThreadedServer
from tests.khaos_sandbox._support import live, make_sandbox, refund, send_returns


def _counting_app() -> tuple[FastAPI, list[bytes]]:
    app = FastAPI()
    done: list[bytes] = []

    @app.post("/do")
    async def do(body: dict[str, str]) -> dict[str, str]:
        done.append(body["n"].encode())
        return {"ok": body["n"]}

    return app, done


def test_injected_5xx_and_429_never_reach_the_sandbox_and_are_metered() -> None:
    app, done = _counting_app()
    meter = RateMeter(limit=2, period=60)
    plan = FaultPlan(script=["5xx", "429", ""])
    with ThreadedServer(FaultInjector(app, plan, meter)) as server, \
            httpx.Client(base_url=server.base_url, timeout=5) as client:
        first = client.post("/do", json={"n": "1"})
        second = client.post("/do", json={"n": "2"})
        third = client.post("/do", json={"n": "3"})
    assert first.status_code in (500, 502, 503)
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert third.status_code == 200 and done == [b"3"]
    assert plan.injected == {"5xx": 1, "429": 1}
    assert meter.total == 3 and meter.max_in_window == 3 and not meter.within_limit


def test_an_injected_timeout_is_still_carried_out_after_the_caller_gave_up() -> None:
    app, done = _counting_app()
    plan = FaultPlan(script=["timeout"], timeout_seconds=1.0)
    with ThreadedServer(FaultInjector(app, plan)) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.base_url}/do", json={"n": "late"}, timeout=0.2)
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
    assert done == [b"late"]  # the caller cannot know it happened


def test_no_plan_means_no_faults_only_the_meter() -> None:
    app, done = _counting_app()
    meter = RateMeter(limit=10, period=60)
    with ThreadedServer(FaultInjector(app, None, meter)) as server, \
            httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert all(client.post("/do", json={"n": str(i)}).status_code == 200
                   for i in range(5))
    assert len(done) == 5 and meter.total == 5 and meter.within_limit


def test_the_meter_keeps_the_busiest_window() -> None:
    meter = RateMeter(limit=3, period=60)
    for at in (0.0, 1.0, 2.0, 61.5, 62.0, 62.5, 63.0):
        meter.hit(now=at)
    assert meter.max_in_window == 4  # 2.0 is out of the window ending at 63.0; 61.5.. in
    assert not meter.within_limit
    assert RateMeter(limit=0).within_limit  # no limit configured


def test_a_lost_page_is_fetched_again_with_its_continuation_and_handed_over_again(
        runtime_factory: Callable[..., Runtime]) -> None:
    with live(runtime_factory, khaos={"page_size": 2}) as app:
        refs = send_returns(app, [refund(6100 + i) for i in range(5)])
        # Khaos's second request (carrying returnbridge's continuation) gets no answer.
        transport = FaultyTransport(FaultPlan(script=["", "", "timeout"]),
                                    lost_answer=khaos_answer_recoverable)
        khaos = make_sandbox(app, transport=transport, resume_after_failure=True)
        khaos.fetch_config()  # (the first scripted outcome)
        with pytest.raises(httpx.ReadTimeout):
            khaos.poll_once()
        assert transport.lost == 1 and len(khaos.imported) == 2
        lost_token = khaos.continuations[-1]
        assert lost_token.startswith("d")

        assert khaos.poll_once() == 3  # resumes with the token it last received
        assert khaos.continuations[2] == lost_token
        assert sorted(khaos.imported) == sorted(refs) and not khaos.failures
        assert khaos.poll_once() == 0  # nothing is served twice
        transport.shutdown()
