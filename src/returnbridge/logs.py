"""Structured logs (structlog): JSON for shippers, readable on a terminal, secrets redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = ("secret", "password", "token", "api_key", "authorization", "signature")


class Redactor:
    """Replaces every configured secret value, and values of secret-sounding keys."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def value(self, key: str, value: Any) -> Any:
        if any(word in key.lower() for word in _SECRET_KEYS) and value not in ("", None):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v) for v in value]
        return value

    def __call__(self, _logger: Any, _method: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            event_dict[key] = self.value(key, event_dict[key])
        return event_dict


class _RedactingFilter(logging.Filter):
    """For stdlib loggers (uvicorn, DBOS, SQLAlchemy) that bypass structlog."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        return True


class _RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, including a traceback's text (exception
    messages and local reprs can carry a password or a token)."""

    def __init__(self, redactor: Redactor, fmt: str) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now*: tests and CLI runners swap it and close
    the old one, and a logger holding on to a closed stream would crash."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> Redactor:
    redactor = Redactor(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (structlog.processors.JSONRenderer() if use_json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # first, so tracebacks are redacted too
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler(_CurrentStderr())
    handler.addFilter(_RedactingFilter(redactor))
    handler.setFormatter(_RedactingFormatter(
        redactor, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dbos"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    return redactor
