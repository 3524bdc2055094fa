"""Delivers ZigZag webhooks the way ZigZag would: JSON bodies with the configured credentials,
with optional duplicates and out-of-order delivery (ZigZag retries daily for a week)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from returnbridge.sources.zigzag.settings import ZigZagSettings


@dataclass
class Delivery:
    event_id: str
    event_type: str
    status_code: int


@dataclass
class ZigZagSender:
    url: str
    secret_header: str = "X-ZigZag-Secret"
    secret: str = ""
    basic: tuple[str, str] | None = None
    timeout: float = 10.0
    log: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=self.timeout)

    @classmethod
    def for_settings(cls, url: str, settings: ZigZagSettings) -> ZigZagSender:
        """A sender using the credentials returnbridge is configured to expect."""
        basic = ((settings.webhook_username, settings.webhook_password.get_secret_value())
                 if settings.webhook_username else None)
        return cls(url, secret_header=settings.webhook_secret_header,
                   secret=settings.webhook_secret.get_secret_value(), basic=basic)

    def _headers(self, secret: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "User-Agent": "returnbridge-zigzag-sandbox"}
        value = self.secret if secret is None else secret
        if value:
            headers[self.secret_header] = value
        return headers

    def send_raw(self, body: bytes, *, secret: str | None = None,
                 basic: tuple[str, str] | None = None) -> httpx.Response:
        pair = basic or self.basic
        if pair is None:
            return self._client.post(self.url, content=body, headers=self._headers(secret))
        return self._client.post(self.url, content=body, headers=self._headers(secret),
                                 auth=(pair[0], pair[1]))

    def send(self, payload: Any, *, secret: str | None = None,
             basic: tuple[str, str] | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        response = self.send_raw(body, secret=secret, basic=basic)
        is_dict = isinstance(payload, dict)
        self.log.append(Delivery(str(payload.get("eventId", "")) if is_dict else "",
                                 str(payload.get("eventType", "")) if is_dict else "",
                                 response.status_code))
        return response

    def deliver(self, payloads: list[dict[str, Any]], *, duplicates: int = 0,
                shuffle_seed: int | None = None) -> list[httpx.Response]:
        """Send every payload, each repeated ``duplicates`` extra times, in a shuffled order
        when ``shuffle_seed`` is given (deterministic for tests)."""
        queue = [p for p in payloads for _ in range(1 + duplicates)]
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(queue)
        return [self.send(p) for p in queue]

    def close(self) -> None:
        self._client.close()
