"""GTA against MetaSchedule at the same trial budget, side by side in one run.

    .venv/bin/python benchmarks/tune_vs_metaschedule.py --trials 64 --out bench-out [--repeat 5]

Contenders per workload, each tuned with the same builder and runner:
- ``gta``: ``gta_core.tune`` (mapping enumeration, generation rules, constraints);
- ``metaschedule``: MetaSchedule's default CPU rules (for int8: generic, no intrinsic,
  since TVM's own VNNI intrinsic does not build here);
- ``metaschedule-vnni`` (int8 only): MetaSchedule's auto-tensorization rule
  (MultiLevelTilingWithIntrin) driving GTA's working VNNI intrinsic: the strongest
  TensorIR baseline.
Each contender's best program is then re-measured side by side (median of
``--repeat`` runs) after its output is checked against numpy; a wrong program is
reported wrong, not timed. Tuning records live under ``--out``: a rerun continues
where the last stopped and re-measures only the final programs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.api import load_workload
from gta_core.measure import MeasureSettings, make_builder, make_runner, measure_program
from gta_core.plugins import default_registry
from gta_core.tuning import tune

WORKLOADS = (
    "gemm:M=512,N=512,K=512,dtype=int8",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8",
    "gemm:M=512,N=512,K=512,dtype=float32",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float32",
    "depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1,dtype=int8",
)
CONTENDERS = ("gta", "metaschedule", "metaschedule-vnni")


def metaschedule(workload, target, trials: int, work_dir: Path, vnni: bool):
    """Tune with MetaSchedule; returns (best schedule or None, tuning seconds)."""
    from tvm.s_tir import meta_schedule as ms

    settings = MeasureSettings()
    kwargs = {}
    if vnni:
        import gta_avx512.tvm_intrinsics  # noqa: F401 - registers gta_avx512_vnni_16x4

        kwargs["space"] = ms.space_generator.PostOrderApply(
            sch_rules=[
                ms.schedule_rule.AutoInline(into_producer=False, into_consumer=True,
                                            inline_const_tensor=True, disallow_if_then_else=True,
                                            require_injective=True, require_ordered=True,
                                            disallow_op=["tirx.exp"]),
                ms.schedule_rule.AddRFactor(max_jobs_per_core=16, max_innermost_factor=64),
                ms.schedule_rule.MultiLevelTilingWithIntrin(
                    "gta_avx512_vnni_16x4", structure="SSRSRS", tile_binds=None,
                    max_innermost_factor=64, vector_load_lens=None, reuse_read=None,
                    reuse_write=ms.schedule_rule.ReuseType(req="may", levels=[1, 2],
                                                           scope="global")),
                ms.schedule_rule.ParallelizeVectorizeUnroll(
                    max_jobs_per_core=16, max_vectorize_extent=-1,
                    unroll_max_steps=[0, 16, 64, 512], unroll_explicit=True),
                ms.schedule_rule.RandomComputeLocation(),
            ],
            postprocs=[
                ms.postproc.DisallowDynamicLoop(),
                ms.postproc.RewriteParallelVectorizeUnroll(),
                ms.postproc.RewriteReductionBlock(),
                ms.postproc.RewriteTensorize(vectorize_init_loop=True),
                ms.postproc.RewriteLayout(),
            ],
            mutator_probs="llvm",
        )
    records = work_dir / "database_tuning_record.json"
    start = time.perf_counter()
    if records.exists() and records.read_text().count("\n") >= trials:
        # Tuned in an earlier part of this run: MetaSchedule would tune `trials` more.
        database = ms.database.JSONDatabase(str(work_dir / "database_workload.json"),
                                            str(records))
    else:
        database = ms.tune_tir(workload.prim_func(), target.tvm_target(), str(work_dir),
                               trials, num_trials_per_iter=16, builder=make_builder(settings),
                               runner=make_runner(settings, target), **kwargs)
    seconds = time.perf_counter() - start
    return ms.tir_integration.compile_tir(database, workload.prim_func(),
                                          target.tvm_target()), seconds


def measure_side_by_side(workload, target, programs: dict, spec: str, repeat: int) -> list:
    """Median throughput of each contender's program, measured in interleaved rounds.

    Interleaving matters here: this shared machine flips between fast and slow
    phases lasting seconds, which would otherwise land on one contender only.
    """
    samples: dict[str, list] = {name: [] for name in programs}
    for _ in range(repeat):
        for name, (sch, _, _) in programs.items():
            if sch is not None:
                samples[name].append(measure_program(sch.mod, workload, target, number=5,
                                                     repeat=3))
    rows = []
    for name, (sch, seconds, trials) in programs.items():
        results = samples[name]
        if sch is None:
            rows.append({"workload": spec, "contender": name, "gops": None,
                         "note": "no program built"})
            continue
        ok = all(r.correct for r in results)
        gops = [r.gflops for r in results] if ok else []
        median = float(np.median(gops)) if ok else None
        rows.append({"workload": spec, "contender": name, "gops": median, "correct": ok,
                     "spread": (max(gops) - min(gops)) / median if ok else None,
                     "tune_seconds": round(seconds, 1), "trials": trials,
                     "mismatch": None if ok else results[0].mismatch})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS),
                        help="tune only these now (e.g. the baselines first, GTA in a later part)")
    args = parser.parse_args()
    registry = default_registry()
    target = registry.target("avx512")
    rows = []
    for spec in args.workloads:
        workload = load_workload(spec)
        slug = spec.replace(":", "_").replace(",", "_").replace("=", "")
        programs = {}
        start = time.perf_counter()
        report = (tune([spec], "avx512", args.trials, args.out / slug / "gta").tasks[0]
                  if "gta" in args.contenders else None)
        gta_seconds = time.perf_counter() - start
        if report is not None and report.mapping is not None:
            from gta_core.database import RecordStore

            store = RecordStore(args.out / slug / "gta")
            key = f"{workload.spec}@avx512#{report.mapping}"
            programs["gta"] = (store.schedule(store.best(key)), gta_seconds, report.new_trials)
        kinds = ["metaschedule"] + (["metaschedule-vnni"] if "int8" in spec else [])
        for kind in (k for k in kinds if k in args.contenders):
            sch, seconds = metaschedule(workload, target, args.trials, args.out / slug / kind,
                                        vnni=kind.endswith("vnni"))
            programs[kind] = (sch, seconds, args.trials)
        rows += measure_side_by_side(workload, target, programs, spec, args.repeat)
    for spec in args.workloads:
        base = {r["contender"]: r for r in rows if r["workload"] == spec}
        gta = base.get("gta", {}).get("gops")
        for name, row in base.items():
            if name != "gta" and gta and row.get("gops"):
                row["gta_ratio"] = round(gta / row["gops"], 2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tune_vs_metaschedule.json").write_text(json.dumps(rows, indent=2))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
