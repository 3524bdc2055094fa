"""Shared helpers for the ZigZag tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from returnbridge.sources.zigzag.settings import ZigZagSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "zigzag"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def zigzag_settings(**overrides: Any) -> ZigZagSettings:
    return ZigZagSettings(**{"retailer_code": "GL123", **overrides})
