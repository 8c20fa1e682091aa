"""Fixtures of the reliability campaign; its helpers are in ``kit.py`` (importable here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

FAULTS = Path(__file__).parent / "faults"


@pytest.fixture
def fault_env(tmp_path):
    """``fault_env(kind, at=1)``: the environment that makes the ``at``-th build or run of
    a `gta` process and its workers fail as ``kind`` says; the fault's folder is
    ``tmp_path / "fault"`` (``fired`` appears in it when it happened)."""
    def make(kind: str, at: int = 1) -> dict:
        folder = tmp_path / "fault"
        folder.mkdir(exist_ok=True)
        path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH")) if p)
        return dict(os.environ, GTA_FAULT=kind, GTA_FAULT_AT=str(at), GTA_FAULT_DIR=str(folder),
                    PYTHONPATH=path)
    return make
