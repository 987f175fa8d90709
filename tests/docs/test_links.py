"""The README and docs/ point at things that exist.

Modules move (the MQTT link became a package, doctor was split); a doc that names a file that is
no longer there sends a newcomer nowhere. Every relative Markdown link must resolve (a ``#anchor``
to a heading of its target), every repository path written in backticks must exist, and the
README's two commands must be targets of the Makefile.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PATH = re.compile(r"`((?:agent|drivers|hil|models|bench|tests|systemd|docs)/[A-Za-z0-9_./-]+)`")
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids(DOCUMENTS))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = (document.parent / file).resolve() if file else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("document", DOCUMENTS, ids=ids(DOCUMENTS))
def test_named_repository_paths_exist(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    missing = sorted(
        {p for p in _PATH.findall(text) if "*" not in p and not (ROOT / p.rstrip(".")).exists()}
    )
    assert not missing, f"{document.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_readme_commands_are_make_targets() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = _FENCE.search(readme)
    assert first_block is not None
    commands = re.findall(r"^make (\w+)", first_block.group(0), re.MULTILINE)
    assert commands == ["demo", "test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in commands:
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"no '{target}' target"
