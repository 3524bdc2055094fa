"""Backfill benchmark: Loop sandbox returns into the event store, against a same-run baseline.

Fills the Loop sandbox (real uvicorn, real HTTP) with N returns over 200 days, then in the
same run measures
  1. baseline: the client only pages through the list API (no storage),
  2. backfill: ``run_backfill`` pages through and stores every return as an event (one
     transaction per page, sha256 dedupe),
  3. repeat: the same backfill again, where everything is already known.
The rate limit is lifted for the measurement (it would dominate: 280 requests/min); the
figures show what the storage adds to reading. SQLite by default, PostgreSQL with
``--postgres [URL]``.

    uv run --frozen python bench/backfill.py [--returns N] [--page-size P] [--postgres [URL]]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

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






def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--returns", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=750)
    parser.add_argument("--postgres", nargs="?", const="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

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
