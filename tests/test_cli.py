"""The `gta` command: output contract and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gta_avx512.plugin import AMX_INTRINSICS

from gta_core.cli import main

AMX_NAMES = {i.name for i in AMX_INTRINSICS}  # registered only where the host has the tiles


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plugins_json_lists_the_three_plugins_targets_and_intrinsics(capsys):
    code, out, err = run(capsys, "plugins", "--json")
    assert code == 0
    report = json.loads(out)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert {"gta-avx512", "gta-cuda-tc", "gta-rules"} <= set(plugins)
    assert [t["name"] for t in plugins["gta-avx512"]["targets"]] == ["avx512"]
    assert [t["name"] for t in plugins["gta-cuda-tc"]["targets"]] == ["cuda-tc"]
    avx = {i["name"]: i for i in plugins["gta-avx512"]["intrinsics"]}
    assert avx["vnni"]["shape"] == {"i": 16, "k": 4}
    assert avx["vnni"]["inputs"] == ["uint8", "int8"] and avx["vnni"]["output"] == "int32"
    assert avx["bf16"]["shape"] == {"i": 16, "k": 2}
    cuda = {i["name"] for i in plugins["gta-cuda-tc"]["intrinsics"]}
    assert {"wmma-m16n16k16-f16f32", "wmma-m32n8k16-f16f16", "wmma-m8n32k16-f16f32",
            "wmma-m16n16k16-s8s32", "mma-m16n8k16-f16f32"} <= cuda
    assert [r["name"] for r in plugins["gta-rules"]["rules"]] == ["packing-at-tile"]
    assert plugins["gta-rules"]["constraints"][0]["description"]
    assert "gemm" in {o["name"] for o in plugins["gta-core.workloads"]["operators"]}
    assert report["failures"] == []


def test_plugins_table_is_readable(capsys):
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    assert "target avx512" in out and "vnni" in out and "uint8 x int8 -> int32" in out


def test_describe_shows_tensors_work_and_fitting_intrinsics(capsys):
    code, out, _ = run(capsys, "describe", "gemm:M=512,N=512,K=512,dtype=int8",
                       "--target", "avx512", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["workload"] == "gemm:M=512,N=512,K=512,dtype=int8"
    assert report["flops"] == 2 * 512**3
    assert [t["dtype"] for t in report["inputs"]] == ["uint8", "int8"]
    # By dtype: the elementwise u8 x s8 intrinsic fits too (though no GEMM loop maps onto it).
    assert {i["name"] for i in report["intrinsics"]} == {"vnni", "vnni-act-lanes", "mac16-u8s8",
                                                        "mac16-u8s8-bcast", "vnni-window",
                                                        "vnni-lanes", "vnni-dot", *AMX_NAMES}


def test_mappings_json_lists_every_candidate_with_status_reason_axes_and_padding(capsys):
    code, out, _ = run(capsys, "mappings", "conv2d:N=1,C=8,H=10,W=10,K=16,R=3,S=3,pad=1,dtype=int8",
                       "--target", "avx512", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["workload"].startswith("conv2d:N=1,C=8") and report["target"] == "avx512"
    rows = report["mappings"]
    assert {"id", "status", "reason", "intrinsic", "axes", "padding"} <= set(rows[0])
    assert {r["status"] for r in rows} == {"kept", "pruned"}
    assert all(r["reason"] for r in rows if r["status"] == "pruned")
    assert {"vnni", "vnni-act-lanes", "mac16-u8s8-bcast"} == {
        r["intrinsic"] for r in rows if r["status"] == "kept"}
    # u8 x s8 lanes from a reduction (rfactor) are listed too, pruned: not contiguous here.
    assert all(r["rfactor"] and r["status"] == "pruned"
               for r in rows if r["intrinsic"] == "mac16-u8s8")


@pytest.mark.runs("avx512")
def test_mappings_check_realises_and_reports_throughput(capsys):
    code, out, err = run(capsys, "mappings", "gemm:M=32,N=32,K=32,dtype=int8", "--target",
                         "avx512", "--check")
    assert code == 0
    amx = len(AMX_INTRINSICS)  # where the host has AMX: one mapping each, all padding here
    assert f"{6 + amx} candidates, 3 kept" in out and "G/s untuned" in out
    assert "(rfactor)" in out  # the pruned mac16-u8s8 candidate, lanes from k
    assert "window B[4*i + k] needs" in out  # vnni-dot: K does not run along B's rows
    assert "checking vnni-" in err  # progress goes to stderr


def test_mappings_on_cuda_tc_list_every_candidate_with_its_reason(capsys):
    code, out, _ = run(capsys, "mappings", "gemm:M=64,N=64,K=64,dtype=float16", "--target",
                       "cuda-tc", "--json", "--check")
    assert code == 0
    rows = json.loads(out)["mappings"]
    intrinsics = {r["intrinsic"] for r in rows}
    assert {"wmma-m16n16k16-f16f32", "mma-m16n8k16-f16f32"} <= intrinsics
    # --check builds each (wmma and mma.sync alike); with no GPU here none is run
    assert {r["status"] for r in rows} == {"kept"}
    assert all(r["compiled"] for r in rows)


def test_codegen_writes_cuda_and_reports_json(capsys, tmp_path):
    out_file = tmp_path / "gemm.cu"
    code, out, err = run(capsys, "codegen", "gemm:M=128,N=128,K=128,dtype=float16", "--target",
                         "cuda-tc", "--arch", "sm_90", "--seed", "2", "--out", str(out_file),
                         "--json")
    assert code == 0
    result = json.loads(out)
    assert result["target"] == "cuda-tc" and result["arch"] == "sm_90"
    assert result["instructions"] == ["wmma::mma_sync"] and result["source"] == str(out_file)
    assert result["mapping"].startswith("wmma-") and result["seed"] >= 2
    assert f"mapping {result['mapping']}, seed {result['seed']}" in err  # on stderr
    assert "wmma::mma_sync" in out_file.read_text()


@pytest.mark.runs("avx512")
def test_peak_measures_every_avx512_intrinsic_but_mac16_which_says_why(capsys):
    code, out, _ = run(capsys, "peak", "--target", "avx512", "--json")
    assert code == 0
    rows = {p["intrinsic"]: p for p in json.loads(out)["peaks"]}
    peaks = {name: row["measurement"] for name, row in rows.items() if row["measurement"]}
    assert set(peaks) == {"vnni", "vnni-act-lanes", "bf16", "fma", "fma16-elementwise",
                          "vnni-window", "vnni-lanes", "vnni-dot", *AMX_NAMES}
    assert all(m["gops"] > 0 and m["cores"] >= 1 for m in peaks.values())
    assert peaks["vnni"]["gops"] > peaks["fma"]["gops"]
    assert rows["mac16-u8s8"]["measurement"] is None and "hoists" in rows["mac16-u8s8"]["skipped"]


BAD_INPUTS = [
    (["describe", ""], "empty workload spec"),
    (["describe", "matmul:M=1"], "unknown operator 'matmul'"),
    (["describe", "gemm:M=1,N=1,K=1,Q=2"], "unknown key 'Q'"),
    (["describe", "gemm:M=1,N=1"], "missing key 'K'"),
    (["describe", "gemm:M=x,N=1,K=1"], "M='x'"),
    (["describe", "gemm:M=0,N=1,K=1"], "M='0'"),
    (["describe", "gemm:M=1,N=1,K=1,dtype=int4"], "dtype='int4'"),
    (["describe", "conv2d:N=1,C=3,H=4,W=4,K=8,R=3,S=3,stride=0"], "stride='0'"),
    (["describe", "conv2d:N=1,C=3,H=2,W=2,K=8,R=5,S=5,pad=1"], "larger than the padded input"),
    (["describe", "gemm:M=1,N=1,K=1", "--target", "tpu"], "unknown target 'tpu'"),
    (["describe"], "the following arguments are required: spec"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["mappings", "gemm:M=1,N=1,K=1"], "the following arguments are required: --target"),
    (["mappings", "gemm:M=1,N=1,K=1", "--target", "tpu"], "unknown target 'tpu'"),
    (["mappings", "gemm:M=1,N=1", "--target", "avx512"], "missing key 'K'"),
    (["peak", "--target", "cuda-tc"], "can measure the intrinsics of cuda-tc"),
    (["peak", "--target", "tpu"], "unknown target 'tpu'"),
    (["codegen", "gemm:M=16,N=16", "--target", "cuda-tc", "--out", "k.cu"], "missing key 'K'"),
    (["codegen", "gemm:M=16,N=16,K=16,dtype=float16", "--target", "avx512", "--out", "k.cu"],
     "avx512 is a cpu target; codegen writes CUDA for GPU targets (loaded: cuda-tc)"),
    (["codegen", "gemm:M=16,N=16,K=16,dtype=float16", "--target", "cuda-tc", "--out",
      "/nonexistent-gta-dir/k.cu"], "--out /nonexistent-gta-dir/k.cu: cannot write there"),
    (["codegen", "gemm:M=16,N=16,K=16,dtype=float16", "--target", "cuda-tc", "--mapping",
      "wmma-nope", "--out", "/tmp/gta-cli-test-unwritten.cu"], "unknown mapping 'wmma-nope'"),
    (["codegen", "gemm:M=16,N=16,K=16,dtype=float16", "--target", "cuda-tc", "--arch", "sm_70",
      "--out", "/tmp/gta-cli-test-unwritten.cu"], "no arch 'sm_70'"),
    (["codegen", "gemm:M=16,N=16,K=16", "--target", "cuda-tc"],
     "the following arguments are required: --out"),
    ([], "the following arguments are required: command"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_a_user_error_is_one_line_with_exit_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("gta: error: ")
    assert message in err


GTA = Path(sys.executable).with_name("gta")


@pytest.mark.skipif(not GTA.exists(), reason="the gta console script is not installed")
def test_the_console_script_reports_its_version_and_errors_without_traceback():
    version = subprocess.run([GTA, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gta 0.1")
    bad = subprocess.run([GTA, "describe", "gemm:M=1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (
        "gta: error: gemm: missing key 'N'; keys: M, N, K, dtype, out_dtype, weights")


def test_a_reader_that_stops_early_is_not_an_error():
    """`gta ... --json | head -1`: the closed pipe ends gta quietly, with status 0."""
    import subprocess
    import sys

    gta = subprocess.Popen([sys.executable, "-m", "gta_core.cli", "plugins", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gta.stdout.close()  # before gta has started writing (its imports take a while)
    assert gta.wait(timeout=120) == 0
    assert "Traceback" not in gta.stderr.read()
