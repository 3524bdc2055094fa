"""Typed errors raised by adapters (sources, ERP pushes) reading what a system sent."""

from __future__ import annotations


class PayloadInvalid(ValueError):
    """A stored event or pushed body that cannot be understood. The raw body stays stored."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
