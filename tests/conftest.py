"""Shared fixtures: small models built in the tests (no downloads). ``graphs.py`` beside
this file is importable from every test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))


def _weight(name: str, shape: tuple[int, ...], rng) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.uniform(-1, 1, shape).astype("float32"), name)


def residual_model(path, batch: int | str = 1, channels: int = 16) -> str:
    """conv3x3 + bias + relu, twice with the same shape (one task of weight 2), a 1x1 conv
    + residual add, global pooling, flatten, gemm: what the issue lists."""
    rng = np.random.default_rng(0)
    c = channels
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "x"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1),
    ]
    inits = [_weight("w1", (c, c, 3, 3), rng), _weight("b1", (c,), rng),
             _weight("w2", (c, c, 3, 3), rng), _weight("b2", (c,), rng),
             _weight("w3", (c, c, 1, 1), rng), _weight("b3", (c,), rng),
             _weight("wg", (10, c), rng), _weight("bg", (10,), rng)]
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          [batch, c, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example_registry(package: str):
    """A registry of the third-party example target in ``examples/<package>`` alone, loaded
    from there (not installed): what a user's ``pip install`` of it would register."""
    import importlib

    from gta_core.plugins import load

    folder = str(EXAMPLES / package)
    sys.path.insert(0, folder)
    try:
        plugin = importlib.import_module(f"{package}.plugin")
        yield load(environ={"GTA_PLUGINS": ""}, extra=[(package.replace("_", "-"), plugin)])
    finally:
        sys.path.remove(folder)


@pytest.fixture
def ctx(tmp_path):
    """A bench context for the avx512 target: one trial, its records under ``tmp_path``."""
    from gta_core.bench import BenchContext
    from gta_core.plugins import default_registry

    registry = default_registry()
    return BenchContext(target=registry.target("avx512"), trials=1, out=tmp_path,
                        registry=registry)


@pytest.fixture(scope="module")
def avx2_registry():
    """The AVX2 example target's registry (examples/gta_avx2)."""
    yield from _example_registry("gta_avx2")


@pytest.fixture(scope="module")
def arm_registry():
    """The Arm example target's registry (examples/gta_arm)."""
    yield from _example_registry("gta_arm")


@pytest.fixture
def compile_on_avx2(avx2_registry, tmp_path):
    """``compile_on_avx2(model)``: the model compiled for the AVX2 example with no records
    (TVM's default schedules) and checked against its framework, the report returned; the
    test skipped where this CPU cannot run the example's programs."""
    from gta_core.host import HostCannotRun
    from gta_core.model_compile import compile_model

    def compile_(model, db=None):
        if db is None:
            db = tmp_path / "empty-db"
            db.mkdir(exist_ok=True)
        try:
            return compile_model(model, "avx2", db, registry=avx2_registry)[1]
        except HostCannotRun as exc:
            pytest.skip(f"this CPU cannot run the avx2 example's programs: {exc}")

    return compile_


@pytest.fixture(scope="session")
def residual_onnx():
    """Writes the residual test model: ``residual_onnx(path, batch=1, channels=16)``."""
    return residual_model


@pytest.fixture
def small_torch_module():
    """A two-layer torch module: conv + ReLU, mean over space, linear; input (1, 8, 6, 6)."""
    import torch

    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.fc = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    return Small()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {seconds:.0f} s")
        time.sleep(0.2)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class RPCFarm:
    """A TVM RPC tracker and ``servers`` servers under ``key`` on localhost (server i pinned
    to core i when ``pin``); ``rpc`` is the ``--rpc`` value that reaches them."""

    def __init__(self, servers: int, key: str, pin: bool = False) -> None:
        from gta_core.host import cpu_cores

        self.key, self.pin = key, pin
        self.env = dict(os.environ, TVM_NUM_THREADS="1" if pin else str(cpu_cores()))
        self.tracker_port = _free_port()
        self.servers: list[subprocess.Popen] = []
        self.tracker = self._start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                                   str(self.tracker_port), "--port-end",
                                   str(self.tracker_port + 1))
        _wait(lambda: _accepts(self.tracker_port), "RPC tracker")
        for _ in range(servers):
            self.add_server()

    @property
    def rpc(self) -> str:
        return f"tracker=127.0.0.1:{self.tracker_port},key={self.key}"

    def listed(self) -> int:
        """How many servers the tracker lists under the key (0 when it cannot say)."""
        from tvm.s_tir import meta_schedule as ms

        from gta_core.measure.rpc import tracker_servers
        from gta_core.measure.settings import RPCUnavailable

        config = ms.runner.RPCConfig(tracker_host="127.0.0.1", tracker_port=self.tracker_port,
                                     tracker_key=self.key, session_timeout_sec=60)
        try:
            return tracker_servers(config)
        except RPCUnavailable:
            return 0

    def add_server(self) -> subprocess.Popen:
        core = len(self.servers) if self.pin else None
        port = _free_port()
        server = self._start("tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                             "--port-end", str(port + 100), "--tracker",
                             f"127.0.0.1:{self.tracker_port}", "--key", self.key, core=core)
        self.servers.append(server)
        count = len(self.servers)
        _wait(lambda: self.listed() >= count, "RPC server")
        return server

    def _start(self, *args: str, core: int | None = None) -> subprocess.Popen:
        # A session of its own: tracker and server each serve from a child process, which
        # killing the parent alone would leave running.
        pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
        return subprocess.Popen([sys.executable, "-m", *args, "--silent"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=pin)

    @staticmethod
    def kill(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def stop(self) -> None:
        for process in [*self.servers, self.tracker]:
            self.kill(process, signal.SIGTERM)


@pytest.fixture(scope="session")
def rpc_farm():
    """``rpc_farm(servers, key, pin=False)`` starts an :class:`RPCFarm`; all are stopped at
    the end of the session (or earlier by ``farm.stop()``)."""
    farms: list[RPCFarm] = []

    def start(servers: int = 1, key: str = "gta-test", pin: bool = False) -> RPCFarm:
        farms.append(RPCFarm(servers, key, pin))
        return farms[-1]

    yield start
    for farm in farms:
        farm.stop()


def two_blocks_model(path, channels: int = 16) -> str:
    """Two residual blocks (ResNet's basic block: conv3x3, ReLU, conv3x3, + input, ReLU),
    the second's residual input the first's output."""
    rng = np.random.default_rng(2)
    c, nodes, inits = channels, [], []
    source = "x"
    for n in range(2):
        nodes += [
            helper.make_node("Conv", [source, f"w{n}a", f"b{n}a"], [f"c{n}a"], pads=[1] * 4),
            helper.make_node("Relu", [f"c{n}a"], [f"r{n}a"]),
            helper.make_node("Conv", [f"r{n}a", f"w{n}b", f"b{n}b"], [f"c{n}b"], pads=[1] * 4),
            helper.make_node("Add", [f"c{n}b", source], [f"s{n}"]),
            helper.make_node("Relu", [f"s{n}"], [f"y{n}"]),
        ]
        inits += [_weight(f"w{n}a", (c, c, 3, 3), rng), _weight(f"b{n}a", (c,), rng),
                  _weight(f"w{n}b", (c, c, 3, 3), rng), _weight(f"b{n}b", (c,), rng)]
        source = f"y{n}"
    nodes.append(helper.make_node("Identity", [source], ["y"]))
    graph = helper.make_graph(
        nodes, "two_blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                            [1, c, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _token_model(path, name: str, nodes, inits, tokens: int, hidden: int) -> str:
    """``nodes`` as a checked ONNX model at ``path``: x and y both [1, tokens, hidden]."""
    def value(n: str):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, tokens, hidden])

    graph = helper.make_graph(nodes, name, [value("x")], [value("y")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def attention_model(path, tokens: int = 8, hidden: int = 16, relu: bool = True) -> str:
    """A projection with bias and ReLU, then a product of two activations (h @ h^T @ h),
    then a second projection: the MatMuls a quantized transformer holds. Without ``relu``,
    h is quantized with a zero point inside its range, as attention's Q, K and V are."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu" if relu else "Identity", ["a1"], ["h"]),
        helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["h", "ht"], ["s"]),
        helper.make_node("MatMul", ["s", "h"], ["c"]),
        helper.make_node("MatMul", ["c", "w2"], ["y"]),
    ]
    inits = [_weight("w1", (hidden, hidden), rng), _weight("b1", (hidden,), rng),
             _weight("w2", (hidden, hidden), rng)]
    return _token_model(path, "attention", nodes, inits, tokens, hidden)


def ffn_model(path, tokens: int = 8, hidden: int = 16, inner: int = 64) -> str:
    """A transformer's feed-forward block: MatMul + bias, GELU as BERT's ONNX export writes
    it (``x * (1 + erf(x / sqrt 2)) * 0.5``: Div, Erf, Add, Mul, Mul), MatMul + bias."""
    rng = np.random.default_rng(3)

    def scalar(name: str, value: float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(value, dtype="float32"), name)

    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["g2"]),
        helper.make_node("Mul", ["g2", "half"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["y"]),
    ]
    inits = [_weight("w1", (hidden, inner), rng), _weight("b1", (inner,), rng),
             _weight("w2", (inner, hidden), rng), _weight("b2", (hidden,), rng),
             scalar("sqrt2", 2 ** 0.5), scalar("one", 1.0), scalar("half", 0.5)]
    return _token_model(path, "ffn", nodes, inits, tokens, hidden)


def quantized_model(float_path, path, operators: bool = False,
                    activations: str = "uint8") -> str:
    """``float_path`` quantized by onnxruntime (calibrated on random inputs; s8 weights per
    channel), as QDQ or, with ``operators``, as QLinearConv/QGemm/...: what users bring."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(float_path))
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}

    class Random(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.feeds = iter([{n: rng.standard_normal(s).astype("float32")
                                for n, s in inputs.items()} for _ in range(4)])

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(float_path), str(path), Random(),
                    quant_format=QuantFormat.QOperator if operators else QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8 if activations == "uint8"
                    else QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    return str(path)


@pytest.fixture(scope="session")
def model_makers():
    """The ONNX model writers above, for tests that combine them:
    ``.residual(path)``, ``.two_blocks(path)``, ``.attention(path)``, ``.ffn(path)``,
    ``.quantized(float_path, path, ...)``."""
    class Makers:
        residual = staticmethod(residual_model)
        attention = staticmethod(attention_model)
        ffn = staticmethod(ffn_model)
        two_blocks = staticmethod(two_blocks_model)
        quantized = staticmethod(quantized_model)

    return Makers
