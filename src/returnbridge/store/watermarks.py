"""Named marks that outlive a process: a backstop's cursor, a configuration fingerprint,
"ProcessReturn was attempted for this return"."""

from __future__ import annotations

from sqlalchemy.orm import Session

from returnbridge.store.models import Watermark, utcnow


class Watermarks:
    """The ``watermarks`` table in one unit of work's session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, name: str, *, for_update: bool = False) -> str | None:
        """The mark's value, or None when it was never set (locked with ``for_update``)."""
        row = self._session.get(Watermark, name, with_for_update=for_update)
        return row.value if row is not None else None

    def set(self, name: str, value: str | None) -> None:
        """Set the mark (None removes it)."""
        row = self._session.get(Watermark, name)
        if value is None:
            if row is not None:
                self._session.delete(row)
        elif row is None:
            self._session.add(Watermark(name=name, value=value[:255], updated_at=utcnow()))
        else:
            row.value = value[:255]
            row.updated_at = utcnow()
        self._session.flush()

    def claim(self, name: str, value: str) -> bool:
        """Set the mark unless it is set already (locked); True when it was set before."""
        if self._session.get(Watermark, name, with_for_update=True) is not None:
            return True
        self._session.add(Watermark(name=name, value=value[:255], updated_at=utcnow()))
        self._session.flush()
        return False
