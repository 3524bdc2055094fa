"""Console users, their signed-in sessions and named API tokens (``console_users``,
``console_sessions``, ``api_tokens``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from returnbridge.store.models import ApiToken, ConsoleSession, ConsoleUser


class AccountsRepository:
    """Users, sessions and tokens in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    # --- users ---

    def user_named(self, username: str) -> ConsoleUser | None:
        return self._session.scalars(select(ConsoleUser).where(
            ConsoleUser.username == username)).first()

    def user_exists(self, username: str) -> bool:
        return bool(self._session.scalars(select(ConsoleUser.id).where(
            ConsoleUser.username == username)).first())

    def user_by_id(self, user_id: int) -> ConsoleUser | None:
        return self._session.get(ConsoleUser, user_id)

    def add_user(self, *, username: str, display_name: str, role: str, password_hash: str,
                 at: datetime) -> ConsoleUser:
        """A new enabled user, flushed (its id assigned)."""
        row = ConsoleUser(username=username, display_name=display_name, role=role,
                          password_hash=password_hash, disabled=False, created_at=at,
                          updated_at=at)
        self._session.add(row)
        self._session.flush()
        return row

    def users(self) -> list[ConsoleUser]:
        return list(self._session.scalars(select(ConsoleUser).order_by(ConsoleUser.username)))

    def set_role(self, row: ConsoleUser, role: str, at: datetime) -> None:
        row.role = role
        row.updated_at = at

    def set_disabled(self, row: ConsoleUser, disabled: bool, at: datetime) -> None:
        row.disabled = disabled
        row.updated_at = at

    def set_password_hash(self, row: ConsoleUser, password_hash: str, at: datetime) -> None:
        row.password_hash = password_hash
        row.updated_at = at

    def upgrade_password_hash(self, row: ConsoleUser, password_hash: str) -> None:
        """The same password hashed with current parameters (not a change: no timestamp)."""
        row.password_hash = password_hash

    # --- signed-in sessions ---

    def sign_out_everywhere(self, user_id: int) -> None:
        self._session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))

    def open_session(self, user: ConsoleUser, *, session_id: str, csrf_token: str,
                     client: str, at: datetime) -> None:
        self._session.add(ConsoleSession(id=session_id, user_id=user.id, csrf_token=csrf_token,
                                         created_at=at, last_seen_at=at, client=client))
        user.last_login_at = at

    def session_by_id(self, session_id: str) -> ConsoleSession | None:
        return self._session.get(ConsoleSession, session_id)

    def close_session(self, row: ConsoleSession) -> None:
        self._session.delete(row)

    def session_seen(self, row: ConsoleSession, at: datetime) -> None:
        row.last_seen_at = at

    # --- API tokens ---

    def token_exists(self, name: str) -> bool:
        return bool(self._session.scalars(select(ApiToken.id).where(
            ApiToken.name == name)).first())

    def add_token(self, *, name: str, scope: str, token_sha256: str, prefix: str,
                  at: datetime, by: str) -> ApiToken:
        """A new token, flushed (its id assigned)."""
        row = ApiToken(name=name, scope=scope, token_sha256=token_sha256, prefix=prefix,
                       created_at=at, created_by=by)
        self._session.add(row)
        self._session.flush()
        return row

    def tokens(self) -> list[ApiToken]:
        return list(self._session.scalars(select(ApiToken).order_by(ApiToken.name)))

    def token_named(self, name: str) -> ApiToken | None:
        return self._session.scalars(select(ApiToken).where(ApiToken.name == name)).first()

    def token_by_hash(self, token_sha256: str) -> ApiToken | None:
        return self._session.scalars(select(ApiToken).where(
            ApiToken.token_sha256 == token_sha256)).first()

    def revoke_token(self, row: ApiToken, at: datetime) -> None:
        row.revoked_at = at

    def token_used(self, row: ApiToken, at: datetime) -> None:
        row.last_used_at = at
