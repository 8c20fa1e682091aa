"""Reference pages generated from the code: ``docs/cli.md`` from ``gta``'s argument parser,
``docs/api.md`` from the public functions' signatures and docstrings.

``python -m gta_core.docgen`` rewrites both; ``tests/test_docs_reference.py`` fails when
either differs from what the code renders now, so the references cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .api_reference import render_api
from .cli_reference import render_cli

REGENERATE = "python -m gta_core.docgen"
DOCS = Path(__file__).resolve().parents[2] / "docs"  # the source tree's docs/

PAGES: dict[str, Callable[[], str]] = {"cli.md": render_cli, "api.md": render_api}


def stale_pages(docs: Path = DOCS) -> list[str]:
    """The generated pages in ``docs`` whose text differs from what the code renders now."""
    return [name for name, render in PAGES.items()
            if not (docs / name).is_file() or (docs / name).read_text() != render()]


def write_pages(docs: Path = DOCS) -> list[Path]:
    """Render every generated page into ``docs``; the paths written."""
    written = []
    for name, render in PAGES.items():
        path = docs / name
        path.write_text(render())
        written.append(path)
    return written


__all__ = ["DOCS", "PAGES", "REGENERATE", "render_api", "render_cli", "stale_pages",
           "write_pages"]
