"""``python -m gta_core.docgen [--check] [DOCS_DIR]``: rewrite docs/cli.md and docs/api.md,
or with ``--check`` only say which are stale (exit status 1), as a CI step would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import DOCS, REGENERATE, stale_pages, write_pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gta_core.docgen", description=__doc__)
    parser.add_argument("docs", nargs="?", type=Path, default=DOCS,
                        help=f"the docs folder (default {DOCS})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a page differs from the code")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(args.docs)
        for name in stale:
            print(f"{args.docs / name} is stale; run {REGENERATE}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_pages(args.docs):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
