"""HTTP Basic for Khaos, bearer tokens (shared or named, with scopes) for /api/v1:
constant-time comparisons only."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request, status

from returnbridge.flows.console.accounts import (
    SCOPE_RANK,
    Identity,
    Scope,
    shared_token_identity,
    token_identity,
)
from returnbridge.flows.engine.runtime import Runtime


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


# --- named API tokens with scopes (issue 14); the shared [api].tokens are admin tokens ----


def api_identity(request: Request, rt: Runtime, need: Scope = Scope.READ) -> Identity:
    """The identity behind the bearer token, refusing (401/403) what its scope does not allow.

    A shared ``[api].tokens`` entry is an admin token; a named token
    (``returnbridge tokens create``) has the scope it was created with."""
    challenge = {"WWW-Authenticate": "Bearer"}
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                            challenge)
    identity: Identity | None = None
    matched = False
    for token in rt.settings.api.tokens:
        value = token.get_secret_value()
        if value:
            matched |= _eq(presented, value)
    if matched:
        identity = shared_token_identity(presented)
    else:
        with rt.unit_of_work() as uow:
            identity = token_identity(uow, presented)
    if identity is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown bearer token", challenge)
    if SCOPE_RANK[identity.scope] < SCOPE_RANK[need]:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"the token {identity.name!r} has scope {identity.scope.value}; "
                            f"this needs {need.value}")
    return identity


def actor_for(identity: Identity, by: str = "") -> str:
    """The audit actor: always the authenticated identity; a ``by`` the caller typed is kept
    beside it (``api-token:1a2b3c4d (alice)``) but can never replace it."""
    said = " ".join(by.split())
    if not said or said == identity.actor:
        return identity.actor
    return f"{identity.actor} ({said})"[:120]


def bearer_known(headers: dict[str, str], rt: Runtime) -> bool:
    """Whether lower-cased ``headers`` carry a shared ``[api].tokens`` entry or a named token
    that is not revoked (checked before a request's body is read; scopes are checked by the
    route itself)."""
    if bearer_ok(headers, [t.get_secret_value() for t in rt.settings.api.tokens]):
        return True
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    with rt.unit_of_work() as uow:
        return token_identity(uow, presented.strip()) is not None
