"""Backfill benchmark: Loop sandbox returns into the event store, against a same-run baseline.

Fills the Loop sandbox (real uvicorn, real HTTP) with N returns over 200 days, then in the
same run measures
  1. baseline: the client only pages through the list API (no storage),
  2. backfill: ``run_backfill`` pages through and stores every return as an event (one
     transaction per page, sha256 dedupe),
  3. repeat: the same backfill again, where everything is already known.
The rate limit is lifted for that measurement (it would dominate: 280 requests/min); the
figures show what the storage adds to reading. SQLite by default, PostgreSQL with
``--postgres [URL]``.

``--budget`` measures instead what a real backfill gets out of Loop's rate budget (issue
#12: >= 90% of 300 requests/min at 750 returns per page): a 120-day backfill of
``--budget-returns`` returns (100,000 by default) by ``run_backfill`` with the configured
client limiter, against the Loop sandbox in a process of its own with Loop's limit (300 per
60 s, sliding window, 429 above it). The share is the steady request rate (after the
limiter's initial burst) over 300/min; 429s are counted (the limiter should make none).

    uv run --frozen python bench/backfill.py [--returns N] [--page-size P] [--postgres [URL]]
    uv run --frozen python bench/backfill.py --budget [--budget-returns N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from scratch_db import database, drop

from returnbridge.adapters.ratelimit import TokenBucket
from returnbridge.composition import Settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.loop.samples import DEMO_SCENARIOS
from returnbridge.sandbox.loop.server import LoopSandboxServer
from returnbridge.sandbox.loop.world import LoopWorld
from returnbridge.sources.loop.backstop import run_backfill
from returnbridge.sources.loop.client import LoopClient
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade

KEY = "bench-key"
UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=200)
LOOP_BUDGET_PER_MINUTE = 300  # Loop's documented limit (reference §4.1)
BUDGET_TARGET = 0.90
BURST_REQUESTS = 30  # left out of the steady rate: the client limiter's saved-up burst


def _budget_sandbox(returns: int, since: datetime, conn: Connection) -> None:
    """A child process: the Loop sandbox with ``returns`` returns and Loop's rate limit;
    sends its URL, answers until told to stop, then sends its counters."""
    world = LoopWorld(clock=lambda: UNTIL)
    step = (UNTIL - since - timedelta(hours=1)) / returns
    for i in range(returns):
        world.create(DEMO_SCENARIOS[i % len(DEMO_SCENARIOS)], at=since + i * step,
                     notify=False)
    with LoopSandboxServer(world, api_key=KEY, rate_limit=LOOP_BUDGET_PER_MINUTE,
                           rate_period=60.0) as loop:
        admitted: list[float] = []  # when each request was let through (not 429)
        admit = loop.sandbox._admit

        def timed(request: Any) -> Any:
            refused = admit(request)
            if refused is None:
                admitted.append(time.monotonic())
            return refused

        loop.sandbox._admit = timed  # type: ignore[method-assign]
        conn.send(loop.base_url)
        conn.recv()  # stop
        st = loop.stats
        conn.send({"requests": st.requests, "rate_limited": st.rate_limited,
                   "max_in_window": st.max_in_window, "admitted": admitted})


def rate_budget(returns: int, page_size: int, pg: str | None) -> dict[str, float]:
    """A 120-day backfill against the rate-limited sandbox; the share of Loop's budget used."""
    since = UNTIL - timedelta(days=120)
    url, pg_name = database(pg)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_budget_sandbox, args=(returns, since, theirs), daemon=True)
    child.start()
    try:
        base_url = ours.recv()
        settings = Settings(database={"url": url}, loop={"api_key": KEY, "base_url": base_url,
                                                         "page_size": page_size})
        rt = Runtime.from_settings(settings)
        t0 = time.monotonic()
        result = run_backfill(rt, since, UNTIL)
        elapsed = time.monotonic() - t0
        rt.close()
        ours.send("stop")
        server = ours.recv()
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
        if pg and pg_name:
            drop(pg, pg_name)
    # every request counts against the budget: list pages and the details calls that
    # name a page's customers alike
    steady = server["admitted"][BURST_REQUESTS:]
    per_min = ((len(steady) - 1) / (steady[-1] - steady[0]) * 60 if len(steady) > 1
               else float("nan"))
    figures = {"returns": returns, "pages": result.pages, "seconds": elapsed,
               "new_events": len(result.new_events), "requests": server["requests"],
               "details_calls": server["requests"] - result.pages,
               "rate_limited": server["rate_limited"], "steady_per_minute": per_min,
               "share": per_min / LOOP_BUDGET_PER_MINUTE,
               "stored_per_s": len(result.new_events) / elapsed}
    print(f"rate budget: {returns} returns over 120 days, page size {page_size}: "
          f"{result.pages} pages and {figures['details_calls']} details calls in "
          f"{elapsed:.1f} s, {len(result.new_events)} stored ({figures['stored_per_s']:.0f}/s)")
    print(f"  steady rate after the first {BURST_REQUESTS} requests: {per_min:.0f} requests/min = "
          f"{figures['share'] * 100:.1f}% of Loop's {LOOP_BUDGET_PER_MINUTE}/min "
          f"(target >= {BUDGET_TARGET * 100:.0f}%); 429s from the sandbox: "
          f"{server['rate_limited']}; most in one 60 s window: {server['max_in_window']}")
    ok = figures["share"] >= BUDGET_TARGET and not server["rate_limited"] \
        and figures["new_events"] == returns
    print(f"  {'PASS' if ok else 'FAIL'}", flush=True)
    return figures






def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--returns", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=750)
    parser.add_argument("--postgres", nargs="?", const="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--budget", action="store_true",
                        help="measure the share of Loop's rate budget a backfill uses")
    parser.add_argument("--budget-returns", type=int, default=100_000)
    parser.add_argument("--json", help="with --budget: also write the figures here")
    args = parser.parse_args()
    if args.budget:
        figures = rate_budget(args.budget_returns, args.page_size, args.postgres)
        if args.json:
            Path(args.json).write_text(json.dumps(figures), encoding="utf-8")
        return

    url, pg_name = database(args.postgres)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    world = LoopWorld(clock=lambda: UNTIL)
    step = (UNTIL - SINCE - timedelta(hours=1)) / args.returns
    for i in range(args.returns):
        world.create(DEMO_SCENARIOS[i % len(DEMO_SCENARIOS)], at=SINCE + i * step, notify=False)

    with LoopSandboxServer(world, api_key=KEY, rate_limit=1_000_000) as loop:
        settings = Settings(database={"url": url}, loop={"api_key": KEY, "base_url": loop.base_url,
                                                         "page_size": args.page_size})
        rt = Runtime.from_settings(settings)

        def client() -> LoopClient:
            return LoopClient(settings.loop, limiter=TokenBucket(1_000_000, 1.0))

        t0 = time.perf_counter()
        with client() as c:
            seen = sum(len(p.returns) for p in c.iter_pages(start=SINCE, end=UNTIL))
        base = time.perf_counter() - t0

        t0 = time.perf_counter()
        with client() as c:
            first = run_backfill(rt, SINCE, UNTIL, client=c)
        full = time.perf_counter() - t0

        t0 = time.perf_counter()
        with client() as c:
            again = run_backfill(rt, SINCE, UNTIL, client=c)
        repeat = time.perf_counter() - t0
        rt.close()

    print(f"database: {'postgresql' if pg_name else 'sqlite'}; returns: {args.returns}; "
          f"page size: {args.page_size}; pages: {first.pages}")
    print(f"baseline (list only):  {seen / base:8.0f} returns/s  ({base:.2f} s)")
    print(f"backfill (store new):  {len(first.new_events) / full:8.0f} returns/s  ({full:.2f} s)"
          f"  = {base / full:.2f} x baseline")
    print(f"repeat (all known):    {again.already_known / repeat:8.0f} returns/s  "
          f"({repeat:.2f} s)  = {base / repeat:.2f} x baseline")
    print("at Loop's real limit (280 requests/min) the API, not storage, bounds a backfill: "
          f"{first.pages} pages take at least {first.pages / 280 * 60:.0f} s")
    if args.postgres and pg_name:
        drop(args.postgres, pg_name)


if __name__ == "__main__":
    main()
