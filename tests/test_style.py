"""The code base stays ruff-clean (the style guide's everyday habit, checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))


@pytest.mark.skipif(not Path(RUFF).exists(), reason="ruff is not installed (pip install '.[test]')")
def test_ruff_finds_nothing():
    result = subprocess.run([RUFF, "check", "gta_core", "plugins", "examples", "tests",
                             "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
