"""``returnbridge check-config``: every problem with a configuration, in plain words."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from returnbridge.config import DefaultReasonEntry, ReasonMappingEntry, Settings
from returnbridge.domain.reasons import Processing
from returnbridge.store.db import make_engine, normalise_url, sqlite_path
from returnbridge.store.migrate import SchemaNotCurrent, require_current


class Level(StrEnum):
    ERROR = "error"  # returnbridge cannot do its job until this is fixed
    WARNING = "warning"  # it runs, but something will go wrong or be refused
    NOTE = "note"


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str
    message: str


_RESTOCKING = {"restock"}
_NOT_RESTOCKING = {"write_off", "recycle", "donate", "missing", "resale_hold"}


def check_settings(s: Settings) -> list[Finding]:
    f: list[Finding] = []

    def add(level: Level, key: str, message: str) -> None:
        f.append(Finding(level, key, message))

    if not s.khaos.channel_username or not s.khaos.channel_password.get_secret_value():
        add(Level.ERROR, "[khaos].channel_username/channel_password",
            "the Khaos channel credentials are not set, so Khaos cannot fetch the "
            "configuration file or any return. Use the user name and password set on the "
            "3rd Party API channel in Khaos.")
    if not s.api.tokens:
        add(Level.WARNING, "[api].tokens",
            "no API token is configured, so /api/v1 refuses every request (including "
            "'returns show' over HTTP).")
    if not s.server.public_base_url.startswith("https://"):
        add(Level.WARNING, "[server].public_base_url",
            f"{s.server.public_base_url} is not https; Khaos sends the channel password with "
            "every request, so use https anywhere but a test machine.")
    if not s.mapping.reasons and not s.mapping.defaults:
        add(Level.ERROR, "[[mapping.reasons]]",
            "there is no reason mapping, so every return will be held with "
            "unmapped_return_reason. Add [[mapping.reasons]] entries (see "
            "docs/configuration.md).")
    entries: list[tuple[str, ReasonMappingEntry | DefaultReasonEntry]] = [
        (f"[[mapping.reasons]] #{i + 1}", e) for i, e in enumerate(s.mapping.reasons)]
    entries += [(f"[[mapping.defaults]] #{i + 1}", e) for i, e in enumerate(s.mapping.defaults)]
    for key, entry in entries:
        if entry.disposition in _RESTOCKING and entry.processing is not Processing.RESTOCK:
            add(Level.ERROR, key,
                f"disposition 'restock' is mapped to Khaos reason {entry.khaos_reason_id}, "
                f"which you marked as '{entry.processing.value}': resellable goods would not "
                "go back to stock.")
        if entry.disposition in _NOT_RESTOCKING and entry.processing is Processing.RESTOCK:
            add(Level.ERROR, key,
                f"disposition '{entry.disposition}' is mapped to Khaos reason "
                f"{entry.khaos_reason_id}, which restocks: goods that are not resellable "
                "would be booked back into sellable stock.")
    if not s.policy.keep_item_reason_id:
        add(Level.NOTE, "[policy].keep_item_reason_id",
            "no keep-item reason: keep-item lines use [[mapping.reasons]], and a return whose "
            "kept item would map to a restock reason is held (never booked into stock).")
    if bool(s.policy.shipping_refund_sku or s.policy.handling_fee_sku) and (
            not s.policy.non_stock_reason_id):
        add(Level.ERROR, "[policy].non_stock_reason_id",
            "shipping refund / handling fee SKUs are set but non_stock_reason_id is empty, so "
            "those lines cannot be sent; set the Khaos reason to use on them.")
    shopify_on = bool(s.shopify.shop_domain or s.shopify.base_url)
    for platform in s.platforms:
        section = platform.common(s)
        if (platform.configured(platform.settings(s)) and section.refund_owner == "returnbridge"
                and not shopify_on):
            add(Level.ERROR, f"[{platform.name}].refund_owner",
                f"{platform.name} refunds are owned by returnbridge but [shopify] is not "
                "configured, so credit-confirmed returns will wait for a refund that is never "
                "made. Set [shopify].shop_domain and admin_token, or refund_owner = "
                "\"platform\".")
    if shopify_on and not s.shopify.admin_token.get_secret_value():
        add(Level.ERROR, "[shopify].admin_token", "no Shopify Admin API token: refunds fail.")
    f.extend(check_secrets(s))
    for platform in s.platforms:
        for level, key, message in platform.check_config(platform.settings(s), s):
            add(Level(level), key, message)
    return f


_COMMON = frozenset({"password", "changeme", "change-me", "secret", "letmein", "admin",
                     "returnbridge", "khaos", "test", "default", "12345678", "123456789",
                     "1234567890", "qwerty", "token", "example"})
MIN_SECRET_LENGTH = 16


def weakness(value: str) -> str:
    """Why a secret we choose ourselves is weak, or "" when it is not."""
    low = value.lower()
    if low in _COMMON or any(low == w + d for w in _COMMON for d in ("1", "123", "!")):
        return "is a well-known password"
    if len(value) < MIN_SECRET_LENGTH:
        return (f"is only {len(value)} characters long (use at least {MIN_SECRET_LENGTH} "
                "random characters, e.g. 'openssl rand -hex 32')")
    if len(set(value)) < 6:
        return "repeats too few different characters"
    return ""


def check_secrets(s: Settings) -> list[Finding]:
    """Missing, empty or weak secrets (the ones this installation chooses itself)."""
    f: list[Finding] = []

    def weak(key: str, value: str) -> None:
        why = weakness(value) if value else ""
        if why:
            f.append(Finding(Level.WARNING, key, f"the secret {why}; anyone who guesses it "
                             "can call this service as that party."))

    for i, token in enumerate(s.api.tokens):
        value = token.get_secret_value()
        if not value:
            f.append(Finding(Level.ERROR, f"[api].tokens[{i}]", "an API token is empty."))
        weak(f"[api].tokens[{i}]", value)
    weak("[api].metrics_token", s.api.metrics_token.get_secret_value())
    if not s.api.metrics_token.get_secret_value() and s.api.metrics_public:
        f.append(Finding(Level.WARNING, "[api].metrics_public",
                         "/metrics is open to anyone who can reach the service; set "
                         "[api].metrics_token unless only Prometheus can reach it."))
    for platform in s.platforms:
        for key, value in platform.secrets(platform.settings(s)):
            weak(key, value)
    weak("[khaos].channel_password", s.khaos.channel_password.get_secret_value())
    key = s.audit.hmac_key.get_secret_value()
    if not key:
        f.append(Finding(Level.WARNING, "[audit].hmac_key",
                         "no audit key: someone with write access to the database could edit "
                         "the audit log and recompute its hashes unnoticed. Set hmac_key (or "
                         "hmac_key_file) to 32+ random characters."))
    weak("[audit].hmac_key", key)
    return f


def check_file_permissions(path: Path | None) -> list[Finding]:
    """The configuration file holds secrets: warn when others may read it."""
    if path is None or not path.exists() or os.name != "posix":
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [Finding(Level.WARNING, str(path),
                        f"the configuration file is readable by others (mode {mode:o}); run "
                        f"'chmod 600 {path}' or keep the secrets in *_file keys.")]
    return []


def check_database(s: Settings) -> list[Finding]:
    path = sqlite_path(normalise_url(s.database.url))
    if path is not None and not path.exists():
        return [Finding(Level.ERROR, "[database].url",
                        f"the SQLite database {path} does not exist yet. Run "
                        "'returnbridge migrate' to create it.")]
    try:
        engine = make_engine(s.database.url)
        try:
            require_current(engine)
        finally:
            engine.dispose()
    except SchemaNotCurrent as exc:
        return [Finding(Level.ERROR, "[database].url", str(exc))]
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else str(exc)
        return [Finding(Level.ERROR, "[database].url",
                        f"the database cannot be reached: {reason.strip().splitlines()[0]}")]
    return []


def check_alerts(s: Settings) -> list[Finding]:
    """Alert routes (docs/alerts.md): URLs that cannot work, and variables that are unset."""
    import os
    import re

    f: list[Finding] = []
    for i, route in enumerate(s.alerts.routes):
        key = f"[[alerts.routes]] {s.alerts.route_name(i)}"
        raw = [u.get_secret_value() for u in route.urls]
        missing = sorted({m for u in raw for m in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", u)
                          if not os.environ.get(m)})
        if missing:
            f.append(Finding(Level.ERROR, key, "the environment variable(s) "
                             f"{', '.join(missing)} used in its URLs are not set in this "
                             "environment; set them where the worker runs."))
        if route.urls_env and not os.environ.get(route.urls_env):
            f.append(Finding(Level.WARNING, key, f"urls_env names {route.urls_env}, which is "
                             "not set in this environment."))
        urls = route.resolved_urls()
        if not urls:
            f.append(Finding(Level.ERROR, key, "the route has no URLs, so its alerts wait in "
                             "the outbox for ever; add urls or urls_env."))
        bad = [u.split("://", 1)[0] if "://" in u else "?" for u in urls
               if not missing and not _apprise_accepts(u)]
        if bad:
            f.append(Finding(Level.ERROR, key, "Apprise does not accept URL(s) with scheme "
                             f"{', '.join(repr(b) for b in bad)}; see docs/alerts.md."))
    if s.alerts.routes and not any(r.owner in ("ops", "*") for r in s.alerts.routes):
        f.append(Finding(Level.NOTE, "[alerts].routes", "no route for ops: failing alert "
                         "channels and connections are only visible in the exception queue."))
    return f


def _apprise_accepts(url: str) -> bool:
    import apprise

    return bool(apprise.Apprise().add(url))
