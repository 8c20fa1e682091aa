"""Export GTA's sampled cuda-tc kernels, with their launch configurations, for a GPU check.

Run here (no GPU needed), with the project's venv:

    .venv/bin/python benchmarks/gpu_check/prepare.py --out gpu_kernels [--arch sm_90]

For each workload, a few valid schedules are sampled the way ``gta codegen`` samples one
(``gta_core.codegen._candidates`` / ``_sampled``: every kept mapping in turn, then further
seeds), and each written as a kernel set (``gta_core.measure.kernel_sets``: its CUDA source,
what ``gta codegen`` writes, and the kernels its host function launches, in order, with their
arguments, grid / block extents and dynamic shared memory).

Writes ``OUT/manifest.json`` and one ``OUT/<set>.cu`` per kernel set; inputs are not saved
(the GPU script draws them from a seed). ``benchmarks/gpu_check/run_on_gpu.py`` reads them.
"""

from __future__ import annotations

import argparse
import json
import os
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

def log(text: str) -> None:
    print(text, flush=True)


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


    from gta_core.api import load_workload
    from gta_core.measure.kernel_sets import kernel_set, new_manifest, workload_entry
    from gta_core.plugins import default_registry

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
    manifest = new_manifest(target)
    seen_sources: dict[str, str] = {}
    for w_index, (spec, count) in enumerate(wanted):
        t_w = time.time()
        log(f"== {spec} (up to {count})")
        workload = load_workload(spec, registry)
        entry = workload_entry(workload, w_index)
        manifest["workloads"].append(entry)
        try:
            samples = sample_schedules(workload, target, registry, count, args.max_seed)
        except Exception as exc:  # noqa: BLE001 - report, go on with the next workload
            log(f"  SKIPPED: {type(exc).__name__}: {str(exc)[:300]}")
            manifest["skipped"].append({"workload": workload.spec, "why": str(exc)[:500]})
            continue
        for sch, cand, seed in samples:
            set_id = f"w{w_index}-{cand.id}-s{seed}"
            try:
                kset = kernel_set(sch.mod, target, entry, set_id, out)
            except Exception as exc:  # noqa: BLE001
                log(f"  {set_id}: SKIPPED ({type(exc).__name__}: {str(exc)[:300]})")
                manifest["skipped"].append({"workload": workload.spec, "set": set_id,
                                            "why": str(exc)[:500]})
                continue
            if kset["sha1"] in seen_sources:
                log(f"  {set_id}: same source as {seen_sources[kset['sha1']]}, skipped")
                (out / kset["source"]).unlink()
                continue
            seen_sources[kset["sha1"]] = set_id
            manifest["kernel_sets"].append({**kset, "mapping": cand.id,
                                            "intrinsic": cand.intrinsic, "seed": seed})
            launches = kset["launches"]
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
