"""The dual-task scheduler against the even split, at the same trial budget.

    .venv/bin/python benchmarks/dual_vs_even.py --trials 64 --out bench-dual [--repeat 5]

Per workload, GTA tunes twice into separate record stores: once with the
even split over its kept mappings (every mapping gets budget / mappings),
once with the dual-task scheduler. Reported per workload: how many trials the
dual run needed to reach the even split's final best (from the records, in
the order measured), and the two runs' final picks (what ``gta tune`` reports:
the fastest of its top records re-timed) re-measured side by side, interleaved,
median of ``--repeat`` (each checked against numpy first).
Records stay under ``--out``: a rerun measures only the final programs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.api import load_workload
from gta_core.database import RecordStore
from gta_core.final_pick import picked_record
from gta_core.measure import measure_program
from gta_core.plugins import default_registry
from gta_core.scheduler.space import task_prefix
from gta_core.tuning import tune

WORKLOADS = (
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float32",
    "depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1,dtype=int8",
)


def best_curve(store: RecordStore, prefix: str) -> list[float]:
    """Best latency (us) after each trial of the tasks starting with ``prefix``."""
    best, out = float("inf"), []
    for record in store.records():
        if record.task and record.task.startswith(prefix):
            if record.ok:
                best = min(best, record.latency_us)
            out.append(best)
    return out


def best_program(store: RecordStore, prefix: str):
    """The run's final pick; the fastest single measurement where there is none."""
    record = picked_record(store)
    if record is None:
        records = [r for r in store.records() if r.ok and r.task and r.task.startswith(prefix)]
        record = min(records, key=lambda r: r.latency_us)
    return store.schedule(record).mod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-dual"))
    parser.add_argument("--target", default="avx512")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    args = parser.parse_args()
    target = default_registry().target(args.target)
    rows = []
    for spec in args.workloads:
        workload = load_workload(spec)
        slug = spec.replace(":", "_").replace(",", "_").replace("=", "")
        prefix = task_prefix(workload.spec, target)
        runs = {}
        for policy in ("even", "dual"):
            db = args.out / policy / slug
            report = tune([spec], args.target, args.trials, db, scheduler=policy)
            store = RecordStore(db)
            runs[policy] = {"report": report.tasks[0], "curve": best_curve(store, prefix),
                            "program": best_program(store, prefix), "seconds": report.seconds}
        even_best = runs["even"]["curve"][-1]
        reached = next((i + 1 for i, b in enumerate(runs["dual"]["curve"]) if b <= even_best),
                       None)
        times: dict[str, list[float]] = {"even": [], "dual": []}
        correct = {}
        for _ in range(args.repeat):  # interleaved: both see the same machine state
            for policy in times:
                result = measure_program(runs[policy]["program"], workload, target)
                correct[policy] = result.correct
                times[policy].append(result.latency_us)
        medians = {p: statistics.median(t) for p, t in times.items()}
        row = {
            "workload": spec,
            "mappings": len(runs["dual"]["report"].mappings),
            "trials": args.trials,
            "even_gflops": workload.flops / medians["even"] / 1e3,
            "dual_gflops": workload.flops / medians["dual"] / 1e3,
            "dual/even": medians["even"] / medians["dual"],
            "dual_trials_to_even_best": reached,
            "correct": correct,
            "even_mapping": runs["even"]["report"].mapping,
            "dual_mapping": runs["dual"]["report"].mapping,
            "dual_dropped": sum(m.dropped for m in runs["dual"]["report"].mappings),
            "seconds": {p: round(r["seconds"]) for p, r in runs.items()},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "dual_vs_even.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
