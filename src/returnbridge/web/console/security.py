"""Console sign-in, session cookies, CSRF and security headers.

- Session cookie ``rb_session``: HttpOnly, SameSite=Lax, Secure when the request came over
  https (or ``[console].secure_cookies = "always"``); the database keeps only its SHA-256.
- CSRF: every POST carries the session's token (form field ``csrf_token`` or header
  ``X-CSRF-Token``); the sign-in form uses a double-submit cookie because there is no
  session yet. A POST without a matching token gets 403 and changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from returnbridge.flows.console.accounts import SignedIn, csrf_ok, resume_session
from returnbridge.flows.console.login_throttle import LoginThrottle
from returnbridge.flows.engine.runtime import Runtime

SESSION_COOKIE = "rb_session"
LOGIN_CSRF_COOKIE = "rb_login_csrf"
PREFIX = "/console"


class NotSignedIn(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.ctx.rt
    return rt


def throttle(request: Request) -> LoginThrottle:
    existing: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if existing is None:
        c = runtime(request).settings.console
        existing = LoginThrottle(runtime(request).unit_of_work, c.login_attempts,
                                 c.login_window_minutes * 60.0)
        request.app.state.login_throttle = existing
    return existing


def is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def secure_cookie(request: Request) -> bool:
    mode = runtime(request).settings.console.secure_cookies
    return mode == "always" or (mode == "auto" and is_https(request))


def client_of(request: Request) -> str:
    host = request.client.host if request.client else "?"
    return f"{host} {request.headers.get('user-agent', '')[:200]}"


def _resume(rt: Runtime, cookie: str) -> SignedIn | None:
    c = rt.settings.console
    with rt.unit_of_work() as uow:
        return resume_session(uow, cookie, idle=timedelta(minutes=c.idle_timeout_minutes),
                              max_age=timedelta(hours=c.session_max_hours))


async def signed_in(request: Request) -> SignedIn:
    """The signed-in person, or a redirect to the sign-in page (dependency)."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    who = await run_in_threadpool(_resume, runtime(request), cookie) if cookie else None
    if who is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(path if request.method == "GET" else PREFIX + "/")
    request.state.who = who
    return who


async def form_with_csrf(request: Request, who: SignedIn) -> dict[str, Any]:
    """The posted form, after checking its CSRF token (403 when missing or wrong)."""
    form = await request.form()
    presented = request.headers.get("x-csrf-token") or str(form.get("csrf_token") or "")
    if not csrf_ok(who.csrf_token, presented):
        raise Forbidden("This form has expired or did not come from this console (missing "
                        "or wrong CSRF token). Reload the page and try again.")
    data: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            if key in data:
                existing = data[key]
                data[key] = [*existing, value] if isinstance(existing, list) else [existing,
                                                                                   value]
            else:
                data[key] = value
    return data


def login_csrf(request: Request) -> str:
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=secure_cookie(request), path=PREFIX)


def set_session(request: Request, response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=secure_cookie(request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def safe_next(value: str) -> str:
    """Only a path inside the console (no scheme, no host, no //evil.example)."""
    if value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def login_url(next_path: str) -> str:
    return f"{PREFIX}/login?next={quote(next_path, safe='/')}"


SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
