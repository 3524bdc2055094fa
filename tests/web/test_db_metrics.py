"""/metrics reports what is in the database (the same from every process), and the shipped
Grafana dashboard and Prometheus rules only use metrics /metrics exports."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.models import JobRun, RefundRow, utcnow
from tests.conftest import LiveApp, start_live_app
from tests.exceptions._seed import add_problem, add_return

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# /metrics is closed by default; a Prometheus on a private network may be allowed in.
SCRAPED = {"metrics_public": True}


def _scrape(app: LiveApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with app.client() as c:
        text = c.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _seed(rt: Runtime) -> None:
    now = utcnow()
    with rt.sessions() as session, session.begin():
        held = add_return(session, "LR-1", [("SKU-1", "too big", "", "restock")],
                          khaos_status="held", seen=now - timedelta(days=2))
        add_return(session, "LR-2", [("SKU-2", "too big", "", "restock")], khaos_status="done")
        old = add_problem(session, "unknown_customer", "LR-1", ret=held)
        old.first_seen_at = now - timedelta(days=2)
        add_problem(session, "tax_drift", "LR-2")
        add_problem(session, "tax_drift", "LR-3")
        resolved = add_problem(session, "tax_drift", "LR-4")
        resolved.status = "resolved"
        session.add(RefundRow(associated_ref="LR-2", provider="shopify", origin="returnbridge",
                              idempotency_key="k-2", amount=Decimal("25.00"), currency="GBP"))
        session.add(RefundRow(associated_ref="LR-5", provider="shopify", origin="returnbridge",
                              idempotency_key="k-5", amount=Decimal("10.50"), currency="GBP"))
        # what the continuous reconciliation stores: one open gap per return and category
        add_problem(session, "reconciliation_gap", "LR-6:recon:unexplained",
                    category="unexplained", amount="1.25", currency="GBP")
        add_problem(session, "reconciliation_gap", "LR-7:recon:unexplained",
                    category="unexplained", amount="-0.50", currency="GBP")
        add_problem(session, "reconciliation_gap", "LR-8:recon:refund",
                    category="refund", amount="4.00", currency="GBP")
        gone = add_problem(session, "reconciliation_gap", "LR-9:recon:unexplained",
                           category="unexplained", amount="99.00", currency="GBP")
        gone.status = "resolved"
        session.add(JobRun(name="khaos-confirm", last_success_at=now, last_error="",
                           last_summary=""))


def test_database_gauges_are_the_same_from_every_process(
        runtime_factory: Callable[..., Runtime]) -> None:
    first = start_live_app(runtime_factory, api=SCRAPED)
    second = start_live_app(runtime_factory, api=SCRAPED)  # another process, same database
    try:
        _seed(first.rt)
        a, b = _scrape(first), _scrape(second)
    finally:
        first.stop()
        second.stop()
    from_db = {k: v for k, v in a.items() if not k[0].endswith(("_created", "_total"))
               and "returnbridge_" in k[0] and "timestamp" not in k[0] and "age" not in k[0]}
    assert from_db and all(b[k] == v for k, v in from_db.items())
    assert _value(a, "returnbridge_open_exceptions", type="unknown_customer", owner="cx",
                  severity="blocking", age="1d_3d") == 1
    assert _value(a, "returnbridge_open_exceptions", type="tax_drift", owner="finance",
                  severity="warning", age="lt_1h") == 2  # the resolved one is not counted
    assert _value(a, "returnbridge_open_exceptions", type="sku_mismatch", owner="ops",
                  severity="blocking", age="lt_1h") == 0
    assert _value(a, "returnbridge_returns", khaos_status="held") == 1
    assert _value(a, "returnbridge_returns", khaos_status="done") == 1
    assert _value(a, "returnbridge_returns", khaos_status="ready") == 0
    assert _value(a, "returnbridge_oldest_item_age_seconds", stage="held") >= 2 * 86400 - 60
    assert _value(a, "returnbridge_oldest_item_age_seconds", stage="ready") == 0
    assert _value(a, "returnbridge_refunds", provider="shopify", origin="returnbridge",
                  currency="GBP") == 2
    assert _value(a, "returnbridge_refunds_amount", provider="shopify",
                  origin="returnbridge", currency="GBP") == 35.5
    assert _value(a, "returnbridge_schedule_last_success_timestamp_seconds",
                  job="khaos-confirm") > 0
    assert _value(a, "returnbridge_reconciliation_open_gaps", category="unexplained") == 2
    assert _value(a, "returnbridge_reconciliation_open_gaps", category="refund") == 1
    assert _value(a, "returnbridge_reconciliation_open_gaps", category="shipping") == 0
    assert _value(a, "returnbridge_reconciliation_residual_unexplained",
                  currency="GBP") == 0.75  # the resolved gap is not counted
    assert _value(a, "returnbridge_db_metrics_up") == 1


def _exported_names(app: LiveApp) -> set[str]:
    with app.client() as c:
        text = c.get("/metrics").text
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        if fam.type == "counter":
            names.add(fam.name + "_total")
        names.update(s.name for s in fam.samples)
    return names


@pytest.fixture
def scraped_app(runtime_factory: Callable[..., Runtime]) -> Iterator[LiveApp]:
    app = start_live_app(runtime_factory, api=SCRAPED)
    yield app
    app.stop()


def test_dashboard_and_alert_rules_use_only_exported_metrics(scraped_app: LiveApp) -> None:
    live_app = scraped_app
    dashboard = json.loads((DEPLOY / "grafana" / "returnbridge.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert dashboard["uid"] == "returnbridge" and len(exprs) > 10
    assert all(r.get("alert") and r.get("annotations", {}).get("summary")
               for g in rules["groups"] for r in g["rules"])
    used = {m for e in exprs for m in re.findall(r"\breturnbridge_[a-z0-9_]+", e)}
    exported = _exported_names(live_app)
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"
