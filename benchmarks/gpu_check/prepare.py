"""Export GTA's sampled cuda-tc kernels, with their launch configurations, for a GPU check.

Run here (no GPU needed), with the project's venv:

    .venv/bin/python benchmarks/gpu_check/prepare.py --out gpu_kernels [--arch sm_90]

For each workload, a few valid schedules are sampled the way ``gta codegen`` samples one
(``gta_core.codegen._candidates`` / ``_sampled``: every kept mapping in turn, then further
seeds), built with ``gta_core.measure.check.build`` (the CUDA source is what ``gta codegen``
writes), and lowered once more through TVM's own pipeline to read the host function: the
kernels it launches in order, their arguments (the PrimFunc's buffers or workspace buffers
the host allocates), grid / block extents and dynamic shared memory. In TVM 0.27 the host
function of a lowered module calls ``T.call_ffi_kernel(name, *args, *launch_values)`` with
``CallFFIKernelAttr.launch_params`` naming the launch values ("blockIdx.x", "threadIdx.y",
"tirx.use_dyn_shared_memory"...), and allocates workspaces with ``AllocBuffer``.

Writes ``OUT/manifest.json`` and one ``OUT/<set>.cu`` per kernel set; inputs are not saved
(the GPU script draws them from a seed). ``benchmarks/gpu_check/run_on_gpu.py`` reads them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")

DEFAULT_WORKLOADS = [
    ("gemm:M=1024,N=1024,K=1024,dtype=float16", 8),
    ("gemm:M=4096,N=4096,K=4096,dtype=float16", 6),
    ("batch_gemm:B=8,M=512,N=512,K=64,dtype=float16", 8),
    ("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float16", 8),
    ("gemm:M=1024,N=1024,K=1024,dtype=int8", 6),
]

LAUNCH_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z",
               "threadIdx.x", "threadIdx.y", "threadIdx.z")
DYN_SHMEM_TAG = "tirx.use_dyn_shared_memory"
TENSOR_CORE_MARKERS = ("wmma::mma_sync", "mma.sync")


def log(text: str) -> None:
    print(text, flush=True)


# --- the host function: which kernels run, in which order, on what ----------------------------


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
        raise ValueError(f"launch value {expr} is not a constant")
    return int(expr.value)


def host_launches(sch_mod, target, params: list[str]):
    """(launches, workspaces) of the lowered host function of ``sch_mod``.

    launches: [{kernel, args: [{"buffer": name} | {"scalar": v, "dtype": d}], grid, block,
    dyn_shared_bytes, launch_params, launch_values}]; workspaces: {name: {shape, dtype, scope}}.
    """
    import tvm
    from tvm.tirx.build import split_host_device_mods
    from tvm.tirx.compilation_pipeline import get_tir_pipeline

    from gta_core.measure.check import build_config, registered

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
        raise ValueError(f"expected one host entry function, found {[g.name_hint for g in entry]}")
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
        raise ValueError("; ".join(problems))
    return launches, workspaces


# --- sampling -------------------------------------------------------------------------------


def sample_schedules(workload, target, registry, count: int, max_seed: int):
    """Up to ``count`` (sch, candidate, seed) sampled as gta codegen samples, kept mappings
    round-robin, then further seeds of each."""
    from gta_core.codegen import CodegenError, _candidates, _sampled

    kept = _candidates(workload, target.name, None, registry)
    log(f"  {len(kept)} kept mapping(s) on {len({c.intrinsic for c in kept})} intrinsic(s)")
    # Interleave the intrinsics (wmma shapes, mma) so a few samples cover all of them.
    groups: dict[str, list] = {}
    for c in kept:
        groups.setdefault(c.intrinsic, []).append(c)
    candidates = [g[i] for i in range(max(len(g) for g in groups.values()))
                  for g in groups.values() if i < len(g)]
    next_seed = {c.id: 1 for c in candidates}
    live = list(candidates)
    found = []
    while len(found) < count and live:
        for cand in list(live):
            if len(found) >= count:
                break
            seed = next_seed[cand.id]
            if seed > max_seed:
                live.remove(cand)
                continue
            t0 = time.time()
            try:
                sch, _c, _origin, used, _lat = _sampled(workload, target, [cand], seed,
                                                        max_seed - seed + 1, registry,
                                                        lambda _t: None)
            except CodegenError as exc:
                log(f"  {cand.id}: nothing from seed {seed} ({str(exc)[:160]})")
                live.remove(cand)
                continue
            next_seed[cand.id] = used + 1
            log(f"  sampled {cand.id} seed {used} ({time.time() - t0:.1f} s)")
            found.append((sch, cand, used))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_kernels")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--workloads", nargs="*", default=None,
                    help="SPEC[@COUNT] ...; default: five fp16/int8 GEMM/conv workloads")
    ap.add_argument("--per-workload", type=int, default=None, help="override every count")
    ap.add_argument("--max-seed", type=int, default=24)
    args = ap.parse_args()

    import tvm

    from gta_core.api import load_workload
    from gta_core.measure.check import build
    from gta_core.plugins import default_registry
    from gta_core.workloads.operator import ERROR_UNITS, UNIT_ROUNDOFF

    if args.workloads:
        wanted = []
        for text in args.workloads:
            spec, _, n = text.partition("@")
            wanted.append((spec, int(n) if n else 8))
    else:
        wanted = DEFAULT_WORKLOADS
    if args.per_workload:
        wanted = [(s, args.per_workload) for s, _ in wanted]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    registry = default_registry()
    target = registry.target("cuda-tc").for_arch(args.arch)
    tvm_target = target.tvm_target()
    manifest = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "arch": args.arch, "tvm_version": tvm.__version__, "target": target.name,
        "tvm_target": str(tvm_target), "workloads": [], "kernel_sets": [], "skipped": [],
    }
    seen_sources: dict[str, str] = {}
    for w_index, (spec, count) in enumerate(wanted):
        t_w = time.time()
        log(f"== {spec} (up to {count})")
        workload = load_workload(spec, registry)
        p = workload.params
        inputs = [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "role": i.role}
                  for i in workload.operator.inputs(p)]
        output = {"shape": list(workload.output_shape), "dtype": p.acc_dtype}
        outputs = 1
        for s in workload.output_shape:
            outputs *= int(s)
        reduction = max(1, workload.operator.macs(p) // max(outputs, 1))
        # GTA's bound: ERROR_UNITS roundoffs of the accumulator times sum |a*b| (none: exact)
        roundoff = UNIT_ROUNDOFF.get(p.acc_dtype)
        units = ERROR_UNITS * roundoff if roundoff else 0.0
        manifest["workloads"].append({
            "index": w_index, "spec": workload.spec, "operator": workload.operator.name,
            "params": p.model_dump(exclude_none=True), "inputs": inputs, "output": output,
            "flops": int(workload.flops), "macs": int(workload.operator.macs(p)),
            "reduction": int(reduction), "error_per_abs_sum": units,
        })
        try:
            samples = sample_schedules(workload, target, registry, count, args.max_seed)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next workload
            log(f"  SKIPPED: {type(exc).__name__}: {str(exc)[:300]}")
            manifest["skipped"].append({"workload": workload.spec, "why": str(exc)[:500]})
            continue
        for sch, cand, seed in samples:
            set_id = f"w{w_index}-{cand.id}-s{seed}"
            try:
                source = build(sch.mod, target).mod.imports[0].inspect_source()
                func = sch.mod["main"]
                params = [{"name": b.name, "shape": [int(s) for s in b.shape],
                           "dtype": str(b.dtype)} for b in func.params]
                launches, workspaces = host_launches(sch.mod, target,
                                                     [q["name"] for q in params])
            except Exception as exc:  # noqa: BLE001
                log(f"  {set_id}: SKIPPED ({type(exc).__name__}: {str(exc)[:300]})")
                manifest["skipped"].append({"workload": workload.spec, "set": set_id,
                                            "why": str(exc)[:500]})
                continue
            digest = hashlib.sha1(source.encode()).hexdigest()[:12]
            if digest in seen_sources:
                log(f"  {set_id}: same source as {seen_sources[digest]}, skipped")
                continue
            seen_sources[digest] = set_id
            # The PrimFunc's params are the workload's inputs then its output.
            expect = [(i["shape"], i["dtype"]) for i in inputs] + [(output["shape"],
                                                                    output["dtype"])]
            got = [(q["shape"], q["dtype"]) for q in params]
            if got != expect:
                log(f"  {set_id}: params {got} are not the workload's {expect}, skipped")
                manifest["skipped"].append({"workload": workload.spec, "set": set_id,
                                            "why": f"params {got} != {expect}"})
                continue
            for launch in launches:
                m = re.search(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?'
                              + re.escape(launch["kernel"]) + r"\(([^)]*)\)\s*\{", source)
                if not m:
                    raise SystemExit(f"{set_id}: kernel {launch['kernel']} not in the source")
                body_start = m.end()
                nxt = source.find('extern "C" __global__', body_start)
                body = source[body_start: nxt if nxt >= 0 else len(source)]
                launch["tensor_core"] = any(t in body for t in TENSOR_CORE_MARKERS)
                launch["c_params"] = m.group(1)
                threads = launch["block"][0] * launch["block"][1] * launch["block"][2]
                lb = re.search(r"__launch_bounds__\((\d+)\) " + re.escape(launch["kernel"])
                               + r"\(", source)
                launch["launch_bounds"] = int(lb.group(1)) if lb else None
                if lb and int(lb.group(1)) < threads:
                    raise SystemExit(f"{set_id}: {launch['kernel']} launch bounds "
                                     f"{lb.group(1)} < {threads} threads")
            cu = out / f"{set_id}.cu"
            cu.write_text(source)
            manifest["kernel_sets"].append({
                "id": set_id, "workload": w_index, "spec": workload.spec, "mapping": cand.id,
                "intrinsic": cand.intrinsic, "seed": seed, "source": cu.name,
                "sha1": digest,
                "instructions": [t for t in TENSOR_CORE_MARKERS if t in source],
                "params": params, "workspaces": workspaces, "launches": launches,
            })
            kinds = ", ".join(f"{x['kernel']}{'*' if x['tensor_core'] else ''}"
                              f" g{tuple(x['grid'])} b{tuple(x['block'])}"
                              + (f" dyn{x['dyn_shared_bytes']}" if x["dyn_shared_bytes"] else "")
                              for x in launches)
            log(f"  {set_id}: {len(launches)} kernel(s): {kinds}")
        log(f"  ({time.time() - t_w:.0f} s)")
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(f.stat().st_size for f in out.iterdir())
    log(f"wrote {len(manifest['kernel_sets'])} kernel set(s), {total / 1e6:.2f} MB, to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
