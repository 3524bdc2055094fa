from pathlib import Path

import pytest

from returnbridge.domain.exceptions import CATALOGUE

DOCS = Path(__file__).resolve().parents[2] / "docs"
SECTIONS = ("## What it means", "## Why it happens", "## How to fix it",
            "## What happens after the fix", "## Commands")


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_exception_type_has_a_runbook_page(name: str) -> None:
    page = DOCS / "runbooks" / f"{name}.md"
    assert page.exists(), f"write docs/runbooks/{name}.md (see the other pages)"
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    for section in SECTIONS:
        assert section in text, f"{page.name} lacks {section!r}"
    assert "**Owner**: " in text and f"`{CATALOGUE[name].owner.value}`" in text
    assert f"exceptions list --type {name}" in text
    assert f"](runbooks/{name}.md)" in (DOCS / "exceptions.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_type_tells_its_owner_what_to_do(name: str) -> None:
    kind = CATALOGUE[name]
    assert kind.next_action.strip() and kind.meaning.strip()


def test_no_runbook_for_a_type_that_does_not_exist() -> None:
    pages = {p.stem for p in (DOCS / "runbooks").glob("*.md")}
    assert pages - set(CATALOGUE) == set()
