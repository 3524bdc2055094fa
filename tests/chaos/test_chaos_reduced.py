"""The chaos campaign, reduced for CI (``make chaos`` runs 10,000 returns): real ``serve``
and two ``worker`` processes on PostgreSQL, SIGKILLs, duplicate / reordered / dropped
webhooks and sandboxes failing a fifth of their calls. Fails (never skips) when a return is
lost or duplicated, a refund is missing or paid twice, an event is left or failed, or a
sandbox saw calls over its limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from returnbridge.sandbox.chaos import ChaosOptions, run_campaign
from tests.conftest import PG_ADMIN_URL

# About two minutes on an idle 2-core machine; the drain deadline (240 s) bounds a stuck run.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

RETURNS = 120
KILLS = 3  # serve and each worker once


def test_reduced_chaos_campaign_loses_nothing_and_posts_nothing_twice(
        tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_campaign(ChaosOptions(returns=RETURNS, kills=KILLS, seed=1616,
                                       drain_timeout=240, admin_url=PG_ADMIN_URL,
                                       work_dir=tmp_path), log=lines.append)
    table = "\n".join([*lines, *result.lines()])
    print(table)
    assert result.problems == [], table
    assert result.returns_expected == RETURNS and result.returns_in_khaos == RETURNS
    assert result.refunds_expected > 0 and result.refunds_paid == result.refunds_expected
    assert result.events_stored > 0 and result.events_processed == result.events_stored
    # The faults really happened: every kill, drops and duplicates, and every sandbox that
    # was called more than a few times failed some calls (else this run proved nothing; the
    # ZigZag API and Khaos SOAP see a handful of calls in a run this short).
    assert sorted(result.kills) == ["chaos-worker-1", "chaos-worker-2", "serve"]
    assert result.deliveries["loop dropped"] > 0
    assert result.deliveries["loop duplicated"] + result.deliveries["zigzag duplicated"] > 0
    assert result.deliveries["zigzag first attempt lost"] > 0
    busy = {r.name for r in result.rates if r.calls >= 20}
    assert {"Loop API", "Shopify", "Khaos channel (polls, pushes)"} <= busy
    assert all(sum(r.faults.values()) > 0 for r in result.rates if r.name in busy)
