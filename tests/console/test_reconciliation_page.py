"""The console Reconciliation page over real HTTP, on SQLite and PostgreSQL: finance and
admin see the month's summary and differences and build the pack; cx and warehouse get 403."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import httpx
import openpyxl

from returnbridge.flows.console import accounts
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.month import generate, load_legs
from tests.conftest import start_live_app

PASSWORD = "a long enough password"


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found is not None, text[:500]
    return found.group(1)


def test_finance_sees_the_month_and_builds_the_pack_cx_is_refused(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    out = tmp_path / "packs"
    app = start_live_app(runtime_factory, reconciliation={"out_dir": str(out)})
    try:
        with app.rt.unit_of_work() as uow:
            for name, role in (("carol", "cx"), ("fiona", "finance"), ("walt", "warehouse")):
                accounts.add_user(uow, name, role, PASSWORD, by="test")
        month = generate("2026-10", 120, seed=9)
        assert month.planted
        with app.rt.engine.begin() as conn:
            load_legs(conn, month)

        def login(username: str) -> httpx.Client:
            client = app.client(follow_redirects=False)
            token = _csrf(client.get("/console/login").text)
            r = client.post("/console/login", data={"username": username,
                                                    "password": PASSWORD,
                                                    "csrf_token": token, "next": ""})
            assert r.status_code == 303
            return client

        for who in ("carol", "walt"):
            with closing(login(who)) as other:
                r = other.get("/console/reconciliation", params={"period": "2026-10"})
                assert r.status_code == 403
                assert "finance and admins" in r.text
                assert 'href="/console/reconciliation"' not in other.get(
                    "/console/overview").text
                assert other.post("/console/reconciliation/build",
                                  data={"csrf_token": _csrf(r.text), "period": "2026-10"}
                                  ).status_code == 403
                assert not out.exists() or not list(out.iterdir())

        with closing(login("fiona")) as fin:
            assert 'href="/console/reconciliation"' in fin.get("/console/overview").text
            r = fin.get("/console/reconciliation", params={"period": "2026-10"})
            assert r.status_code == 200, r.text[:500]
            planted = month.planted[0]
            # the planted difference shows in the per-category counts and in the table
            cats = r.text.split('id="categories"', 1)[1].split("</table>", 1)[0]
            want = sum(1 for p in month.planted if p.category == planted.category)
            assert re.search(rf">{planted.category.value}</th><td class=\"num\">{want}<",
                             cats), cats
            assert "Unexplained residual: <strong>0.00</strong>" in r.text
            assert f"Differences ({len(month.planted)})" in r.text
            # a month that is not a month falls back to the current one, saying why
            bad = fin.get("/console/reconciliation", params={"period": "2026-13"})
            assert bad.status_code == 200 and "Not a month" in bad.text
            assert "Not written yet for 2026-10" in r.text
            # build the pack: the CSRF token is required
            assert fin.post("/console/reconciliation/build",
                            data={"period": "2026-10"}).status_code == 403
            b = fin.post("/console/reconciliation/build",
                         data={"csrf_token": _csrf(r.text), "period": "2026-10"})
            assert b.status_code == 303
            after = fin.get(b.headers["location"])
            assert "Pack for 2026-10 written" in after.text
            assert "/console/reconciliation/files/reconciliation-2026-10.xlsx" in after.text
            x = fin.get("/console/reconciliation/files/reconciliation-2026-10.xlsx")
            assert x.status_code == 200
            book = openpyxl.load_workbook(out / "reconciliation-2026-10.xlsx")
            assert book.sheetnames[0] == "Summary"
            assert fin.get("/console/reconciliation/files/..%2Fsecrets.json"
                           ).status_code == 404
            assert fin.get("/console/reconciliation/files/reconciliation-2026-09.json"
                           ).status_code == 404
    finally:
        app.stop()
