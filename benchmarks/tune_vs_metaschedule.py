"""GTA against MetaSchedule at the same trial budget on workloads you name: `gta bench`'s
machinery (gta_core.bench) on an ad-hoc suite.

    .venv/bin/python benchmarks/tune_vs_metaschedule.py --trials 64 --out DIR \\
        [--repeat 5] [--workloads SPEC ...] [--contenders gta metaschedule ...] [--peak]

Contenders, checks, interleaved timing, records and outputs (DIR/results.json,
results.md, plots) are exactly those of `gta bench`; see docs/index.md. Run in parts
with ``--contenders`` (e.g. the baselines first, GTA in a later part): each part tunes
and times only the contenders it names, and what DIR holds is never tuned again.
"""

from __future__ import annotations

import argparse
import sys

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core.bench import CONTENDERS, Suite, run_bench
from gta_core.bench.report import geomean_lines, side_by_side

WORKLOADS = (
    "gemm:M=512,N=512,K=512,dtype=int8",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8",
    "gemm:M=512,N=512,K=512,dtype=float32",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float32",
    "depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1,dtype=int8",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS),
                        default=["gta", "metaschedule", "metaschedule-vnni"])
    parser.add_argument("--peak", action="store_true", help="also measure the peak")
    parser.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                        help="wait up to this long for idle cores before timing a workload")
    args = parser.parse_args()
    suite = Suite(name="custom", description="workloads named on the command line",
                  workloads=tuple(args.workloads), trials=args.trials)
    report = run_bench(suite, args.out, contenders=[CONTENDERS[n]() for n in args.contenders],
                       peak=args.peak, repeat=args.repeat, quiet_wait_s=args.quiet_wait,
                       isolate=True,
                       progress=lambda text: print(text, file=sys.stderr))
    print(side_by_side(report))
    print("\n".join(geomean_lines(report)))


if __name__ == "__main__":
    main()
