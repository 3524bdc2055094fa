"""Typed errors raised by source adapters."""

from __future__ import annotations


class PayloadInvalid(ValueError):
    """A stored event that cannot be understood. The raw event stays stored."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
