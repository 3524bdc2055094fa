"""What a flow needs at run time: settings and the database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from returnbridge.config import Settings
from returnbridge.domain.policy import GoodsInOwner, PolicyConfig, ReleaseOn, SourcePolicy
from returnbridge.domain.reasons import ReasonRule
from returnbridge.erp.khaos.soap import KhaosSoapClient
from returnbridge.payments.shopify.client import ShopifyClient
from returnbridge.returns_platform import PlatformSettings, Registry
from returnbridge.store.call_rates import SharedCallRate
from returnbridge.store.console_mapping import MappingRules
from returnbridge.store.db import make_engine, session_factory
from returnbridge.store.unit_of_work import Database, DatabaseEngine, SessionFactory

CONSOLE_RULES_TTL = 5.0


class Runtime(Database):
    """Settings, the database (``engine``, ``unit_of_work()``) and the platforms."""

    def __init__(self, settings: Settings, engine: DatabaseEngine,
                 factory: SessionFactory) -> None:
        super().__init__(engine, factory)
        self.settings = settings
        # Reason rules saved in the console (checked before the TOML rules). Read through
        # the caller's unit of work when there is one (SQLite allows one writer: a second
        # transaction inside one would wait on it); else cached for CONSOLE_RULES_TTL s.
        self._console_rules: tuple[ReasonRule, ...] | None = None
        self._console_rules_at = 0.0
        # The wall clock and sleep the shared call rates pace with (tests pass fakes).
        self.clock: Callable[[], float] = time.time
        self.sleep: Callable[[float], None] = time.sleep
        self._call_rates: dict[tuple[str, int], SharedCallRate] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database.url)
        info = {"audit_hmac_key": settings.audit.hmac_key.get_secret_value()}
        return cls(settings, engine, session_factory(engine, info))

    @property
    def platforms(self) -> Registry:
        """The returns platforms plugged in (``Settings.platforms``)."""
        return self.settings.platforms

    def platform_settings(self, source: str) -> PlatformSettings:
        """The settings every platform has, for returns and events from ``source``."""
        return self.platforms[source].common(self.settings)

    def source_policy(self, source: str) -> SourcePolicy:
        section = self.platform_settings(source)
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

    def policy_config(self, rules: MappingRules | None = None) -> PolicyConfig:
        """The posting policy's configuration; inside a unit of work pass its
        ``uow.mapping_rules`` so the console's rules are read in that transaction."""
        console = rules.rules() if rules is not None else self.console_rules()
        p = self.settings.policy
        return PolicyConfig(
            rules=console + self.settings.mapping.rules(),
            defaults=self.settings.mapping.default_reasons(),
            tolerance=p.tolerance,
            keep_item_reason_id=p.keep_item_reason_id,
            shipping_refund_sku=p.shipping_refund_sku,
            handling_fee_sku=p.handling_fee_sku,
            non_stock_reason_id=p.non_stock_reason_id,
            stock_stale_after=timedelta(hours=p.stock_stale_hours),
            allow_non_stock_controlled_exchanges=p.allow_non_stock_controlled_exchanges,
            fallback_address=bool(p.fallback_address_line1 and p.fallback_address_postcode),
            fallback_contact=bool(p.fallback_contact_surname.strip()
                                  or p.fallback_contact_forename.strip()),
            currency=self.settings.khaos.currency,
            vat_rates=tuple(p.vat_rates),
            vat_rate_tolerance=p.vat_rate_tolerance,
        )

    def console_rules(self) -> tuple[ReasonRule, ...]:
        """The console's rules (cached); never call inside an open transaction."""
        now = time.monotonic()
        if self._console_rules is None or now - self._console_rules_at > CONSOLE_RULES_TTL:
            with self.unit_of_work() as uow:
                self._console_rules = uow.mapping_rules.rules()
            self._console_rules_at = now
        return self._console_rules

    def forget_console_rules(self) -> None:
        self._console_rules = None

    def call_rate(self, name: str, limit: int) -> SharedCallRate:
        """The pacing of one external API shared by every process on this database: at most
        ``limit`` requests a minute, retries included (``store/call_rates.py``)."""
        found = self._call_rates.get((name, limit))
        if found is None:
            found = SharedCallRate(self.engine, name, limit, 60.0, clock=self.clock,
                                   sleep=self.sleep)
            self._call_rates[(name, limit)] = found
        return found

    def shopify_client(self) -> ShopifyClient:
        """A Shopify client paced by ``[shopify] calls_per_minute`` across every process."""
        s = self.settings.shopify
        return ShopifyClient(s, limiter=self.call_rate("shopify", s.calls_per_minute))

    def khaos_soap_client(self) -> KhaosSoapClient:
        """A desktop Khaos SOAP client paced by ``[khaos] soap_calls_per_minute`` across
        every process, every attempt counted (the DBOS queue limiter only counts the
        workflows it starts, not a step's retries nor a workflow recovered after a crash)."""
        k = self.settings.khaos
        return KhaosSoapClient(k.soap_url, timeout=k.soap_timeout_seconds,
                               limiter=self.call_rate("khaos_soap", k.soap_calls_per_minute))

    def prefix(self, source: str) -> str:
        return self.platform_settings(source).associated_ref_prefix

    def close(self) -> None:
        self.engine.dispose()
