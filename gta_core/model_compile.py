"""``gta compile --model``: a model with GTA's best checked program for every tuned function.

Each fused function whose workload has a record in the DB is replaced by the program the
final pick chose (else the fastest record that was checked correct while tuning); the rest
keep TVM's default schedule and are named in the report. The module is built through
:func:`gta_core.measure.build`, exported as a shared library that
``tvm.runtime.load_module`` + ``relax.VirtualMachine`` runs, and its outputs are checked
against the model's own framework (onnxruntime for ONNX, PyTorch for a torch module) on
random inputs before anything is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from .frontends import Model, ModelError, channel_block, fuse, model_tasks
from .frontends.sample_inputs import sample_inputs as model_inputs
from .frontends.tasks import written
from .host import require_runs_here
from .measure.check import build_config, registered
from .measure.fast_math import register_fast_math
from .models import Target
from .plugins import Registry, default_registry
from .quantized_check import QuantizedCheck, check_quantized
from .weight_prepack import (
    as_model_runs,
    constant_arguments,
    mark_weight_packing,
    prepack_passes,
)

# Outputs may differ from the framework's by this fraction of the largest output: 2^13
# float32 roundoffs, room for every layer's sums to run in another order (each within 16
# units of its own magnitude, see workloads.operator.ERROR_UNITS), while a wrong layer moves
# outputs by a fraction of their size, far beyond it.
RELATIVE_TOLERANCE = 2.0**-10


class CompiledFunction(BaseModel):
    name: str  # the fused function
    workload: str
    # "gta" (GTA's tuning, an intrinsic's or the generic space's), "written" (scheduled as
    # GTA writes it, no task: a Winograd input transform) or "default"
    schedule: str
    mapping: str | None = None
    tuned_us: float | None = None
    prepacked: list[str] = []  # its weight packing stages, run once while compiling
    why: str | None = None  # why it kept the default schedule
    gflop: float | None = None  # its anchor's work per call (GOP for integers); None: no task


class CompileReport(BaseModel):
    model: str
    target: str
    out: str | None
    functions: list[CompiledFunction]
    checked_against: str  # onnxruntime or torch
    max_error: float  # largest |output - reference| over the outputs
    tolerance: float | None  # its bound (a float model's; a quantized one's: ``quantized``)
    quantized: QuantizedCheck | None = None


class CompileError(ValueError):
    """A compile request that cannot run as given, or a compiled model that computes the
    wrong outputs; the message is one line."""


def chosen_record(store, prefix: str):
    """The record the final pick chose among the tasks under ``prefix``, else the fastest
    one checked correct while tuning; None when neither exists. A record whose program
    may write outside a buffer is passed over."""
    from .final_pick import in_bounds, picked_record, ranked_records

    keys = [k for k in store.tasks() if k.startswith(prefix)]
    if not keys:
        return None
    picked = picked_record(store, keys)
    if picked is not None and in_bounds(store, picked):
        return picked
    return next((r for r in ranked_records(store, keys) if r.correct and in_bounds(store, r)),
                None)


def schedule_model(model: Model, target: str, db: str | os.PathLike,
                   registry: Registry | None = None) -> tuple[Any, list[CompiledFunction]]:
    """``model`` fused, each function with a record in ``db`` replaced by its program."""
    import tvm

    from .database import RecordStore
    from .mapping.realise import ensure_registered
    from .scheduler.space import task_prefix

    registry = registry or default_registry()
    chosen = registry.target(target)
    require_db(db, "the model")
    for intrinsic in registry.intrinsics_for(target):  # the records' traces tensorize with them
        ensure_registered(intrinsic)
    store = RecordStore(db)
    fused = fuse(model.mod, channel_block(chosen))
    constants = constant_arguments(fused)
    rows = [CompiledFunction(name=gv.name_hint, workload="-", schedule="written")
            for gv, func in fused.functions_items()
            if isinstance(func, tvm.tirx.PrimFunc) and written(func)]
    for task in model_tasks(fused):
        workload = task.workload
        record = chosen_record(store, task_prefix(workload.spec, chosen))
        if record is None:
            rows += [CompiledFunction(name=n, workload=workload.spec, schedule="default",
                                      why=f"no checked record of {workload.spec} in {db}",
                                      gflop=workload.flops / 1e9)
                     for n in task.functions]
            continue
        for name in task.functions:  # replayed on each: their float constants differ
            own = tvm.IRModule({"main": task.narrowed[name]})
            func = store.schedule(record, own).mod["main"]
            func = func.with_attr("tirx.is_scheduled", True)
            marked, prepacked = mark_weight_packing(func, constants.get(name, set()))
            fused.update_func(fused.get_global_var(name),
                              marked.with_attr("global_symbol", name))
            rows.append(CompiledFunction(name=name, workload=workload.spec, schedule="gta",
                                         mapping=record.mapping, tuned_us=record.latency_us,
                                         prepacked=prepacked, gflop=workload.flops / 1e9))
    return fused, rows


def build_fused(fused, target: Target):
    """A fused, scheduled module built for ``target``: marked weight packing run on the
    constants (:mod:`.weight_prepack`), then TVM's CPU lowering and finalizing passes only
    (its default pipeline would legalize and fuse again), with the configuration
    and the target's TIR pipeline :func:`gta_core.measure.build` uses."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    tvm_target = target.tvm_target()

    @tvm.transform.module_pass(opt_level=3)
    def lower(mod, _ctx):
        passes = (prepack_passes() + cpu.dataflow_lower_passes(tvm_target)
                  + cpu.finalize_passes(tvm_target))
        return tvm.transform.Sequential(passes)(mod)

    register_fast_math()  # as every GTA build (gta_core.measure.build)
    with tvm_target, tvm.transform.PassContext(opt_level=3,
                                               config=build_config(tvm_target.kind.name)):
        return tvm.compile(fused, target=tvm_target, relax_pipeline=lower,
                           tir_pipeline=registered(target.tir_pipeline))


def run_model(executable, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """``executable`` (a compiled model) run once on ``inputs`` in a Relax VM, on the CPU."""
    import tvm
    from tvm import relax

    device = tvm.cpu()
    vm = relax.VirtualMachine(executable, device)
    result = vm["main"](*(tvm.runtime.tensor(x, device) for x in inputs))
    if isinstance(result, tvm.runtime.Tensor):
        return [result.numpy()]
    return [o.numpy() for o in result]  # a tuple of outputs


def reference_outputs(model: Model, inputs: list[np.ndarray],
                      literal: bool = False) -> tuple[str, list[np.ndarray]]:
    """The model's outputs from its own framework: (its name, the outputs). ``literal``:
    onnxruntime with its graph optimizations off (the graph computed as written)."""
    if model.source == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if literal:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = onnxruntime.InferenceSession(str(model.origin), options,
                                               providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(model.inputs, inputs)}
        return "onnxruntime", list(session.run(None, feeds))
    import torch

    with torch.no_grad():
        out = model.origin(*(torch.from_numpy(x) for x in inputs))
    outs = out if isinstance(out, (list, tuple)) else [out]
    return "torch", [o.detach().numpy() for o in outs]


def check_shapes(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """CompileError unless ``got`` has the reference's number of outputs and shapes."""
    if len(got) != len(want):
        raise CompileError(f"the compiled model returns {len(got)} outputs, the reference "
                           f"{len(want)}")
    for n, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            raise CompileError(f"output {n} has shape {g.shape}, the reference {w.shape}")


def check_outputs(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """(largest error, tolerance) of ``got`` against ``want``; CompileError if beyond it."""
    check_shapes(got, want)
    worst, tolerance = 0.0, 0.0
    for n, (g, w) in enumerate(zip(got, want)):
        w64, g64 = w.astype(np.float64), g.astype(np.float64)
        finite = np.isfinite(w64)
        if w64.size and not finite.any():
            raise CompileError(f"output {n} of the reference is NaN or infinite everywhere on "
                               "the check's inputs: nothing to compare against")
        # a NaN or an infinity in the reference (a masked logit) is matched exactly
        if not np.array_equal(g64[~finite], w64[~finite], equal_nan=True):
            raise CompileError(f"output {n} differs from the reference where the reference "
                               "is NaN or infinite")
        bound = RELATIVE_TOLERANCE * float(np.abs(w64[finite]).max(initial=0.0))
        error = float(np.abs(g64[finite] - w64[finite]).max(initial=0.0))
        if not error <= bound:  # NaN fails
            raise CompileError(f"output {n} differs from the reference by {error:.3g} "
                               f"(tolerance {bound:.3g})")
        worst, tolerance = max(worst, error), max(tolerance, bound)
    return worst, tolerance


def compile_model(model: Model, target: str, db: str | os.PathLike,
                  out: str | os.PathLike | None = None,
                  registry: Registry | None = None) -> tuple[Any, CompileReport]:
    """``model`` compiled for ``target`` with the best programs in ``db``, checked against
    its framework, exported to ``out`` if given: (the executable, the report).

    The check's inputs are random, integers inside the tables they index
    (:func:`gta_core.frontends.sample_inputs.sample_inputs`). Where TVM cannot lower the
    model in the blocked layout, it is compiled in its own with a
    :class:`~gta_core.frontends.LayoutFallbackWarning` (as :func:`tune_model` tunes it)."""
    registry = registry or default_registry()
    chosen = registry.target(target)
    if chosen.kind != "cpu":
        raise CompileError(f"models compile for CPU targets so far; {target} is a "
                           f"{chosen.kind} target")
    if out is not None and not Path(out).parent.is_dir():
        raise CompileError(f"--out {out}: folder {Path(out).parent} does not exist")
    fused, rows = schedule_model(model, target, db, registry)
    require_runs_here(chosen)  # its outputs are checked here before it is written
    executable = build_fused(fused, chosen)
    inputs = model_inputs(model)
    try:
        framework, want = reference_outputs(model, inputs)
    except Exception as exc:  # noqa: BLE001 - the framework refusing the model is the user's
        raise ModelError(f"{model.name}: its framework could not run it ({exc})") from None
    got = run_model(executable, inputs)
    quantized, tolerance = None, None
    if model.quantized:
        quantized = check_quantized(got, want, reference_outputs(model, inputs, True)[1],
                                    model.quantized.output_steps)
        error = max(float(np.abs(g.astype(np.float64) - w).max(initial=0.0))
                    for g, w in zip(got, want))
    else:
        error, tolerance = check_outputs(got, want)
    if out is not None:
        executable.export_library(str(out))
    return executable, CompileReport(model=model.name, target=target,
                                     out=str(out) if out else None, functions=rows,
                                     checked_against=framework, max_error=error,
                                     tolerance=tolerance, quantized=quantized)


class CompiledWorkload(BaseModel):
    workload: str
    function: str  # its name in the library
    mapping: str | None
    tuned_us: float | None
    # weights=constant: the function laying the weights out once (``function`` takes its
    # outputs in their place), and the shape and dtype of each laid-out weight
    prepack: str | None = None
    packed_weights: list[tuple[list[int], str]] = []


class SpecsCompileReport(BaseModel):
    target: str
    out: str | None
    functions: list[CompiledWorkload]


def function_name(spec: str) -> str:
    """The library's name for ``spec``'s function: ``gemm_M_64_N_64_K_64_dtype_int8``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", spec).strip("_")


def require_db(db: str | os.PathLike, what: str) -> None:
    """A :class:`CompileError` unless ``db`` is a folder (records of ``what`` expected)."""
    if not Path(db).is_dir():
        raise CompileError(f"--db {db}: no such directory (tune {what} into it first)")


def picked_programs(workloads: list, target: Target, db: str | os.PathLike,
                    registry: Registry) -> list[tuple[Any, Any]]:
    """(record, program) of each workload: the record :func:`chosen_record` takes from
    ``db`` and its program split as a compiled model runs it (``weights=constant``:
    :func:`~gta_core.weight_prepack.as_model_runs`). A workload with no checked record is
    a :class:`CompileError`."""
    from .database import RecordStore
    from .mapping.realise import ensure_registered
    from .scheduler.space import task_prefix

    for intrinsic in registry.intrinsics_for(target.name):
        ensure_registered(intrinsic)
    store = RecordStore(db)
    picked = []
    for workload in workloads:
        record = chosen_record(store, task_prefix(workload.spec, target))
        if record is None:
            raise CompileError(f"no checked record of {workload.spec} on {target.name} in "
                               f"{db}; tune it there first")
        picked.append((record, as_model_runs(workload, store.schedule(record).mod)))
    return picked


def compile_specs(specs: list[str], target: str, db: str | os.PathLike,
                  out: str | os.PathLike | None = None,
                  registry: Registry | None = None) -> tuple[Any, SpecsCompileReport]:
    """One library with the best checked program of each spec in ``db``, one function per
    spec (:func:`function_name`; arguments: inputs, then the output), each checked against
    its numpy reference before ``out`` is written. A ``weights=constant`` spec's function
    takes its weights laid out by a second one, ``NAME_prepack`` (weights in, the laid-out
    ones out: ``packed_weights``), which a caller runs once."""
    import tvm

    from .measure import build
    from .measure.garbage import garbage_output
    from .workloads import parse_workload

    registry = registry or default_registry()
    chosen = registry.target(target)
    if chosen.kind != "cpu":
        raise CompileError(f"libraries are compiled for CPU targets so far; {target} is a "
                           f"{chosen.kind} target")
    workloads = [parse_workload(spec, registry.operators) for spec in specs]
    if not workloads:
        raise CompileError("nothing to compile: give workload specs or --model FILE.onnx")
    require_db(db, "the workloads")
    if out is not None and not Path(out).parent.is_dir():
        raise CompileError(f"--out {out}: folder {Path(out).parent} does not exist")
    functions, rows, splits = {}, [], []
    for workload, (record, split) in zip(workloads, picked_programs(workloads, chosen, db,
                                                                    registry)):
        name = function_name(workload.spec)
        functions[name] = split.compute.with_attr("global_symbol", name)
        prepack = f"{name}_prepack" if split.prepack is not None else None
        if prepack:
            functions[prepack] = split.prepack.with_attr("global_symbol", prepack)
        splits.append(split)
        rows.append(CompiledWorkload(workload=workload.spec, function=name,
                                     mapping=record.mapping, tuned_us=record.latency_us,
                                     prepack=prepack, packed_weights=split.packed_weights))
    require_runs_here(chosen)  # each function is checked here before the library is written
    library = build(tvm.IRModule(functions), chosen)
    module = library.jit()
    for workload, row, split in zip(workloads, rows, splits):
        inputs = workload.random_inputs()
        result = tvm.runtime.tensor(garbage_output(workload))
        args = split.arguments([tvm.runtime.tensor(x) for x in inputs], chosen,
                               module[row.prepack] if row.prepack else None)
        module[row.function](*args, result)
        mismatch = workload.mismatch(result.numpy(), workload.expected(inputs))
        if mismatch:
            raise CompileError(f"{workload.spec}: the compiled program is wrong ({mismatch})")
    if out is not None:
        library.export_library(str(out))
    return library, SpecsCompileReport(target=target, out=str(out) if out else None,
                                       functions=rows)
