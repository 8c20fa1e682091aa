"""A GPU program as a kernel set: its CUDA source and how its host function launches it.

What a machine with no TVM needs to run a program TVM built (``benchmarks/gpu_check``'s
runner, the offline rounds of :mod:`.offline`): the CUDA C source, the PrimFunc's buffers, the
workspaces the host function allocates and, in order, each kernel it launches with its
arguments, grid, block and dynamic shared memory. In TVM 0.27 the lowered host function calls
``T.call_ffi_kernel(name, *args, *launch_values)`` with ``CallFFIKernelAttr.launch_params``
naming the launch values ("blockIdx.x", "threadIdx.y", "tirx.use_dyn_shared_memory"...), and
allocates workspaces with ``AllocBuffer``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..models import Target
from ..workloads import Workload
from .check import build, build_config, registered

LAUNCH_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z",
               "threadIdx.x", "threadIdx.y", "threadIdx.z")
DYN_SHMEM_TAG = "tirx.use_dyn_shared_memory"
TENSOR_CORE_MARKERS = ("wmma::mma_sync", "mma.sync")


class KernelSetError(ValueError):
    """A program whose host function or source this module cannot describe; one line."""


def _walk(node, visit, under_loop=False):
    """Pre-order walk over TIR statements and the expressions in Evaluate / Bind / Return."""
    name = type(node).__name__
    visit(node, under_loop)
    inner_loop = under_loop or name in ("For", "While")
    for field in ("seq", "body", "then_case", "else_case", "value"):
        try:
            child = getattr(node, field)
        except Exception:  # noqa: BLE001 - absent field
            continue
        if child is None or isinstance(child, (int, float, str)):
            continue
        if type(child).__name__ == "Array" or isinstance(child, (list, tuple)):
            for item in child:
                _walk(item, visit, inner_loop)
        elif hasattr(child, "same_as"):
            _walk(child, visit, inner_loop)


def _int(expr) -> int:
    if type(expr).__name__ != "IntImm":
        raise KernelSetError(f"launch value {expr} is not a constant")
    return int(expr.value)


def host_launches(sch_mod, target: Target, params: list[str]):
    """(launches, workspaces) of the lowered host function of ``sch_mod``.

    launches: [{kernel, args: [{"buffer": name} | {"scalar": v, "dtype": d}], grid, block,
    dyn_shared_bytes, launch_params, launch_values}]; workspaces: {name: {shape, dtype, scope}}.
    """
    import tvm
    from tvm.tirx.build import split_host_device_mods
    from tvm.tirx.compilation_pipeline import get_tir_pipeline

    with tvm.transform.PassContext(config=build_config("cuda")):
        bound = target.tvm_target().with_host(tvm.target.Target("llvm"))
        mod = tvm.tirx.transform.BindTarget(bound)(sch_mod)
        # The pipeline the program builds with (gta_core.measure.build), up to the split.
        pipeline, _host_passes, _device_passes = get_tir_pipeline(registered(target.tir_pipeline))
        mod = pipeline(mod)
        host, devices = split_host_device_mods(mod)
    device_params = {}
    for device_mod in devices.values():
        for gv, func in device_mod.functions.items():
            device_params[gv.name_hint] = [str(p) for p in func.params]
    entry = [gv for gv, f in host.functions.items()
             if f.attrs is not None and f.attrs.get("tirx.is_entry_func", False)]
    if len(entry) != 1:
        names = [g.name_hint for g in entry]
        raise KernelSetError(f"expected one host entry function, found {names}")
    main = host[entry[0]]

    workspaces: dict[str, dict] = {}
    launches: list[dict] = []
    problems: list[str] = []

    def visit(node, under_loop):
        kind = type(node).__name__
        if kind == "AllocBuffer":
            buf = node.buffer
            if buf.name in params or buf.name in workspaces:
                problems.append(f"workspace name {buf.name} collides")
            workspaces[buf.name] = {"shape": [_int(s) for s in buf.shape], "dtype": str(buf.dtype),
                                    "scope": str(buf.scope())}
        elif kind == "Call" and getattr(node.op, "name", "") == "tirx.call_ffi_kernel":
            if under_loop:
                problems.append("a kernel launch inside a host loop")
            tags = [str(t) for t in node.attrs.launch_params]
            args = list(node.args)
            name = str(args[0].value)
            values = args[len(args) - len(tags):]
            operands = args[1:len(args) - len(tags)]
            grid, block, dyn = [1, 1, 1], [1, 1, 1], 0
            for tag, value in zip(tags, values, strict=True):
                if tag == DYN_SHMEM_TAG:
                    dyn = _int(value)
                elif tag in LAUNCH_TAGS:
                    (grid if tag.startswith("block") else block)["xyz".index(tag[-1])] = _int(value)
                else:
                    problems.append(f"unknown launch tag {tag}")
            out_args = []
            for a in operands:
                text = str(a)
                m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\.data", text)
                if m:
                    out_args.append({"buffer": m.group(1)})
                elif type(a).__name__ in ("IntImm", "FloatImm"):
                    out_args.append({"scalar": a.value, "dtype": str(a.ty) if hasattr(a, "ty")
                                     else "int32"})
                else:
                    problems.append(f"kernel {name}: argument {text} not understood")
            launches.append({"kernel": name, "args": out_args, "grid": grid, "block": block,
                             "dyn_shared_bytes": dyn, "launch_params": tags,
                             "launch_values": [_int(v) for v in values],
                             "device_params": device_params.get(name)})

    _walk(main.body, visit)
    for launch in launches:
        for arg in launch["args"]:
            if "buffer" in arg and arg["buffer"] not in params and arg["buffer"] not in workspaces:
                problems.append(f"kernel {launch['kernel']}: buffer {arg['buffer']} unknown")
        if launch["device_params"] is not None and \
                len(launch["device_params"]) != len(launch["args"]):
            problems.append(f"kernel {launch['kernel']}: {len(launch['args'])} args for "
                            f"{len(launch['device_params'])} params")
    if problems:
        raise KernelSetError("; ".join(problems))
    return launches, workspaces


def new_manifest(target: Target) -> dict:
    """An empty ``manifest.json`` of kernel sets for ``target`` (its workloads, kernel sets
    and the sets skipped are appended as they are written)."""
    import datetime

    import tvm

    return {"created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "arch": target.arch, "tvm_version": tvm.__version__, "target": target.name,
            "tvm_target": str(target.tvm_target()), "workloads": [], "kernel_sets": [],
            "skipped": []}


def workload_entry(workload: Workload, index: int) -> dict:
    """What the runner needs of a workload: its inputs, output, work and error bound."""
    from ..workloads.operator import ERROR_UNITS, UNIT_ROUNDOFF

    p = workload.params
    inputs = [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "role": i.role}
              for i in workload.operator.inputs(p)]
    outputs = 1
    for s in workload.output_shape:
        outputs *= int(s)
    # GTA's bound: ERROR_UNITS roundoffs of the accumulator times sum |a*b| (none: exact)
    roundoff = UNIT_ROUNDOFF.get(p.acc_dtype)
    return {
        "index": index, "spec": workload.spec, "operator": workload.operator.name,
        "params": p.model_dump(exclude_none=True), "inputs": inputs,
        "output": {"shape": list(workload.output_shape), "dtype": p.acc_dtype},
        "flops": int(workload.flops), "macs": int(workload.operator.macs(p)),
        "reduction": int(max(1, workload.operator.macs(p) // max(outputs, 1))),
        "error_per_abs_sum": ERROR_UNITS * roundoff if roundoff else 0.0,
    }


def kernel_set(sch_mod, target: Target, workload: dict, set_id: str, out: Path) -> dict:
    """Build ``sch_mod``, write its source to ``out/<set_id>.cu`` and describe its launches;
    KernelSetError where its buffers are not ``workload``'s or a launch is not understood."""
    source = build(sch_mod, target).mod.imports[0].inspect_source()
    func = sch_mod["main"]
    params = [{"name": b.name, "shape": [int(s) for s in b.shape], "dtype": str(b.dtype)}
              for b in func.params]
    # The PrimFunc's params are the workload's inputs then its output.
    expect = [(i["shape"], i["dtype"]) for i in workload["inputs"]] + [
        (workload["output"]["shape"], workload["output"]["dtype"])]
    got = [(q["shape"], q["dtype"]) for q in params]
    if got != expect:
        raise KernelSetError(f"{set_id}: params {got} are not the workload's {expect}")
    launches, workspaces = host_launches(sch_mod, target, [q["name"] for q in params])
    for launch in launches:
        _read_kernel(source, launch, set_id)
    cu = out / f"{set_id}.cu"
    cu.write_text(source)
    return {
        "id": set_id, "workload": workload["index"], "spec": workload["spec"],
        "source": cu.name, "sha1": hashlib.sha1(source.encode()).hexdigest()[:12],
        "instructions": [t for t in TENSOR_CORE_MARKERS if t in source],
        "params": params, "workspaces": workspaces, "launches": launches,
    }


def _read_kernel(source: str, launch: dict, set_id: str) -> None:
    """Add the kernel's C parameters, launch bounds and whether it uses Tensor Cores."""
    name = launch["kernel"]
    m = re.search(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?'
                  + re.escape(name) + r"\(([^)]*)\)\s*\{", source)
    if not m:
        raise KernelSetError(f"{set_id}: kernel {name} not in the source")
    nxt = source.find('extern "C" __global__', m.end())
    body = source[m.end(): nxt if nxt >= 0 else len(source)]
    launch["tensor_core"] = any(t in body for t in TENSOR_CORE_MARKERS)
    launch["c_params"] = m.group(1)
    threads = launch["block"][0] * launch["block"][1] * launch["block"][2]
    bounds = re.search(r"__launch_bounds__\((\d+)\) " + re.escape(name) + r"\(", source)
    launch["launch_bounds"] = int(bounds.group(1)) if bounds else None
    if bounds and int(bounds.group(1)) < threads:
        raise KernelSetError(f"{set_id}: {name} launch bounds {bounds.group(1)} < "
                             f"{threads} threads")
