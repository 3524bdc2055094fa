"""Webhook delivery with Loop's failure modes: dropped, duplicated and reordered deliveries.

Each emitted webhook is decided once with a seeded RNG: dropped (never arrives), delivered,
or delivered twice. Deliveries are queued and sent by :meth:`flush` (shuffled when
``reorder``), or at once when ``immediate``. A non-2xx answer is retried up to 3 times, as
Loop does (reference §2.4).
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from returnbridge.sandbox.loop.sender import LoopSender

LOOP_RETRIES = 3


@dataclass
class DispatchStats:
    emitted: int = 0
    delivered: int = 0  # accepted with 2xx (duplicates counted each time)
    dropped: int = 0
    duplicated: int = 0
    failed: int = 0  # still not 2xx after Loop's retries
    dropped_refs: list[tuple[str, str, str]] = field(default_factory=list)  # topic,trigger,id


class WebhookDispatcher:
    def __init__(self, url: str = "", secret: str = "", *, drop_rate: float = 0.0,
                 duplicate_rate: float = 0.0, reorder: bool = False, seed: int = 0,
                 immediate: bool = False, concurrency: int = 4, timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.drop_rate = drop_rate
        self.duplicate_rate = duplicate_rate
        self.reorder = reorder
        self.immediate = immediate
        self.concurrency = concurrency
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.stats = DispatchStats()
        self.queue: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self.stats.emitted += 1
            roll = self.rng.random()
            if roll < self.drop_rate:
                self.stats.dropped += 1
                self.stats.dropped_refs.append((str(payload.get("topic", "")),
                                                str(payload.get("trigger", "")),
                                                str(payload.get("id", payload.get("return_id",
                                                                                  "")))))
                return
            copies = 2 if self.rng.random() < self.duplicate_rate else 1
            if copies == 2:
                self.stats.duplicated += 1
            self.queue.extend([payload] * copies)
        if self.immediate and self.url:
            self.flush()

    def flush(self) -> DispatchStats:
        """Send everything queued; returns the running totals."""
        with self._lock:
            batch, self.queue = self.queue, []
            if self.reorder:
                self.rng.shuffle(batch)
        if not batch or not self.url:
            return self.stats
        local = threading.local()

        def sender() -> LoopSender:
            if not hasattr(local, "sender"):
                local.sender = LoopSender(self.url, self.secret, timeout=self.timeout)
                senders.append(local.sender)
            s: LoopSender = local.sender
            return s

        senders: list[LoopSender] = []

        def deliver(payload: dict[str, Any]) -> bool:
            for _ in range(1 + LOOP_RETRIES):
                try:
                    if sender().send(payload).is_success:
                        return True
                except httpx.HTTPError:
                    continue
            return False

        workers = 1 if self.reorder is False and self.concurrency <= 1 else self.concurrency
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            results = list(pool.map(deliver, batch))
        for s in senders:
            s.close()
        with self._lock:
            self.stats.delivered += sum(results)
            self.stats.failed += len(results) - sum(results)
        return self.stats
