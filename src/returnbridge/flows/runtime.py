"""What a flow needs at run time: settings and the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from returnbridge.config import Settings
from returnbridge.domain.policy import SourcePolicy
from returnbridge.store.db import make_engine, session_factory


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.database.url)
        return cls(settings, engine, session_factory(engine))

    def source_policy(self, source: str) -> SourcePolicy:
        section = self.settings.loop if source == "loop" else self.settings.zigzag
        return SourcePolicy(
            goods_in_owner=section.goods_in_owner,
            fallback_customer_urn=section.fallback_customer_urn,
        )

    def prefix(self, source: str) -> str:
        section = self.settings.loop if source == "loop" else self.settings.zigzag
        return section.associated_ref_prefix

    def close(self) -> None:
        self.engine.dispose()
