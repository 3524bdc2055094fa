"""What a flow needs at run time: settings and the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.config import Settings
from returnbridge.domain.policy import GoodsInOwner, PolicyConfig, ReleaseOn, SourcePolicy
from returnbridge.store.db import make_engine, session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database.url)
        info = {"audit_hmac_key": settings.audit.hmac_key.get_secret_value()}
        return cls(settings, engine, session_factory(engine, info))

    def source_policy(self, source: str) -> SourcePolicy:
        section = self.settings.loop if source == "loop" else self.settings.zigzag
        p = self.settings.policy
        release = (p.release_on_khaos if section.goods_in_owner is GoodsInOwner.KHAOS
                   else p.release_on_returns_platform)
        return SourcePolicy(
            goods_in_owner=section.goods_in_owner,
            fallback_customer_urn=section.fallback_customer_urn,
            release_on=ReleaseOn(release),
            # Stock never waits on money (ARCHITECTURE 11): platform-graded returns go to
            # Khaos processed (stock and credit note at import); the refund record follows.
            processed_by_refund_gate=False,
        )

    def policy_config(self) -> PolicyConfig:
        p = self.settings.policy
        return PolicyConfig(
            rules=self.settings.mapping.rules(),
            defaults=self.settings.mapping.default_reasons(),
            tolerance=p.tolerance,
            keep_item_reason_id=p.keep_item_reason_id,
            shipping_refund_sku=p.shipping_refund_sku,
            handling_fee_sku=p.handling_fee_sku,
            non_stock_reason_id=p.non_stock_reason_id,
            stock_stale_after=timedelta(hours=p.stock_stale_hours),
            allow_non_stock_controlled_exchanges=p.allow_non_stock_controlled_exchanges,
            fallback_address=bool(p.fallback_address_line1 and p.fallback_address_postcode),
        )

    def prefix(self, source: str) -> str:
        section = self.settings.loop if source == "loop" else self.settings.zigzag
        return section.associated_ref_prefix

    def close(self) -> None:
        self.engine.dispose()
