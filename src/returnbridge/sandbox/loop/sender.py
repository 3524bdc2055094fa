"""Delivers signed Loop webhooks the way Loop does: compact PHP-style JSON bytes
(``/`` escaped as ``\\/``), base64 HMAC-SHA256 in X-Loop-Signature."""

from __future__ import annotations

import json
from typing import Any

import httpx

from returnbridge.sources.loop.signature import HEADER, sign


def php_json(payload: Any) -> bytes:
    """What PHP's json_encode produces: no whitespace, escaped slashes, ASCII only."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace(
        "/", "\\/").encode("ascii")


class LoopSender:
    def __init__(self, url: str, secret: str, timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.client = httpx.Client(timeout=timeout)
        self.log: list[tuple[str, int]] = []

    def send(self, payload: Any, *, secret: str | None = None) -> httpx.Response:
        body = php_json(payload)
        response = self.client.post(
            self.url, content=body,
            headers={"Content-Type": "application/json",
                     HEADER: sign(body, secret if secret is not None else self.secret),
                     "User-Agent": "returnbridge-loop-sandbox"},
        )
        ident = payload.get("id", "?") if isinstance(payload, dict) else "?"
        self.log.append((str(ident), response.status_code))
        return response

    def close(self) -> None:
        self.client.close()
