"""ZigZag as a returns platform: its webhooks, events, refund rules and stock push."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from returnbridge.domain.evidence import Interpretation
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.returns_platform import (
    ConfigFinding,
    PlatformJob,
    RefundRules,
    ReturnsPlatform,
    Routing,
)
from returnbridge.sources.zigzag.client import ZigZagClient
from returnbridge.sources.zigzag.events import envelope, interpret, trigger_of
from returnbridge.sources.zigzag.settings import ZigZagSettings, zigzag_settings
from returnbridge.sources.zigzag.stock_push import push_stock
from returnbridge.sources.zigzag.webhook import authentic, dedupe_key

NAME = "zigzag"


def _stock_push(rt: Runtime) -> str:
    client = ZigZagClient(zigzag_settings(rt.settings))
    try:
        return str(push_stock(rt, client))
    finally:
        client.close()


def _stock_push_interval(rt: Runtime) -> float:
    s = zigzag_settings(rt.settings)
    return max(0.0, float(s.stock_push_minutes)) * 60.0 if s.base_url else 0.0


class ZigZagPlatform(ReturnsPlatform[ZigZagSettings]):
    name = NAME
    title = "ZigZag"
    settings_model = ZigZagSettings
    # ZigZag sends a shared secret and/or HTTP Basic credentials in headers: they are
    # checked before the body is read.
    authenticates_on_body = False
    kept_headers = ("content-type", "user-agent", "content-length")
    auth_failure_label = "bad_auth"
    api_system = NAME
    api_title = "the ZigZag API"

    def authenticate(self, section: ZigZagSettings, headers: Mapping[str, str],
                     body: bytes | None) -> str:
        ok, why = authentic(section, dict(headers))
        return "" if ok else why

    def route(self, section: ZigZagSettings, body: bytes) -> Routing:
        env = envelope(body, section)
        return Routing(topic=env.event_type, trigger=trigger_of(env.event_type, section),
                       source_ref=env.return_ref, dedupe_key=dedupe_key(env.event_id, body))

    def interpret(self, section: ZigZagSettings, body: bytes, topic: str,
                  trigger: str) -> Interpretation:
        return interpret(body, settings=section)

    def configured(self, section: ZigZagSettings) -> bool:
        return bool(section.base_url or section.webhook_secret.get_secret_value()
                    or section.webhook_username)

    def refund_rules(self, section: ZigZagSettings) -> RefundRules:
        # ZigZag says what to refund (RefundRequested): nothing is paid before it does,
        # unless the retailer's contract has no such event.
        return RefundRules(needs_request=not section.refund_without_request,
                           store_credit_action=section.store_credit_action,
                           store_credit_setting="[zigzag].store_credit_action")

    def jobs(self) -> tuple[PlatformJob, ...]:
        return (PlatformJob("zigzag-stock-push", _stock_push_interval, _stock_push),)

    def probe(self, section: ZigZagSettings) -> Callable[[], str] | None:
        if not section.base_url:
            return None

        def token() -> str:
            with ZigZagClient(section) as client:
                client.token()
            return "token issued"
        return token

    def check_config(self, section: ZigZagSettings, settings: Any) -> list[ConfigFinding]:
        found: list[ConfigFinding] = []
        if not self.configured(section):
            return found
        if section.webhook_username and not section.webhook_password.get_secret_value():
            found.append(("error", "[zigzag].webhook_password",
                          "webhook_username is set but the password is empty, so every ZigZag "
                          "delivery is refused. Set the password ZigZag sends."))
        policy = settings.policy
        if not (policy.fallback_address_line1 and policy.fallback_address_postcode):
            found.append(("warning", "[policy].fallback_address_*",
                          "ZigZag's default events carry no customer address and Khaos "
                          "requires an InvoiceAddress: without a fallback address every ZigZag "
                          "return is held as unknown_customer."))
        if section.refund_owner == "returnbridge" and not settings.khaos.soap_url:
            found.append(("note", "[khaos].soap_url",
                          "without desktop SOAP, payments made by returnbridge are never "
                          "recorded in Khaos by ProcessReturn; each becomes a finance_task to "
                          "record against its credit note."))
        return found

    def secrets(self, section: ZigZagSettings) -> list[tuple[str, str]]:
        return [("[zigzag].webhook_secret", section.webhook_secret.get_secret_value()),
                ("[zigzag].webhook_password", section.webhook_password.get_secret_value())]
