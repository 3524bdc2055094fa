"""The one-click SKU candidate fix, over HTTP as an admin, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from returnbridge.flows.console import accounts
from returnbridge.flows.console.views import dry_run
from returnbridge.flows.ingest.apply import apply_event
from returnbridge.sandbox.loop.samples import Scenario, return_payload
from returnbridge.store.events import store_event
from returnbridge.store.models import AuditEntry, ExceptionRow
from returnbridge.store.returns_repo import ReturnsRepository
from tests.conftest import start_live_app
from tests.exceptions._seed import add_item

PASSWORD = "a long enough password"


def _signed_in(live: Any, username: str) -> Any:
    client = live.client(follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text)
    assert token is not None
    client.post("/console/login", data={"username": username, "password": PASSWORD,
                                        "csrf_token": token.group(1)})
    return client


def test_applying_a_candidate_releases_the_return_with_the_khaos_code(
        runtime_factory: Any) -> None:
    live = start_live_app(runtime_factory)
    try:
        with live.rt.sessions() as s, s.begin():
            add_item(s, "S1", "TEE-BLK-M1")
            add_item(s, "S2", "JEAN-IND-32")
        with live.rt.unit_of_work() as uow:
            accounts.add_user(uow, "ada", "admin", PASSWORD, by="test")
            accounts.add_user(uow, "carol", "cx", PASSWORD, by="test")
        payload = return_payload(14, Scenario("refund", ("TEE-BLK-M",)))
        stored = store_event(live.rt.sessions, source="loop",
                             body=json.dumps(payload).encode(), headers={})
        apply_event(live.rt, stored.event_id)
        with live.rt.sessions() as s:
            exc = s.scalars(select(ExceptionRow).where(
                ExceptionRow.type == "sku_mismatch")).one()
        ada = _signed_in(live, "ada")
        page = ada.get(f"/console/exceptions/{exc.id}")
        assert "Use TEE-BLK-M1" in page.text and "JEAN-IND-32" not in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        carol = _signed_in(live, "carol")
        carol_csrf = re.search(r'name="csrf_token" value="([^"]+)"',
                               carol.get("/console/overview").text)
        assert carol_csrf is not None
        refused = carol.post(f"/console/exceptions/{exc.id}/apply-candidate",
                             data={"csrf_token": carol_csrf.group(1), "stock_id": "S1"})
        assert refused.status_code == 403  # sku_mismatch belongs to ops: admins act on it
        done = ada.post(f"/console/exceptions/{exc.id}/apply-candidate",
                        data={"csrf_token": csrf.group(1), "stock_id": "S1"})
        assert done.status_code == 303 and "resolved" in done.headers["location"]
        with live.rt.sessions() as s:
            row = ReturnsRepository(s).by_ref("LR-14")
            assert row is not None
            assert (row.khaos_status, [ln.sku for ln in row.lines]) == ("ready", ["TEE-BLK-M1"])
            entry = s.scalars(select(AuditEntry).where(
                AuditEntry.action == "sku.alias_add")).one()
            assert (entry.actor, entry.details["khaos_sku"]) == ("user:ada", "TEE-BLK-M1")
            assert s.get(ExceptionRow, exc.id).resolved_by == "user:ada"
        document = dry_run(live.rt, "LR-14")
        assert document is not None and "TEE-BLK-M1" in document["document"]
    finally:
        live.stop()
