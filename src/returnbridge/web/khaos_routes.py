"""The Khaos channel endpoints, all behind HTTP Basic from [khaos]."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from returnbridge.erp.khaos.channel import endpoint_config
from returnbridge.erp.khaos.xml import endpoint_config_xml
from returnbridge.flows.khaos.serve import serve_page
from returnbridge.web.auth import check_basic
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import KHAOS_POLLS, KHAOS_SERVED

router = APIRouter(prefix="/khaos")


def khaos_ctx(request: Request) -> AppContext:
    """The app context, once the request's HTTP Basic matches [khaos] (else 401)."""
    ctx: AppContext = request.app.state.ctx
    k = ctx.rt.settings.khaos
    check_basic(request, k.channel_username, k.channel_password.get_secret_value())
    return ctx


@router.get("/config")
@router.get("/config.json")
@router.get("/config.xml")
def khaos_config(request: Request) -> Response:
    ctx = khaos_ctx(request)
    s = ctx.rt.settings
    doc = endpoint_config(s.server.public_base_url, s.khaos.format,
                          s.khaos.poll_frequency_minutes)
    path = request.url.path
    as_xml = path.endswith(".xml") or (not path.endswith(".json") and s.khaos.format == "XML")
    if as_xml:
        return Response(endpoint_config_xml(doc), media_type="application/xml")
    return Response(json.dumps(doc, indent=2).encode(), media_type="application/json")


@router.get("/returns")
async def khaos_returns(request: Request) -> Response:
    ctx = khaos_ctx(request)
    page = await run_in_threadpool(
        serve_page, ctx.rt,
        continuation=request.headers.get("sirion-continuation", ""),
        specific_ids=request.headers.get("specificids"),
    )
    KHAOS_POLLS.inc()
    KHAOS_SERVED.inc(len(page.refs))
    headers = {"Sirion-Continuation": page.continuation} if page.continuation else {}
    return Response(page.document, media_type=page.media_type, headers=headers)
