"""The documents the code, configs and docs cite exist in the repository, and their links hold.

Every ``docs/<name>.md`` named in a tracked source, config or Markdown file must be a file of
``docs/``; every relative Markdown link ``[text](path#anchor)`` of the README and ``docs/`` must
point to an existing file and, with an anchor, to a heading of that file (GitHub's anchor rule:
lower case, punctuation dropped, spaces to hyphens).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CITED = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def anchor_of(heading: str) -> str:
    """GitHub's anchor of a Markdown heading's text."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    heads = [m.group(1) for m in re.finditer(r"^#+ (.+)$", path.read_text(), re.MULTILINE)]
    return {anchor_of(h) for h in heads}


def test_anchor_rule_on_known_headings():
    assert anchor_of("3.1 SBD: the train_aug set (10,582 images)") == (
        "31-sbd-the-train_aug-set-10582-images"
    )
    assert anchor_of("The authors' released artifacts") == "the-authors-released-artifacts"


def test_every_cited_document_exists():
    missing = set()
    for path in _tracked("*.py", "*.md", "*.yml", "*.toml", "run", ".ci/run"):
        for name in CITED.findall(path.read_text(errors="replace")):
            if not (REPO / "docs" / name).is_file():
                missing.add(f"{path.relative_to(REPO)} cites docs/{name}")
    assert not missing, sorted(missing)


def test_relative_links_of_the_readme_and_docs_resolve():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no heading)")
    assert not broken, broken
