"""The contenders of ``gta bench``: each turns a workload into a program to check and time.

Tuning contenders (``gta``, ``metaschedule``, ``metaschedule-vnni``) tune into their own
directory under the bench's ``--out`` DIR (in a child process, see tuning_worker) and each
tuning part is logged in ``DIR/tuned.json``, so a rerun tunes only what is unfinished.
Library contenders (``torch``, ``numpy``, ``onnxruntime``, ``onnxruntime-qlinear``) call the
library on the same inputs, writing into an output allocated once where the library lets
them. Every program is checked against the numpy reference by the caller before it is
timed (``onnxruntime-qlinear``, which requantises, against the requantised reference).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from ..host import cpu_cores
from ..mapping.realise import ensure_registered
from ..measure import MeasureSettings, garbage_output
from ..models import Intrinsic, Target
from ..plugins import Registry
from ..workloads import Workload
from . import im2col, metaschedule, onnx_runtime
from .programs import CallableProgram, Program, TVMProgram
from .tuned import TunedLog, TuningEntry


@dataclass
class BenchContext:
    """What every contender may use: the target, the budget, where records go."""

    target: Target
    trials: int
    out: Path
    registry: Registry
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    progress: Callable[[str], None] = lambda text: None

    @property
    def tuned_path(self) -> Path:
        return self.out / "tuned.json"


class ContenderJob(BaseModel):
    """One contender on one workload, as a child process gets it (tuning_worker, isolated):
    enough to make the bench's context again there."""

    contender: str
    workload: str
    target: str
    trials: int
    out: str
    measure: MeasureSettings

    @classmethod
    def of(cls, contender: str, workload: str, ctx: BenchContext) -> ContenderJob:
        return cls(contender=contender, workload=workload, target=ctx.target.name,
                   trials=ctx.trials, out=str(ctx.out), measure=ctx.measure)

    def remake(self) -> tuple[Contender, Workload, BenchContext]:
        """The contender, workload and context in this process (the default registry)."""
        from ..plugins import default_registry
        from ..workloads import parse_workload

        registry = default_registry()
        ctx = BenchContext(target=registry.target(self.target), trials=self.trials,
                           out=Path(self.out), registry=registry, measure=self.measure)
        return (CONTENDERS[self.contender](), parse_workload(self.workload, registry.operators),
                ctx)


@dataclass
class Prepared:
    """A contender's program for a workload (None when it produced none, with why)."""

    program: Program | None
    note: str | None = None
    trials: int | None = None
    tuning_seconds: float | None = None


def slug(spec: str) -> str:
    """A directory name for a workload spec."""
    return spec.replace(":", "_").replace(",", "_").replace("=", "")


class Contender(ABC):
    """One way to compute a workload. Subclasses set ``name`` and ``method``."""

    name: ClassVar[str]
    method: ClassVar[str]  # how it computes, in one sentence, for the report

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        """Why this contender has no program for ``workload``; None when it has one."""
        return None

    @abstractmethod
    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        """The contender's program for ``workload`` bound to ``inputs``."""


class TuningContender(Contender):
    """A tuner: tunes each workload once up to the budget, then hands its best program over."""

    def records_dir(self, workload: Workload, ctx: BenchContext) -> Path:
        return ctx.out / self.name / slug(workload.spec)

    def tuned(self, workload: Workload, ctx: BenchContext) -> TuningEntry:
        """What ``DIR/tuned.json`` says this contender spent on ``workload``."""
        return TunedLog.load(ctx.tuned_path).entry(self.name, workload.spec)

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        """The best program tuned so far (tuning itself is :func:`run.tune_all`'s job)."""
        where = self.records_dir(workload, ctx)
        entry = self.tuned(workload, ctx)
        program = self.best_program(workload, where, ctx, entry.chosen)
        return Prepared(
            program=TVMProgram(program, workload, ctx.target, inputs) if program else None,
            note=None if program else "no candidate built and ran",
            trials=self.measured(where), tuning_seconds=entry.seconds)

    @abstractmethod
    def tune(self, workload: Workload, where: Path, ctx: BenchContext) -> str | None:
        """Tune up to ``ctx.trials`` into ``where``; returns the tuner's own pick, if any."""

    @abstractmethod
    def best_program(self, workload: Workload, where: Path, ctx: BenchContext,
                     chosen: str | None) -> Any:
        """The best tuned program (PrimFunc or IRModule), or None."""

    @abstractmethod
    def measured(self, where: Path) -> int:
        """Candidates measured into ``where`` so far."""

    @abstractmethod
    def history(self, where: Path) -> list[tuple[float | None, float | None]]:
        """``(epoch time, latency_us or None if it failed)`` per measured candidate."""


class GTA(TuningContender):
    name = "gta"
    method = ("gta_core.tune: every kept intrinsic mapping, GTA's generation rules and "
              "constraints, its scheduler and cost model; the program is its final pick, "
              "the fastest of its 4 best records timed again side by side")

    def tune(self, workload: Workload, where: Path, ctx: BenchContext) -> str | None:
        from ..tuning import tune

        report = tune([workload.spec], ctx.target.name, ctx.trials, where,
                      measure=ctx.measure, registry=ctx.registry)
        return report.tasks[0].mapping

    def best_program(self, workload: Workload, where: Path, ctx: BenchContext,
                     chosen: str | None) -> Any:
        from ..database import RecordStore
        from ..final_pick import picked_record

        for intrinsic in ctx.registry.intrinsics_for(ctx.target.name):
            ensure_registered(intrinsic)  # replaying a trace tensorizes with them
        store = RecordStore(where)
        record = picked_record(store)  # what GTA re-timed, checked and reported
        if record is None:  # records tuned before the final pick existed
            ok = [r for r in store.records() if r.ok]
            ok = [r for r in ok if r.mapping == chosen] or ok
            record = min(ok, key=lambda r: r.latency_us) if ok else None
        return store.schedule(record).mod if record else None

    def measured(self, where: Path) -> int:
        from ..database import RecordStore

        return len(RecordStore(where).records()) if where.exists() else 0

    def history(self, where: Path) -> list[tuple[float | None, float | None]]:
        from ..database import RecordStore

        if not where.exists():
            return []
        return [(r.time, r.latency_us if r.ok else None) for r in RecordStore(where).records()]


class MetaSchedule(TuningContender):
    name = "metaschedule"
    method = ("TVM MetaSchedule (evolutionary search, XGBoost cost model) with TVM's default "
              "CPU rules; for int8 its generic rules without an intrinsic, because TVM's own "
              "VNNI intrinsic (dot_16x4_vnni) fails LLVM verification with this LLVM and its "
              "vpmaddubsw one (dot_16x4_avx512) saturates int16, giving wrong results on "
              "full-range u8 x s8 data")

    def space(self, workload: Workload, ctx: BenchContext) -> Any:
        return metaschedule.generic_space() if workload.params.dtype == "int8" else None

    def tune(self, workload: Workload, where: Path, ctx: BenchContext) -> str | None:
        metaschedule.tune(workload.prim_func(), ctx.target, where, ctx.trials,
                          self.space(workload, ctx), ctx.measure)
        return None

    def best_program(self, workload: Workload, where: Path, ctx: BenchContext,
                     chosen: str | None) -> Any:
        sch = metaschedule.best_schedule(workload.prim_func(), ctx.target, where)
        return sch.mod if sch is not None else None

    def measured(self, where: Path) -> int:
        return metaschedule.measured(where)

    def history(self, where: Path) -> list[tuple[float | None, float | None]]:
        return metaschedule.history(where)


class MetaScheduleVNNI(MetaSchedule):
    name = "metaschedule-vnni"
    method = ("TVM MetaSchedule with its auto-tensorization rule (MultiLevelTilingWithIntrin) "
              "driving GTA's working VNNI intrinsic: the strongest TensorIR baseline; int8 "
              "only, and n/a on a workload none of whose design spaces the rule tensorizes "
              "(checked per workload by generating them: it would tune scalar programs)")
    INTRINSIC = "gta_avx512_vnni_16x4"
    TENSORIZES = "tensorizes.json"  # per target and workload: whether its space tensorizes

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        if workload.params.dtype != "int8":
            return "int8 only: the VNNI intrinsic computes u8 x s8 -> s32"
        if self.intrinsic(ctx) is None:
            return f"target {ctx.target.name} has no {self.INTRINSIC} intrinsic"
        if not self.tensorizes(workload, ctx):
            return (f"n/a: MetaSchedule's auto-tensorization rule cannot tensorize "
                    f"{workload.operator.name} (MultiLevelTilingWithIntrin with "
                    f"{self.INTRINSIC}: no design space it generates for this workload "
                    f"carries the {metaschedule.AUTO_TENSORIZE} annotation, so it would "
                    "tune scalar programs)")
        return None

    def tensorizes(self, workload: Workload, ctx: BenchContext) -> bool:
        """Whether this contender's design space tensorizes ``workload``: decided once per
        target and workload by generating it, and kept in ``DIR/metaschedule-vnni/``."""
        path = ctx.out / self.name / self.TENSORIZES
        known = json.loads(path.read_text()) if path.exists() else {}
        key = f"{ctx.target.name} {workload.spec}"
        if key not in known:
            known[key] = metaschedule.tensorizes(workload.prim_func(), ctx.target,
                                                 self.space(workload, ctx))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
        return known[key]

    def intrinsic(self, ctx: BenchContext) -> Intrinsic | None:
        return next((i for i in ctx.registry.intrinsics_for(ctx.target.name)
                     if i.tvm_intrinsics.get("compute") == self.INTRINSIC), None)

    def space(self, workload: Workload, ctx: BenchContext) -> Any:
        ensure_registered(self.intrinsic(ctx))  # imports the plugin module registering it
        return metaschedule.vnni_space(self.INTRINSIC)

    def best_program(self, workload: Workload, where: Path, ctx: BenchContext,
                     chosen: str | None) -> Any:
        ensure_registered(self.intrinsic(ctx))  # replaying its traces tensorizes with it
        return super().best_program(workload, where, ctx, chosen)


def bench_cores(ctx: BenchContext) -> int:
    """The threads a library contender runs on: the target's cores, else this process's."""
    return ctx.target.resources.cores or cpu_cores()


class Torch(Contender):
    name = "torch"
    method = ("PyTorch on the CPU (oneDNN), torch.set_num_threads(the target's cores), timed "
              "like the other library calls (the median of repeats of back-to-back calls): "
              "float32 GEMM / batched GEMM / GEMV as torch.matmul / torch.bmm / torch.mv "
              "with out= into one output tensor, filled with garbage before the check; int8 "
              "GEMM as torch._int_mm(out=) on the u8 activations as they are (this torch's "
              "CPU kernel takes u8 x s8 and is exact, and was faster than shifting them to "
              "s8), batched int8 GEMM as a loop of it into slices of the output, int8 GEMV as "
              "it on [1, K] x A^T (a transposed view); convolutions through "
              "torch.nn.functional, which has no out= and allocates its output in every "
              "call; no int8 convolution (torch's quantized ones requantise to 8 bits). "
              "OMP_WAIT_POLICY=PASSIVE unless set (gta_core.host.quiet_idle_threads): idle "
              "OpenMP workers otherwise spin and stall the TVM programs timed after them")

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        if not _import_torch():
            return "torch is not installed (pip install 'gta-core[bench]')"
        return _torch_call(workload, None)[2]

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        import torch

        torch.set_num_threads(bench_cores(ctx))
        run, out, _ = _torch_call(workload, inputs)
        return Prepared(program=CallableProgram(run, lambda t: t.numpy(), out=out))


def _import_torch() -> bool:
    """Whether torch is installed (import gta_core set its OpenMP wait policy before it loads)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


TORCH_INT8_CONV = ("n/a: torch has no int8 convolution with the exact int32 output (its "
                   "quantized x86 convolution, torch.ops.quantized.conv2d, requantises to "
                   "quint8)")


def _torch_call(workload: Workload, inputs: list[np.ndarray] | None
                ) -> tuple[Callable[[], Any] | None, np.ndarray | None, str | None]:
    """``(call, out, None)`` for the PyTorch form of ``workload`` on ``inputs``: ``call``
    writes into ``out`` (garbage-filled) where the op has out=, else ``out`` is None and it
    returns a new tensor; ``(None, None, why)`` when there is none."""
    import torch
    import torch.nn.functional as F

    p, op, dtype = workload.params, workload.operator.name, workload.params.dtype
    if dtype not in ("int8", "float32"):
        return None, None, (f"no torch path wired for dtype {dtype} (the suites use int8 "
                            "and float32)")
    if dtype == "int8" and op not in ("gemm", "batch_gemm", "gemv"):
        return None, None, TORCH_INT8_CONV
    int8 = dtype == "int8"

    def batched_int_mm(a, w, o):
        for i in range(a.shape[0]):
            torch._int_mm(a[i], w[i], out=o[i])

    writes: dict[str, Callable[..., Any]] = {  # (inputs..., out)
        "gemm": (lambda a, b, o: torch._int_mm(a, b, out=o)) if int8
        else (lambda a, b, o: torch.matmul(a, b, out=o)),
        "batch_gemm": batched_int_mm if int8 else (lambda a, w, o: torch.bmm(a, w, out=o)),
        "gemv": (lambda x, a, o: torch._int_mm(x[None], a.t(), out=o[None])) if int8
        else (lambda x, a, o: torch.mv(a, x, out=o)),
    }
    returns: dict[str, Callable[..., Any]] = {  # (inputs...) -> a new tensor
        "conv1d": lambda x, w: F.conv1d(x, w, stride=p.stride, padding=p.pad,
                                        dilation=p.dilation),
        "conv2d": lambda x, w: F.conv2d(x, w, stride=p.stride, padding=p.pad,
                                        dilation=p.dilation, groups=p.groups),
        "depthwise_conv2d": lambda x, w: F.conv2d(x, w[:, None], stride=p.stride,
                                                  padding=p.pad, dilation=p.dilation,
                                                  groups=p.C),
        "conv3d": lambda x, w: F.conv3d(x, w, stride=p.stride, padding=p.pad),
        "conv2d_transpose": lambda x, w: F.conv_transpose2d(x, w, stride=p.stride,
                                                            padding=p.pad),
    }
    if op not in writes and op not in returns:
        return None, None, f"no torch path for operator {op}"
    if inputs is None:
        return None, None, None
    tensors = [torch.from_numpy(x) for x in inputs]
    if op in returns:
        call = returns[op]
        return (lambda: call(*tensors)), None, None
    out = garbage_output(workload)
    tensors.append(torch.from_numpy(out))  # shares out's memory
    write = writes[op]
    return (lambda: write(*tensors)), out, None


class Numpy(Contender):
    name = "numpy"
    method = ("numpy, each call writing into one output array (garbage-filled before the "
              "check): GEMM / batched GEMM / GEMV as np.matmul(out=) in the accumulator "
              "dtype (float32 BLAS; int8 operands cast to int32 inside the call: numpy has "
              "no int8 BLAS, and its int32 matmul is its own loop, not BLAS); convolutions "
              "as im2col (the input zero-padded into a buffer, its windows from "
              "sliding_window_view copied into a column matrix) and one np.matmul(out=) per "
              "group batch, transposed ones on the zero-stuffed input with the flipped "
              "kernel (bench/im2col.py); OPENBLAS_THREAD_TIMEOUT=4 unless set "
              "(gta_core.host.quiet_idle_threads): idle OpenBLAS workers otherwise spin "
              "and stall the TVM programs timed after them")

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        acc = np.dtype(workload.params.acc_dtype)
        op = workload.operator.name
        if op in im2col.CONVOLUTIONS:
            call, out = im2col.im2col_conv(workload, inputs)
            return Prepared(CallableProgram(call, out=out))
        if op not in ("gemm", "batch_gemm", "gemv"):
            raise ValueError(f"no numpy path for operator {op}")
        left, right = inputs if op != "gemv" else inputs[::-1]  # gemv: y = A @ x
        out = garbage_output(workload)

        def call() -> None:
            np.matmul(left.astype(acc, copy=False), right.astype(acc, copy=False), out=out)

        return Prepared(CallableProgram(call, out=out))


class OnnxRuntime(Contender):
    name = "onnxruntime"
    method = ("ONNX Runtime on its CPU execution provider, a one-node ONNX model per "
              "workload with the weights bound as an input like the data (so ORT transforms "
              "them inside every timed call, as every TVM contender packs its weights inside "
              "its call; `onnxruntime-prepacked` has them as constants), intra-op threads = "
              "the target's cores, inter-op 1, ORT_ENABLE_ALL, idle workers not spinning; float32 "
              "through MatMul / Conv / ConvTranspose, int8 through MatMulInteger / "
              "ConvInteger (u8 x s8 -> s32, exactly GTA's output; no integer transposed "
              "convolution in ONNX). Timed: session.run_with_iobinding with input and output "
              "bound once (the output garbage-filled before the check; bench/onnx_runtime.py)")
    FORM: ClassVar[onnx_runtime.Form] = "exact"
    PREPACK: ClassVar[bool] = False

    def form(self, workload: Workload) -> onnx_runtime.Form:
        return self.FORM

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        return onnx_runtime.skip_reason(workload, self.form(workload))

    def prepare(self, workload: Workload, inputs: list[np.ndarray],
                ctx: BenchContext) -> Prepared:
        form = self.form(workload)
        return Prepared(onnx_runtime.ort_program(workload, inputs, form, bench_cores(ctx),
                                                 prepack=self.PREPACK),
                        note=QLINEAR_NOTE if form == "qlinear" else None)


class OnnxRuntimeQLinear(OnnxRuntime):
    name = "onnxruntime-qlinear"
    method = ("ONNX Runtime as `onnxruntime`, int8 through QLinearMatMul / QLinearConv (its "
              "fast u8 x s8 paths), which do extra work and compute a different output: they "
              "requantise the int32 accumulators to u8 (saturate(round(acc / scale) + "
              "zero point), scale and zero point covering the reference's range), checked "
              "within 1 unit against numpy requantising GTA's reference; int8 only")
    FORM = "qlinear"


QLINEAR_NOTE = ("does extra work and computes a different output: requantised to u8, "
                "checked within 1 unit against the requantised reference")


class OnnxRuntimePrepacked(OnnxRuntime):
    name = "onnxruntime-prepacked"
    method = ("ONNX Runtime as deployed: the weights are constants of the model, which ORT "
              "prepacks once when the session starts, outside the timed call (every other "
              "contender transforms its weights inside its call); its strongest form per "
              "dtype: float32 MatMul / Conv / ConvTranspose, int8 QLinearMatMul / QLinearConv "
              "(requantised to u8, as `onnxruntime-qlinear`)")
    PREPACK = True

    def form(self, workload: Workload) -> onnx_runtime.Form:
        return "qlinear" if workload.params.dtype == "int8" else "exact"


PEAK = "peak"  # not a contender: the measured intrinsic peak, the fraction-of-peak denominator
CONTENDERS: dict[str, type[Contender]] = {
    c.name: c for c in (GTA, MetaSchedule, MetaScheduleVNNI, Torch, Numpy, OnnxRuntime,
                        OnnxRuntimeQLinear, OnnxRuntimePrepacked)}
