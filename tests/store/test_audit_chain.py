"""The audit chain (issue 16, Medium): serialised under concurrent writers, anchored so that
truncation shows, sealed so that edit-and-recompute shows, and checked by
``returnbridge audit-log verify`` (exit 1 naming where it broke)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from returnbridge.cli import app
from returnbridge.composition import Settings
from returnbridge.flows.engine.runtime import Runtime
from returnbridge.store import audit
from returnbridge.store.audit import AuditLog
from returnbridge.store.models import AuditAnchor, AuditEntry

KEY = "0123456789abcdef0123456789abcdef-audit"


def _runtime(url: str, key: str = KEY) -> Runtime:
    return Runtime.from_settings(Settings(database={"url": url},  # type: ignore[arg-type]
                                          audit={"hmac_key": key}))  # type: ignore[arg-type]


@pytest.fixture
def rt(db_url: str) -> Iterator[Runtime]:
    runtime = _runtime(db_url)
    yield runtime
    runtime.close()


@pytest.fixture
def config_file(db_url: str, tmp_path: Path) -> Path:
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    path = tmp_path / "returnbridge.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n\n[audit]\nhmac_key_file = "{key_file}"\n',
                    encoding="utf-8")
    return path


def _append(rt: Runtime, n: int, actor: str = "ann") -> None:
    for i in range(n):
        with rt.sessions() as s, s.begin():
            AuditLog(s).record(actor=actor, action="exception.resolve", subject=f"exception:{i}",
                         details={"why": f"checked {i}"})


def _verify_cli(config: Path) -> Any:
    return CliRunner().invoke(app, ["audit-log", "verify", "--config", str(config)],
                              env={"COLUMNS": "200", "RB_CONFIG": ""})


def test_concurrent_writers_never_fork_the_chain(rt: Runtime) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            _append(rt, 6, actor=name)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with rt.sessions() as s:
        result = audit.verify(s)
        hashes = [e.prev_hash for e in s.scalars(select(AuditEntry))]
    assert result.problems == [] and result.rows == 48
    assert len(set(hashes)) == 48  # no two rows chained onto the same predecessor


def test_intact_log_verifies_from_the_command_line(rt: Runtime, config_file: Path) -> None:
    _append(rt, 3)
    result = _verify_cli(config_file)
    assert result.exit_code == 0, result.output
    assert "audit log intact: 3 row(s)" in result.output and "sealed" in result.output


def test_truncation_is_detected(rt: Runtime, config_file: Path) -> None:
    _append(rt, 5)
    with rt.sessions() as s, s.begin():
        last = s.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
        s.execute(delete(AuditEntry).where(AuditEntry.id >= (last or 0) - 1))
    result = _verify_cli(config_file)
    assert result.exit_code == 1
    assert "counts 5 rows but 3 are there (rows were removed)" in result.output


def test_edit_and_recompute_is_detected_with_the_key(rt: Runtime, config_file: Path) -> None:
    _append(rt, 4)
    # An attacker with database access edits row 2 and recomputes every hash after it and
    # the anchor, including a plain checksum, but does not hold [audit].hmac_key.
    with rt.sessions() as s, s.begin():
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        rows[1].actor = "mallory"
        prev = rows[0].hash
        for row in rows[1:]:
            row.prev_hash = prev
            row.hash = audit._digest(prev, row.at.isoformat(), row.actor, row.action,
                                     row.subject, row.details)
            prev = row.hash
        s.flush()
        s.execute(update(AuditAnchor).values(
            head_hash=prev, mac=audit.anchor_mac(4, rows[-1].id, prev, "")))
    with rt.sessions() as s:
        assert audit.verify_chain(s) == []  # the bare chain is fooled
    result = _verify_cli(config_file)
    assert result.exit_code == 1
    assert "anchor is not sealed with [audit].hmac_key" in result.output

    with rt.sessions() as s, s.begin():  # the same with a forged keyed-looking seal
        s.execute(update(AuditAnchor).values(mac="hmac-sha256:" + "0" * 64))
    forged = _verify_cli(config_file)
    assert forged.exit_code == 1 and "seal does not match" in forged.output
    _append(rt, 1)  # a legitimate append afterwards does not launder the forgery
    later = _verify_cli(config_file)
    assert later.exit_code == 1 and "did not match the log when row" in later.output


def test_edit_without_recompute_names_the_row(rt: Runtime, config_file: Path) -> None:
    _append(rt, 3)
    with rt.sessions() as s, s.begin():
        second = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()[1]
        s.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :i"),
                  {"i": second.id})
    result = _verify_cli(config_file)
    assert result.exit_code == 1
    assert f"row {second.id}: its content does not match its hash" in result.output


def test_anchor_written_before_the_key_is_sealed_by_seal(db_url: str,
                                                        config_file: Path) -> None:
    unkeyed = _runtime(db_url, key="")
    _append(unkeyed, 2)
    unkeyed.close()
    before = _verify_cli(config_file)
    assert before.exit_code == 1 and "not sealed with [audit].hmac_key" in before.output
    sealed = CliRunner().invoke(app, ["audit-log", "seal", "--config", str(config_file)],
                                env={"COLUMNS": "200", "RB_CONFIG": ""})
    assert sealed.exit_code == 0, sealed.output
    after = _verify_cli(config_file)
    assert after.exit_code == 0 and "not sealed" not in after.output
