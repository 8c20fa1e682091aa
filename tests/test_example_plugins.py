"""The third-party targets in examples/ as a user meets them: pip install, gta plugins,
gta check-plugin, pip uninstall."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A throwaway venv that sees this one's packages (so GTA and TVM are not reinstalled)."""
    venv = tmp_path_factory.mktemp("examples") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    # addsitedir, not a bare path: it also runs this env's .pth files (editable installs).
    (Path(site.strip()) / "parent_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    return python


@pytest.mark.parametrize("folder, dist, status", [
    ("gta_avx2", "gta-avx2", "checked"),  # runs here: checked against numpy
    ("gta_arm", "gta-arm", "compiled"),  # cross-compiled for aarch64: built, not run
])
def test_install_check_plugin_and_uninstall(venv, folder, dist, status):
    def run(*args: str) -> str:
        return subprocess.run([str(venv), *args], capture_output=True, text=True,
                              check=True).stdout

    def names() -> set[str]:
        return {p["name"] for p in json.loads(run("-m", "gta_core.cli", "plugins", "--json"))
                ["plugins"]}

    run("-m", "pip", "install", "--quiet", "--no-deps", str(EXAMPLES / folder))
    assert dist in names()
    check = json.loads(run("-m", "gta_core.cli", "check-plugin", dist, "--json"))
    assert check["api_version"] == "1.1"  # they declare Target.host_flags, new in 1.1
    assert all(r["status"] == "passed" for r in check["results"]), check["results"]
    realised = [r for r in check["results"] if ": realised on " in r["check"]]
    assert realised and all(r["detail"].startswith(status) for r in realised)
    run("-m", "pip", "uninstall", "--quiet", "--yes", dist)
    assert dist not in names() and "gta-avx512" in names()
