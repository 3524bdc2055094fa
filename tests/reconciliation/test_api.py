"""GET /api/v1/reconciliation?period=YYYY-MM (bearer token) and the pack files, over HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import openpyxl

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.sandbox.month import found_keys, generate, load_legs, planted_keys
from tests.conftest import start_live_app


def test_report_and_files_over_http(runtime_factory: Callable[..., Runtime],
                                    tmp_path: Path) -> None:
    app = start_live_app(runtime_factory, reconciliation={"out_dir": str(tmp_path)})
    try:
        month = generate("2026-10", 300, seed=9)
        with app.rt.engine.begin() as conn:
            load_legs(conn, month)
        with app.client() as anon:
            assert anon.get("/api/v1/reconciliation", params={"period": "2026-10"}
                            ).status_code == 401
        with app.api() as api:
            assert api.get("/api/v1/reconciliation",
                           params={"period": "2026-13"}).status_code == 400
            r = api.get("/api/v1/reconciliation", params={"period": "2026-10"}, timeout=120)
            assert r.status_code == 200
            body = r.json()
            assert body["summary"]["residual_unexplained"] == "0.00"
            assert found_keys(body["differences"]) == planted_keys(month)
            names = {f["name"] for f in body["files"]}
            assert "reconciliation-2026-10.xlsx" in names
            x = api.get("/api/v1/reconciliation/files/reconciliation-2026-10.xlsx")
            assert x.status_code == 200
            assert openpyxl.load_workbook(io.BytesIO(x.content)).sheetnames[0] == "Summary"
            c = api.get("/api/v1/reconciliation/files/reconciliation-2026-10-differences.csv")
            assert c.status_code == 200 and c.text.startswith("Return,Category,Amount")
            assert api.get("/api/v1/reconciliation/files/..%2F..%2Fetc%2Fpasswd"
                           ).status_code == 404
            assert api.get("/api/v1/reconciliation/files/reconciliation-2026-09.json"
                           ).status_code == 404
    finally:
        app.stop()
