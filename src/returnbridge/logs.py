"""Structured logs (structlog): JSON for shippers, readable on a terminal, secrets redacted."""

from __future__ import annotations

import logging
import sys
import threading
import time
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


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler. Most records are written at once; the access log's (one per HTTP
    request) are kept and written together every ``BATCH_SECONDS``, or before the next
    record that is written at once, so the file keeps their order.

    A write is a system call that lets go of the interpreter lock, and under a burst of
    webhooks taking it back behind the event worker cost more than the line itself
    (docs/operations.md, "Sizing", session 11). The price: a process killed outright
    (SIGKILL) loses up to ``BATCH_SECONDS`` of access-log lines; a normal stop writes
    them."""

    BATCHED = frozenset({"uvicorn.access"})
    BATCH_SECONDS = 0.25

    def __init__(self) -> None:
        super().__init__(_CurrentStderr())
        self._kept: list[str] = []
        self._writer: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name not in self.BATCHED:
            self._write_kept()
            super().emit(record)
            return
        try:
            self._kept.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
            return
        if self._writer is None or not self._writer.is_alive():  # also after a fork
            self._writer = threading.Thread(target=self._write_every_batch,
                                            name="log-writer", daemon=True)
            self._writer.start()

    def flush(self) -> None:
        self._write_kept()
        super().flush()

    def _write_kept(self) -> None:
        if not self._kept:
            return
        with self.lock:  # type: ignore[union-attr]
            kept, self._kept = self._kept, []
            if kept:
                try:
                    self.stream.write("".join(kept))
                except Exception:  # like StreamHandler: a log line must not break a request
                    return

    def _write_every_batch(self) -> None:
        """Runs while access-log lines keep coming; ends after a quiet interval (the next
        line starts it again), so a replaced handler leaves no thread behind."""
        while True:
            time.sleep(self.BATCH_SECONDS)
            with self.lock:  # type: ignore[union-attr]
                if not self._kept:
                    self._writer = None  # emit (under this lock) starts a new one
                    return
            self.flush()


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
    handler = _Handler()
    handler.addFilter(_RedactingFilter(redactor))
    handler.setFormatter(_RedactingFormatter(
        redactor, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers = [handler]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dbos"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    return redactor
