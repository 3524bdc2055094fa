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

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RETURNS = 150
KILLS = 4


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
    # The faults really happened: every kill, drops and duplicates, and every sandbox
    # failed some calls (else this run proved nothing).
    assert len(result.kills) == KILLS
    assert result.deliveries["loop dropped"] > 0
    assert result.deliveries["loop duplicated"] + result.deliveries["zigzag duplicated"] > 0
    assert result.deliveries["zigzag first attempt lost"] > 0
    assert {r.name for r in result.rates if sum(r.faults.values()) > 0} == {
        "Loop API", "Shopify", "Khaos channel (polls, pushes)", "Khaos SOAP", "ZigZag API"}
