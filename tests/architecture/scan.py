"""Reading the source tree for the architecture tests: imports and platform names."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "returnbridge"
PLATFORM_WORD = re.compile(r"(?<![a-z])(loop|zig ?zag)(?![a-z])", re.IGNORECASE)
CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# asyncio's event loop (and uvicorn's Server.main_loop, which runs it) is not the returns
# platform.
EVENT_LOOP = re.compile(r"get_running_loop|get_event_loop|new_event_loop|AbstractEventLoop|"
                        r"event_loop|main_loop", re.IGNORECASE)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(module imported, line) for every import of one of ``known`` in ``path``, at any
    depth (function-level and ``TYPE_CHECKING`` imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            # "import a.b.c" depends on a.b.c; the closest known module is the dependency.
            closest = target
            while closest and closest not in known:
                closest = closest.rpartition(".")[0]
            if closest and closest != name:
                yield closest, node.lineno


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {t for t, _ in imports(path, name, known)} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root, children_of_root in edges.items():
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(children_of_root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in edges:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def platform_names(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every identifier or string literal (docstrings included) in ``path``
    that names a returns platform, in any spelling: ``loop``, ``LoopSettings``,
    ``zigzag_settings``, "ZigZag's"."""
    wanted = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    source = io.StringIO(path.read_text(encoding="utf-8"))
    for tok in tokenize.generate_tokens(source.readline):
        if tok.type not in wanted:
            continue
        text = EVENT_LOOP.sub(" ", tok.string)
        text = CAMEL.sub(" ", text).replace("_", " ")
        if PLATFORM_WORD.search(text):
            yield tok.start[0], tok.string.strip()[:80]
