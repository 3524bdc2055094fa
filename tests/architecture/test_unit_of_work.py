"""A unit of work (issue #11): one transaction per use case, queries in repositories.

- ``flows/`` reaches the database only through ``rt.unit_of_work()`` and the repositories
  on it: no SQLAlchemy import, no session, no engine connection, no ORM row built by hand.
- The unit of work commits what a use case did when the block ends and keeps nothing of a
  use case that failed part-way (a half-recorded refund or exception would be worse than
  none).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from returnbridge.domain.exceptions import Problem
from returnbridge.flows.engine.runtime import Runtime
from tests.architecture.scan import PACKAGE

FLOWS = PACKAGE / "flows"
MODELS = PACKAGE / "store" / "models.py"
SESSION_WORDS = {"Session", "sessionmaker", "sessions", "scoped_session"}
QUERY_CALLS = {"scalars", "scalar", "execute", "query", "get_bind"}


def _orm_classes() -> set[str]:
    tree = ast.parse(MODELS.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)
            and any(isinstance(b, ast.Name) and b.id == "Base" for b in node.bases)}


def database_reach(path: Path, orm: set[str]) -> list[str]:
    """What in ``path`` reaches the database other than through a unit of work."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found.append(f"{where} imports {node.module}")
        elif isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == "sqlalchemy" for a in node.names):
            found.append(f"{where} imports sqlalchemy")
        elif isinstance(node, ast.Name) and node.id in SESSION_WORDS:
            found.append(f"{where} uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in SESSION_WORDS:
            found.append(f"{where} uses .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in QUERY_CALLS):
            found.append(f"{where} queries with .{node.func.attr}()")
        elif (isinstance(node, ast.Attribute) and node.attr in {"begin", "connect"}
              and isinstance(node.value, ast.Attribute) and node.value.attr == "engine"):
            found.append(f"{where} opens the engine directly")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in orm):
            found.append(f"{where} builds a {node.func.id} row")
    return sorted(found, key=lambda f: int(f.split(" ", 1)[0].rpartition(":")[2]))


def test_flows_reach_the_database_only_through_a_unit_of_work() -> None:
    orm = _orm_classes()
    assert {"ReturnRow", "ExceptionRow", "RefundRow"} <= orm
    found = [f for path in sorted(FLOWS.rglob("*.py")) for f in database_reach(path, orm)]
    assert found == [], "flows reaching past the unit of work:\n" + "\n".join(found)


def test_the_scan_sees_a_session_a_query_and_a_hand_built_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from sqlalchemy import select\n"
        "def f(rt):\n"
        "    with rt.sessions() as s, s.begin():\n"
        "        s.add(ReturnRow(associated_ref='x'))\n"
        "        s.scalars(select(ReturnRow)).first()\n"
        "    with rt.engine.begin() as conn:\n"
        "        pass\n", encoding="utf-8")
    found = database_reach(bad, {"ReturnRow"})
    assert [f.split(" ", 1)[1] for f in found] == [
        "imports sqlalchemy", "uses .sessions", "builds a ReturnRow row",
        "queries with .scalars()", "opens the engine directly"]


def _problem(key: str) -> Problem:
    return Problem(type="unknown_customer", message=f"no customer for {key}", dedupe_key=key)


def test_a_use_case_is_committed_whole_when_the_block_ends(runtime: Runtime) -> None:
    with runtime.unit_of_work() as uow:
        uow.exceptions.raise_problem(_problem("UOW-1"))
        uow.watermarks.set("uow-test", "first")
    with runtime.unit_of_work() as uow:
        rows, total = uow.exceptions.search(ref=None, type="unknown_customer")
        assert (total, rows[0].dedupe_key) == (1, "UOW-1")
        assert uow.watermarks.get("uow-test") == "first"


def test_a_use_case_that_fails_part_way_leaves_nothing_behind(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError, match="Khaos went away"), runtime.unit_of_work() as uow:
        uow.exceptions.raise_problem(_problem("UOW-2"))
        uow.watermarks.set("uow-test", "half")
        uow.flush()  # written inside the transaction ...
        raise RuntimeError("Khaos went away")
    with runtime.unit_of_work() as uow:  # ... and rolled back with it
        assert uow.exceptions.search(type="unknown_customer") == ([], 0)
        assert uow.watermarks.get("uow-test") is None


def test_a_unit_of_work_is_used_once(runtime: Runtime) -> None:
    uow = runtime.unit_of_work()
    with uow:
        pass
    with pytest.raises(RuntimeError, match="used once"), uow:
        pass
