"""One Loop API job at a time across every process (found by the chaos campaign, #16).

The Loop client's token bucket (``adapters/ratelimit.py``) keeps one process under
Loop's 300 calls a minute per API key. The scheduled jobs that call Loop (the backstop and
the notes write-back) run in whichever process takes them; a pass that outlives its minute,
or one recovered after a crash, ran at the same time as the next one in another process: two
buckets, over 500 calls in a minute. On PostgreSQL a session advisory lock held for the whole
job lets one such job run at a time across processes; a job that finds it taken is skipped
(the next run catches up, the backstop from its watermark). On SQLite there is nothing to
share between hosts; the job always runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.leases_repo import advisory_lease

_LOCK_KEY = 0x4C4F4F50  # "LOOP"
SKIPPED = "skipped: another process is calling the Loop API (one Loop job at a time)"


@contextmanager
def loop_api_lease(rt: Runtime) -> Iterator[bool]:
    """Yields True when this process may call the Loop API for the job now."""
    with advisory_lease(rt.engine, _LOCK_KEY) as mine:
        yield mine
