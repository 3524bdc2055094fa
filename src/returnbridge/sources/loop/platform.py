"""Loop Returns as a returns platform: its webhooks, events, refund rules and jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from returnbridge.domain.evidence import Interpretation
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.health import record_failure, record_success
from returnbridge.returns_platform import (
    ConfigFinding,
    PlatformJob,
    RefundRules,
    Repositories,
    ReturnsPlatform,
    Routing,
)
from returnbridge.sources.loop import signature
from returnbridge.sources.loop.backstop import run_backstop
from returnbridge.sources.loop.client import LoopClient, LoopError
from returnbridge.sources.loop.lease import SKIPPED, loop_api_lease
from returnbridge.sources.loop.notes import write_back
from returnbridge.sources.loop.notes_table import LoopNotes
from returnbridge.sources.loop.parser import envelope
from returnbridge.sources.loop.settings import LoopSettings, loop_settings
from returnbridge.sources.loop.topics import interpret
from returnbridge.store.models import utcnow

NAME = "loop"


def _peek(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nested too deep
        return None


def _minutes(value: float) -> float:
    return max(0.0, float(value)) * 60.0


def _backstop(rt: Runtime) -> str:
    with loop_api_lease(rt) as mine:
        if not mine:
            return SKIPPED
        # Stored events are applied by the event worker within seconds.
        try:
            result = run_backstop(rt)
        except (LoopError, OSError) as exc:
            record_failure(rt, NAME, f"{type(exc).__name__}: {exc}")
            raise
    record_success(rt, NAME)
    return str(result)


def _backstop_interval(rt: Runtime) -> float:
    s = loop_settings(rt.settings)
    return _minutes(s.backstop_interval_minutes) if s.api_key.get_secret_value() else 0.0


def _notes(rt: Runtime) -> str:
    with loop_api_lease(rt) as mine:
        return str(write_back(rt)) if mine else SKIPPED


def _notes_interval(rt: Runtime) -> float:
    s = loop_settings(rt.settings)
    return 60.0 if s.api_key.get_secret_value() and s.write_back_notes else 0.0


class LoopPlatform(ReturnsPlatform[LoopSettings]):
    name = NAME
    title = "Loop"
    settings_model = LoopSettings
    authenticates_on_body = True
    kept_headers = ("content-type", "user-agent", signature.HEADER.lower(), "content-length")
    auth_failure_label = "bad_signature"
    api_system = NAME
    api_title = "the Loop API"

    def authenticate(self, section: LoopSettings, headers: Mapping[str, str],
                     body: bytes | None) -> str:
        secrets = [s.get_secret_value() for s in section.webhook_secrets]
        if body is not None and signature.verify(body, headers.get(signature.HEADER.lower()),
                                                 secrets):
            return ""
        return f"{signature.HEADER} does not match any configured webhook secret"

    def route(self, section: LoopSettings, body: bytes) -> Routing:
        topic, trigger, ref = envelope(_peek(body))
        return Routing(topic=topic, trigger=trigger, source_ref=ref)

    def interpret(self, section: LoopSettings, body: bytes, topic: str,
                  trigger: str) -> Interpretation:
        return interpret(body, topic=topic, trigger=trigger, settings=section)

    def configured(self, section: LoopSettings) -> bool:
        return bool(section.webhook_secrets or section.api_key.get_secret_value())

    def refund_rules(self, section: LoopSettings) -> RefundRules:
        # Loop sends no refund decision: when returnbridge owns the refund, it is the
        # credit note's value.
        return RefundRules(record_platform_refunds_in_khaos=section.record_refunds_in_khaos)

    def jobs(self) -> tuple[PlatformJob, ...]:
        return (PlatformJob("loop-backstop", _backstop_interval, _backstop),
                PlatformJob("loop-notes", _notes_interval, _notes))

    def probe(self, section: LoopSettings) -> Callable[[], str] | None:
        if not section.api_key.get_secret_value():
            return None

        def listed() -> str:
            with LoopClient(section, max_retries=0) as client:
                end = utcnow()
                page = client.list_page(start=end - timedelta(hours=1), end=end,
                                        state="open", page_size=1)
            return f"listed returns ({len(page.returns)} on the first page)"
        return listed

    def doctor_counts(self, uow: Repositories) -> dict[str, Any]:
        return {"loop_notes_by_status": uow.repository(LoopNotes).counts_by_status()}

    def missing_returns_hint(self) -> str:
        return ("the Loop webhook subscriptions and the API key the backstop uses; "
                "'returnbridge backfill loop' fetches it by hand")

    def check_config(self, section: LoopSettings, settings: Any) -> list[ConfigFinding]:
        found: list[ConfigFinding] = []
        if not section.webhook_secrets:
            found.append(("error", "[loop].webhook_secrets",
                          "no Loop webhook secret is configured, so every Loop webhook will be "
                          "refused with 401. Copy the secret from Loop Admin > Developer Tools."))
        if any(not x.get_secret_value() for x in section.webhook_secrets):
            found.append(("error", "[loop].webhook_secrets",
                          "one of the Loop webhook secrets is empty."))
        if not section.fallback_customer_urn:
            found.append(("note", "[loop].fallback_customer_urn",
                          "no fallback customer: Loop returns whose customer cannot be matched "
                          "are held with unknown_customer until someone fixes them."))
        if section.write_back_notes and not section.api_key.get_secret_value() and (
                section.webhook_secrets):
            found.append(("note", "[loop].write_back_notes", "notes on held Loop returns "
                          "need [loop].api_key; without it none are written."))
        return found

    def secrets(self, section: LoopSettings) -> list[tuple[str, str]]:
        return [(f"[loop].webhook_secrets[{i}]", secret.get_secret_value())
                for i, secret in enumerate(section.webhook_secrets)]
