"""Connect flows that react to each other without importing each other at module level.

A Khaos stock push must re-evaluate held returns, but the push answer must not wait for
it (Khaos has a request timeout). Re-evaluation runs on a background thread; requests
that arrive while one runs are coalesced into one more run afterwards.
"""

from __future__ import annotations

import logging
import threading

from returnbridge.flows.decide.reevaluate import reevaluate_open
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.khaos import pushes as khaos_push

log = logging.getLogger(__name__)


class Coalescer:
    """Runs ``reevaluate_open`` in the background, at most one at a time per runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._running = False
        self.runs = 0
        self.idle = threading.Event()
        self.idle.set()

    def request(self, kind: str) -> None:
        with self._lock:
            self._pending.add(kind)
            if self._running:
                return
            self._running = True
            self.idle.clear()
        threading.Thread(target=self._run, name="rb-reevaluate", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    self.idle.set()
                    return
                kinds = ", ".join(sorted(self._pending))
                self._pending.clear()
            try:
                reevaluate_open(self.rt, by="returnbridge", why=f"Khaos {kinds} update",
                                held_only=True)
            except Exception:
                log.exception("background re-evaluation failed")
            self.runs += 1


_COALESCERS: dict[int, Coalescer] = {}


def coalescer(rt: Runtime) -> Coalescer:
    found = _COALESCERS.get(id(rt))
    if found is None or found.rt is not rt:
        found = _COALESCERS[id(rt)] = Coalescer(rt)
    return found


def _after_mirror_change(rt: Runtime, kind: str) -> None:
    if kind in ("stock", "stock-status", "customers"):
        coalescer(rt).request(kind)


def install_hooks() -> None:
    """Idempotent: register the reactions between flows."""
    if _after_mirror_change not in khaos_push.AFTER_MIRROR_CHANGE:
        khaos_push.AFTER_MIRROR_CHANGE.append(_after_mirror_change)
