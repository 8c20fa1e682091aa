"""``gta stages``: the stage times (:mod:`.stage_profile`) of the programs a database holds
for workload specs or for a model's functions, each against the measured peak of its
intrinsic's dtypes: the program as ``gta compile`` would build it (weights laid out ahead
of the call where they are constant), timed warm.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
from pydantic import BaseModel

from .model_compile import CompileError
from .plugins import Registry, default_registry
from .stage_profile import StageProfile, profile


class ProgramStages(BaseModel):
    program: str  # the workload spec, or the model's function
    calls: int = 1  # per inference, for a model's function
    mapping: str | None
    tuned_us: float | None  # as the record was timed while tuning
    gop: float  # the anchor's work per call: GFLOP, or GOP for integers
    peak_gops: float | None  # the fastest measured intrinsic computing the same dtypes
    peak_intrinsic: str | None
    profile: StageProfile

    def of_peak(self, us: float) -> float | None:
        """The fraction of the peak that ``gop`` in ``us`` microseconds is."""
        return self.gop * 1e6 / us / self.peak_gops if self.peak_gops and us > 0 else None

    @property
    def compute_us(self) -> float:
        return sum(s.us for s in self.profile.stages if s.kind == "compute")


class StagesReport(BaseModel):
    target: str
    machine: str
    programs: list[ProgramStages]


def _peaks(target: str, measure: bool) -> dict[str, float]:
    from .bench.run import measured_peaks

    return measured_peaks(target) if measure else {}


def _program(name: str, mapping: str | None, tuned_us: float | None, gop: float,
             measured: dict[str, float], registry: Registry, target: str,
             stages: StageProfile, calls: int = 1) -> ProgramStages:
    from .bench.hotspots import peak_for

    intrinsic, peak = peak_for(mapping, registry, target, measured)
    return ProgramStages(program=name, calls=calls, mapping=mapping, tuned_us=tuned_us,
                         gop=gop, peak_gops=peak, peak_intrinsic=intrinsic, profile=stages)


def spec_stages(specs: list[str], target: str, db: str | os.PathLike, peak: bool = True,
                registry: Registry | None = None) -> StagesReport:
    """Stage times of the program ``gta compile`` would build for each spec from ``db``."""
    import tvm

    from .bench.run import machine
    from .host import require_runs_here
    from .measure.garbage import garbage_output
    from .model_compile import picked_programs, require_db
    from .workloads import parse_workload

    registry = registry or default_registry()
    chosen = registry.target(target)
    workloads = [parse_workload(spec, registry.operators) for spec in specs]
    if not workloads:
        raise CompileError("nothing to time: give workload specs or --model FILE.onnx")
    require_db(db, "the workloads")
    require_runs_here(chosen)
    picked = picked_programs(workloads, chosen, db, registry)
    measured = _peaks(target, peak)
    programs = []
    for workload, (record, split) in zip(workloads, picked):
        inputs = [tvm.runtime.tensor(x) for x in workload.random_inputs()]
        stages = profile(split.compute, split.arguments(inputs, chosen),
                         [garbage_output(workload)], chosen)
        programs.append(_program(workload.spec, record.mapping, record.latency_us,
                                 workload.flops / 1e9, measured, registry, target, stages))
    return StagesReport(target=target, machine=machine(), programs=programs)


def model_stages(model, target: str, db: str | os.PathLike, functions: list[str] | None = None,
                 peak: bool = True, registry: Registry | None = None) -> StagesReport:
    """Stage times of each function of ``model`` that GTA scheduled from ``db`` (those whose
    name contains one of ``functions``, when given), as the compiled model calls it: its
    weights laid out at compile time, its inputs random; largest calls x time first."""
    import tvm

    from .bench.run import machine
    from .host import require_runs_here
    from .measure.garbage import garbage
    from .model_compile import schedule_model
    from .weight_prepack import call_tirs, prepack_passes
    from .workloads.operator import random_array

    registry = registry or default_registry()
    chosen = registry.target(target)
    require_runs_here(chosen)
    fused, rows = schedule_model(model, target, db, registry)
    scheduled = {r.name: r for r in rows if r.schedule == "gta"}
    mod = tvm.transform.Sequential(prepack_passes())(fused)
    calls = Counter(c.args[0].name_hint for c in call_tirs(mod["main"]))
    picked = [n for n in calls if n.removesuffix("_prepacked") in scheduled
              and (not functions or any(f in n for f in functions))]
    if functions and not picked:
        raise CompileError(f"no function GTA scheduled from {db} is named like "
                           f"{', '.join(functions)}")
    measured = _peaks(target, peak)
    rng = np.random.default_rng(0)
    programs = []
    for name in picked:
        func = mod[name].with_attr("global_symbol", "main")
        shapes = [(tuple(int(d) for d in p.ty.shape), str(p.ty.dtype)) for p in func.params]
        inputs = [tvm.runtime.tensor(random_array(shape, dtype, rng))
                  for shape, dtype in shapes[:-1]]
        stages = profile(func, inputs, [garbage(*shapes[-1])], chosen)
        row = scheduled[name.removesuffix("_prepacked")]
        programs.append(_program(name, row.mapping, row.tuned_us, row.gflop, measured,
                                 registry, target, stages, calls=calls[name]))
    programs.sort(key=lambda p: -p.calls * p.profile.us)
    return StagesReport(target=target, machine=machine(), programs=programs)


def markdown(report: StagesReport) -> list[str]:
    """Each program's stages as a table: time per call, share, and the compute stage's
    and the whole program's fractions of the peak."""
    lines = [f"{report.machine}, target {report.target}"]
    for p in report.programs:
        s = p.profile
        of_peak = p.of_peak(s.us)
        compute = p.of_peak(p.compute_us)
        lines += ["", f"{p.program}" + (f" (x{p.calls} per inference)" if p.calls > 1 else ""),
                  f"mapping {p.mapping or '-'}; {s.us:.1f} us per call"
                  + (f" ({of_peak:.1%} of {p.peak_intrinsic}'s peak; compute alone "
                     f"{compute:.1%})" if of_peak is not None and compute else "")
                  + f"; instrumented {s.us_instrumented:.1f} us ({s.overhead:+.1%}), "
                  f"{s.threads} threads", "",
                  "| stage | where | blocks | us | share |", "|---|---|---|---:|---:|"]
        if s.overhead > 0.1:  # fences and counters weigh on a program of a few microseconds
            lines.insert(-3, f"(the counters add {s.overhead:.0%}: a short stage's share is "
                             "approximate)")
        lines += [f"| {t.kind} | {t.placement} | {', '.join(t.blocks)} | {t.us:.1f} "
                  f"| {t.share:.1%} |" for t in s.stages]
        for label, us in (("thread imbalance", s.imbalance_us), ("remainder", s.remainder_us)):
            lines.append(f"| {label} | | | {us:.1f} | {us / s.us_instrumented:.1%} |")
    return lines
