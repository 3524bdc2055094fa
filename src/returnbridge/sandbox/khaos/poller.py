"""Kept for older imports: the Khaos sandbox now lives in ``emulator`` (channel poller,
stock pushes, SOAP service) and ``state`` (catalogue, stock, returns, credit notes)."""

from __future__ import annotations

from returnbridge.sandbox.khaos.emulator import KhaosSandbox
from returnbridge.sandbox.khaos.state import ImportFailure, KhaosReturn

ImportedReturn = KhaosReturn

__all__ = ["ImportFailure", "ImportedReturn", "KhaosSandbox"]
