"""The runbook of an exception type, rendered inline (docs/runbooks/<type>.md).

The Markdown ships inside the package (``returnbridge/runbooks``, see pyproject's
force-include); in a source checkout it is read from docs/runbooks. Raw HTML in the
Markdown is escaped, never passed through."""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

_NAME = re.compile(r"^[a-z0-9_]+$")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def _sources() -> list[Path]:
    """The runbooks packaged with the wheel, then those of a source checkout."""
    return [Path(str(resources.files("returnbridge") / "runbooks")),
            Path(__file__).resolve().parents[4] / "docs" / "runbooks"]


@functools.lru_cache(maxsize=64)
def render(exception_type: str) -> Markup | None:
    if not _NAME.match(exception_type):
        return None
    for folder in _sources():
        path = folder / f"{exception_type}.md"
        if path.is_file():
            return Markup(_md.render(path.read_text(encoding="utf-8")))  # noqa: S704
    return None
