"""What users read: the README's size, links that resolve inside the repository, and no pointers
to places a user cannot see (paths outside the repository, the project's issue numbers)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(text: str) -> list[str]:
    """The relative targets of Markdown links in ``text`` (web addresses and anchors left out)."""
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def outside_pointers(text: str) -> list[str]:
    """Mentions of the project's notes beside the repository (``../shared``) or of issue numbers."""
    return re.findall(r"(?<!\.)\.\./shared\b[\w./-]*|\bissue \d+'s|\bissues? #?\d+\b", text, flags=re.I)


def test_readme_is_at_most_15_kb():
    assert (ROOT / "README.md").stat().st_size <= 15 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    missing = [t for t in links(page.read_text()) if not (page.parent / t.split("#")[0]).exists()]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_pointer_outside_the_repository(page):
    assert outside_pointers(page.read_text()) == []


def test_the_checks_catch_what_they_look_for():
    assert links("see [a](docs/a.md), [b](b.md#x), [web](https://x.org) and [here](#top)") == ["docs/a.md", "b.md#x"]
    assert outside_pointers("as `../shared/DESIGN.md` says; issue 8's targets; see issue #12") == [
        "../shared/DESIGN.md", "issue 8's", "issue #12"]
    assert outside_pointers("an issue of layout; 3 issues remain; cd tests && ../.venv/bin/convbench") == []
