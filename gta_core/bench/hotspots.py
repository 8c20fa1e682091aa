"""Where a compiled model's time goes: each function its ``main`` calls, timed alone as it
is compiled into the model (GTA's program, weights prepacked where they are), ranked by
calls x time, with its throughput against the measured peak of its intrinsic's dtypes,
and timed inside the model as it runs, where a layer's buffers and weights may have left
the cache (MobileNet-V2's depthwise layers 1.5-1.8x their time alone, its classifier 4x).

Run it in a fresh process on quiet cores: on two cores a TVM program whose threads share
a core with anything else stalls a scheduler tick (4 ms) per parallel region.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from ..model_tuning import ModelTuneReport
from ..plugins import Registry, default_registry


class Hotspot(BaseModel):
    function: str  # as the model's fused module names it
    calls: int  # per inference
    anchor: str | None
    mapping: str | None  # GTA's program's mapping ("generic": no intrinsic; None: default)
    us_per_call: float  # median, timed alone
    us_in_model: float | None = None  # median, timed inside the model as it runs
    share: float  # of the sum over the model's functions of calls x time
    gops: float | None  # the anchor's work over the time
    peak_gops: float | None  # the fastest measured intrinsic computing the same dtypes
    peak_intrinsic: str | None


def function_times(onnx_path: str, target: str, db: str, min_ms: int = 100
                   ) -> list[tuple[str, int, float]]:
    """(function, calls, median us per call) of every function the compiled model's ``main``
    calls, each built alone through :func:`gta_core.measure.build` and timed on random
    inputs for at least ``min_ms``."""
    import tvm

    from ..frontends import load_onnx
    from ..measure import runnable
    from ..model_compile import schedule_model
    from ..weight_prepack import call_tirs, prepack_passes
    from ..workloads.operator import random_array

    fused, _ = schedule_model(load_onnx(onnx_path), target, db)
    mod = tvm.transform.Sequential(prepack_passes())(fused)
    calls = Counter(c.args[0].name_hint for c in call_tirs(mod["main"]))
    chosen = default_registry().target(target)
    rng = np.random.default_rng(0)
    device = tvm.cpu()
    times = []
    for name, count in calls.items():
        func = mod[name].with_attr("global_symbol", "main")
        lib = runnable(tvm.IRModule({"main": func}), chosen)
        args = [tvm.runtime.tensor(random_array(tuple(int(d) for d in p.ty.shape),
                                                str(p.ty.dtype), rng), device)
                for p in func.params]
        timer = lib.time_evaluator("main", device, number=1, repeat=10,
                                   min_repeat_ms=int(min_ms / 10))
        times.append((name, count, statistics.median(timer(*args).results) * 1e6))
    return times


def times_in_model(onnx_path: str, target: str, db: str, runs: int = 30) -> dict[str, float]:
    """Median microseconds per call of every function the compiled model's ``main`` calls,
    timed inside the model as it runs (its input just written by the function before it,
    its weights wherever the last call left them): the VM's instrument stamps each call
    before and after it, which adds its own fraction of a microsecond to each."""
    import time

    import tvm
    from tvm import relax

    from ..frontends import load_onnx
    from ..model_compile import compile_model, model_inputs

    model = load_onnx(onnx_path)
    executable, _ = compile_model(model, target, db)
    device = tvm.cpu()
    vm = relax.VirtualMachine(executable, device)
    args = [tvm.runtime.tensor(x, device) for x in model_inputs(model)]
    main = vm["main"]
    for _ in range(3):
        main(*args)
    started: dict[str, float] = {}
    spans: dict[str, list[float]] = {}

    def stamp(_func, symbol, before, _ret, *_args) -> int:
        now = time.perf_counter()
        if before:
            started[symbol] = now
        else:
            spans.setdefault(symbol, []).append(now - started.pop(symbol))
        return 0  # VMInstrumentReturnKind.kNoOp: run the call

    vm.set_instrument(stamp)
    for _ in range(runs):
        main(*args)
    return {name: statistics.median(s) * 1e6 for name, s in spans.items()
            if not name.startswith("vm.builtin.")}


def peak_for(mapping: str | None, registry: Registry, target: str,
              measured: dict[str, float]) -> tuple[str | None, float | None]:
    """The fastest measured intrinsic with the dtypes of ``mapping``'s intrinsic."""
    from .run import fastest_intrinsic

    own = {i.name: i for i in registry.intrinsics_for(target)}.get(
        (mapping or "").rsplit("-", 1)[0])
    best = own and fastest_intrinsic(registry, target, measured, own.input_dtypes,
                                     own.output_dtype)
    return (best.intrinsic, best.gops) if best else (None, None)


def hotspots(times: list[tuple[str, int, float]], report: ModelTuneReport,
             measured: dict[str, float], registry: Registry, top: int = 5,
             in_model: dict[str, float] | None = None) -> list[Hotspot]:
    """The ``top`` functions by calls x time (:func:`function_times`); ``report`` (GTA's
    tuning of the model) names their anchors and mappings, ``measured`` is GOPS per
    intrinsic (:func:`~.run.measured_peaks`), ``in_model`` each function's time inside
    the model (:func:`times_in_model`)."""
    tasks = {name: t for t in report.tasks for name in (t.functions or [t.name])}
    total = sum(calls * us for _, calls, us in times) or 1.0
    rows = []
    for name, calls, us in sorted(times, key=lambda t: -t[1] * t[2])[:top]:
        task = tasks.get(name.removesuffix("_prepacked"))
        tuned = task.tuned if task and task.tuned and task.tuned.correct else None
        mapping = tuned.mapping if tuned else None
        intrinsic, peak = peak_for(mapping, registry, report.target, measured)
        gops = task.gflops_work * 1e6 / us if task and task.anchor else None
        rows.append(Hotspot(function=name, calls=calls, anchor=task.anchor if task else None,
                            mapping=mapping, us_per_call=us,
                            us_in_model=(in_model or {}).get(name), share=calls * us / total,
                            gops=gops, peak_gops=peak, peak_intrinsic=intrinsic))
    return rows


def load_report(path: Path) -> ModelTuneReport | None:
    return ModelTuneReport.model_validate_json(path.read_text()) if path.exists() else None


def markdown(rows: list[Hotspot]) -> list[str]:
    lines = ["| function | calls | anchor | mapping | us per call | in the model | share | GOPS "
             "| of peak |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        of_peak = (f"{r.gops / r.peak_gops:.0%} of {r.peak_intrinsic} ({r.peak_gops:.0f})"
                   if r.gops and r.peak_gops else "-")
        lines.append(f"| {r.function} | {r.calls} | {r.anchor or '-'} | {r.mapping or '-'} | "
                     f"{r.us_per_call:.0f} | "
                     f"{f'{r.us_in_model:.0f}' if r.us_in_model is not None else '-'} | "
                     f"{r.share:.0%} | "
                     f"{f'{r.gops:.1f}' if r.gops else '-'} | {of_peak} |")
    return lines
