"""What a reconciliation run covers: a month, and one returns platform or all of them."""

from __future__ import annotations

import re

from returnbridge.domain.reconciliation import period_bounds
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.reconcile.engine import Scope

ALL = "all"


def scope_period(period: str) -> str:
    """``period`` if it is a YYYY-MM month, else ValueError saying why."""
    if not re.fullmatch(r"\d{4}-\d{2}", period):
        raise ValueError(f"the period must be YYYY-MM, got {period!r}")
    period_bounds(period)
    return period


def scope(rt: Runtime, period: str, source: str = "all") -> Scope:
    known = (*rt.platforms.names(), ALL)
    if source not in known:
        raise ValueError(f"source must be one of {', '.join(known)}, got {source!r}")
    period_bounds(period)  # validates
    prefixes: tuple[str, ...] = ()
    if source != ALL:
        prefixes = (rt.prefix(source),)
    return Scope(period, source, prefixes)
