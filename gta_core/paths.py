"""Directories the user names on the command line."""

from __future__ import annotations

import os
from pathlib import Path


def writable_dir(path: str | os.PathLike, flag: str, error: type[Exception]) -> Path:
    """``path`` as a directory, created if needed; ``error`` (one line naming ``flag``)
    if it cannot be written, found now rather than after minutes of tuning."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".gta-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise error(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    return directory
