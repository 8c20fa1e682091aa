"""Run GTA's exported cuda-tc kernels on a real GPU: check them against torch, time them.

Needs only numpy, cupy and torch (Python 3.12 on the device machine; no TVM):

    python3 benchmarks/gpu_check/run_on_gpu.py --kernels gpu_kernels --out OUT

``--kernels`` is what ``benchmarks/gpu_check/prepare.py`` wrote: ``manifest.json`` and one
``.cu`` per kernel set (the CUDA source ``gta codegen`` writes), plus ``<set>.<arch>.cubin``
where ``--compile`` made them beforehand. For each kernel set this

* loads the kernels: the prebuilt cubin, else nvcc on this machine, else cupy's NVRTC;
* draws the workload's inputs from a seed (fp16 uniform in [-1, 1]; int8: u8 data 0..255,
  s8 weights -128..127, as GTA's numpy references do) and allocates the output and the host
  function's workspaces filled with garbage (NaN / 0x5A...) so that unwritten or
  zero-init-dependent results show;
* launches the kernels in the host function's order with the recorded grid, block, dynamic
  shared memory and arguments, and compares the output with a float64 torch reference
  (GTA's tolerance: 16 unit roundoffs of the accumulator times sum |a*b| per output; int8
  exact);
* times the whole launch sequence and each kernel with CUDA events (median of ``--reps``
  after warm-up; a spin kernel before each timed rep keeps launch overhead out) beside
  torch's own op in fp16 / int8 (torch.matmul, torch.bmm, F.conv2d, torch._int_mm).

Kernel sets run in a worker process; one that crashes the CUDA context or hangs is
recorded as such and the worker restarts after it. Writes ``OUT/gpu_results.json`` and
``OUT/gpu_results.md``. ``--dry-run`` checks the manifest with numpy alone; ``--compile``
builds the cubins with a local nvcc (no GPU needed).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LAUNCH_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z",
               "threadIdx.x", "threadIdx.y", "threadIdx.z", "tirx.use_dyn_shared_memory")
NP_DTYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64,
             "int8": np.int8, "uint8": np.uint8, "int32": np.int32, "int64": np.int64}
GRID_LIMITS = (2**31 - 1, 65535, 65535)
BLOCK_LIMITS = (1024, 1024, 64)


def log(text: str) -> None:
    print(text, flush=True)


def load_manifest(kernels: Path) -> dict:
    return json.loads((kernels / "manifest.json").read_text())


def validate(manifest: dict, kernels: Path) -> list[str]:
    """Problems with the manifest that would stop a run (empty when none)."""
    problems = []
    for ks in manifest["kernel_sets"]:
        sid = ks["id"]
        src_path = kernels / ks["source"]
        if not src_path.exists():
            problems.append(f"{sid}: {ks['source']} missing")
            continue
        src = src_path.read_text()
        names = {p["name"] for p in ks["params"]} | set(ks["workspaces"])
        for buf in [*ks["params"], *ks["workspaces"].values()]:
            if buf["dtype"] not in NP_DTYPES:
                problems.append(f"{sid}: dtype {buf['dtype']} unsupported")
        for launch in ks["launches"]:
            k = launch["kernel"]
            if not re.search(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?'
                             + re.escape(k) + r"\(", src):
                problems.append(f"{sid}: kernel {k} not in the source")
            for a in launch["args"]:
                if "buffer" in a and a["buffer"] not in names:
                    problems.append(f"{sid}: {k}: unknown buffer {a['buffer']}")
                if "scalar" in a and a["dtype"] not in NP_DTYPES:
                    problems.append(f"{sid}: {k}: scalar dtype {a['dtype']}")
            for tag in launch["launch_params"]:
                if tag not in LAUNCH_TAGS:
                    problems.append(f"{sid}: {k}: launch tag {tag}")
            if any(g > lim for g, lim in zip(launch["grid"], GRID_LIMITS, strict=True)):
                problems.append(f"{sid}: {k}: grid {launch['grid']} over the limits")
            threads = int(np.prod(launch["block"]))
            if threads > 1024 or any(b > lim for b, lim in
                                     zip(launch["block"], BLOCK_LIMITS, strict=True)):
                problems.append(f"{sid}: {k}: block {launch['block']} over the limits")
            if launch["dyn_shared_bytes"] > 227 * 1024:
                problems.append(f"{sid}: {k}: {launch['dyn_shared_bytes']} B dynamic shared")
        w = manifest["workloads"][ks["workload"]]
        expect = [(i["shape"], i["dtype"]) for i in w["inputs"]] + [(w["output"]["shape"],
                                                                     w["output"]["dtype"])]
        if [(p["shape"], p["dtype"]) for p in ks["params"]] != expect:
            problems.append(f"{sid}: params do not match the workload's inputs and output")
    return problems


# --- compiling ------------------------------------------------------------------------------


def nvcc_command(nvcc: str, src: Path, out: Path, arch: str) -> list[str]:
    return [nvcc, f"-arch={arch}", "-cubin", "-O3", "-std=c++17", "--resource-usage",
            "-o", str(out), str(src)]


def compile_cubin(nvcc: str, src: Path, out: Path, arch: str) -> tuple[bool, str]:
    proc = subprocess.run(nvcc_command(nvcc, src, out, arch), capture_output=True, text=True,
                          timeout=600)
    return proc.returncode == 0, (proc.stderr + proc.stdout)


def parse_resource_usage(text: str) -> dict:
    """{kernel: {registers, shared, spill_stores, spill_loads, stack}} from ptxas -v output."""
    usage: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        m = re.search(r"Function properties for (\S+)", line) or \
            re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            current = m.group(1)
            usage.setdefault(current, {})
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            usage[current]["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            if s:
                usage[current]["shared"] = int(s.group(1))
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill "
                      r"loads", line)
        if m and current:
            usage[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                  spill_loads=int(m.group(3)))
        m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", line)
        if m and current:
            usage[current].update(registers=int(m.group(1)), stack=int(m.group(2)),
                                  shared=int(m.group(3)))
    return usage


def compile_all(manifest: dict, kernels: Path, arch: str, cubin_dir: Path, jobs: int,
                only_missing: bool = True) -> dict:
    """Compile every kernel set's source to ``cubin_dir/<id>.<arch>.cubin`` with nvcc.

    Returns {set id: {"ok": bool, "log": str, "usage": {...}}}.
    """
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc"
                                    if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    results: dict[str, dict] = {}
    if nvcc is None:
        return results
    cubin_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for ks in manifest["kernel_sets"]:
        out = cubin_dir / f"{ks['id']}.{arch}.cubin"
        if only_missing and out.exists():
            continue
        todo.append((ks["id"], kernels / ks["source"], out))
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(compile_cubin, nvcc, src, out, arch): sid
                   for sid, src, out in todo}
        for fut in cf.as_completed(futures):
            sid = futures[fut]
            try:
                ok, text = fut.result()
            except Exception as exc:  # noqa: BLE001
                ok, text = False, f"{type(exc).__name__}: {exc}"
            results[sid] = {"ok": ok, "log": text[-4000:], "usage": parse_resource_usage(text)}
            log(f"  nvcc {sid}: {'ok' if ok else 'FAILED'}")
    return results


# --- the worker: everything that touches the GPU --------------------------------------------


class Gpu:
    """Lazily imported cupy / torch, and the workloads' inputs and references."""

    def __init__(self, manifest: dict, seed: int):
        import cupy
        import torch

        self.cp, self.torch = cupy, torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        self.manifest = manifest
        self.seed = seed
        self.inputs: dict[int, list] = {}
        self.refs: dict[int, object] = {}
        self.torch_times: dict[int, dict] = {}

    def tdtype(self, name: str):
        t = self.torch
        return {"float16": t.float16, "float32": t.float32, "float64": t.float64,
                "int8": t.int8, "uint8": t.uint8, "int32": t.int32, "int64": t.int64}[name]

    def workload_inputs(self, wi: int):
        if wi in self.inputs:
            return self.inputs[wi]
        t = self.torch
        gen = t.Generator(device="cuda")
        gen.manual_seed(self.seed + wi)
        tensors = []
        for info in self.manifest["workloads"][wi]["inputs"]:
            shape, dtype = info["shape"], info["dtype"]
            if dtype == "uint8":
                x = t.randint(0, 256, shape, generator=gen, device="cuda", dtype=t.int32)
                x = x.to(t.uint8)
            elif dtype == "int8":
                x = t.randint(-128, 128, shape, generator=gen, device="cuda", dtype=t.int32)
                x = x.to(t.int8)
            else:
                x = (t.rand(shape, generator=gen, device="cuda", dtype=t.float32) * 2 - 1)
                x = x.to(self.tdtype(dtype))
            tensors.append(x.contiguous())
        self.inputs[wi] = tensors
        return tensors

    def reference(self, wi: int):
        """The workload's output in float64, computed by torch on the GPU."""
        if wi in self.refs:
            return self.refs[wi]
        t = self.torch
        w = self.manifest["workloads"][wi]
        p = w["params"]
        xs = [x.to(t.float64) for x in self.workload_inputs(wi)]
        op = w["operator"]
        if op in ("gemm", "batch_gemm"):
            ref = t.matmul(xs[0], xs[1])
        elif op == "conv2d":
            ref = t.nn.functional.conv2d(xs[0], xs[1], stride=p.get("stride", 1),
                                         padding=p.get("pad", 0),
                                         dilation=p.get("dilation", 1),
                                         groups=p.get("groups", 1))
        else:
            raise ValueError(f"no torch reference for {op}")
        t.cuda.synchronize()
        self.refs[wi] = ref
        return ref

    def _apply(self, wi: int, xs):
        t = self.torch
        w = self.manifest["workloads"][wi]
        p = w["params"]
        if w["operator"] in ("gemm", "batch_gemm"):
            return t.matmul(xs[0], xs[1])
        return t.nn.functional.conv2d(xs[0], xs[1], stride=p.get("stride", 1),
                                      padding=p.get("pad", 0), dilation=p.get("dilation", 1),
                                      groups=p.get("groups", 1))

    def abs_bound(self, wi: int):
        """sum_k |a_k * b_k| per output in float64: the scale of each output's rounding error."""
        key = ("bound", wi)
        if key not in self.refs:
            t = self.torch
            self.refs[key] = self._apply(wi, [x.to(t.float64).abs()
                                              for x in self.workload_inputs(wi)])
        return self.refs[key]

    def error_stats(self, wi: int, out) -> dict:
        """Error of ``out`` against the reference, under GTA's tolerance and scaled by the
        per-output bound sum_k |a*b| (fp32 accumulation of K terms: about K * 2^-24 at worst,
        sqrt(K) * 2^-24 typically)."""
        t = self.torch
        w = self.manifest["workloads"][wi]
        ref = self.reference(wi)
        err = (out.to(t.float64) - ref).abs()
        bad = ~(err <= w["error_per_abs_sum"] * self.abs_bound(wi))
        scaled = err / self.abs_bound(wi).clamp_min(1e-30)
        return {"bad": int(bad.sum().item()), "max_abs_err": float(err.max().item()),
                "max_err_over_abs_bound": float(scaled.max().item()),
                "mean_err_over_abs_bound": float(scaled.mean().item()),
                "K_times_2^-24": w["reduction"] * 2.0**-24}

    def alt_checks(self, wi: int) -> dict:
        """The same check applied to torch's own products, once per float workload."""
        key = ("alt", wi)
        if key in self.refs:
            return self.refs[key]
        t = self.torch
        xs = self.workload_inputs(wi)
        out = {}
        try:
            out["torch fp32 CUDA cores (TF32 off)"] = self.error_stats(
                wi, self._apply(wi, [x.to(t.float32) for x in xs]))
        except Exception as exc:  # noqa: BLE001
            out["torch fp32 CUDA cores (TF32 off)"] = {"error": str(exc)[:200]}
        w = self.manifest["workloads"][wi]
        if w["operator"] in ("gemm", "batch_gemm"):
            fn = t.mm if w["operator"] == "gemm" else t.bmm
            try:
                out["cuBLAS fp16 tensor cores, out_dtype=fp32"] = self.error_stats(
                    wi, fn(xs[0], xs[1], out_dtype=t.float32))
            except Exception as exc:  # noqa: BLE001
                out["cuBLAS fp16 tensor cores, out_dtype=fp32"] = {"error": str(exc)[:200]}
        try:
            out["torch fp16 op (fp16 output)"] = self.error_stats(wi, self._apply(wi, xs))
        except Exception as exc:  # noqa: BLE001
            out["torch fp16 op (fp16 output)"] = {"error": str(exc)[:200]}
        t.cuda.synchronize()
        self.refs[key] = out
        return out

    def torch_op(self, wi: int):
        """A no-argument callable running torch's own op on this workload, and its name."""
        t = self.torch
        w = self.manifest["workloads"][wi]
        p = w["params"]
        xs = self.workload_inputs(wi)
        op = w["operator"]
        if w["params"]["dtype"] == "int8":
            # torch has no u8 x s8 product: _int_mm (s8 x s8 -> s32) on same-shaped operands.
            a = (xs[0].to(t.int16) - 128).to(t.int8)
            b = xs[1]
            if op != "gemm":
                return None, None
            try:
                t._int_mm(a, b)
                return (lambda: t._int_mm(a, b)), "torch._int_mm s8xs8->s32"
            except RuntimeError:  # some versions want mat2 column-major
                bc = b.t().contiguous().t()
                t._int_mm(a, bc)
                return (lambda: t._int_mm(a, bc)), "torch._int_mm s8xs8->s32 (B col-major)"
        if op == "gemm":
            a, b = xs
            return (lambda: t.matmul(a, b)), "torch.matmul fp16"
        if op == "batch_gemm":
            a, b = xs
            return (lambda: t.bmm(a, b)), "torch.bmm fp16"
        if op == "conv2d":
            x, wt = xs
            return (lambda: t.nn.functional.conv2d(
                x, wt, stride=p.get("stride", 1), padding=p.get("pad", 0),
                dilation=p.get("dilation", 1), groups=p.get("groups", 1))), "F.conv2d fp16"
        return None, None

    def time_calls(self, calls, reps: int, warmup: int, budget_s: float):
        """Median ms of the whole sequence ``calls`` and of each call, over timed reps.

        Each rep: a spin kernel (so the CPU's launches get ahead of the GPU), then events
        around each call.
        """
        t = self.torch
        for _ in range(warmup):
            for c in calls:
                c()
        t.cuda.synchronize()
        # One plain timed run to size the reps.
        s, e = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
        s.record()
        for c in calls:
            c()
        e.record()
        t.cuda.synchronize()
        one = max(s.elapsed_time(e), 1e-3)
        reps = int(max(5, min(reps, budget_s * 1000 / one)))
        totals, per = [], [[] for _ in calls]
        for _ in range(reps):
            t.cuda._sleep(1_000_000)  # ~0.5 ms of spinning: the launches below queue up
            events = [t.cuda.Event(enable_timing=True) for _ in range(len(calls) + 1)]
            events[0].record()
            for c, ev in zip(calls, events[1:], strict=True):
                c()
                ev.record()
            t.cuda.synchronize()
            for i in range(len(calls)):
                per[i].append(events[i].elapsed_time(events[i + 1]))
            totals.append(events[0].elapsed_time(events[-1]))
        # The sequence alone, without events between its kernels.
        seq = []
        for _ in range(reps):
            t.cuda._sleep(1_000_000)
            a, b = t.cuda.Event(enable_timing=True), t.cuda.Event(enable_timing=True)
            a.record()
            for c in calls:
                c()
            b.record()
            t.cuda.synchronize()
            seq.append(a.elapsed_time(b))
        return {"reps": reps, "median_ms": statistics.median(seq),
                "min_ms": min(seq), "max_ms": max(seq),
                "per_call_median_ms": [statistics.median(x) for x in per],
                "median_ms_with_events": statistics.median(totals)}


def scratch_cubins() -> Path:
    """Where cubins built on this machine go (not $OUT: few files come back from there)."""
    import tempfile

    path = Path(tempfile.gettempdir()) / "gta_gpu_check_cubin"
    path.mkdir(parents=True, exist_ok=True)
    return path


def garbage_fill(tensor, torch):
    if tensor.dtype.is_floating_point:
        tensor.fill_(float("nan"))
    elif tensor.dtype == torch.int32:
        tensor.fill_(-559038737)  # 0xDEADBEEF
    else:
        tensor.view(torch.uint8).fill_(0x5A)


def run_set(gpu: Gpu, ks: dict, args, cubin_dir: Path, kernels: Path) -> dict:
    cp, t = gpu.cp, gpu.torch
    arch = gpu.manifest["arch"]
    res: dict = {"id": ks["id"], "spec": ks["spec"], "mapping": ks["mapping"],
                 "intrinsic": ks["intrinsic"], "seed": ks["seed"],
                 "kernels": [x["kernel"] for x in ks["launches"]]}
    w = gpu.manifest["workloads"][ks["workload"]]
    # Load the module.
    cubin = cubin_dir / f"{ks['id']}.{arch}.cubin"
    module, how, errors = None, None, []
    if cubin.exists():
        try:
            module = cp.RawModule(path=str(cubin))
            for launch in ks["launches"]:
                module.get_function(launch["kernel"])
            how = "prebuilt cubin"
        except Exception as exc:  # noqa: BLE001
            errors.append(f"cubin: {type(exc).__name__}: {str(exc)[:300]}")
            module = None
    if module is None:
        nvcc = shutil.which("nvcc")
        if nvcc:
            out = scratch_cubins() / f"{ks['id']}.{arch}.cubin"
            out.parent.mkdir(parents=True, exist_ok=True)
            ok, text = compile_cubin(nvcc, kernels / ks["source"], out, arch)
            if ok:
                try:
                    module = cp.RawModule(path=str(out))
                    how = "nvcc here"
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"nvcc cubin: {type(exc).__name__}: {str(exc)[:300]}")
            else:
                errors.append(f"nvcc: {text[-1500:]}")
    if module is None:
        try:
            src = (kernels / ks["source"]).read_text()
            module = cp.RawModule(code=src, options=("--std=c++17",))
            for launch in ks["launches"]:
                module.get_function(launch["kernel"])
            how = "cupy nvrtc"
        except Exception as exc:  # noqa: BLE001
            errors.append(f"nvrtc: {type(exc).__name__}: {str(exc)[-1500:]}")
            res.update(status="compile_failed", errors=errors)
            return res
    res["loaded_by"] = how
    if errors:
        res["load_errors"] = errors

    inputs = gpu.workload_inputs(ks["workload"])
    buffers = {}
    for i, prm in enumerate(ks["params"]):
        if i < len(inputs):
            buffers[prm["name"]] = inputs[i]
        else:
            buffers[prm["name"]] = t.empty(prm["shape"], dtype=gpu.tdtype(prm["dtype"]),
                                           device="cuda")
    out_name = ks["params"][-1]["name"]
    for name, ws in ks["workspaces"].items():
        buffers[name] = t.empty(ws["shape"], dtype=gpu.tdtype(ws["dtype"]), device="cuda")
    views = {name: cp.asarray(tensor) for name, tensor in buffers.items()}

    calls = []
    for launch in ks["launches"]:
        fn = module.get_function(launch["kernel"])
        dyn = int(launch["dyn_shared_bytes"])
        if dyn > 48 * 1024:
            fn.max_dynamic_shared_size_bytes = dyn
        kargs = tuple(views[a["buffer"]] if "buffer" in a else NP_DTYPES[a["dtype"]](a["scalar"])
                      for a in launch["args"])
        grid, block = tuple(launch["grid"]), tuple(launch["block"])
        calls.append(lambda fn=fn, g=grid, b=block, a=kargs, d=dyn: fn(g, b, a, shared_mem=d))

    def fill(zero: bool):
        for name, tensor in buffers.items():
            if name in ks["workspaces"] or name == out_name:
                if zero:
                    tensor.zero_()
                else:
                    garbage_fill(tensor, t)

    ref = gpu.reference(ks["workload"])

    def check():
        out = buffers[out_name].to(t.float64)
        err = (out - ref).abs()
        nan = t.isnan(out).sum().item()
        tol = w["error_per_abs_sum"] * gpu.abs_bound(ks["workload"])
        bad = ~(err <= tol)  # NaN counts as bad
        nbad = int(bad.sum().item())
        finite_err = t.where(t.isnan(err), t.zeros_like(err), err)
        summary = {"bad": nbad, "total": int(out.numel()), "nan": int(nan),
                   "max_abs_err": float(finite_err.max().item()),
                   "max_abs_ref": float(ref.abs().max().item())}
        if nbad:
            idx = t.nonzero(bad)
            first = tuple(int(v) for v in idx[0].tolist())
            summary["first_bad"] = list(first)
            summary["first_bad_got_want"] = [float(out[first].item()), float(ref[first].item())]
            # Which indices of each axis hold a bad output: tile-edge bugs show here.
            axes = []
            for d in range(bad.dim()):
                any_bad = bad.transpose(0, d).reshape(bad.shape[d], -1).any(1)
                hit = t.nonzero(any_bad).flatten().tolist()
                axes.append({"extent": int(bad.shape[d]), "bad_indices": len(hit),
                             "first": hit[:8], "last": hit[-4:]})
            summary["bad_by_axis"] = axes
        return summary

    t.cuda.synchronize()
    fill(zero=False)
    t0 = time.time()
    for c in calls:
        c()
    t.cuda.synchronize()
    res["first_run_s"] = round(time.time() - t0, 4)
    chk = check()
    res["check"] = chk
    res["correct"] = chk["bad"] == 0
    if w["output"]["dtype"] != "int32" and (not res["correct"] or args.diagnose_all):
        res["error_stats"] = gpu.error_stats(ks["workload"], buffers[out_name])
        res["same_check_on_torch"] = gpu.alt_checks(ks["workload"])
        log(f"    {ks['id']}: {json.dumps(res['error_stats'])}")
        for name, st in res["same_check_on_torch"].items():
            log(f"      {name}: {json.dumps(st)}")
    if not res["correct"]:
        # Same launch with zeroed output and workspaces: does the program rely on zero init?
        fill(zero=True)
        for c in calls:
            c()
        t.cuda.synchronize()
        res["check_zero_init"] = check()
        # Is it deterministic? Run again with garbage.
        fill(zero=False)
        for c in calls:
            c()
        t.cuda.synchronize()
        res["check_rerun"] = {k: v for k, v in check().items() if k in ("bad", "nan",
                                                                         "max_abs_err")}
    # Timing.
    timing = gpu.time_calls(calls, args.reps, args.warmup, args.budget_per_set)
    flops = w["flops"]
    res["median_us"] = timing["median_ms"] * 1e3
    res["tflops"] = flops / (timing["median_ms"] * 1e-3) / 1e12
    res["timing"] = timing
    tc = [i for i, x in enumerate(ks["launches"]) if x.get("tensor_core")]
    if tc:
        main_ms = sum(timing["per_call_median_ms"][i] for i in tc)
        res["tc_kernel_us"] = main_ms * 1e3
        res["tc_kernel_tflops"] = flops / (main_ms * 1e-3) / 1e12
    # Torch's own op, once per workload.
    wi = ks["workload"]
    if wi not in gpu.torch_times:
        fn, name = gpu.torch_op(wi)
        entry = {"op": name}
        if fn is not None:
            try:
                tt = gpu.time_calls([fn], args.reps, args.warmup, args.budget_per_set)
                entry.update(median_us=tt["median_ms"] * 1e3,
                             tflops=flops / (tt["median_ms"] * 1e-3) / 1e12, reps=tt["reps"])
            except Exception as exc:  # noqa: BLE001
                entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        gpu.torch_times[wi] = entry
    tref = gpu.torch_times[wi]
    res["torch"] = tref
    if tref.get("tflops"):
        res["torch_tflops"] = tref["tflops"]
        res["ratio"] = res["tflops"] / tref["tflops"]
    return res


def worker(args) -> int:
    kernels = Path(args.kernels)
    manifest = load_manifest(kernels)
    order = [ks for ks in ordered_sets(manifest) if ks["id"] not in set(args.skip or [])
             and (not args.only or any(o in ks["id"] for o in args.only))]
    results_file = Path(args.out) / "worker.jsonl"
    gpu = Gpu(manifest, args.seed)
    cubin_dir = Path(args.cubin_dir) if args.cubin_dir else kernels
    with results_file.open("a") as f:
        for ks in order:
            f.write(json.dumps({"event": "begin", "id": ks["id"], "time": time.time()}) + "\n")
            f.flush()
            try:
                res = run_set(gpu, ks, args, cubin_dir, kernels)
                res["status"] = res.get("status", "ran")
            except Exception as exc:  # noqa: BLE001 - a Python-level failure of one set
                if args.traceback:
                    import traceback

                    traceback.print_exc()
                res = {"id": ks["id"], "spec": ks["spec"], "status": "error",
                       "error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
                # A sticky CUDA error poisons the context: leave, the parent restarts us.
                if "CUDA" in str(exc) or "cuda" in type(exc).__module__.lower():
                    f.write(json.dumps({"event": "result", **res}) + "\n")
                    f.flush()
                    return 3
            f.write(json.dumps({"event": "result", **res}) + "\n")
            f.flush()
            summary(res)
    return 0


def summary(res: dict) -> None:
    if res.get("status") != "ran":
        log(f"  {res['id']}: {res.get('status')} {res.get('error', '')[:300]}")
        return
    c = res["check"]
    log(f"  {res['id']}: {'OK ' if res['correct'] else 'BAD'} bad={c['bad']}/{c['total']} "
        f"maxerr={c['max_abs_err']:.3g} {res['median_us']:.1f} us {res['tflops']:.2f} TFLOP/s"
        f" (torch {res.get('torch_tflops', float('nan')):.2f}) [{res.get('loaded_by')}]")


def ordered_sets(manifest: dict) -> list[dict]:
    """Kernel sets interleaved across workloads, so a cut-short run still covers each."""
    by_w: dict[int, list] = {}
    for ks in manifest["kernel_sets"]:
        by_w.setdefault(ks["workload"], []).append(ks)
    out = []
    for i in range(max((len(v) for v in by_w.values()), default=0)):
        for wi in sorted(by_w):
            if i < len(by_w[wi]):
                out.append(by_w[wi][i])
    return out


# --- the parent: compile, run workers, watch them, report -----------------------------------


def device_info() -> dict:
    info = {}
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,"
                               "clocks.max.sm,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = proc.stdout.strip()
    except Exception as exc:  # noqa: BLE001
        info["nvidia_smi"] = f"unavailable: {exc}"
    nvcc = shutil.which("nvcc")
    if nvcc:
        proc = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20)
        info["nvcc"] = proc.stdout.strip().splitlines()[-1] if proc.stdout else ""
    return info


def run_parent(args) -> int:
    start = time.time()
    kernels = Path(args.kernels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(kernels)
    problems = validate(manifest, kernels)
    if problems:
        log("manifest problems:\n  " + "\n  ".join(problems))
        return 2
    info = device_info()
    log(f"device: {info}")
    sets = [ks for ks in ordered_sets(manifest)
            if not args.only or any(o in ks["id"] for o in args.only)]
    log(f"{len(sets)} kernel set(s) over {len(manifest['workloads'])} workload(s)")
    # Cubins: prebuilt ones in --kernels are used; missing ones are built here in parallel.
    arch = manifest["arch"]
    cubin_dir = scratch_cubins()
    compiled = {}
    missing = [ks for ks in sets if not (kernels / f"{ks['id']}.{arch}.cubin").exists()]
    if missing and shutil.which("nvcc"):
        log(f"compiling {len(missing)} set(s) with nvcc here")
        sub = dict(manifest, kernel_sets=missing)
        compiled = compile_all(sub, kernels, arch, cubin_dir, os.cpu_count() or 4)
    for sid in [ks["id"] for ks in sets]:
        src = cubin_dir / f"{sid}.{arch}.cubin"
        dst = kernels / f"{sid}.{arch}.cubin"
        if src.exists() and not dst.exists():
            try:
                shutil.copy(src, dst)
            except OSError:
                pass
    results_file = out / "worker.jsonl"
    results_file.unlink(missing_ok=True)
    done: dict[str, dict] = {}
    skip: list[str] = []
    restarts = 0
    while True:
        remaining = [ks["id"] for ks in sets if ks["id"] not in done and ks["id"] not in skip]
        if not remaining:
            break
        if time.time() - start > args.deadline:
            log(f"deadline of {args.deadline} s reached: {len(remaining)} set(s) not run")
            for sid in remaining:
                done[sid] = {"id": sid, "status": "not_run (deadline)"}
            break
        cmd = [sys.executable, __file__, "--worker", "--kernels", str(kernels), "--out",
               str(out), "--seed", str(args.seed), "--reps", str(args.reps), "--warmup",
               str(args.warmup), "--budget-per-set", str(args.budget_per_set)]
        if args.diagnose_all:
            cmd.append("--diagnose-all")
        for sid in list(done) + skip:
            cmd += ["--skip", sid]
        for o in args.only or []:
            cmd += ["--only", o]
        proc = subprocess.Popen(cmd)
        current, began = None, time.time()
        pos = results_file.stat().st_size if results_file.exists() else 0
        hung = False
        while proc.poll() is None:
            time.sleep(0.5)
            if results_file.exists():
                with results_file.open() as f:
                    f.seek(pos)
                    for line in f:
                        if not line.endswith("\n"):
                            break
                        pos += len(line)
                        ev = json.loads(line)
                        if ev["event"] == "begin":
                            current, began = ev["id"], time.time()
                        else:
                            ev.pop("event")
                            done[ev["id"]] = ev
                            current = None
            if current and time.time() - began > args.set_timeout:
                log(f"  {current}: no result after {args.set_timeout} s: killing the worker")
                proc.kill()
                proc.wait()
                hung = True
            if time.time() - start > args.deadline + 30:
                proc.kill()
                proc.wait()
                break
        # Drain what the worker wrote last.
        if results_file.exists():
            with results_file.open() as f:
                f.seek(pos)
                for line in f:
                    ev = json.loads(line)
                    if ev["event"] == "begin":
                        current = ev["id"]
                    else:
                        ev.pop("event")
                        done[ev["id"]] = ev
                        if current == ev["id"]:
                            current = None
        if current and current not in done:
            done[current] = {"id": current, "status": "hung" if hung else
                             f"worker died (exit {proc.returncode})"}
            log(f"  {current}: {done[current]['status']}")
        restarts += 1
        if restarts > len(sets) + 2:
            break
    results = []
    by_id = {ks["id"]: ks for ks in manifest["kernel_sets"]}
    for ks in sets:
        r = done.get(ks["id"], {"id": ks["id"], "status": "missing"})
        r.setdefault("spec", ks["spec"])
        r.setdefault("mapping", ks["mapping"])
        if ks["id"] in compiled:
            r["nvcc_usage"] = compiled[ks["id"]]["usage"]
            if not compiled[ks["id"]]["ok"]:
                r["nvcc_log"] = compiled[ks["id"]]["log"]
        results.append(r)
    report = {"device": info, "manifest_created": manifest.get("created"),
              "arch": arch, "seed": args.seed, "wall_s": round(time.time() - start, 1),
              "workloads": manifest["workloads"], "results": results}
    (out / "gpu_results.json").write_text(json.dumps(report, indent=1, default=str))
    table = format_table(results, by_id)
    (out / "gpu_results.md").write_text(table + "\n")
    log(table)
    return 0


def format_table(results: list[dict], by_id: dict) -> str:
    rows = ["| kernel set | correct | bad / total | max abs err | us (all kernels) | TFLOP/s "
            "| TC kernel us | TC TFLOP/s | torch TFLOP/s | ratio |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    spec = None
    order = {sid: i for i, sid in enumerate(by_id)}
    for r in sorted(results, key=lambda r: (by_id[r["id"]]["workload"] if r["id"] in by_id
                                            else 99, order.get(r["id"], 0))):
        if r.get("spec") != spec:
            spec = r.get("spec")
            rows.append(f"| **{spec}** |  |  |  |  |  |  |  |  |  |")
        if r.get("status") != "ran":
            why = str(r.get("error", ""))[:120].replace("|", "/").replace("\n", " ")
            rows.append(f"| {r['id']} | {r.get('status')} {why} |  |  |  |  |  |  |  |  |")
            continue
        c = r["check"]
        rows.append(
            f"| {r['id']} | {'yes' if r['correct'] else 'NO'} | {c['bad']}/{c['total']} "
            f"| {c['max_abs_err']:.3g} | {r['median_us']:.1f} | {r['tflops']:.2f} "
            f"| {r.get('tc_kernel_us', float('nan')):.1f} "
            f"| {r.get('tc_kernel_tflops', float('nan')):.2f} "
            f"| {r.get('torch_tflops', float('nan')):.2f} | {r.get('ratio', float('nan')):.3f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", default="gpu_kernels")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu_results"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--budget-per-set", type=float, default=1.5,
                    help="seconds of timed reps per kernel set (reps shrink to fit)")
    ap.add_argument("--deadline", type=float, default=190.0,
                    help="seconds after which no further kernel set is started")
    ap.add_argument("--set-timeout", type=float, default=30.0)
    ap.add_argument("--dry-run", action="store_true",
                    help="check the manifest (numpy only), print the plan, touch no GPU")
    ap.add_argument("--compile", action="store_true",
                    help="compile every set to <kernels>/<id>.<arch>.cubin with a local nvcc")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", action="append", help="run only sets whose id contains this")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--traceback", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--diagnose-all", action="store_true",
                    help="error statistics (and torch's under the same check) for every set")
    ap.add_argument("--skip", action="append", help=argparse.SUPPRESS)
    ap.add_argument("--cubin-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    kernels = Path(args.kernels)
    manifest = load_manifest(kernels)
    if args.dry_run or args.compile:
        problems = validate(manifest, kernels)
        for ks in ordered_sets(manifest):
            launches = " ".join(
                f"{x['kernel']}{'*' if x.get('tensor_core') else ''}"
                f"<{x['grid']},{x['block']},{x['dyn_shared_bytes']}>"
                f"({','.join(a.get('buffer', str(a.get('scalar'))) for a in x['args'])})"
                for x in ks["launches"])
            log(f"{ks['id']}: {launches}")
        log(f"{len(manifest['kernel_sets'])} set(s); problems: {problems or 'none'}")
        try:
            import cupy  # noqa: F401
            log("cupy importable")
        except ImportError:
            log("cupy not importable here (fine for --dry-run / --compile)")
        if args.compile:
            res = compile_all(manifest, kernels, manifest["arch"], kernels, args.jobs,
                              only_missing=False)
            (kernels / "resource_usage.json").write_text(json.dumps(
                {k: v["usage"] for k, v in res.items()}, indent=1))
            failed = {k: v["log"] for k, v in res.items() if not v["ok"]}
            for k, v in failed.items():
                log(f"{k} FAILED:\n{v}")
            log(f"compiled {len(res) - len(failed)}/{len(res)}")
            return 1 if failed or problems else 0
        return 1 if problems else 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
