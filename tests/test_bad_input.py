"""Bad input refused before anything runs: a spec whose tensors cannot fit in this machine's
memory (naming the size it would need), nonsense thread settings in the environment."""

from __future__ import annotations

import pytest

from gta_core.cli import main
from gta_core.host import memory_bytes

HUGE = "gemm:M=100000000000,N=1000,K=1000,dtype=int8"


@pytest.mark.parametrize("command", [["describe", HUGE],
                                     ["tune", HUGE, "--target", "avx512", "--trials", "1"]])
def test_a_spec_too_big_for_memory_is_refused_with_its_size(command, tmp_path, capsys):
    if command[0] == "tune":
        command = [*command, "--db", str(tmp_path / "db")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "GiB for its tensors" in err and f"{memory_bytes() / 2**30:.1f} GiB" in err
    assert "Traceback" not in err and not (tmp_path / "db").exists()


def test_a_large_spec_that_fits_is_accepted(capsys):
    assert main(["describe", "gemm:M=8192,N=8192,K=8192"]) == 0


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_nonsense_thread_settings_are_refused_by_name(value, monkeypatch, capsys):
    monkeypatch.setenv("TVM_NUM_THREADS", value)
    assert main(["describe", "gemm:M=8,N=8,K=8"]) == 2
    assert f"TVM_NUM_THREADS={value!r} is not a positive integer" in capsys.readouterr().err
