"""``returnbridge doctor`` writes one support bundle with no configured secret in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from returnbridge.cli import app
from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store.exceptions_repo import ExceptionsRepository
from returnbridge.store.models import InboundEvent, JobRun, utcnow
from tests.conftest import make_settings

SECRETS = {
    "loop_key": "loop-api-key-7f3a9c1e55",
    "webhook": "loop-webhook-secret-b81d",
    "khaos": "khaos-channel-pw-44e0",
    "shopify": "shpat_0123456789abcdef",
    "zigzag": "zigzag-pw-9911aa",
    "api": "operator-token-5c5c5c5c",
    "slack": "T0AAA/B0BBB/slackhooksecret42",
    "smtp": "smtp-pw-from-env-77",
    "db": "db-password-31337",
}


def test_the_bundle_has_everything_but_the_secrets(db_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", SECRETS["smtp"])
    url = db_url
    if url.startswith("postgresql"):  # trust auth ignores the password: it can be anything
        url = make_url(db_url).set(password=SECRETS["db"]).render_as_string(
            hide_password=False)
    settings = make_settings(
        url,
        api={"tokens": [SECRETS["api"]]},
        loop={"api_key": SECRETS["loop_key"], "webhook_secrets": [SECRETS["webhook"]],
              "base_url": "http://127.0.0.1:9/api/v1"},
        khaos={"channel_password": SECRETS["khaos"]},
        shopify={"admin_token": SECRETS["shopify"], "base_url": "http://127.0.0.1:9"},
        zigzag={"password": SECRETS["zigzag"], "base_url": "http://127.0.0.1:9"},
        alerts={"routes": [
            {"owner": "cx", "urls": [f"slack://{SECRETS['slack']}"]},
            {"owner": "ops", "urls": ["mailtos://rb:${SMTP_PASSWORD}@smtp.example.com"]},
        ]},
    )
    rt = Runtime.from_settings(settings)
    try:
        with rt.sessions() as session, session.begin():
            # An error message that (wrongly) quoted a secret must not leak through the bundle.
            session.add(InboundEvent(source="loop", topic="return", dedupe_key="k1", body=b"{}",
                                     body_sha256="0" * 64, status="failed",
                                     error=f"401 with key {SECRETS['loop_key']}"))
            session.add(JobRun(name="khaos-confirm", last_success_at=utcnow(),
                               last_error="", last_summary="0 confirmed"))
            ExceptionsRepository(session).raise_problem(Problem(
                "connection_failing", "Calls to the Loop API failed", "system:loop"))
    finally:
        rt.close()
    monkeypatch.delenv("RB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./returnbridge.toml here: the environment is all
    out = tmp_path / "bundle.json"
    runner = CliRunner()
    env = _env(settings)
    result = runner.invoke(app, ["doctor", "--output", str(out)], env=env)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for name, secret in SECRETS.items():
        if name == "db" and not db_url.startswith("postgresql"):
            continue
        assert secret not in text, f"{name} secret leaked into the bundle"
    bundle = json.loads(text)
    assert bundle["versions"]["returnbridge"] and bundle["versions"]["sqlalchemy"]
    assert bundle["schema"]["up_to_date"] is True
    assert bundle["counts"]["open_exceptions_by_type"] == {"connection_failing": 1}
    # a platform's own table, counted through the unit of work (none written back yet)
    assert bundle["counts"]["loop_notes_by_status"] == {}
    assert bundle["recent"]["failed_events"][0]["error"] == "401 with key [redacted]"
    jobs = {j["job"]: j for j in bundle["schedules"]}
    assert jobs["khaos-confirm"]["last_summary"] == "0 confirmed"
    assert {c["system"]: c["result"] for c in bundle["connection_checks"]} == {
        "loop": "failed", "zigzag": "failed", "shopify": "failed"}  # nothing listens on :9
    assert bundle["configuration"]["loop"]["base_url"] == "http://127.0.0.1:9/api/v1"


def _env(settings: object) -> dict[str, str]:
    """The settings as RB_ environment variables (JSON per section)."""
    from returnbridge.composition import Settings

    assert isinstance(settings, Settings)
    env = {}
    for section in ("database", "api", "loop", "khaos", "shopify", "zigzag", "alerts",
                    "mapping"):
        data = getattr(settings, section).model_dump(mode="python")
        env[f"RB_{section.upper()}"] = json.dumps(_plain(data))
    return env


def _plain(value: object) -> object:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float)):
        return value.value  # enums
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
