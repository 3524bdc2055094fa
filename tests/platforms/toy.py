"""A third returns platform, "toy", defined entirely here: the proof that a platform is a
plug-in. Its webhook is signed with HMAC-SHA256 over the body (``X-Toy-Signature``, hex);
its one event carries the whole return."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.composition import PLATFORMS, Settings
from returnbridge.config import Section
from returnbridge.domain.evidence import Interpretation
from returnbridge.domain.identity import associated_ref
from returnbridge.domain.lifecycle import ReturnState
from returnbridge.domain.model import Address, Customer, ReturnCase, ReturnLine
from returnbridge.domain.policy import GoodsInOwner
from returnbridge.returns_platform import Registry, ReturnsPlatform, Routing

SIGNATURE_HEADER = "x-toy-signature"


class ToySettings(Section):
    webhook_secret: SecretStr = Field(SecretStr(""), description="Shared signing secret.")
    associated_ref_prefix: str = Field("TY-", description="AssociatedRef prefix.")
    goods_in_owner: GoodsInOwner = Field(GoodsInOwner.KHAOS, description="Who books goods in.")
    refund_owner: Literal["platform", "returnbridge"] = Field(
        "platform", description="Who pays the customer back.")
    fallback_customer_urn: str = Field("", description="Khaos URN for unmatched customers.")


def sign(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class ToyPlatform(ReturnsPlatform[ToySettings]):
    name = "toy"
    title = "Toy Returns"
    settings_model = ToySettings
    kept_headers = ("content-type", SIGNATURE_HEADER)
    auth_failure_label = "bad_signature"

    def authenticate(self, section: ToySettings, headers: Mapping[str, str],
                     body: bytes | None) -> str:
        secret = section.webhook_secret.get_secret_value()
        given = headers.get(SIGNATURE_HEADER, "")
        if secret and body is not None and hmac.compare_digest(given, sign(body, secret)):
            return ""
        return "X-Toy-Signature does not match"

    def route(self, section: ToySettings, body: bytes) -> Routing:
        try:
            payload = json.loads(body)
        except ValueError:
            return Routing()
        return Routing(topic=str(payload.get("event", "")), source_ref=str(payload.get("id", "")),
                       dedupe_key=f"toy:{payload.get('event_id', '')}")

    def interpret(self, section: ToySettings, body: bytes, topic: str,
                  trigger: str) -> Interpretation:
        payload = json.loads(body)
        if topic != "return.created":
            return Interpretation(handled=False, note=f"toy event {topic!r} not used")
        try:
            lines = tuple(ReturnLine(
                sku=item["sku"], quantity=int(item["qty"]), unit_net=Decimal(item["net"]),
                unit_tax=Decimal(item["tax"]),
                unit_gross=Decimal(item["net"]) + Decimal(item["tax"]),
                reason=item.get("reason", "")) for item in payload["items"])
            rid = str(payload["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadInvalid(f"not a toy return: {exc}") from None
        case = ReturnCase(
            source=self.name, source_return_id=rid,
            associated_ref=associated_ref(section.associated_ref_prefix, rid),
            order_ref=str(payload["order"]),
            customer=Customer(email=payload["email"], first_name="Ada", last_name="Toy",
                              address=Address(line1="1 Toy Street", town="Leeds",
                                              postcode="LS1 1AA", country_code="GB")),
            currency="GBP", state=ReturnState.REQUESTED, source_state="created",
            created_at=None, updated_at=None, lines=lines)
        return Interpretation(handled=True, source_return_id=rid, snapshot=case)


TOY_PLATFORMS: Registry = PLATFORMS.extended(ToyPlatform())


class ToyWorldSettings(Settings):
    """This build's settings plus the toy platform's section."""

    platforms: ClassVar[Registry] = TOY_PLATFORMS
    toy: ToySettings = Field(default_factory=ToySettings)
