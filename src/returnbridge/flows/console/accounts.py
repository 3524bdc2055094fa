"""Console users, their sessions, and named API tokens with scopes.

- Passwords are hashed with argon2id (argon2-cffi, its recommended parameters); a hash made
  with older parameters is upgraded at the next successful sign-in.
- Session cookies and API tokens are 256-bit random values; only their SHA-256 is stored
  (a fast hash is right for values nobody can guess; argon2 is for what people choose).
- Every change to a user or token is written to the audit log with who did it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from returnbridge.store.models import ApiToken, ConsoleUser, utcnow
from returnbridge.store.unit_of_work import UnitOfWork


class Role(StrEnum):
    CX = "cx"
    WAREHOUSE = "warehouse"
    FINANCE = "finance"
    ADMIN = "admin"


class Scope(StrEnum):
    READ = "read"  # GET only
    ACT = "act"  # also retry / resolve / ignore exceptions
    ADMIN = "admin"  # everything, like the shared [api].tokens


SCOPE_RANK = {Scope.READ: 0, Scope.ACT: 1, Scope.ADMIN: 2}
ROLE_LABELS = {Role.CX: "customer service", Role.WAREHOUSE: "warehouse",
               Role.FINANCE: "finance", Role.ADMIN: "admin"}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,79}$")
MIN_PASSWORD = 12
_hasher = PasswordHasher()
# Verified against when the user name is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A user or token request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Who is acting: a console user, a named token, or a shared [api] token."""

    actor: str  # what the audit log records
    name: str  # what a page shows
    role: Role | None  # console users
    scope: Scope  # what the API allows (console users: by role, see may_act)
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN or (self.role is None and self.scope is Scope.ADMIN)

    def may_act_on(self, owner: str) -> bool:
        """Whether this identity may retry/resolve/ignore an exception owned by ``owner``.

        Console users act on their own team's queue; admins (and ``act``/``admin`` tokens)
        on every queue, including ``ops``."""
        if self.role is None:
            return SCOPE_RANK[self.scope] >= SCOPE_RANK[Scope.ACT]
        return self.role is Role.ADMIN or self.role.value == owner


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- users -----------------------------------------------------------------------------


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccountError(f"unknown role {value!r}; use one of "
                           f"{', '.join(r.value for r in Role)}") from None


def _user(uow: UnitOfWork, username: str) -> ConsoleUser:
    row = uow.accounts.user_named(username.strip().lower())
    if row is None:
        raise AccountError(f"no console user {username!r}; see 'returnbridge users list'")
    return row


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters")


def add_user(uow: UnitOfWork, username: str, role: str, password: str, *, by: str,
             display_name: str = "") -> ConsoleUser:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise AccountError("a user name is 2-80 characters: lower-case letters, digits, and "
                           ". _ @ - (not first)")
    check_password(password)
    r = _role(role)
    if uow.accounts.user_exists(name):
        raise AccountError(f"console user {name!r} already exists")
    row = uow.accounts.add_user(username=name, display_name=display_name.strip()[:120] or name,
                                role=r.value, password_hash=_hasher.hash(password),
                                at=utcnow())
    uow.audit.record(actor=by, action="user.add", subject=f"user:{name}",
                     details={"role": r.value})
    return row


def list_users(uow: UnitOfWork) -> list[ConsoleUser]:
    return uow.accounts.users()


def set_role(uow: UnitOfWork, username: str, role: str, *, by: str) -> ConsoleUser:
    row = _user(uow, username)
    r = _role(role)
    before = row.role
    uow.accounts.set_role(row, r.value, utcnow())
    uow.audit.record(actor=by, action="user.set_role", subject=f"user:{row.username}",
                     details={"from": before, "to": r.value})
    return row


def set_disabled(uow: UnitOfWork, username: str, disabled: bool, *, by: str) -> ConsoleUser:
    row = _user(uow, username)
    uow.accounts.set_disabled(row, disabled, utcnow())
    if disabled:  # signed-in browsers are signed out at once
        uow.accounts.sign_out_everywhere(row.id)
    uow.audit.record(actor=by, action="user.disable" if disabled else "user.enable",
                     subject=f"user:{row.username}")
    return row


def set_password(uow: UnitOfWork, username: str, password: str, *, by: str) -> ConsoleUser:
    check_password(password)
    row = _user(uow, username)
    uow.accounts.set_password_hash(row, _hasher.hash(password), utcnow())
    uow.accounts.sign_out_everywhere(row.id)
    uow.audit.record(actor=by, action="user.set_password", subject=f"user:{row.username}")
    return row


def verify_password(uow: UnitOfWork, username: str, password: str) -> ConsoleUser | None:
    """The enabled user with this name and password, else None (same work either way)."""
    row = uow.accounts.user_named(username.strip().lower())
    try:
        _hasher.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        uow.accounts.upgrade_password_hash(row, _hasher.hash(password))
    return row


def user_identity(row: ConsoleUser) -> Identity:
    role = Role(row.role)
    scope = Scope.ADMIN if role is Role.ADMIN else Scope.ACT
    return Identity(actor=f"user:{row.username}", name=row.display_name or row.username,
                    role=role, scope=scope, user_id=row.id)


# --- sessions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    identity: Identity
    csrf_token: str
    session_id: str


def open_session(uow: UnitOfWork, user: ConsoleUser, client: str) -> str:
    """A new session for ``user``; returns the cookie value (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    uow.accounts.open_session(user, session_id=sha256(token),
                              csrf_token=secrets.token_urlsafe(32), client=client[:255],
                              at=utcnow())
    uow.audit.record(actor=f"user:{user.username}", action="user.login",
                     subject=f"user:{user.username}", details={"client": client[:255]})
    return token


def resume_session(uow: UnitOfWork, cookie: str, *, idle: timedelta, max_age: timedelta,
                   now: datetime | None = None) -> SignedIn | None:
    """The signed-in user for a session cookie, or None when unknown, idle or expired."""
    if not cookie:
        return None
    now = now or utcnow()
    row = uow.accounts.session_by_id(sha256(cookie))
    if row is None:
        return None
    user = uow.accounts.user_by_id(row.user_id)
    if (user is None or user.disabled or now - row.last_seen_at > idle
            or now - row.created_at > max_age):
        uow.accounts.close_session(row)
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # one write a minute, not per click
        uow.accounts.session_seen(row, now)
    return SignedIn(user_identity(user), row.csrf_token, row.id)


def close_session(uow: UnitOfWork, cookie: str) -> None:
    row = uow.accounts.session_by_id(sha256(cookie)) if cookie else None
    if row is None:
        return
    user = uow.accounts.user_by_id(row.user_id)
    uow.accounts.close_session(row)
    if user is not None:
        uow.audit.record(actor=f"user:{user.username}", action="user.logout",
                         subject=f"user:{user.username}")


def csrf_ok(expected: str, presented: str | None) -> bool:
    return bool(expected and presented) and hmac.compare_digest(
        expected.encode(), (presented or "").encode())


# --- API tokens --------------------------------------------------------------------------


def _scope(value: str) -> Scope:
    try:
        return Scope(value)
    except ValueError:
        raise AccountError(f"unknown scope {value!r}; use one of "
                           f"{', '.join(s.value for s in Scope)}") from None


def create_token(uow: UnitOfWork, name: str, scope: str, *, by: str) -> tuple[ApiToken, str]:
    """A new named token; the token itself is returned once and never stored."""
    clean = name.strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$", clean):
        raise AccountError("a token name is 1-80 characters: letters, digits, . _ -")
    s = _scope(scope)
    if uow.accounts.token_exists(clean):
        raise AccountError(f"a token named {clean!r} already exists; revoke it first")
    token = "rbt_" + secrets.token_urlsafe(32)
    row = uow.accounts.add_token(name=clean, scope=s.value, token_sha256=sha256(token),
                                 prefix=token[:10], at=utcnow(), by=by[:120])
    uow.audit.record(actor=by, action="token.create", subject=f"token:{clean}",
                     details={"scope": s.value})
    return row, token


def list_tokens(uow: UnitOfWork) -> list[ApiToken]:
    return uow.accounts.tokens()


def revoke_token(uow: UnitOfWork, name: str, *, by: str) -> ApiToken:
    row = uow.accounts.token_named(name.strip())
    if row is None:
        raise AccountError(f"no token named {name!r}")
    if row.revoked_at is None:
        uow.accounts.revoke_token(row, utcnow())
        uow.audit.record(actor=by, action="token.revoke", subject=f"token:{row.name}")
    return row


def token_identity(uow: UnitOfWork, presented: str) -> Identity | None:
    row = uow.accounts.token_by_hash(sha256(presented))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        uow.accounts.token_used(row, now)
    return Identity(actor=f"token:{row.name}", name=row.name, role=None,
                    scope=Scope(row.scope))


def shared_token_identity(presented: str) -> Identity:
    return Identity(actor="api-token:" + sha256(presented)[:8], name="shared API token",
                    role=None, scope=Scope.ADMIN)

