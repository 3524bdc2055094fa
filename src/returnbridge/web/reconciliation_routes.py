"""/api/v1/reconciliation: the month-end report as JSON and its files, bearer token.

GET /api/v1/reconciliation?period=YYYY-MM&source=all&refresh=false
    the report (summary + differences), as ``reconciliation-YYYY-MM.json`` holds it; the
    pack files are (re)written to [reconciliation] out_dir and listed under ``files``
GET /api/v1/reconciliation/files/{name}
    one file of a pack written there (xlsx, csv, html, json)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile import pack, service
from returnbridge.web.exceptions_routes import runtime_of

router = APIRouter(prefix="/api/v1")

PACK_FILE = re.compile(r"^reconciliation-\d{4}-\d{2}(-[a-z-]+)?\.(xlsx|csv|html|json)$")
PACK_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
              "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
              "json": "application/json"}


@router.get("/reconciliation")
async def report(rt: Annotated[Runtime, Depends(runtime_of)],
                 period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")],
                 source: str = "all", refresh: bool = False) -> dict[str, Any]:
    try:
        result = await run_in_threadpool(service.month_end, rt, period, source=source,
                                         refresh=refresh)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    body = pack.to_json(result.summary, result.differences)
    body["files"] = [{"name": f.name, "url": f"/api/v1/reconciliation/files/{f.name}"}
                     for f in result.files]
    return body


@router.get("/reconciliation/files/{name}")
async def file(name: str, rt: Annotated[Runtime, Depends(runtime_of)]) -> FileResponse:
    if not PACK_FILE.match(name):
        raise HTTPException(404, "no such reconciliation file")
    path = Path(rt.settings.reconciliation.out_dir) / name
    if not path.is_file():
        raise HTTPException(404, f"{name} has not been written; GET /api/v1/reconciliation"
                            "?period=YYYY-MM writes the pack")
    return FileResponse(path, media_type=PACK_TYPES[name.rsplit(".", 1)[1]], filename=name)
