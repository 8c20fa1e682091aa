"""Each network contender, ready to run a model: built in a process of its own, timed there.

A contender's runner is made in a fresh (spawned) process, so its thread pools meet no other
library's (see :mod:`.isolated`); the parent asks it for an output (to check) or a timing
sample over a pipe and interleaves its rounds across contenders.

- ``gta``: the model compiled with GTA's best checked records (``gta compile``);
- ``metaschedule``: MetaSchedule's ``compile_relax`` over its ``tune_relax`` database;
- ``tvm-untuned``: ``tvm.compile`` with TVM's default CPU pipeline (no schedule);
- ``onnxruntime``: the ONNX file in an InferenceSession, CPU provider, threads = cores;
- ``torch``: the zoo's module in eager mode, threads = cores, under ``inference_mode``.

An int8 suite's ``X-fp32`` contenders are runner X on the float model (``.networks``).

Every runner takes the model's inputs as numpy arrays and returns its outputs as numpy
arrays; a sample is the median time of one call over enough calls to last ``SAMPLE_S``.
"""

from __future__ import annotations

import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..host import library_defaults
from .isolated import close_child
from .libraries import LIBRARY_CONTENDERS
from .tuning_worker import first_line

SAMPLE_S = 0.3  # a sample runs the model this long at least (one call if it takes longer)
MAX_CALLS = 50

NET_CONTENDERS = ("gta", "metaschedule", "tvm-untuned", "onnxruntime", "torch")
# An int8 suite's: the quantized model's (PyTorch's: the float model quantized by PyTorch,
# zoo.quantize_torch), then GTA and onnxruntime on the float model.
INT8_CONTENDERS = ("gta", "metaschedule", "tvm-untuned", "onnxruntime", "torch-int8",
                   "gta-fp32", "onnxruntime-fp32")
# Not a contender: PyTorch's reference model of torch-int8's quantization (its check's bound).
TORCH_INT8_REFERENCE = "torch-int8-reference"
# Contenders that run a library as it ships (its own thread settings: host.library_defaults).
LIBRARIES = LIBRARY_CONTENDERS | {"torch-int8"}


class RunnerFailed(RuntimeError):
    """A contender could not be prepared or run; the message is one line."""


def _vm_runner(executable, inputs: list[np.ndarray]) -> Callable[[], list[np.ndarray]]:
    import tvm
    from tvm import relax

    device = tvm.cpu()
    vm = relax.VirtualMachine(executable, device)
    main = vm["main"]
    args = [tvm.runtime.tensor(x, device) for x in inputs]

    def run() -> list[np.ndarray]:
        out = main(*args)
        return [out] if isinstance(out, tvm.runtime.Tensor) else list(out)

    return run


def make_runner(contender: str, job: dict[str, Any],
                inputs: list[np.ndarray]) -> Callable[[], list]:
    """A no-argument callable running ``contender`` on ``inputs``; its outputs are numpy
    arrays or TVM tensors (``.numpy()``). ``job``: model, onnx, out, target, cores."""
    from ..host import cpu_cores

    cores = job.get("cores") or cpu_cores()
    if contender in ("gta", "metaschedule", "tvm-untuned"):
        from ..frontends import load_onnx
        from ..plugins import default_registry

        # MetaSchedule and untuned TVM get the model as TVM imports it (a QDQ model's
        # layers in float); GTA gets its integer programs.
        model = load_onnx(job["onnx"], integer=contender == "gta")
        target = default_registry().target(job["target"])
        if contender == "gta":
            from ..model_compile import compile_model

            executable, _ = compile_model(model, job["target"], Path(job["out"]) / "gta")
        elif contender == "metaschedule":
            from .net_tuning import compile_metaschedule

            executable = compile_metaschedule(model, target, job["out"])
        else:
            import tvm

            executable = tvm.compile(model.mod, target=target.tvm_target())
        return _vm_runner(executable, inputs)
    if contender == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores
        if job.get("literal"):  # the graph as written: the yardstick of quantized checks
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(job["onnx"], options,
                                               providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(session.get_inputs(), inputs)}
        return lambda: session.run(None, feeds)
    if contender in ("torch", "torch-int8", TORCH_INT8_REFERENCE):
        import torch

        from .zoo import build_model, quantize_torch

        torch.set_num_threads(cores)
        module = (build_model(job["model"]) if contender == "torch" else quantize_torch(
            job["model"], reference=contender == TORCH_INT8_REFERENCE))
        tensors = [torch.from_numpy(x) for x in inputs]

        def run() -> list:
            with torch.inference_mode():
                out = module(*tensors)
            return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]

        return run
    raise RunnerFailed(f"unknown network contender {contender!r}; known: "
                       f"{', '.join(NET_CONTENDERS)}")


def _numpy(outputs: list) -> list[np.ndarray]:
    return [o if isinstance(o, np.ndarray) else o.numpy() for o in outputs]


def sample_us(run: Callable[[], Any]) -> float:
    """One sample: the median time of a call, over calls lasting ``SAMPLE_S`` in all."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    calls = min(MAX_CALLS, max(1, math.ceil(SAMPLE_S / max(first, 1e-9))))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def serve(connection: Any, contender: str, job: dict[str, Any],
          inputs: list[np.ndarray]) -> None:
    """The child: make the runner, then answer ``output`` / ``sample`` until ``close``."""
    import gta_core  # noqa: F401 - thread settings before numpy, torch and TVM load

    try:
        run = make_runner(contender, job, inputs)
        run()  # warm up: first-call allocations and lazy initialisation
        connection.send(("ready", None))
    except Exception as exc:  # noqa: BLE001 - the parent reports the contender failed
        connection.send(("error", first_line(exc)))
        return
    while True:
        try:
            request = connection.recv()
        except EOFError:
            return
        if request == "close":
            return
        try:
            value = _numpy(run()) if request == "output" else sample_us(run)
            connection.send(("ok", value))
        except Exception as exc:  # noqa: BLE001
            connection.send(("error", first_line(exc)))


class NetRunner:
    """A contender's runner in a child process."""

    def __init__(self, contender: str, job: dict[str, Any], inputs: list[np.ndarray]) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.connection, child = spawn.Pipe()
        self.process = spawn.Process(target=serve, args=(child, contender, job, inputs),
                                     daemon=True)
        with library_defaults() if contender in LIBRARIES else nullcontext():
            self.process.start()
        child.close()
        self._answer()

    def _answer(self) -> Any:
        try:
            kind, value = self.connection.recv()
        except EOFError:
            self.close()
            raise RunnerFailed(f"its process died (exit status {self.process.exitcode})"
                               ) from None
        if kind == "error":
            self.close()
            raise RunnerFailed(value)
        return value

    def ask(self, request: str) -> Any:
        try:
            self.connection.send(request)
        except OSError:
            raise RunnerFailed("its process is gone") from None
        return self._answer()

    def close(self) -> None:
        close_child(self.connection, self.process)
