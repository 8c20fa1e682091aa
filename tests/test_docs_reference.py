"""The generated references match the code, and every relative link in the docs resolves."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from gta_core import hookspecs
from gta_core.docgen import PAGES, REGENERATE, render_api, render_cli
from gta_core.docgen.api_reference import signature

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MARKDOWN = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_generated_reference_matches_the_code(page):
    path = DOCS / page
    assert path.is_file() and path.read_text() == PAGES[page](), (
        f"docs/{page} differs from what the code renders now; regenerate it with "
        f"`{REGENERATE}` (from the repository root)")


def test_cli_reference_does_not_depend_on_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = render_cli()
    monkeypatch.setenv("COLUMNS", "200")
    assert render_cli() == narrow


def test_cli_reference_has_a_section_per_command():
    from gta_core.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    text = render_cli()
    assert [name for name in commands if f"\n## gta {name}\n" not in text] == []


def test_api_reference_documents_every_hook():
    hooks = [name for name in dir(hookspecs) if name.startswith("gta_")]
    text = render_api()
    assert [h for h in hooks if f"### `gta_core.hookspecs.{h}`" not in text] == []


_NO_VALUE = object()  # its repr carries an address, which the page must not


def _sample(a, /, b: int, *, c: str = "x", d=_NO_VALUE) -> dict[str, int]:
    """A function to render."""


def test_signatures_render_as_written_without_addresses():
    assert signature(_sample) == ("def _sample(a, /, b: int, *, c: str = 'x', d=<object object>) "
                                  "-> dict[str, int]")


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`+[^`\n]*`+")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def relative_links(text: str) -> list[str]:
    """The link targets of ``text`` that are neither URLs nor in code."""
    prose = _CODE.sub("", _FENCE.sub("", text))
    targets = _LINK.findall(prose) + _DEFINITION.findall(prose)
    return [t for t in targets if not re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def anchors(text: str) -> set[str]:
    """The #fragments GitHub gives the headings of ``text``."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", text), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if not count else f"{slug}-{count}")
    return found


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_an_existing_file_and_heading(page):
    broken = []
    for target in relative_links(page.read_text()):
        path, _, fragment = unquote(target).partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
            broken.append(f"{target} (no heading #{fragment} in {file.name})")
    assert broken == [], f"{page.relative_to(ROOT)} links nowhere: {broken}"


_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def _documented_commands() -> list[tuple[str, str]]:
    """(page, command line) of every ``gta`` command in the docs' code blocks."""
    found = []
    for page in MARKDOWN:
        for block in _FENCE.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if re.match(r"^(\S*/)?gta\s", line):
                    found.append((page.name, line))
    return found


def test_every_gta_command_in_the_docs_parses_with_the_current_cli():
    """A renamed command or flag fails here, not in a reader's shell."""
    import shlex

    from gta_core.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 20
    bad = []
    for page, line in commands:
        try:
            build_parser().parse_args(shlex.split(line)[1:])
        except SystemExit:
            bad.append(f"{page}: {line}")
    assert bad == []
