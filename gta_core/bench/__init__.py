"""``gta bench``: GTA side by side with MetaSchedule, ONNX Runtime, PyTorch, numpy and the
measured peak.

suites (what is benchmarked) -> contenders (each makes a program per workload, tuning
first where it tunes) -> run (check against numpy, time interleaved) -> report
(results.json, results.md), curves and plots.
"""

from .contenders import CONTENDERS, PEAK, BenchContext, Contender, Prepared
from .report import BenchReport, ContenderResult, WorkloadResult, geomean_ratios
from .run import (
    DEFAULT_BASELINES,
    BenchError,
    adhoc_suite,
    parse_baselines,
    resolve_contenders,
    resolve_suite,
    run_bench,
)
from .suites import SUITES, Suite

__all__ = ["CONTENDERS", "DEFAULT_BASELINES", "PEAK", "SUITES", "BenchContext",
           "BenchError", "BenchReport", "Contender", "ContenderResult", "Prepared", "Suite",
           "WorkloadResult", "adhoc_suite", "geomean_ratios", "parse_baselines",
           "resolve_contenders", "resolve_suite", "run_bench"]
