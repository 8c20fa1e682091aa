"""What ``gta bench`` reports: results.json's models, the geomean ratios, results.md."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from ..workloads import throughput_unit as unit
from .quiet import QUIET_CORES


class ContenderResult(BaseModel):
    """One contender on one workload.

    ``status``: ``timed`` (checked against numpy, then timed), ``wrong`` (its output
    differs from numpy: not timed, ``note`` says how), ``failed`` (it produced no program
    or crashed: ``note`` says why), ``skipped`` (it has no path for this workload).
    """

    contender: str
    status: Literal["timed", "wrong", "failed", "skipped"]
    note: str | None = None
    correct: bool | None = None  # None where no program was checked
    latency_us: float | None = None  # median over the interleaved rounds
    latency_min_us: float | None = None
    latency_max_us: float | None = None
    spread: float | None = None  # (max - min) / median
    gflops: float | None = None  # GOPS for integer work, from the median latency
    fraction_of_peak: float | None = None
    trials: int | None = None  # candidates measured while tuning (tuning contenders)
    tuning_seconds: float | None = None


class PeakEntry(BaseModel):
    """The measured peak for a dtype: its fastest intrinsic, from ``gta peak``."""

    intrinsic: str
    gops: float


class WorkloadResult(BaseModel):
    workload: str
    dtype: str
    gflop: float  # work of one run, in G(FL)OP
    peak_gops: float | None = None
    # Mean cores other processes used while this workload was timed (None: unknown); near
    # 1 on two cores, parallel programs stall at their barriers (bench/quiet.py).
    other_cores: float | None = None
    contenders: dict[str, ContenderResult]


class BenchReport(BaseModel):
    """results.json: every contender on every workload of a suite, from one run."""

    suite: str
    suite_workloads: int | None = None  # how many the suite has (more than ran: --first)
    target: str
    machine: str
    code: str | None = None  # the GTA commit that timed it (bench.tuned.code_version)
    tuned_by: dict[str, list[str]] = {}  # tuning contender -> the commits that tuned it
    trials: int  # per workload and tuning contender
    repeat: int  # interleaved timing rounds
    contenders: list[str]
    methods: dict[str, str]  # contender -> how it computes
    peak: dict[str, PeakEntry] = {}  # dtype -> measured peak
    workloads: list[WorkloadResult]
    geomean_ratio: dict[str, float]  # "gta/<contender>" -> geomean of speedups
    geomean_workloads: dict[str, int]  # how many workloads each ratio is over
    # per dtype: the same two, over that dtype's workloads only
    geomean_by_dtype: dict[str, dict[str, float]] = {}
    geomean_workloads_by_dtype: dict[str, dict[str, int]] = {}
    load_average: list[float]  # this machine's 1-minute load average before and after timing
    seconds: float
    complete: bool  # False while a run is under way (results.json is rewritten per workload)


def geomean_ratios(workloads: list[WorkloadResult], reference: str = "gta"
                   ) -> tuple[dict[str, float], dict[str, int]]:
    """``reference``'s speedup over each other contender, geometric mean over the workloads
    where both were correct and timed; with the number of such workloads.

    The speedup on a workload is the other's latency over the reference's (equal to the
    ratio of throughputs).
    """
    logs: dict[str, list[float]] = {}
    for result in workloads:
        ref = result.contenders.get(reference)
        if ref is None or ref.status != "timed":
            continue
        for name, other in result.contenders.items():
            if name != reference and other.status == "timed":
                logs.setdefault(name, []).append(math.log(other.latency_us / ref.latency_us))
    ratios = {f"{reference}/{name}": round(math.exp(sum(v) / len(v)), 3)
              for name, v in logs.items()}
    return ratios, {f"{reference}/{name}": len(v) for name, v in logs.items()}


def _cell(result: ContenderResult | None) -> str:
    if result is None:
        return "-"
    if result.status == "timed":
        return (f"{result.gflops:.1f} [{_gops_range(result)}]")
    return {"wrong": "WRONG", "failed": "failed", "skipped": "n/a"}[result.status]


def _gops_range(result: ContenderResult) -> str:
    """The throughput range over the rounds (slowest to fastest round)."""
    per_us = result.gflops * result.latency_us
    return f"{per_us / result.latency_max_us:.1f}-{per_us / result.latency_min_us:.1f}"


def side_by_side(report: BenchReport) -> str:
    """The throughput table (markdown), one row per workload, one column per contender."""
    names = report.contenders
    lines = ["| workload | unit | " + " | ".join(names)
             + (" | peak |" if report.peak else " |"),
             "|---|---|" + "---:|" * (len(names) + bool(report.peak))]
    for w in report.workloads:
        cells = [_cell(w.contenders.get(name)) for name in names]
        if report.peak:
            cells.append(f"{w.peak_gops:.0f}" if w.peak_gops else "-")
        lines.append(f"| `{w.workload}` | {unit(w.dtype)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geomean_lines(report: BenchReport) -> list[str]:
    """One line per ratio over all workloads, then per dtype where the suite has several."""
    lines = [f"- {key}: {value:.2f}x over {report.geomean_workloads[key]} workload(s)"
             for key, value in report.geomean_ratio.items()]
    if len(report.geomean_by_dtype) > 1:
        for dtype, ratios in report.geomean_by_dtype.items():
            counts = report.geomean_workloads_by_dtype[dtype]
            lines += [f"- {dtype}: " + ", ".join(f"{key} {value:.2f}x ({counts[key]})"
                                                 for key, value in ratios.items())]
    return lines


def _provenance(report: BenchReport) -> str:
    """Which code timed the run and which tuned each contender: one commit throughout is
    a fresh run; any other is said, never hidden."""
    tuned = "; ".join(f"{name} at {', '.join(codes) or 'nothing on record'}"
                      for name, codes in report.tuned_by.items())
    return f"Timed at commit {report.code or 'unknown'}" + (f"; tuned: {tuned}." if tuned
                                                            else ".")


def markdown(report: BenchReport, plots: list[str]) -> str:
    """results.md: the side-by-side table, fractions of peak, tuning cost, geomeans, notes."""
    part = (f" (its first {len(report.workloads)} of {report.suite_workloads} workloads)"
            if report.suite_workloads and report.suite_workloads > len(report.workloads)
            and report.complete else "")
    out = [f"# gta bench: suite `{report.suite}`{part}", "",
           f"Target {report.target} on {report.machine}. {report.trials} trials per workload "
           f"for each tuning contender; throughput from the median latency of "
           f"{report.repeat} interleaved rounds, slowest-fastest round in brackets. Every "
           "program was checked against the numpy reference first (WRONG: it differed; not "
           "timed; a contender that requantises its output, `onnxruntime-qlinear`, against "
           f"the requantised reference). Run took {report.seconds:.0f} s; load average "
           f"{' -> '.join(f'{x:.1f}' for x in report.load_average)} while timing "
           "(other processes share these cores).", "", _provenance(report), "",
           side_by_side(report), ""]
    if report.peak:
        names = report.contenders
        out += ["## Fraction of the measured peak", "",
                "Peak: " + ", ".join(f"{dtype} {p.gops:.0f} {unit(dtype)} ({p.intrinsic})"
                                     for dtype, p in report.peak.items()), "",
                "| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for w in report.workloads:
            cells = [f"{r.fraction_of_peak:.1%}" if r and r.fraction_of_peak is not None
                     else "-" for r in (w.contenders.get(n) for n in names)]
            out.append(f"| `{w.workload}` | " + " | ".join(cells) + " |")
        out.append("")
    tuners = [n for n in report.contenders
              if any(w.contenders.get(n) and w.contenders[n].trials is not None
                     for w in report.workloads)]
    if tuners:
        out += ["## Tuning cost (trials measured, seconds)", "",
                "| workload | " + " | ".join(tuners) + " |", "|---|" + "---:|" * len(tuners)]
        for w in report.workloads:
            cells = []
            for name in tuners:
                r = w.contenders.get(name)
                cells.append(f"{r.trials} / {r.tuning_seconds:.0f} s"
                             if r and r.trials is not None else "-")
            out.append(f"| `{w.workload}` | " + " | ".join(cells) + " |")
        out.append("")
    busy = [w for w in report.workloads
            if w.other_cores is not None and w.other_cores > QUIET_CORES]
    if busy:
        out += ["## Timed beside other work", "",
                "Other processes kept these cores busy while these workloads were timed, so "
                "parallel programs may have stalled at their barriers (bench/quiet.py); "
                "re-time them on a quiet machine by running the same command again:", "",
                *(f"- `{w.workload}`: {w.other_cores:.1f} cores" for w in busy), ""]
    out += ["## Geometric-mean speedup of GTA", ""]
    out += geomean_lines(report) or ["- none: no workload where GTA and another were timed"]
    out += ["", "## How each contender computes", ""]
    out += [f"- `{name}`: {method}" for name, method in report.methods.items()]
    notes = [f"- `{w.workload}` {name}: {r.note}" for w in report.workloads
             for name, r in w.contenders.items() if r.note]
    if notes:
        out += ["", "## Notes per workload", "", *notes]
    if plots:
        out += ["", "## Plots", "", *(f"![{p}]({p})" for p in plots)]
    return "\n".join(out) + "\n"
