"""The contenders of ``gta bench``: each turns a workload into a program to check and time.

Tuning contenders (``gta``, ``metaschedule``, ``metaschedule-vnni``) tune into their own
directory under the bench's ``--out`` DIR (in a child process, see tuning_worker) and each
tuning part is logged in ``DIR/tuned.json``, so a rerun tunes only what is unfinished.
Library contenders (libraries.py: ``torch``, ``numpy``, the ``onnxruntime`` ones) call the
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

from ..mapping.realise import ensure_registered
from ..measure import MeasureSettings
from ..models import Intrinsic, Target
from ..plugins import Registry
from ..workloads import Workload
from . import metaschedule
from .programs import Program, TVMProgram
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
        from ..final_pick import in_bounds, picked_record

        for intrinsic in ctx.registry.intrinsics_for(ctx.target.name):
            ensure_registered(intrinsic)  # replaying a trace tensorizes with them
        store = RecordStore(where)
        record = picked_record(store)  # what GTA re-timed, checked and reported
        if record is None:  # records tuned before the final pick existed: the fastest
            ok = sorted((r for r in store.records() if r.ok),  # of the chosen mapping first
                        key=lambda r: (r.mapping != chosen, r.latency_us))
            record = next((r for r in ok if in_bounds(store, r)), None)
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
        from ..scheduler.space import generic_space

        return generic_space() if workload.params.dtype == "int8" else None

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
              "driving the target's u8 x s8 dot-product intrinsic (on avx512 GTA's working "
              "VNNI one, vpdpbusd): the strongest TensorIR baseline; int8 only, and n/a on a "
              "workload none of whose design spaces the rule tensorizes (checked per workload "
              "by generating them: it would tune scalar programs)")
    TENSORIZES = "tensorizes.json"  # per target and workload: whether its space tensorizes

    def skip_reason(self, workload: Workload, ctx: BenchContext) -> str | None:
        if workload.params.dtype != "int8":
            return "int8 only: the VNNI intrinsic computes u8 x s8 -> s32"
        intrinsic = self.intrinsic(ctx)
        if intrinsic is None:
            return (f"target {ctx.target.name} has no u8 x s8 dot-product intrinsic "
                    "(C[i] += A[k] * B[i, k], weights in lanes) for MetaSchedule to drive")
        if not self.tensorizes(workload, ctx):
            return (f"n/a: MetaSchedule's auto-tensorization rule cannot tensorize "
                    f"{workload.operator.name} (MultiLevelTilingWithIntrin with "
                    f"{intrinsic.tvm_intrinsics['compute']}: no design space it generates for "
                    f"this workload carries the {metaschedule.AUTO_TENSORIZE} annotation, so "
                    "it would tune scalar programs)")
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
        """The target's first intrinsic of MetaSchedule's VNNI form, read from its declared
        compute: ``C[i] s32 += A[k] u8 * B[i, k] s8``, the weights in the lanes."""
        return next((i for i in ctx.registry.intrinsics_for(ctx.target.name)
                     if _lane_dot_product(i) and "compute" in i.tvm_intrinsics), None)

    def space(self, workload: Workload, ctx: BenchContext) -> Any:
        intrinsic = self.intrinsic(ctx)
        ensure_registered(intrinsic)  # imports the plugin module registering it
        return metaschedule.vnni_space(intrinsic.tvm_intrinsics["compute"])

    def best_program(self, workload: Workload, where: Path, ctx: BenchContext,
                     chosen: str | None) -> Any:
        ensure_registered(self.intrinsic(ctx))  # replaying its traces tensorizes with it
        return super().best_program(workload, where, ctx, chosen)


def _lane_dot_product(intrinsic: Intrinsic) -> bool:
    compute = intrinsic.compute
    kinds = [v.kind for v in compute.iter_vars]
    if kinds != ["spatial", "reduce"] or len(compute.inputs) != 2:
        return False
    i, k = (v.name for v in compute.iter_vars)
    a, b = compute.inputs
    return ((a.dtype, a.indices, b.dtype, b.indices) == ("uint8", [k], "int8", [i, k])
            and (compute.output.dtype, compute.output.indices) == ("int32", [i]))


PEAK = "peak"  # not a contender: the measured intrinsic peak, the fraction-of-peak denominator
# The library contenders subclass Contender: imported once it is defined.
from .libraries import Numpy, OnnxRuntime, OnnxRuntimePrepacked, OnnxRuntimeQLinear, Torch  # noqa: E402
from .torch_prepacked import TorchPrepacked  # noqa: E402

CONTENDERS: dict[str, type[Contender]] = {
    c.name: c for c in (GTA, MetaSchedule, MetaScheduleVNNI, Torch, TorchPrepacked, Numpy,
                        OnnxRuntime, OnnxRuntimeQLinear, OnnxRuntimePrepacked)}
