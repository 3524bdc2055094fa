"""X-Loop-Signature: base64(HMAC-SHA256(secret, raw body)), any configured secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

HEADER = "X-Loop-Signature"


def sign(raw_body: bytes, secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(raw_body: bytes, header_value: str | None, secrets: Iterable[str]) -> bool:
    """True when the header matches the signature under any secret, compared in constant time.

    Every secret is tried even after a match so that timing does not reveal which one.
    """
    if not header_value:
        return False
    presented = header_value.strip().encode("ascii", errors="replace")
    ok = False
    for secret in secrets:
        if not secret:
            continue
        expected = sign(raw_body, secret).encode("ascii")
        ok |= hmac.compare_digest(expected, presented)
    return ok
