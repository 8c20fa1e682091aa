"""A target whose programs use a CPU feature this host lacks: its programs build here, but
nothing runs them (the first such instruction would kill the process with SIGILL). Tuning,
compiling and the checks refuse with one line naming what is missing; `gta mappings --check`
reports its candidates compiled, not checked."""

from __future__ import annotations

import platform

import pytest

from gta_core.api import mappings
from gta_core.host import HostCannotRun, cannot_run, cpu_flags, require_runs_here
from gta_core.measure import runnable
from gta_core.plugins import default_registry, load
from gta_core.tuning import tune

MISSING = "gta_test_no_such_feature"
GEMM = "gemm:M=32,N=32,K=32,dtype=int8"


@pytest.fixture
def lacking():
    """A registry whose avx512 target also needs a feature no CPU lists."""
    registry = load()
    target = registry.targets["avx512"]
    registry.targets["avx512"] = target.model_copy(
        update={"host_flags": [*target.host_flags, MISSING]})
    return registry


def test_a_target_needing_a_feature_this_cpu_lacks_cannot_run_and_says_which(lacking):
    target = lacking.target("avx512")
    why = cannot_run(target)
    assert why is not None and MISSING in why and "avx512" in why
    with pytest.raises(HostCannotRun, match=MISSING):
        require_runs_here(target)
    # the features it needs and has are not named
    assert not [f for f in target.host_flags if f != MISSING and f in cpu_flags() and f in why]


def test_the_avx512_target_runs_exactly_where_the_cpu_lists_its_features():
    target = default_registry().target("avx512")
    assert {"avx512f", "avx512bw", "avx512_vnni"} <= set(target.host_flags)
    assert (cannot_run(target) is None) == (set(target.host_flags) <= cpu_flags())


def test_a_target_for_another_architecture_cannot_run_here(lacking):
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    target = lacking.target("avx512").model_copy(update={
        "host_flags": [], "tvm": {"kind": "llvm", "mtriple": f"{other}-linux-gnu"}})
    assert other in cannot_run(target)
    gpu = lacking.target("avx512").model_copy(update={"kind": "gpu"})
    assert cannot_run(gpu) is None  # a GPU target's question is another one


def test_tuning_refuses_before_any_measurement_and_writes_no_record(lacking, tmp_path):
    with pytest.raises(HostCannotRun, match=MISSING):
        tune([GEMM], "avx512", 4, tmp_path / "db", registry=lacking)
    assert not list((tmp_path / "db").glob("*.json"))


def test_building_is_allowed_running_is_refused(lacking):
    import tvm
    from tvm import te

    from gta_core.measure import build

    a = te.placeholder((16,), "float32", name="a")
    mod = tvm.IRModule({"main": te.create_prim_func([a, te.compute((16,), lambda i: a[i] * 2)])})
    target = lacking.target("avx512")
    assert build(mod, target) is not None
    with pytest.raises(HostCannotRun, match=MISSING):
        runnable(mod, target)


def test_checked_mappings_are_compiled_not_run(lacking):
    report = mappings(GEMM, "avx512", check=True, registry=lacking)
    kept = [m for m in report.mappings if m.status == "kept"]
    assert kept and all(m.compiled and not m.checked and m.gops is None for m in kept)


def test_the_command_line_refuses_in_one_line_where_the_cpu_lacks_the_features(capsys,
                                                                             tmp_path):
    from gta_core.cli import main

    why = cannot_run(default_registry().target("avx512"))
    if why is None:
        pytest.skip("this CPU runs the avx512 target's programs (the refusal is tested above)")
    for argv in (["tune", GEMM, "--target", "avx512", "--trials", "2", "--db",
                  str(tmp_path / "db")], ["peak", "--target", "avx512"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"gta: error: {why}\n"


def test_gta_plugins_says_when_a_target_cannot_run_here(capsys):
    from gta_core.cli import main

    why = cannot_run(default_registry().target("avx512"))
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert (f"    {why}\n" in out) if why else ("lacks" not in out)
