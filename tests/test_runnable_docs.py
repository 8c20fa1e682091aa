"""The pages that say their blocks run as written do: README's quickstart and the operator
and model tutorials, every code block in order, in a fresh folder that sees the repository's .venv
and benchmarks/ where the pages do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)


def blocks(page: str, section: str | None = None) -> list[tuple[str, str]]:
    text = (ROOT / page).read_text()
    if section:
        text = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return BLOCK.findall(text)


def run_blocks(found: list[tuple[str, str]], where: Path) -> list[str]:
    """Run each block in ``where``; the stdout of each."""
    venv = Path(sys.executable).parent.parent
    (where / ".venv").symlink_to(venv)
    (where / "benchmarks").symlink_to(ROOT / "benchmarks")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    outputs = []
    for kind, code in found:
        argv = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [
            str(venv / "bin" / "python"), "-c", code]
        done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{kind} block failed:\n{code}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    return outputs


def test_the_quickstart_has_shell_and_python_blocks():
    kinds = [kind for kind, _ in blocks("README.md", "Quickstart")]
    assert "sh" in kinds and kinds.count("python") >= 2


@pytest.mark.runs("avx512")
def test_every_quickstart_block_runs_as_written(tmp_path):
    outputs = run_blocks(blocks("README.md", "Quickstart"), tmp_path)
    assert (tmp_path / "models" / "tiny.onnx").exists() and (tmp_path / "tiny.so").exists()
    assert "outputs match onnxruntime" in outputs[0]
    assert "checked against onnxruntime" in outputs[1] and "(1, 10)" in outputs[1]
    assert "checked against torch" in outputs[2]


# The commands no runnable page runs, and the test that runs each instead.
RUN_ELSEWHERE = {
    "demo": "tests/test_bench.py::test_demo_tunes_compiles_and_times_a_zoo_model_beside_the_"
            "baselines",
    "codegen": "tests/test_cli.py::test_codegen_writes_cuda_and_reports_json",
    "check-plugin": "tests/test_example_plugins.py::test_install_check_plugin_and_uninstall",
}


def test_every_gta_command_runs_in_a_page_a_test_runs():
    """A command a newcomer reads about runs as written somewhere, or is named here with the
    test that runs it."""
    from gta_core.cli import build_parser

    runnable = [blocks("README.md", "Quickstart")] + [
        blocks(f"docs/{page}") for page in
        ("tutorial-operators.md", "tutorial-models.md", "tutorial-int8.md")]
    ran = {name for found in runnable for kind, code in found if kind == "sh"
           for name in re.findall(r"\bgta ([a-z-]+)", code)}
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands - ran == set(RUN_ELSEWHERE)


@pytest.mark.runs("avx512")
def test_the_operator_tutorial_runs_as_written(tmp_path):
    found = blocks("docs/tutorial-operators.md")
    assert [kind for kind, _ in found] == ["sh", "sh", "sh", "sh", "sh", "python", "sh"]
    outputs = run_blocks(found, tmp_path)
    assert "gta-avx512" in outputs[0] and "vnni" in outputs[0]
    assert (tmp_path / "ops.so").exists()
    assert outputs[5].strip() == "int8 GEMM matches numpy"
    assert "| compute | per tile |" in outputs[6]
    assert re.search(r"of vnni[\w-]*'s peak", outputs[6])  # the fastest VNNI form measured


@pytest.mark.slow  # 2 minutes each; every command in it also runs in a default test
def test_the_model_tutorial_runs_as_written(tmp_path):
    found = blocks("docs/tutorial-models.md")
    assert [kind for kind, _ in found] == ["sh", "sh", "sh", "sh", "python", "python", "sh",
                                           "sh"]
    outputs = run_blocks(found, tmp_path)
    assert "ended by" in outputs[1] and "checked / why not tuned" in outputs[1]
    assert (tmp_path / "tiny.so").exists() and "outputs match onnxruntime" in outputs[3]
    difference = float(outputs[4].rsplit(":", 1)[1])
    assert difference < 1e-3
    open_input, given = outputs[6].strip().splitlines()
    assert "--input-shape x=" in open_input  # the error names the input and the flag
    assert given.startswith("tiny-open:")
    assert "onnxruntime" in outputs[7] and (tmp_path / "runs/bench-tiny/results.json").exists()


@pytest.mark.slow  # 2 minutes each; every command in it also runs in a default test
def test_the_int8_tutorial_runs_as_written(tmp_path):
    found = blocks("docs/tutorial-int8.md")
    assert [kind for kind, _ in found] == ["sh", "sh", "sh", "python", "sh"]
    outputs = run_blocks(found, tmp_path)
    assert "run as u8 x s8 integer programs" in outputs[1]
    assert "within one quantization step" in outputs[2]
    assert (tmp_path / "tiny-int8.so").exists()
    assert float(outputs[3].rsplit(":", 1)[1]) < 0.5  # within a few steps of a ~0.1 scale
    assert "onnxruntime-fp32" in outputs[4]
    assert (tmp_path / "runs/bench-tiny-int8/results.json").exists()
