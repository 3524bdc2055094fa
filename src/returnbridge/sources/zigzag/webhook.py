"""ZigZag's webhook credentials and de-duplication (the route is ``POST /webhooks/zigzag``).

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

from returnbridge.sources.zigzag.settings import ZigZagSettings
from returnbridge.store.events import sha256

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
