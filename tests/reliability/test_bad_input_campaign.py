"""Bad input wherever a user types a value or hands a file: models, record folders, output
paths, flags, specs, the environment. Each is one line naming the bad value, exit 2, no
traceback, and nothing written (the folder it ran in is as it was)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from gta_core.cli import main

GEMM = "gemm:M=16,N=16,K=16,dtype=int8"


def _model(path: Path, op: str = "Relu", shape=(1, 4, 8, 8)) -> None:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture
def files(tmp_path) -> Path:
    """The inputs the cases hand over, written before the case runs."""
    _model(tmp_path / "model.onnx")
    good = (tmp_path / "model.onnx").read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.onnx").write_text("not a model\n")
    (tmp_path / "empty.onnx").write_bytes(b"")
    _model(tmp_path / "unsupported.onnx", op="NoSuchOperator")
    _model(tmp_path / "open.onnx", shape=("batch", 4, 8, 8))
    _model(tmp_path / "zero.onnx", shape=(0, 4, 8, 8))
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "db").mkdir()
    return tmp_path


TUNE = ["tune", "--target", "avx512", "--trials", "2", "--db", "db"]
MODEL = [*TUNE, "--model"]
SPEC = [*TUNE, GEMM]
COMPILE = ["compile", GEMM, "--db", "db", "--out"]
BENCH = ["bench", "--suite", "ci", "--out", "out"]

# (argv, environment, what the one line must say)
CASES = [
    # models
    ([*MODEL, "text.onnx"], {}, "text.onnx is not an ONNX model"),
    ([*MODEL, "truncated.onnx"], {}, "truncated.onnx is not an ONNX model"),
    ([*MODEL, "empty.onnx"], {}, "empty.onnx is not an ONNX model"),
    ([*MODEL, "missing.onnx"], {}, "missing.onnx: no such file"),
    ([*MODEL, "unsupported.onnx"], {}, "does not support: NoSuchOperator"),
    ([*MODEL, "open.onnx"], {}, "has no fixed shape"),
    ([*MODEL, "zero.onnx"], {}, "has no fixed shape (?x4x8x8)"),  # ONNX reads 0 as unknown
    ([*MODEL, "db"], {}, "db is not an ONNX model"),
    ([*MODEL, "model.onnx", "--input-shape", "x=1xAx8x8"], {}, "is not NAME=DIMxDIM"),
    ([*MODEL, "model.onnx", "--input-shape", "x=1x0x8x8"], {}, "is not NAME=DIMxDIM"),
    ([*MODEL, "model.onnx", "--input-shape", "z=1x4x8x8"], {}, "'z', which is not an input"),
    ([*MODEL, "model.onnx", "--input-shape", "x=2x4x8x8"], {}, "does not fit"),
    ([*MODEL, "open.onnx", "--input-shape", "x=1x4x8x8", "--input-shape", "x=1x4x8x8"], {},
     "gives 'x' twice"),
    ([*MODEL, "model.onnx", GEMM], {}, "one of the two"),
    ([*MODEL, "model.onnx", "--weights", "2"], {}, "--weights, --report and --arch are for"),
    (["compile", "--model", "text.onnx", "--db", "db", "--out", "m.so"], {}, "not an ONNX"),
    # record folders and output paths
    (["tune", GEMM, "--target", "avx512", "--trials", "2", "--db", "afile"], {}, "afile"),
    (["tune", GEMM, "--target", "avx512", "--trials", "2", "--db", "/proc/gta"], {},
     "cannot write there"),
    (["compile", GEMM, "--db", "afile", "--out", "ops.so"], {}, "afile"),
    (["compile", GEMM, "--db", "missing-db", "--out", "ops.so"], {}, "missing-db"),
    ([*COMPILE, "/nonexistent-gta/ops.so"], {}, "/nonexistent-gta"),
    ([*COMPILE, "db"], {}, "db"),
    (["bench", "--suite", "ci", "--out", "afile"], {}, "--out afile"),
    ([*SPEC, "--report", "/nonexistent-gta/r.md"], {}, "does not exist"),
    # flags
    ([*SPEC, "--build-timeout", "0"], {}, "--build-timeout: must be a positive number"),
    ([*SPEC, "--run-timeout", "-1"], {}, "--run-timeout: must be a positive number"),
    ([*SPEC, "--run-timeout", "nan"], {}, "--run-timeout: must be a positive number"),
    ([*SPEC, "--cost-model", "oracle"], {}, "oracle"),
    ([*SPEC, "--weights", "1,nan"], {}, "--weights"),
    ([*SPEC, "--rpc", "tracker=localhost:0,key=k"], {}, "bad RPC spec"),
    ([*SPEC, "--rpc", "tracker=127.0.0.1:1,key=k"], {}, "cannot be reached"),
    (["tune", "--target", "avx512", "--trials", "2", "--db", "db"], {}, "one of the two"),
    (["compile", "--db", "db", "--out", "m.so"], {}, "specs or --model FILE.onnx, one of"),
    (["bench", "--suite", "nope", "--out", "out"], {}, "nope"),
    ([*BENCH, "--baselines", "oracle"], {}, "oracle"),
    ([*BENCH, "--trials", "0"], {}, "--trials"),
    ([*BENCH, "--quiet-wait", "-1"], {}, "--quiet-wait"),
    ([*BENCH, "--repeat", "0"], {}, "--repeat"),
    (["bench", "--suite", "net-resnet18", "--first", "2", "--out", "out"], {},
     "--first and --one-process are for operator suites"),
    (["check-plugin", "gta-nope"], {}, "gta-nope"),
    # specs
    (["describe", "gemm:M=0,N=1,K=1"], {}, "M"),
    (["describe", "gemm:M=1,N=1,K=1,dtype=int4"], {}, "int4"),
    (["describe", "nosuchop:M=1"], {}, "nosuchop"),
    (["describe", "gemm:M=1,M=2,N=1,K=1"], {}, "M"),
    (["describe", "gemm M=1"], {}, "gemm M=1"),
    (["describe", "gemm:M=100000000000,N=1000,K=1000,dtype=int8"], {}, "GiB for its tensors"),
    # the environment
    (["describe", GEMM], {"TVM_NUM_THREADS": "many"}, "TVM_NUM_THREADS='many'"),
    ([*SPEC], {"GTA_PLUGINS": "gta-nope"}, "gta-nope"),
]


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("argv", "environ", "message"), CASES,
                         ids=[f"{i:02d}-{c[2][:30]}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, environ, message, files,
                                                         monkeypatch, capsys):
    monkeypatch.chdir(files)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    before = _tree(files)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("gta: error: "), err
    assert message in err and "Traceback" not in err
    assert _tree(files) == before, "a refused command wrote files"
    assert out == ""


def test_the_campaign_keeps_at_least_forty_cases():
    assert len(CASES) >= 40
