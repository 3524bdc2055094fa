"""POST /webhooks/zigzag: authenticate, store the raw event, answer for ZigZag's retries.

ZigZag retries a delivery daily for 7 days on 400, 401, 403, 405, 408, 500, 502 or no
answer, and never on anything else (reference §3.2). So: a stored event gets 200 even if
it later turns out invalid (it is kept and raises payload_invalid); a failure before
storing gets 500 (retried; never 503/429, which are not); bad credentials get 401
(retried, so a mis-set secret loses nothing for a week).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from returnbridge.config import ZigZagSettings
from returnbridge.sources.zigzag.events import envelope, trigger_of
from returnbridge.store.events import StoredEvent, sha256, store_event
from returnbridge.web.context import AppContext
from returnbridge.web.metrics import WEBHOOKS
from returnbridge.web.webhooks import BodyTooLarge, read_body

router = APIRouter()
log = structlog.get_logger(__name__)

SOURCE = "zigzag"
_KEPT_HEADERS = ("content-type", "user-agent", "content-length")
_MAX_KEY = 128


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].casefold() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def authentic(settings: ZigZagSettings, headers: dict[str, str]) -> tuple[bool, str]:
    """Whether a delivery carries the configured credentials; the reason when not.

    ``headers`` keys are lower-case. With a secret and Basic both configured, both must
    match; with neither configured every delivery is refused.
    """
    secret = settings.webhook_secret.get_secret_value()
    user = settings.webhook_username
    password = settings.webhook_password.get_secret_value()
    if not secret and not user:
        return False, ("no webhook credentials are configured for ZigZag "
                       "([zigzag].webhook_secret or webhook_username/webhook_password)")
    if user and not password:
        return False, ("[zigzag].webhook_username is set but webhook_password is empty; "
                       "refusing every delivery rather than accepting an empty password")
    ok = True
    if secret:
        given = headers.get(settings.webhook_secret_header.lower(), "")
        ok = _same(given, secret) and ok
    if user:
        pair = _basic(headers.get("authorization"))
        given_user, given_password = pair if pair else ("", "")
        # Both comparisons always run: the time taken says nothing about which failed.
        user_ok = _same(given_user, user)
        password_ok = _same(given_password, password)
        ok = ok and user_ok and password_ok
    if not ok:
        return False, "the delivery's credentials do not match the configured ones"
    return True, ""


def dedupe_key(event_id: str, body: bytes) -> str:
    """The event id when present (hashed if too long for the column), else the body hash."""
    if not event_id:
        return sha256(body)
    key = f"id:{event_id}"
    return key if len(key) <= _MAX_KEY else "id-sha256:" + hashlib.sha256(
        event_id.encode("utf-8")).hexdigest()


@router.post("/webhooks/zigzag")
async def zigzag_webhook(request: Request) -> JSONResponse:
    ctx: AppContext = request.app.state.ctx
    settings = ctx.rt.settings
    headers = {k.lower(): v for k, v in request.headers.items()}
    ok, why = authentic(settings.zigzag, headers)
    if not ok:
        WEBHOOKS.labels(SOURCE, "bad_auth").inc()
        await run_in_threadpool(ctx.signature_failures.note, SOURCE)
        return JSONResponse({"error": why}, status_code=401)
    try:
        body = await read_body(request, settings.server.max_body_bytes)
    except BodyTooLarge:
        # Not retried by ZigZag (413 is not in its list): the same bytes would fail again.
        WEBHOOKS.labels(SOURCE, "too_large").inc()
        return JSONResponse({"error": f"body larger than {settings.server.max_body_bytes} "
                             "bytes"}, status_code=413)
    except Exception as exc:  # the client went away mid-body: let it retry
        log.warning("could not read webhook body", source=SOURCE, error=str(exc))
        return JSONResponse({"error": "could not read the body; please retry"},
                            status_code=500)
    env = envelope(body, settings.zigzag)
    kept = {k: v for k, v in headers.items() if k in _KEPT_HEADERS}
    try:
        stored: StoredEvent = await run_in_threadpool(
            store_event, ctx.rt.sessions, source=SOURCE, body=body, headers=kept,
            dedupe_key=dedupe_key(env.event_id, body), topic=env.event_type,
            trigger=trigger_of(env.event_type, settings.zigzag),
            source_ref=env.return_ref,
        )
    except Exception as exc:
        # Not stored: 500 is in ZigZag's retry list (503 and 429 are not).
        WEBHOOKS.labels(SOURCE, "store_failed").inc()
        log.error("could not store webhook", source=SOURCE, error=str(exc))
        return JSONResponse({"error": "could not store the event; please retry"},
                            status_code=500)
    WEBHOOKS.labels(SOURCE, "duplicate" if stored.duplicate else "stored").inc()
    if ctx.enqueue is not None and not stored.duplicate:
        try:
            await run_in_threadpool(ctx.enqueue, SOURCE, stored.dedupe_key, stored.event_id)
        except Exception as exc:  # stored already; the pump will enqueue it
            log.warning("enqueue failed; the event pump will pick it up",
                        event_id=stored.event_id, error=str(exc))
    return JSONResponse({"status": "duplicate" if stored.duplicate else "stored",
                         "event_id": stored.event_id})
