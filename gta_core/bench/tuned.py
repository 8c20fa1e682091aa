"""Which contender tuned which workload, with what budget and when: ``DIR/tuned.json``.

A rerun of ``gta bench`` reads it so a finished (contender, workload) pair is not tuned
again, and the tuning curves turn record timestamps into seconds of tuning: the wall-clock
spans of every part a suite was tuned in, without the pauses between parts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field


class TuningPart(BaseModel):
    """One uninterrupted tuning call: its wall-clock span (epoch seconds) and budget."""

    start: float
    end: float
    budget: int = Field(ge=1)
    code: str | None = None  # code_version() of the GTA that ran it


def code_version() -> str:
    """The commit this GTA runs from (``+changes`` if its files differ from it), or the
    package version outside a git checkout: which code a tuning or a timing came from."""
    here = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no", "--", "gta_core", "plugins"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"gta-core {version('gta-core')}"
    return commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


class TuningEntry(BaseModel):
    """Everything one contender spent tuning one workload, over every part of the run."""

    contender: str
    workload: str
    parts: list[TuningPart] = []
    chosen: str | None = None  # what the tuner itself reported as its best (GTA's mapping)

    @property
    def budget(self) -> int:
        """The largest budget a finished part was given: tuning is done up to it."""
        return max((part.budget for part in self.parts), default=0)

    @property
    def codes(self) -> list[str]:
        """The code versions its parts ran (unknown for parts logged before they were kept)."""
        return sorted({part.code or "unknown" for part in self.parts})

    @property
    def seconds(self) -> float:
        return sum(part.end - part.start for part in self.parts)

    def elapsed(self, when: float) -> float | None:
        """Seconds of tuning at epoch time ``when``; None if no part was running then."""
        offset = 0.0
        for part in self.parts:
            if part.start <= when <= part.end:
                return offset + when - part.start
            offset += part.end - part.start
        return None


class TunedLog(BaseModel):
    entries: list[TuningEntry] = []

    @classmethod
    def load(cls, path: Path) -> TunedLog:
        return cls.model_validate_json(path.read_text()) if path.exists() else cls()

    def save(self, path: Path) -> None:
        """Write atomically: a run killed mid-write leaves the previous file intact."""
        scratch = path.with_suffix(".json.tmp")
        scratch.write_text(self.model_dump_json(indent=1))
        os.replace(scratch, path)

    def entry(self, contender: str, workload: str) -> TuningEntry:
        """The entry for the pair, added empty if there is none yet."""
        for entry in self.entries:
            if entry.contender == contender and entry.workload == workload:
                return entry
        entry = TuningEntry(contender=contender, workload=workload)
        self.entries.append(entry)
        return entry
