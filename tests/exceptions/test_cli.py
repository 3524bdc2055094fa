import csv
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from returnbridge.cli import app
from returnbridge.cli import audit as cli_audit
from returnbridge.cli import exceptions as cli_exceptions
from returnbridge.composition import Settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import audit
from returnbridge.store.models import AuditEntry
from tests.exceptions._seed import add_item, add_problem, add_return

ENV = {"COLUMNS": "200", "USER": "night-operator", "RB_CONFIG": ""}


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = Console(width=200)  # writes to whatever sys.stdout is when it prints
    monkeypatch.setattr(cli_exceptions, "out", wide)
    monkeypatch.setattr(cli_audit, "out", wide)


@pytest.fixture
def config_file(db_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "returnbridge.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        '[[mapping.reasons]]\nreason = "Too small"\nkhaos_reason_id = "6"\n'
        'processing = "restock"\n',
        encoding="utf-8")
    return path


@pytest.fixture
def rt(db_url: str) -> Any:
    runtime = Runtime.from_settings(Settings(database={"url": db_url}))  # type: ignore[arg-type]
    yield runtime
    runtime.close()


def run(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--config", str(config)], env=ENV)


def seed(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s, s.begin():
        held = add_return(s, "LR-8", [("TEE-BLK-M", "Too small", "", "restock"),
                                      ("MYSTERY-9", "Changed my mind", "", "restock")],
                          exchanges=("JEAN-IND-34",))
        add_item(s, "1", "TEE-BLK-M")
        add_item(s, "2", "JEAN-IND-34", web=False)
        return {
            "sku": add_problem(s, "sku_mismatch", "LR-8:sku", ret=held,
                               message="SKU MYSTERY-9 is not in the Khaos catalogue.",
                               candidates='["MYSTERY-09"]').id,
            "tax": add_problem(s, "tax_drift", "LR-8:tax", ret=held).id,
        }


def test_list_show_resolve_and_ignore_from_the_command_line(config_file: Path,
                                                            rt: Runtime) -> None:
    ids = seed(rt)
    table = run(config_file, "exceptions", "list")
    assert table.exit_code == 0, table.output
    assert "sku_mismatch" in table.output and "LR-8" in table.output
    assert "2 open exception(s)" in table.output

    listed = json.loads(run(config_file, "exceptions", "list", "--owner", "finance",
                            "--json").output)
    assert [e["type"] for e in listed["exceptions"]] == ["tax_drift"]

    shown = run(config_file, "exceptions", "show", str(ids["sku"]))
    assert shown.exit_code == 0, shown.output
    assert "MYSTERY-09" in shown.output and "docs/runbooks/sku_mismatch.md" in shown.output

    resolved = run(config_file, "exceptions", "resolve", str(ids["tax"]), "--why",
                   "credit note amended")
    assert resolved.exit_code == 0 and "resolved" in resolved.output
    ignored = run(config_file, "exceptions", "ignore", str(ids["sku"]), "--by", "erin",
                  "--why", "one-off", "--json")
    assert ignored.exit_code == 0 and json.loads(ignored.output)["outcome"] == "ignored"
    assert "No open exceptions." in run(config_file, "exceptions", "list").output

    with rt.sessions() as s:
        entries = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert audit.verify_chain(s) == []
    assert [(e.actor, e.action, e.details["why"]) for e in entries] == [
        ("night-operator", "exception.resolve", "credit note amended"),
        ("erin", "exception.ignore", "one-off")]


def test_cli_errors_are_clear(config_file: Path, rt: Runtime) -> None:
    ids = seed(rt)
    missing = run(config_file, "exceptions", "show", "999")
    assert missing.exit_code == 1 and "no exception with id 999" in missing.output
    no_why = run(config_file, "exceptions", "resolve", str(ids["tax"]))
    assert no_why.exit_code == 2 and "--why" in no_why.output
    bad_status = run(config_file, "exceptions", "list", "--status", "closed")
    assert bad_status.exit_code == 1 and "use one of" in bad_status.output
    run(config_file, "exceptions", "resolve", str(ids["tax"]), "--why", "done")
    retry = run(config_file, "exceptions", "retry", str(ids["tax"]))
    assert retry.exit_code == 1 and "only open exceptions" in retry.output


def test_audit_command_text_json_and_csv(config_file: Path, rt: Runtime,
                                         tmp_path: Path) -> None:
    seed(rt)
    text = run(config_file, "audit")
    assert text.exit_code == 0, text.output
    assert "unmapped" in text.output and "Changed my mind" in text.output
    assert "JEAN-IND-34" in text.output and "MYSTERY-9" in text.output
    assert "1 of 2 reason combination(s) unmapped" in text.output

    data = json.loads(run(config_file, "audit", "--json").output)
    assert {(r["reason"], r["status"]) for r in data["reasons"]} == {
        ("Too small", "mapped"), ("Changed my mind", "unmapped")}
    assert [x["sku"] for x in data["exchange_skus"]] == ["JEAN-IND-34"]
    assert [u["sku"] for u in data["unknown_skus"]] == ["MYSTERY-9"]

    out_file = tmp_path / "coverage.csv"
    written = run(config_file, "audit", "--csv", str(out_file), "--strict")
    assert written.exit_code == 1  # --strict: gaps found
    rows = list(csv.DictReader(out_file.open(encoding="utf-8")))
    assert {r["section"] for r in rows} == {"reason", "exchange_sku", "unknown_sku"}
