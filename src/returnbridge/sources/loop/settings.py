"""The ``[loop]`` settings section: everything returnbridge needs to talk to Loop.

Every field's description is user documentation (``returnbridge init``,
docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from returnbridge.config import Section
from returnbridge.domain.policy import GoodsInOwner


class LoopSettings(Section):
    api_key: SecretStr = Field(
        SecretStr(""), description="Loop API key (Returns scope), sent as X-Authorization."
    )
    base_url: str = Field(
        "https://api.loopreturns.com/api/v1", description="Loop API base URL."
    )
    webhook_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Webhook secrets from Loop Admin > Developer Tools, one per webhook "
        "subscription. A delivery is accepted if its X-Loop-Signature matches any of them.",
    )
    associated_ref_prefix: str = Field(
        "LR-", max_length=20, description="Prefix of the Khaos AssociatedRef for Loop returns."
    )
    goods_in_owner: GoodsInOwner = Field(
        GoodsInOwner.KHAOS,
        description="Who books goods in: 'khaos' (the warehouse processes the return in "
        "Khaos) or 'returns_platform' (Loop's grading decides; returns go in processed).",
    )
    refund_owner: Literal["platform", "returnbridge"] = Field(
        "platform", description="Who pays the customer back: 'platform' (Loop refunds "
        "itself; returnbridge reconciles) or 'returnbridge' (the refund gate refunds through "
        "Shopify once the Khaos credit note is confirmed).",
    )
    record_refunds_in_khaos: bool = Field(
        True, description="With refund_owner = 'platform' and [khaos].soap_url set: once "
        "the Khaos credit note is confirmed and Loop reports its refund, record it against "
        "the Khaos return with ProcessReturn(ReturnCode, Loop refund id), once per return. "
        "If Khaos has already processed the return, a finance task (reconciliation item "
        "'refund_record') says which refund to record by hand. false: never.",
    )
    fallback_customer_urn: str = Field(
        "",
        description="Khaos customer URN used when a Loop customer cannot be matched. Empty: "
        "no fallback; unmatched customers raise an unknown_customer exception.",
    )
    timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Timeout for each call to the Loop API."
    )
    rate_limit_per_minute: int = Field(
        280, ge=1, le=300,
        description="Most Loop API calls per minute from this process (Loop allows 300 per "
        "API key; keep some room for other tools using the same key).",
    )
    page_size: int = Field(
        750, ge=1, le=750, description="Returns per page when listing returns (Loop's "
        "maximum is 750).",
    )
    max_window_days: int = Field(
        120, ge=1, le=120, description="Longest from/to window per list call, in days "
        "(Loop rejects windows over 120 days).",
    )
    list_states: list[str] = Field(
        default_factory=lambda: ["open", "closed", "cancelled", "expired", "review"],
        description="Return states listed by the backstop and backfill, one pass each (Loop "
        "leaves out cancelled and review returns unless asked for them).",
    )
    backstop_interval_minutes: int = Field(
        10, ge=0, le=1440,
        description="How often the backstop lists returns updated in Loop since its last "
        "complete pass, to catch webhooks that never arrived. 0 turns it off.",
    )
    backstop_overlap_minutes: int = Field(
        15, ge=0, le=1440,
        description="Each backstop pass starts this many minutes before the end of the "
        "previous one, so that late-committed updates are not missed (re-reads are "
        "deduplicated).",
    )
    backstop_first_lookback_hours: int = Field(
        24, ge=1, le=2880,
        description="How far back the very first backstop pass looks, in hours. Use "
        "'returnbridge backfill loop' for older history.",
    )
    details_calls_per_pass: int = Field(
        200, ge=0, le=100_000,
        description="Most GET /warehouse/return/details calls one backstop pass or backfill "
        "run makes to fetch the customer's name and address, which the list API lacks (they "
        "share the API key's rate limit). Returns beyond it are completed by later backstop "
        "passes, oldest first; until then they are held as unknown_customer. 0: never call "
        "(use [policy].fallback_contact_surname).",
    )
    keep_item_return_methods: list[str] = Field(
        default_factory=lambda: ["keep_item", "keep item", "keep-item", "no_return"],
        description="Keep-item rule, part 1: a return whose return_method (text, or its "
        "method_type / provider) is one of these (case-insensitive) expects no parcel; its "
        "lines get physical_return_expected = false. Loop documents no keep-item field, so "
        "check this against your own returns.",
    )
    keep_item_line_outcomes: list[str] = Field(
        default_factory=lambda: ["keep_item", "keep item", "keep"],
        description="Keep-item rule, part 2: a returned unit whose line outcome is one of "
        "these (case-insensitive) expects no parcel.",
    )
    keep_item_when_closed_without_label: bool = Field(
        False,
        description="Keep-item rule, part 3: treat a closed return that never had a "
        "shipping label (no labels, label_status N/A/pending/empty, no tracking number) as "
        "keep-item. Off by default because a return closed by hand looks the same.",
    )
    write_back_notes: bool = Field(
        True,
        description="When a Loop return is held (not sent to Khaos), add one note on it in "
        "Loop saying what is wrong and which team is fixing it (never twice for the same "
        "cause). Needs api_key; set false to leave Loop untouched.",
    )
    write_back_flag: bool = Field(
        False,
        description="Also flag a held Loop return for review (stops Loop's automatic "
        "processing until someone unflags it). Needs write_back_notes.",
    )
    write_back_credit_note: bool = Field(
        False,
        description="When the Khaos credit note of a Loop return is confirmed, add a note "
        "with its code. Needs write_back_notes.",
    )


def loop_settings(settings: BaseModel) -> LoopSettings:
    """The ``[loop]`` section of the whole configuration."""
    section = getattr(settings, "loop", None)
    if not isinstance(section, LoopSettings):
        raise LookupError("the configuration has no [loop] section")
    return section
