"""``gta stages``: a tuned program's time split into packing, init, compute, write-back and
epilogue by cycle counters compiled into a copy of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tvm

from gta_core import stage_profile
from gta_core.api import load_workload
from gta_core.cli import main
from gta_core.measure.settings import MeasureSettings
from gta_core.plugins import default_registry
from gta_core.stage_profile import _Layout, _stage_times, classify, instrument, profile
from gta_core.tuning import tune

FAST = MeasureSettings(number=1, repeat=2, min_repeat_ms=0)


def _matmul_relu(n: int = 64):
    """A padded ``A`` times ``B``, copied out, then ReLU: one block of every stage."""
    from tvm import te, topi

    a = te.placeholder((n, n - 2), "float32", name="A")
    b = te.placeholder((n, n), "float32", name="B")
    padded = topi.nn.pad(a, [0, 0], [0, 2], name="pad")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(padded[i, k] * b[k, j], axis=k), name="C")
    copied = te.compute((n, n), lambda i, j: c[i, j], name="C_out")
    relu = te.compute((n, n), lambda i, j: te.max(copied[i, j], tvm.tirx.const(0.0)),
                      name="relu")
    return te.create_prim_func([a, b, relu])


def _per_tile(func):
    """Rows of C in parallel tiles, the copy and the ReLU computed in each tile, the
    padding at the top level, parallel too."""
    sch = tvm.s_tir.Schedule(func)
    i, _, _ = sch.get_loops(sch.get_sblock("C"))
    outer, _ = sch.split(i, [8, None])
    sch.parallel(outer)
    for name in ("C_out", "relu"):
        sch.reverse_compute_at(sch.get_sblock(name), outer)
    sch.decompose_reduction(sch.get_sblock("C"), sch.get_loops(sch.get_sblock("C"))[1])
    sch.parallel(sch.get_loops(sch.get_sblock("pad"))[0])
    return sch.mod["main"]


def test_stages_are_told_apart_by_what_they_read_and_write():
    kinds = classify(_per_tile(_matmul_relu()))
    assert kinds == {"pad": "packing", "C_init": "init", "C_update": "compute",
                     "C_out": "write-back", "relu": "epilogue"}
    from tvm import te

    x = te.placeholder((8,), "float32", name="x")
    y = te.compute((8,), lambda i: x[i] * 2.0, name="y")
    assert classify(te.create_prim_func([x, y])) == {"y": "other"}  # no reduction


def test_each_stage_is_timed_once_where_it_runs():
    timed, layout = instrument(_per_tile(_matmul_relu()))
    assert layout.slots == [("packing", "whole"), ("init", "per tile"),
                            ("compute", "per tile"), ("write-back", "per tile"),
                            ("epilogue", "per tile")]
    assert layout.parallel == [(1, 8)] and layout.rows == 9  # row 0: the top level
    counters = timed.params[-1]
    assert counters.name == stage_profile.COUNTERS and [int(d) for d in counters.shape] == [9, 6]
    assert timed.script().count("llvm.readcyclecounter") == 2 * (len(layout.slots) + 1)


@pytest.mark.runs("avx512")
def test_the_instrumented_program_computes_the_same_and_accounts_for_its_time():
    func = _per_tile(_matmul_relu())
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype("float32") for s in ((64, 62), (64, 64)))
    target = default_registry().target("avx512")
    stages = profile(func, [tvm.runtime.tensor(a), tvm.runtime.tensor(b)],
                     [np.full((64, 64), np.nan, "float32")], target, rounds=3, min_ms=5)
    assert [s.kind for s in stages.stages] == ["packing", "init", "compute", "write-back",
                                               "epilogue"]
    assert all(s.us >= 0 for s in stages.stages) and stages.imbalance_us >= 0
    # Which stage is largest is a timing, and a loaded CI machine reorders them: only that
    # the compute stage ran and was counted is asserted.
    assert next(s for s in stages.stages if s.kind == "compute").us > 0
    accounted = sum(s.us for s in stages.stages) + stages.imbalance_us + stages.remainder_us
    assert accounted == pytest.approx(stages.us_instrumented)
    assert stages.us > 0 and stages.threads >= 1


def test_per_tile_cycles_are_shared_among_threads_as_tvm_chunks_the_loop(monkeypatch):
    monkeypatch.setattr(stage_profile, "threads", lambda: 2)
    layout = _Layout()
    layout.slot("packing", "whole", ["pad"])
    layout.slot("compute", "per tile", ["C"])
    layout.parallel.append((1, 3))  # 3 tiles on 2 threads: tiles 0-1, then tile 2
    cycles = np.zeros((4, 3), "int64")
    cycles[0] = [100, 0, 1000]  # packing 100 of the call's 1000 cycles
    cycles[1:, 1] = [200, 200, 400]  # thread 0: 400, thread 1: 400; balanced
    times = _stage_times(cycles, layout, us=10.0, us_timed=10.0)
    packing, compute = times.stages
    assert (packing.us, compute.us) == (pytest.approx(1.0), pytest.approx(4.0))
    assert times.imbalance_us == 0 and times.remainder_us == pytest.approx(5.0)
    cycles[1:, 1] = [100, 100, 400]  # thread 0: 200, thread 1: 400; mean 300, busiest 400
    times = _stage_times(cycles, layout, us=10.0, us_timed=10.0)
    assert times.imbalance_us == pytest.approx(1.0)
    layout.parallel = [(1, 1)]  # one tile: one thread runs it, the other waits
    times = _stage_times(cycles[:2], layout, us=10.0, us_timed=10.0)
    assert times.stages[1].us == pytest.approx(1.0) and times.imbalance_us == 0


@pytest.mark.runs("avx512")
def test_gta_stages_times_the_program_compile_builds(tmp_path, capsys):
    spec = "conv2d:N=1,C=16,H=10,W=10,K=32,R=3,S=3,pad=1,dtype=float32,weights=constant"
    tune([spec], "avx512", 2, tmp_path, measure=FAST)
    assert main(["stages", spec, "--db", str(tmp_path), "--no-peak", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    program = report["programs"][0]
    assert program["program"] == load_workload(spec).spec and program["peak_gops"] is None
    assert program["gop"] == pytest.approx(2 * 16 * 32 * 9 * 100 / 1e9)
    stages = program["profile"]["stages"]
    assert "compute" in {s["kind"] for s in stages}
    # the weights are laid out ahead of the call: no stage of the timed program reads them
    assert not any("weight" in b for s in stages if s["kind"] == "packing" for b in s["blocks"])
    assert main(["stages", spec, "--db", str(tmp_path), "--no-peak"]) == 0
    assert "| compute | per tile |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["stages", "--db", "."], "stages takes workload specs or --model"),
    (["stages", "gemm:M=8,N=8,K=8", "--function", "x", "--db", "."], "--function names"),
    (["stages", "gemm:M=8,N=8,K=8", "--db", "no-such-dir"], "no such directory"),
    (["stages", "gemm:M=8,N=8,K=8", "--db", "."], "no checked record of gemm:M=8,N=8,K=8"),
])
def test_gta_stages_says_what_is_wrong_in_one_line(argv, message, capsys, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-peak"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
