"""GTA against MetaSchedule at the same trial budget on workloads you name: `gta bench`'s
machinery (gta_core.bench) on an ad-hoc suite.

    .venv/bin/python benchmarks/tune_vs_metaschedule.py --trials 64 --out DIR \\
        [--repeat 5] [--workloads SPEC ...] [--baselines metaschedule,metaschedule-vnni]

Contenders, checks, interleaved timing, records and outputs (DIR/results.json,
results.md, plots) are exactly those of `gta bench`; see docs/index.md.
"""

from __future__ import annotations

import argparse
import sys

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.bench import Suite, parse_baselines, resolve_contenders, run_bench
from gta_core.bench.report import geomean_lines, side_by_side

WORKLOADS = ("gemm:M=512,N=512,K=512,dtype=int8", "gemm:M=512,N=512,K=512,dtype=float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--baselines", default="metaschedule,metaschedule-vnni")
    args = parser.parse_args()
    suite = Suite(name="custom", description="workloads named on the command line",
                  workloads=tuple(args.workloads), trials=args.trials)
    contenders, peak = resolve_contenders(parse_baselines(args.baselines))
    report = run_bench(suite, args.out, contenders=contenders, peak=peak, repeat=args.repeat,
                       progress=lambda text: print(text, file=sys.stderr))
    print(side_by_side(report))
    print("\n".join(geomean_lines(report)))


if __name__ == "__main__":
    main()
