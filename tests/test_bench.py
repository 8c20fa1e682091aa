"""`gta bench`: suites, contenders checked before timing, results and plots, resume, geomean."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from gta_core.api import load_workload
from gta_core.bench import (
    CONTENDERS,
    SUITES,
    BenchReport,
    Contender,
    ContenderResult,
    Prepared,
    Suite,
    WorkloadResult,
    geomean_ratios,
    run_bench,
)
from gta_core.bench.programs import Program
from gta_core.bench.report import geomean_lines
from gta_core.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", sorted(SUITES))
def test_every_suite_lists_distinct_valid_workloads(name):
    suite = SUITES[name]
    specs = [load_workload(spec).spec for spec in suite.workloads]
    assert len(set(specs)) == len(specs), f"{name} lists a workload twice"


def test_the_suites_have_the_papers_shapes():
    assert len(SUITES["resnet18"].workloads) == 12
    ops = {load_workload(s).operator.name for s in SUITES["ops"].workloads}
    assert ops == {"gemm", "batch_gemm", "gemv", "conv1d", "conv2d", "conv3d",
                   "depthwise_conv2d", "conv2d_transpose", "mean", "variance", "scan"}
    bf16 = [s for s in SUITES["ops"].workloads if s.endswith("dtype=bfloat16")]
    assert {load_workload(s).operator.name for s in bf16} == {"gemm", "conv2d"}
    grouped = [s for s in SUITES["ops"].workloads if "groups=8" in s]
    dilated = [s for s in SUITES["ops"].workloads if "dilation=2" in s]
    assert len(grouped) == len(dilated) == 2  # int8 and float32 each
    assert "gemm:M=128,N=3072,K=768,dtype=int8" in SUITES["bert"].workloads
    assert max(load_workload(s).flops for s in SUITES["ci"].workloads) <= 2 * 64**3


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--suite", "nope"], "unknown suite 'nope'; accepted: ci, ops"),
    (["bench", "--suite", "ci", "--baselines", "torch,tvm"], "unknown baseline 'tvm'"),
    (["bench", "--suite", "ci", "--baselines", ","], "--baselines is empty"),
    (["bench", "--suite", "ci", "--trials", "0"], "--trials: must be a positive integer"),
    (["bench", "--suite", "ci", "--trials", "x"], "--trials: must be a positive integer"),
    (["bench", "--suite", "ci", "--repeat", "0"], "--repeat: must be a positive integer"),
    (["bench", "--suite", "ci", "--first", "0"], "--first must be a positive integer"),
    (["bench", "--suite", "ci", "--target", "cuda-tc"], "target cuda-tc is a gpu target"),
    (["bench", "--suite", "ci", "--target", "tpu"], "unknown target 'tpu'"),
    (["bench", "--suite", "ci", "--quiet-wait", "-1"], "--quiet-wait must be a finite number"),
    (["bench", "--suite", "ci", "--quiet-wait", "nan"], "--quiet-wait must be a finite number"),
    (["bench"], "one of the arguments --suite --workload is required"),
    (["bench", "--suite", "ci", "--workload", "gemm:M=8,N=8,K=8"], "not allowed with"),
    (["bench", "--workload", "gemm:M=8,N=8"], "gemm: missing key 'K'"),
    (["bench", "--workload", "gemm:M=8,N=8,K=8", "--workload", "conv9d:N=1"],
     "unknown operator 'conv9d'"),
])
def test_a_bad_bench_request_is_one_line_with_exit_status_2(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("gta: error: ")
    assert message in err


def test_an_unwritable_out_dir_is_one_line_with_exit_status_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, "bench", "--suite", "ci", "--out", str(blocker / "sub"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"--out {blocker / 'sub'}: cannot write there" in err


def _result(name: str, latency_us: float | None, status: str = "timed") -> ContenderResult:
    return ContenderResult(contender=name, status=status, latency_us=latency_us)


def test_geomean_ratio_is_over_workloads_where_both_were_timed():
    workloads = [
        WorkloadResult(workload="a", dtype="int8", gflop=1.0, contenders={
            "gta": _result("gta", 10.0), "metaschedule": _result("metaschedule", 40.0),
            "torch": _result("torch", None, "wrong")}),
        WorkloadResult(workload="b", dtype="int8", gflop=1.0, contenders={
            "gta": _result("gta", 10.0), "metaschedule": _result("metaschedule", 5.0),
            "torch": _result("torch", 20.0)}),
        WorkloadResult(workload="c", dtype="int8", gflop=1.0, contenders={
            "gta": _result("gta", None, "failed"),
            "metaschedule": _result("metaschedule", 1.0)}),
    ]
    ratios, counts = geomean_ratios(workloads)
    assert ratios == {"gta/metaschedule": pytest.approx(math.sqrt(4.0 * 0.5), abs=1e-3),
                      "gta/torch": 2.0}
    assert counts == {"gta/metaschedule": 2, "gta/torch": 1}
    assert geomean_ratios(workloads[2:]) == ({}, {})


class _Untimeable(Program):
    """Computes the wrong answer; timing it would be a bug."""

    def __init__(self, shape):
        self.shape = shape

    def output(self) -> np.ndarray:
        return np.ones(self.shape, dtype=np.float32)

    def sample_us(self) -> float:
        raise AssertionError("a wrong program was timed")


class _WrongContender(Contender):
    name = "wrong"
    method = "returns ones"

    def prepare(self, workload, inputs, ctx) -> Prepared:
        return Prepared(program=_Untimeable(workload.output_shape))


def test_a_wrong_program_is_reported_wrong_and_never_timed(tmp_path):
    suite = Suite(name="t", description="one tiny GEMM",
                  workloads=("gemm:M=8,N=8,K=8,dtype=float32",), trials=1)
    report = run_bench(suite, tmp_path, contenders=[CONTENDERS["numpy"](), _WrongContender()],
                       peak=False, repeat=2)
    row = report.workloads[0].contenders
    assert row["wrong"].status == "wrong" and row["wrong"].correct is False
    assert row["wrong"].latency_us is None and row["wrong"].gflops is None
    assert "outputs differ" in row["wrong"].note
    assert row["numpy"].status == "timed" and row["numpy"].latency_us > 0
    assert "| WRONG |" in (tmp_path / "results.md").read_text()


class _SilentContender(Contender):
    name = "silent"
    method = "a library call that never writes its preallocated output"

    def prepare(self, workload, inputs, ctx) -> Prepared:
        from gta_core.bench.programs import CallableProgram
        from gta_core.measure import garbage_output

        return Prepared(program=CallableProgram(lambda: None, out=garbage_output(workload)))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_a_program_that_never_writes_its_output_is_wrong(tmp_path, dtype):
    """Its output stays the garbage it was filled with (NaN, or a random int pattern)."""
    suite = Suite(name="t", description="one tiny GEMM",
                  workloads=(f"gemm:M=8,N=8,K=8,dtype={dtype}",), trials=1)
    report = run_bench(suite, tmp_path, contenders=[_SilentContender()], peak=False,
                       repeat=1)
    row = report.workloads[0].contenders["silent"]
    assert row.status == "wrong" and row.latency_us is None


LIBRARY_SPECS = [
    "gemm:M=16,N=32,K=24", "batch_gemm:B=2,M=8,N=16,K=8", "gemv:M=16,K=32",
    "conv1d:N=1,C=4,L=16,K=8,R=3,pad=1,dilation=2",
    "conv2d:N=1,C=4,H=8,W=8,K=8,R=3,S=3,stride=2,pad=1,groups=2",
    "conv3d:N=1,C=4,D=4,H=6,W=6,K=8,T=3,R=3,S=3,pad=1",
    "depthwise_conv2d:N=1,C=8,H=8,W=8,R=3,S=3,pad=2,dilation=2",
    "conv2d_transpose:N=1,C=4,H=5,W=5,K=8,R=4,S=4,stride=2,pad=1",
]


def test_torch_and_numpy_match_the_reference_on_every_operator(tmp_path):
    pytest.importorskip("torch")
    specs = ([f"{s},dtype=float32" for s in LIBRARY_SPECS]
             + [f"{s},dtype=int8" for s in LIBRARY_SPECS])
    suite = Suite(name="t", description="every operator, tiny", workloads=tuple(specs),
                  trials=1)
    report = run_bench(suite, tmp_path, contenders=[CONTENDERS["torch"](),
                                                    CONTENDERS["numpy"]()],
                       peak=False, repeat=1)
    for result in report.workloads:
        numpy_row, torch_row = result.contenders["numpy"], result.contenders["torch"]
        assert numpy_row.status == "timed", result.workload
        conv_int8 = result.dtype == "int8" and "gemm" not in result.workload \
            and "gemv" not in result.workload
        if conv_int8:
            assert torch_row.status == "skipped" and "no int8 convolution" in torch_row.note
        else:
            assert torch_row.status == "timed" and torch_row.correct, result.workload


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real `gta bench` on a tiny int8 GEMM named by --workload (the second spelling of
    it counts once; --first leaves the GEMV out), then a rerun (metaschedule-vnni is left to
    a slow test: each tuner costs half a minute here)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["bench", "--workload", "gemm:M=32,N=32,K=32,dtype=int8",
            "--workload", "gemv:M=4096,K=4096", "--workload", "gemm:K=32,N=32,M=32,dtype=int8",
            "--first", "1", "--trials", "2", "--repeat", "2", "--out", str(out),
            "--baselines", "metaschedule,torch,numpy,peak", "--quiet-wait", "5", "--json"]
    first = _capture(argv)
    results = json.loads((out / "results.json").read_text())
    records = _record_files(out)
    tuned = (out / "tuned.json").read_text()
    second = _capture(argv)
    return {"out": out, "first": first, "second": second, "results": results,
            "records": records, "tuned": tuned}


def _capture(argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _record_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text()
            for p in sorted(out.rglob("*.json"))
            if p.name in ("records.json", "database_tuning_record.json")}


@pytest.mark.runs("avx512")
def test_bench_prints_results_json_with_every_contender(tiny_run):
    code, out, _ = tiny_run["first"]
    assert code == 0
    report = json.loads(out)
    assert report == tiny_run["results"]
    assert report["contenders"] == ["gta", "metaschedule", "torch", "numpy"]
    assert report["complete"] and report["peak"]["int8"]["gops"] > 0
    assert report["workloads"][0]["other_cores"] >= 0  # how busy the cores were while timing
    row = report["workloads"][0]["contenders"]
    for name in ("gta", "metaschedule"):
        assert row[name]["trials"] == 2 and row[name]["tuning_seconds"] > 0, name
    for name, result in row.items():
        if result["status"] == "timed":
            assert result["correct"] and result["gflops"] > 0 and result["fraction_of_peak"] > 0
            assert result["latency_min_us"] <= result["latency_us"] <= result["latency_max_us"]
        elif result["status"] == "skipped":  # torch without the [bench] extra: says why
            assert name == "torch" and "torch" in result["note"]
        else:  # a tuner may find nothing that builds in 2 trials; it must say so
            assert result["status"] in ("failed", "wrong") and result["note"], name
    assert row["gta"]["status"] == "timed"
    assert set(report["geomean_ratio"]) == {f"gta/{n}" for n, r in row.items()
                                            if n != "gta" and r["status"] == "timed"}


@pytest.mark.runs("avx512")
def test_bench_writes_results_md_and_png_plots(tiny_run):
    out = tiny_run["out"]
    md = (out / "results.md").read_text()
    assert "| `gemm:M=32,N=32,K=32,dtype=int8` | GOPS |" in md
    assert "suite `workloads` (its first 1 of 2 workloads)" in md and "gemv" not in md
    commit = tiny_run["results"]["code"]
    assert f"Timed at commit {commit}; tuned: gta at {commit}; metaschedule at {commit}." in md
    assert "Geometric-mean speedup of GTA" in md and "generic rules without an intrinsic" in md
    for name in ("throughput.png", "fraction_of_peak.png", "tuning_curves.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
        assert f"]({name})" in md
    curves = json.loads((out / "curves.json").read_text())
    assert {c["contender"] for c in curves} == {"gta", "metaschedule"}
    assert all([p["trial"] for p in c["points"]] == [1, 2] for c in curves)


@pytest.mark.runs("avx512")
def test_a_rerun_measures_nothing_new(tiny_run):
    code, out, err = tiny_run["second"]
    assert code == 0
    assert _record_files(tiny_run["out"]) == tiny_run["records"]
    assert (tiny_run["out"] / "tuned.json").read_text() == tiny_run["tuned"]
    assert err.count("tuned already") == 2
    first = json.loads(tiny_run["first"][1])["workloads"][0]["contenders"]
    again = json.loads(out)["workloads"][0]["contenders"]
    for name in ("gta", "metaschedule"):
        assert again[name]["trials"] == first[name]["trials"]
        assert again[name]["tuning_seconds"] == first[name]["tuning_seconds"]


@pytest.mark.slow
def test_metaschedule_with_gtas_vnni_intrinsic_tunes_a_correct_int8_program(tmp_path):
    suite = Suite(name="t", description="one tiny int8 GEMM",
                  workloads=("gemm:M=32,N=32,K=32,dtype=int8",), trials=2)
    report = run_bench(suite, tmp_path, contenders=[CONTENDERS["metaschedule-vnni"]()],
                       peak=False, repeat=1)
    row = report.workloads[0].contenders["metaschedule-vnni"]
    assert row.status == "timed" and row.correct and row.trials == 2


@pytest.mark.runs("avx512")
def test_demo_tunes_compiles_and_times_a_zoo_model_beside_the_baselines(capsys, tmp_path):
    out = tmp_path / "demo"
    code, text, err = run(capsys, "demo", "--model", "tiny", "--trials", "2", "--out", str(out))
    assert code == 0, err
    for contender in ("gta", "tvm-untuned", "onnxruntime", "torch"):
        assert re.search(rf"^\| {contender} \| [0-9.]+ \| [0-9]+% \| yes \|", text, re.M), text
    assert f"gta compile --model {out}/model.onnx --target avx512 --db {out}/gta" in text
    assert (out / "results.md").exists() and (out / "gta-report.json").exists()
    assert "gta: tuning tiny (2 trials)" in err


def test_demo_names_the_zoo_when_the_model_is_not_in_it(capsys, tmp_path):
    code, _, err = run(capsys, "demo", "--model", "alexnet", "--out", str(tmp_path))
    assert code == 2 and "not in the zoo" in err and "resnet18-128" in err
    assert "Traceback" not in err


def test_a_tuning_worker_whose_bench_stopped_exits_quietly():
    """Its reply cannot be delivered (the bench was killed): no traceback, exit status 0."""
    import subprocess
    import sys

    worker = subprocess.Popen(
        [sys.executable, "-c", "from gta_core.bench.tuning_worker import main; main()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker.stdout.close()  # the bench's end of the pipe is gone
    worker.stdin.write('{"contender": "gta"}\n')  # an invalid job: answered with an error
    worker.stdin.close()
    assert worker.wait(timeout=120) == 0
    assert "Traceback" not in worker.stderr.read()


def test_an_isolated_contender_runs_in_its_own_process_and_matches_the_reference(tmp_path):
    import os

    from gta_core.bench import BenchContext
    from gta_core.bench.isolated import ChildFailed, prepare_isolated
    from gta_core.plugins import default_registry

    registry = default_registry()
    ctx = BenchContext(target=registry.target("avx512"), trials=1, out=tmp_path,
                       registry=registry)
    workload = load_workload("gemm:M=16,N=32,K=8,dtype=float32")
    prepared = prepare_isolated("numpy", workload.spec, ctx)
    try:
        assert prepared.program.process.pid != os.getpid()
        expected = workload.expected(workload.random_inputs(seed=0))
        assert workload.mismatch(prepared.program.output(), expected) is None
        assert prepared.program.sample_us() > 0
    finally:
        prepared.program.close()
    assert not prepared.program.process.is_alive()
    with pytest.raises(ChildFailed, match="KeyError"):  # no such contender: said in one line
        prepare_isolated("nope", workload.spec, ctx)


def test_geomeans_are_also_given_per_dtype():
    report = BenchReport(
        suite="s", target="avx512", machine="m", trials=1, repeat=1, contenders=["gta"],
        methods={}, workloads=[], geomean_ratio={"gta/torch": 1.5},
        geomean_workloads={"gta/torch": 2}, load_average=[0.0], seconds=0.0, complete=True,
        geomean_by_dtype={"int8": {"gta/torch": 3.0}, "float32": {"gta/torch": 0.75}},
        geomean_workloads_by_dtype={"int8": {"gta/torch": 1}, "float32": {"gta/torch": 1}})
    assert geomean_lines(report) == ["- gta/torch: 1.50x over 2 workload(s)",
                                     "- int8: gta/torch 3.00x (1)",
                                     "- float32: gta/torch 0.75x (1)"]
