"""The documentation the code cites is in the repository: every `docs/<page>.md#<section>` named
in the library, rules, config, scripts, benchmarks and tests is a page with that heading, and
nothing cites the numbered sections of a document the repository does not hold."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITING = ("workflow", "rules", "config", "scripts", "benchmarks", "tests", "docs")
SUFFIXES = {".py", ".smk", ".yaml", ".md"}
LINK = re.compile(r"docs/([\w./-]+?\.md)(?:#([\w-]+))?")
NUMBERED = re.compile(r"\bspec(?:,)? (?:section )?\d+\.\d+|simulator spec")


def _sources() -> list[Path]:
    files = [p for top in CITING for p in (REPO / top).rglob("*") if p.suffix in SUFFIXES]
    return [p for p in files if p.is_file() and "__pycache__" not in p.parts]


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"\s", "-", text)


def _anchors(page: Path) -> set[str]:
    lines = page.read_text().splitlines()
    return {_slug(line.lstrip("#")) for line in lines if line.startswith("#")}


def test_every_cited_docs_page_and_section_exists() -> None:
    missing = []
    cited = 0
    for source in _sources():
        for match in LINK.finditer(source.read_text(errors="replace")):
            page, anchor = match.groups()
            cited += 1
            target = REPO / "docs" / page
            where = f"{source.relative_to(REPO)}: docs/{page}" + (f"#{anchor}" if anchor else "")
            if not target.is_file():
                missing.append(f"{where} (no such page)")
            elif anchor and anchor not in _anchors(target):
                missing.append(f"{where} (no such section)")
    assert cited > 50
    assert not missing, "\n".join(missing)


def test_no_citation_of_numbered_spec_sections() -> None:
    found = [
        f"{source.relative_to(REPO)}:{n}: {line.strip()}"
        for source in _sources()
        if source != Path(__file__).resolve()
        for n, line in enumerate(source.read_text(errors="replace").splitlines(), 1)
        if NUMBERED.search(line)
    ]
    assert not found, "\n".join(found)


def test_slug_follows_the_renderers_rule() -> None:
    assert _slug(" Figure 8(b)") == "figure-8b"
    assert _slug("GPU limits") == "gpu-limits"
