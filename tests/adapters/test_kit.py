"""The kit's place in the layers, its one PayloadInvalid and the lenient timestamp reader."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

import returnbridge
from returnbridge.adapters.errors import PayloadInvalid
from returnbridge.adapters.values import timestamp, timestamp_or_none

SRC = Path(returnbridge.__file__).parent
ABOVE = ("flows", "web", "store", "sources", "payments", "erp", "cli", "sandbox")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_kit_imports_nothing_from_the_layers_above_it() -> None:
    modules = sorted((SRC / "adapters").glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        for name in imported(module):
            if name.startswith("returnbridge."):
                top = name.split(".")[1]
                assert top in ("adapters", "domain", "config"), f"{module.name} imports {name}"
                assert not top.startswith(ABOVE)


def test_payload_invalid_is_defined_once() -> None:
    sources = {path: path.read_text(encoding="utf-8") for path in SRC.rglob("*.py")}
    defining = [path.relative_to(SRC).as_posix() for path, text in sources.items()
                if "PayloadInvalid" in text
                and any(isinstance(node, ast.ClassDef) and node.name == "PayloadInvalid"
                        for node in ast.walk(ast.parse(text)))]
    assert defining == ["adapters/errors.py"]


def test_khaos_pushes_raise_the_same_payload_invalid() -> None:
    from returnbridge.erp.khaos.pushes import parse_stock_upload

    with pytest.raises(PayloadInvalid, match="empty"):
        parse_stock_upload(b"", "")


def test_timestamp_or_none_reads_what_timestamp_reads_and_nothing_else() -> None:
    moment = datetime(2026, 4, 1, 8, 15, tzinfo=UTC)
    assert timestamp_or_none("2026-04-01T08:15:00Z") == moment
    assert timestamp_or_none("2026-04-01T09:15:00+01:00") == moment
    assert timestamp_or_none("2026-04-01T08:15:00Z") == timestamp("2026-04-01T08:15:00Z")
    for unreadable in ("yesterday", 12, [], "", None):
        assert timestamp_or_none(unreadable) is None
