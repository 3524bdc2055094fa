"""HTTP Basic for Khaos, bearer tokens for /api/v1: constant-time comparisons only."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request, status


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def check_basic(request: Request, username: str, password: str) -> None:
    challenge = {"WWW-Authenticate": 'Basic realm="returnbridge khaos channel"'}
    if not username or not password:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "the Khaos channel credentials are not configured", challenge)
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "HTTP Basic credentials required",
                            challenge)
    try:
        user, _, pw = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "malformed Basic credentials",
                            challenge) from None
    ok_user = _eq(user, username)
    ok_pw = _eq(pw, password)
    if not (ok_user and ok_pw):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password",
                            challenge)


def check_bearer(request: Request, tokens: list[str]) -> None:
    challenge = {"WWW-Authenticate": "Bearer"}
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                            challenge)
    matched = False
    for token in tokens:
        if token:
            matched |= _eq(presented.strip(), token)
    if not matched:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown bearer token", challenge)


def bearer_ok(headers: dict[str, str], tokens: list[str]) -> bool:
    """Whether lower-cased ``headers`` carry one of ``tokens`` as a bearer token (no
    exception; for checks made before a request's body is read)."""
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    matched = False
    for token in tokens:
        if token:
            matched |= _eq(presented.strip(), token)
    return matched
