"""The returns-platform port: what the core needs from a returns platform, and the registry.

A returns platform (Loop, ZigZag, ...) is one folder under ``sources/`` that implements
:class:`ReturnsPlatform`: how its webhooks are authenticated and routed, what its events
mean, its settings section, its refund rules and its scheduled jobs. The composition root
(``returnbridge.composition``) lists the platforms plugged in; the core (``domain``,
``flows``, ``web``, ``store``) never names one. It finds a platform by the identifier
stored on every event and return, which is validated here, so a new platform needs no edit
in the core (docs/architecture.md, "Adding a returns platform").
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from returnbridge.domain.evidence import Interpretation
from returnbridge.domain.policy import GoodsInOwner

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,19}$")
# Names the core uses for itself: Khaos pushes share the inbox as source "khaos", and
# reconciliation reports over "all" sources.
RESERVED_NAMES = frozenset({"khaos", "all", "shopify"})


class UnknownPlatform(LookupError):
    """A source name that no registered returns platform has."""


def platform_name(value: str) -> str:
    """``value`` if it is a valid platform identifier (lower-case, 2-20 characters of
    ``a-z0-9_`` starting with a letter, not reserved); else ``ValueError``."""
    if not NAME_PATTERN.match(value) or value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is not a valid returns-platform name (2-20 of a-z, 0-9 "
                         f"and _, starting with a letter; not {', '.join(sorted(RESERVED_NAMES))})")
    return value


class PlatformSettings(Protocol):
    """What every platform's settings section carries for the core."""

    @property
    def associated_ref_prefix(self) -> str: ...

    @property
    def goods_in_owner(self) -> GoodsInOwner: ...

    @property
    def refund_owner(self) -> Literal["platform", "returnbridge"]: ...

    @property
    def fallback_customer_urn(self) -> str: ...


@dataclass(frozen=True)
class Routing:
    """Facts read from a delivery without failing, for storage and de-duplication before
    the event is interpreted. An empty ``dedupe_key`` means: the body's SHA-256."""

    topic: str = ""
    trigger: str = ""
    source_ref: str = ""
    dedupe_key: str = ""


@dataclass(frozen=True)
class RefundRules:
    """How the refund gate treats a platform's returns when returnbridge owns refunds."""

    # The platform must send its refund decision before anything is paid.
    needs_request: bool = False
    # What a request for store credit becomes: finance_task, shopify_store_credit, gift_card.
    store_credit_action: str = "finance_task"
    # The setting that chooses it, named in messages to finance.
    store_credit_setting: str = ""
    # When the platform pays: record its refund against the Khaos return (ProcessReturn).
    record_platform_refunds_in_khaos: bool = False


@dataclass(frozen=True)
class PlatformJob:
    """A scheduled job a platform runs (its backstop, its stock push). Both callables take
    the flows ``Runtime``; ``interval_seconds`` 0 means not configured, so never due."""

    name: str
    interval_seconds: Callable[[Any], float]
    run: Callable[[Any], str]


S = TypeVar("S", bound=BaseModel)
R = TypeVar("R")


class Repositories(Protocol):
    """What a platform gets of the unit of work in hand: its own repositories (for its own
    tables) bound to the transaction (``store.unit_of_work.UnitOfWork`` is one)."""

    def repository(self, kind: Callable[[Any], R]) -> R: ...
# A problem with a platform's settings for ``check-config``: (level, key, message), level
# one of "error", "warning", "note".
ConfigFinding = tuple[str, str, str]


class ReturnsPlatform(ABC, Generic[S]):
    """One returns platform, as the core sees it."""

    name: str  # the identifier stored on events and returns, and the settings section
    title: str  # for people: "Loop", "ZigZag"
    settings_model: type[S]
    # Credentials travel in headers (checked before the body is read) rather than as a
    # signature over the body.
    authenticates_on_body: bool = True
    kept_headers: tuple[str, ...] = ("content-type", "user-agent", "content-length")
    auth_failure_label: str = "bad_auth"  # the webhooks metric's outcome label
    # The key its API calls are counted under in connection health ("" if none), and how
    # the alerts name that API.
    api_system: str = ""
    api_title: str = ""

    def settings(self, settings: BaseModel) -> S:
        """This platform's section of the whole configuration."""
        section = getattr(settings, self.name, None)
        if not isinstance(section, self.settings_model):
            raise UnknownPlatform(f"the configuration has no [{self.name}] section")
        return section

    def common(self, settings: BaseModel) -> PlatformSettings:
        """The settings every platform has, for the core."""
        found: PlatformSettings = self.settings(settings)  # type: ignore[assignment]
        return found

    @abstractmethod
    def authenticate(self, section: S, headers: Mapping[str, str], body: bytes | None) -> str:
        """"" when the delivery is authentic, else why not (for the 401 answer). ``headers``
        keys are lower-case; ``body`` is None when ``authenticates_on_body`` is False."""

    @abstractmethod
    def route(self, section: S, body: bytes) -> Routing:
        """Routing facts of an authentic delivery; never raises on a bad body."""

    @abstractmethod
    def interpret(self, section: S, body: bytes, topic: str, trigger: str) -> Interpretation:
        """What a stored event means. Raises ``PayloadInvalid`` or ``ValueError`` for a body
        that cannot be read (kept, with a payload_invalid exception)."""

    def configured(self, section: S) -> bool:
        """Whether anything is set up for this platform (for the health page)."""
        return True

    def refund_rules(self, section: S) -> RefundRules:
        return RefundRules()

    def jobs(self) -> tuple[PlatformJob, ...]:
        return ()

    def probe(self, section: S) -> Callable[[], str] | None:
        """A cheap live call for ``returnbridge doctor`` (None: nothing to call)."""
        return None

    def doctor_counts(self, uow: Repositories) -> dict[str, Any]:
        """Figures of its own tables for ``returnbridge doctor``, read through the unit of
        work in hand (``uow.repository(MyTable)``)."""
        return {}

    def check_config(self, section: S, settings: Any) -> list[ConfigFinding]:
        """Problems with this platform's settings (``settings``: the whole configuration)."""
        return []

    def secrets(self, section: S) -> list[tuple[str, str]]:
        """(key, value) of each secret this installation chooses for the platform, checked
        for weakness by ``check-config``."""
        return []

    def missing_returns_hint(self) -> str:
        """What to check when events arrive about returns never received."""
        return f"the {self.title} webhook subscriptions"


class Registry:
    """The returns platforms plugged in, by name (iteration keeps registration order)."""

    def __init__(self, platforms: Iterable[ReturnsPlatform[Any]] = ()) -> None:
        self._by_name: dict[str, ReturnsPlatform[Any]] = {}
        for platform in platforms:
            platform_name(platform.name)
            if platform.name in self._by_name:
                raise ValueError(f"two returns platforms are named {platform.name!r}")
            self._by_name[platform.name] = platform

    def __iter__(self) -> Iterator[ReturnsPlatform[Any]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def get(self, name: str) -> ReturnsPlatform[Any] | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> ReturnsPlatform[Any]:
        found = self._by_name.get(name)
        if found is None:
            known = ", ".join(self._by_name) or "none"
            raise UnknownPlatform(f"no returns platform named {name!r} (registered: {known})")
        return found

    def extended(self, *more: ReturnsPlatform[Any]) -> Registry:
        return Registry((*self, *more))

    def sections(self) -> Mapping[str, type[BaseModel]]:
        return {p.name: p.settings_model for p in self}
