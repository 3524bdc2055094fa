"""Regression tests for the Low and configuration findings of the security review
(issue 16): redacted tracebacks, CSV formula injection, Rich markup and escape codes in
'returns show', owner-only files, ZigZag Basic without a password, weak or missing secrets in
check-config, and secrets read from files."""

from __future__ import annotations

import base64
import csv
import logging
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from returnbridge import logs
from returnbridge.cli import app
from returnbridge.composition import Settings, load_settings
from returnbridge.config import ConfigError
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.flows.exceptions.coverage import csv_cell
from returnbridge.store.db import make_engine
from returnbridge.store.migrate import upgrade
from tests.conftest import LiveApp, start_live_app
from tests.exceptions._seed import add_return

ENV = {"COLUMNS": "200", "RB_CONFIG": ""}
STRONG = "9f1c2e7a4b6d8e0f1a3c5e7b9d2f4a6c"


def _run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- logs

def test_tracebacks_are_redacted_in_structlog_and_stdlib_logs(
        capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cret-in-a-traceback-0042"
    logs.configure("INFO", "json", [secret])
    try:
        try:
            raise RuntimeError(f"login failed with password {secret}")
        except RuntimeError:
            structlog.get_logger("t").exception("store failed")
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    assert "RuntimeError" in err and "Traceback" in err  # the traceback is there ...
    assert secret not in err and err.count(logs.REDACTED) >= 2  # ... without the secret


# ---------------------------------------------------------------- CSV and terminal output

@pytest.fixture
def config_file(db_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "returnbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(Settings(database={"url": db_url}))  # type: ignore[arg-type]
    yield runtime
    runtime.close()


def test_audit_csv_neutralises_formula_cells(config_file: Path, rt: Runtime,
                                             tmp_path: Path) -> None:
    with rt.sessions() as s, s.begin():
        add_return(s, "LR-9", [("TEE-1", '=HYPERLINK("http://evil.example","x")', "+SUM(1)",
                                "restock"),
                               ("TEE-2", "@cmd", "-1", "restock"),
                               ("TEE-3", "\tTab", "\rCR", "restock")])
    out_file = tmp_path / "coverage.csv"
    result = _run("audit", "--csv", str(out_file), "--config", str(config_file))
    assert result.exit_code == 0, result.output
    with out_file.open(encoding="utf-8", newline="") as handle:
        cells = [c for row in csv.reader(handle) for c in row]
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in cells
    assert {"'+SUM(1)", "'-1", "'@cmd", "'\tTab"} <= set(cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert csv_cell("\rCR") == "'\rCR" and csv_cell(-1) == -1


def test_returns_show_prints_markup_and_escape_codes_harmlessly(
        runtime_factory: Callable[..., Runtime], tmp_path: Path) -> None:
    from returnbridge.sandbox.loop.samples import Scenario, return_payload
    from returnbridge.sandbox.loop.sender import LoopSender
    from tests.conftest import LOOP_SECRET

    live = start_live_app(runtime_factory)
    try:
        payload = return_payload(10, Scenario("refund", ("TEE-BLK-M",)))
        payload["line_items"][0]["sku"] = "TEE-[bold red]X[/]-[/oops]"
        payload["line_items"][0]["return_reason"] = "\x1b[31mred\x1b[0m\x07"
        sender = LoopSender(f"{live.base_url}/webhooks/loop", LOOP_SECRET)
        assert sender.send(payload).status_code == 200
        sender.close()
        config = tmp_path / "rb.toml"
        config.write_text(f'[database]\nurl = "{live.rt.settings.database.url}"\n')
        result = _run("returns", "show", "LR-10", "--config", str(config))
    finally:
        live.stop()
    assert result.exit_code == 0, result.output
    assert "TEE-[bold red]X[/]-[/oops]" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


# ---------------------------------------------------------------- owner-only files

def test_init_writes_the_config_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "returnbridge.toml"
    assert _run("init", str(path)).exit_code == 0
    assert _mode(path) == 0o600
    path.chmod(0o644)
    assert _run("init", str(path), "--force").exit_code == 0
    assert _mode(path) == 0o600


def test_sqlite_databases_are_created_owner_only(tmp_path: Path) -> None:
    from returnbridge.flows.engine.durable import system_database_url

    db = tmp_path / "data" / "returnbridge.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    rt = Runtime.from_settings(Settings(database={"url": f"sqlite:///{db}"}))  # type: ignore[arg-type]
    system = Path(system_database_url(rt).removeprefix("sqlite:///"))
    rt.close()
    created = [p for p in db.parent.iterdir()]
    assert db in created and system in created
    assert {p.name: _mode(p) for p in created} == {p.name: 0o600 for p in created}


# ---------------------------------------------------------------- ZigZag Basic auth

def test_zigzag_basic_username_without_password_refuses_empty_password(
        runtime_factory: Callable[..., Runtime]) -> None:
    live: LiveApp = start_live_app(runtime_factory, zigzag={"webhook_username": "zigzag"})
    try:
        basic = "Basic " + base64.b64encode(b"zigzag:").decode()
        with live.client() as c:
            r = c.post("/webhooks/zigzag", content=b'{"eventId":"1"}',
                       headers={"Authorization": basic})
    finally:
        live.stop()
    assert r.status_code == 401 and "webhook_password is empty" in r.json()["error"]


# ---------------------------------------------------------------- check-config

def test_check_config_reports_missing_empty_and_weak_secrets(tmp_path: Path,
                                                             db_url: str) -> None:
    path = tmp_path / "rb.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n[api]\ntokens = ["changeme", "{STRONG}"]\n'
        f'[loop]\nwebhook_secrets = ["{STRONG}"]\n'
        '[khaos]\nchannel_username = "khaos"\nchannel_password = "khaospw8"\n'
        '[zigzag]\nwebhook_username = "zz"\n', encoding="utf-8")
    path.chmod(0o644)
    result = _run("check-config", "--config", str(path))
    out = " ".join(result.output.split())
    assert "[api].tokens[0]: the secret is a well-known password" in out
    assert "[api].tokens[1]" not in out
    assert "[khaos].channel_password: the secret is only 8 characters long" in out
    assert "[zigzag].webhook_password: webhook_username is set but the password is empty" in out
    assert "[audit].hmac_key: no audit key" in out
    assert "readable by others (mode 644)" in out
    assert result.exit_code == 1  # the ZigZag password is an error


# ---------------------------------------------------------------- secrets from files

def test_secrets_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "loop").write_text("first-secret\n# a comment\n\nsecond-secret\n")
    (tmp_path / "key").write_text("loop-api-key\n")
    (tmp_path / "tokens").write_text("token-from-env-file\n")
    (tmp_path / "dburl").write_text("sqlite:///from-file.db\n")
    path = tmp_path / "rb.toml"
    path.write_text(f'[database]\nurl_file = "{tmp_path / "dburl"}"\n'
                    f'[loop]\nwebhook_secrets_file = "{tmp_path / "loop"}"\n'
                    f'api_key_file = "{tmp_path / "key"}"\n', encoding="utf-8")
    monkeypatch.setenv("RB_API__TOKENS_FILE", str(tmp_path / "tokens"))
    s = load_settings(path)
    assert [x.get_secret_value() for x in s.loop.webhook_secrets] == ["first-secret",
                                                                     "second-secret"]
    assert s.loop.api_key.get_secret_value() == "loop-api-key"
    assert [x.get_secret_value() for x in s.api.tokens] == ["token-from-env-file"]
    assert s.database.url == "sqlite:///from-file.db"
    assert "loop-api-key" in s.secret_values()


def test_secret_file_problems_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "rb.toml"
    path.write_text(f'[loop]\napi_key = "x"\napi_key_file = "{tmp_path / "k"}"\n'
                    f'[khaos]\nchannel_password_file = "{tmp_path / "missing"}"\n'
                    '[policy]\ntolerance_file = "/etc/passwd"\n', encoding="utf-8")
    (tmp_path / "k").write_text("y")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = " ".join(caught.value.problems)
    assert "api_key and api_key_file are both set" in text
    assert "channel_password_file" in text and "cannot be read" in text
    assert "[policy].tolerance_file is not a known setting" in text
    assert sys.platform != "win32"
