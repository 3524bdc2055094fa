import logging
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from returnbridge.checks import Level, check_settings
from returnbridge.cli import app
from returnbridge.composition import Settings, load_settings
from returnbridge.config import ConfigError
from returnbridge.config_docs import config_template, configuration_markdown
from returnbridge.logs import REDACTED, configure

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
runner = CliRunner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rb.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_fixed_names() -> None:
    s = load_settings(None)
    assert s.database.url == "sqlite:///returnbridge.db"
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)
    assert s.loop.associated_ref_prefix == "LR-" and s.loop.goods_in_owner == "khaos"
    assert s.zigzag.associated_ref_prefix == "ZZ-"
    assert s.zigzag.goods_in_owner == "returns_platform"
    assert (s.khaos.format, s.khaos.poll_frequency_minutes, s.khaos.page_size) == ("JSON", 15, 100)
    assert (s.khaos.unit_price, s.khaos.sku_mapping) == ("Gross", "StockCode")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[loop]\napi_key = "from-file"\n[khaos]\npage_size = 50\n')
    monkeypatch.setenv("RB_LOOP__API_KEY", "from-env")
    monkeypatch.setenv("RB_LOOP__WEBHOOK_SECRETS", '["a","b"]')
    s = load_settings(path)
    assert s.loop.api_key.get_secret_value() == "from-env"
    assert [x.get_secret_value() for x in s.loop.webhook_secrets] == ["a", "b"]
    assert s.khaos.page_size == 50


def test_rb_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RB_CONFIG", str(write(tmp_path, "[server]\nport = 9001\n")))
    assert load_settings(None).server.port == 9001


def test_every_problem_is_reported_in_plain_words_without_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, """
[khaos]
page_size = 0
format = "CSV"
channel_pasword = "hunter2"
[loop]
goods_in_owner = "somebody"
[[mapping.reasons]]
source = "shopify"
processing = "restock"
""")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = "\n".join(info.value.problems)
    assert "[khaos].page_size: input should be greater than or equal to 1 (got 0)" in text
    assert "[khaos].format" in text and "'CSV'" in text
    assert "[khaos].channel_pasword is not a known setting" in text
    assert "[loop].goods_in_owner" in text
    assert "[mapping].reasons[0].source" in text
    assert "[mapping].reasons[0].khaos_reason_id is required" in text
    assert "hunter2" not in str(info.value)


def test_missing_file_and_bad_toml_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="could not be read"):
        load_settings(write(tmp_path, "[loop\n"))


def test_init_writes_a_loadable_commented_file_with_every_key(tmp_path: Path) -> None:
    target = tmp_path / "returnbridge.toml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    parsed = tomllib.loads(text)
    for section in ("database", "server", "api", "loop", "zigzag", "khaos", "log"):
        assert section in parsed
    assert "# Webhook secrets from Loop Admin" in text
    assert load_settings(target).khaos.page_size == 100
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_configuration_docs_are_generated_from_the_model() -> None:
    assert DOCS.read_text() == configuration_markdown(), (
        "docs/configuration.md is out of date: run 'make docs'")
    assert config_template()  # the template renders every field type


def test_check_config_flags_dangerous_mappings_and_missing_secrets() -> None:
    s = load_settings(None, mapping={"reasons": [
        {"disposition": "restock", "khaos_reason_id": "7", "processing": "write_off"},
        {"disposition": "recycle", "khaos_reason_id": "6", "processing": "restock"},
    ]})
    findings = check_settings(s)
    errors = {f.key: f.message for f in findings if f.level is Level.ERROR}
    assert "[loop].webhook_secrets" in errors
    assert "[khaos].channel_username/channel_password" in errors
    assert "would not go back to stock" in errors["[[mapping.reasons]] #1"]
    assert "booked back into sellable stock" in errors["[[mapping.reasons]] #2"]


def test_check_config_command_exits_nonzero_and_explains(tmp_path: Path) -> None:
    path = write(tmp_path, f'[database]\nurl = "sqlite:///{tmp_path}/x.db"\n')
    result = runner.invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 1
    assert "does not exist yet" in result.output
    assert "returnbridge migrate" in result.output


def test_secrets_are_redacted_in_every_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(None, loop={"api_key": "sk_live_abcdef", "webhook_secrets": ["whsec_123"]},
                      database={"url": "postgresql+psycopg://rb:dbpass99@db/rb"})
    assert set(s.secret_values()) >= {"sk_live_abcdef", "whsec_123", "dbpass99"}
    configure("INFO", "json", s.secret_values())
    import structlog

    structlog.get_logger("t").info("calling loop", url="https://x?key=sk_live_abcdef",
                                   password="anything", detail={"secret": "zzz"})
    logging.getLogger("dbos").warning("connect failed for postgresql://rb:dbpass99@db")
    captured = capsys.readouterr().err
    assert "sk_live_abcdef" not in captured and "dbpass99" not in captured
    assert "anything" not in captured and "zzz" not in captured
    assert captured.count(REDACTED) >= 4


def test_check_config_explains_zigzag_refunds_without_shopify_and_addresses() -> None:
    found = {(f.level, f.key) for f in check_settings(Settings(zigzag={"webhook_secret": "x"}))}
    assert (Level.ERROR, "[zigzag].refund_owner") in found
    assert (Level.WARNING, "[policy].fallback_address_*") in found
    ok = Settings(zigzag={"webhook_secret": "x"},
                  shopify={"shop_domain": "s.myshopify.com", "admin_token": "t"},
                  policy={"fallback_address_line1": "1 Hub", "fallback_address_postcode": "NG1"})
    keys = {f.key for f in check_settings(ok)}
    assert "[zigzag].refund_owner" not in keys and "[policy].fallback_address_*" not in keys


def test_check_config_refuses_defaults_that_would_restock_damaged_goods() -> None:
    s = Settings(mapping={"defaults": [{"disposition": "write_off", "khaos_reason_id": "6",
                                        "processing": "restock"}]})
    assert any(f.level is Level.ERROR and f.key == "[[mapping.defaults]] #1"
               for f in check_settings(s))
