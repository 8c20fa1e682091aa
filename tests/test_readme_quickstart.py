"""README's quickstart runs as written: every code block of its Quickstart section, in order,
in a fresh folder that sees the repository's .venv and benchmarks/ where the README does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def quickstart_blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return BLOCK.findall(section)


def test_the_quickstart_has_shell_and_python_blocks():
    kinds = [kind for kind, _ in quickstart_blocks()]
    assert "sh" in kinds and kinds.count("python") >= 2


def test_every_quickstart_block_runs_as_written(tmp_path):
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    outputs = []
    for kind, code in quickstart_blocks():
        argv = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [
            str(venv / "bin" / "python"), "-c", code]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{kind} block failed:\n{code}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    assert (tmp_path / "models" / "tiny.onnx").exists() and (tmp_path / "tiny.so").exists()
    assert "outputs match onnxruntime" in outputs[0]
    assert "checked against onnxruntime" in outputs[1] and "(1, 10)" in outputs[1]
    assert "checked against torch" in outputs[2]
