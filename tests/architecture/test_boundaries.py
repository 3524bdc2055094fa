"""The architecture rules that keep the house extensible (issue #11), checked on the source.

- No import cycle anywhere in ``src/returnbridge``, counting imports inside functions and
  ``TYPE_CHECKING`` blocks: a cycle hidden in a function is still a cycle.
- The core (``domain``, ``flows``, ``web``, ``store``) never names a returns platform, as an
  identifier or in a string: it finds platforms through the registry. Schema migrations are
  history and keep the table names they created.
(The layer and independence contracts are import-linter's, in ``make lint``.)
"""

from __future__ import annotations

from pathlib import Path

from tests.architecture.scan import SRC, cycles, graph, modules, platform_names

CORE = ("domain", "flows", "web", "store")


def test_no_import_cycles_even_through_function_level_imports() -> None:
    found = cycles(graph())
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _core_files() -> list[Path]:
    out = []
    for name, path in modules().items():
        parts = name.split(".")
        if len(parts) > 1 and parts[1] in CORE and "migrations" not in parts:
            out.append(path)
    return out


def test_the_core_never_names_a_returns_platform() -> None:
    hits = [f"{path.relative_to(SRC)}:{line}: {text}"
            for path in _core_files() for line, text in platform_names(path)]
    assert len(_core_files()) > 50
    assert hits == [], "platform names in the core:\n" + "\n".join(hits)


def test_the_name_scan_sees_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Sent by ZigZag."""\nfrom x import LoopSettings\n'
                      'zigzag_settings = 1\nevent_loop = asyncio.get_running_loop()\n'
                      'text = f"the {name} API"\n', encoding="utf-8")
    assert [line for line, _ in platform_names(sample)] == [1, 2, 3]
