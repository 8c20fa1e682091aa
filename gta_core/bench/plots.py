"""The PNG plots of a bench run: throughput, fraction of peak, tuning curves."""

from __future__ import annotations

from pathlib import Path

from ..workloads import throughput_unit as unit
from .curves import TuningCurve
from .report import BenchReport

THROUGHPUT = "throughput.png"
FRACTION_OF_PEAK = "fraction_of_peak.png"
TUNING_CURVES = "tuning_curves.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a build machine
    import matplotlib.pyplot as plt

    return plt


def _label(spec: str) -> str:
    """A workload spec on a few short lines, without the keys at their defaults' values."""
    op, _, keys = spec.partition(":")
    shown = [k for k in keys.split(",")
             if k not in ("stride=1", "pad=0", "dilation=1", "groups=1")]
    return op + "\n" + "\n".join(",".join(shown[i:i + 4]) for i in range(0, len(shown), 4))


def _bars(report: BenchReport, value, ylabel: str, title: str, path: Path,
          log: bool = False) -> None:
    """Grouped bars: one group per workload, one bar per timed contender."""
    plt = _pyplot()
    names, workloads = report.contenders, report.workloads
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.25 * len(workloads) * (len(names) + 1)), 4.5))
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            result = w.contenders.get(name)
            y = value(w, result) if result is not None and result.status == "timed" else None
            if y is not None:
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                ys.append(y)
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([_label(w.workload) for w in workloads], fontsize=6, rotation=30,
                       ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_throughput(report: BenchReport, path: Path) -> None:
    units = sorted({unit(w.dtype) for w in report.workloads})
    _bars(report, lambda w, r: r.gflops, " or ".join(units) + " (log)",
          f"{report.suite}: throughput, {report.trials} trials", path, log=True)


def plot_fraction_of_peak(report: BenchReport, path: Path) -> None:
    _bars(report, lambda w, r: r.fraction_of_peak, "fraction of measured peak",
          f"{report.suite}: fraction of the intrinsic's measured peak", path)


def plot_tuning_curves(curves: list[TuningCurve], report: BenchReport, path: Path) -> None:
    """One row per workload: best throughput against trials (left) and seconds (right)."""
    plt = _pyplot()
    specs = [w.workload for w in report.workloads
             if any(c.workload == w.workload for c in curves)]
    fig, axes = plt.subplots(max(len(specs), 1), 2, figsize=(10, 2.6 * max(len(specs), 1)),
                             squeeze=False)
    for row, spec in zip(axes, specs):
        dtype = next(w.dtype for w in report.workloads if w.workload == spec)
        for curve in (c for c in curves if c.workload == spec):
            points = [p for p in curve.points if p.best_gflops is not None]
            row[0].step([p.trial for p in points], [p.best_gflops for p in points],
                        where="post", label=curve.contender)
            timed = [p for p in points if p.seconds is not None]
            row[1].step([p.seconds for p in timed], [p.best_gflops for p in timed],
                        where="post", label=curve.contender)
        row[0].set_title(spec, fontsize=8, loc="left")
        row[0].set_xlabel("trials")
        row[1].set_xlabel("seconds of tuning")
        for ax in row:
            ax.set_ylabel(f"best {unit(dtype)}")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(report: BenchReport, curves: list[TuningCurve], out: Path) -> list[str]:
    """Write every plot that has data into ``out``; returns their file names."""
    written = []
    if any(r.status == "timed" for w in report.workloads for r in w.contenders.values()):
        plot_throughput(report, out / THROUGHPUT)
        written.append(THROUGHPUT)
    if any(r.fraction_of_peak is not None for w in report.workloads
           for r in w.contenders.values()):
        plot_fraction_of_peak(report, out / FRACTION_OF_PEAK)
        written.append(FRACTION_OF_PEAK)
    if curves:
        plot_tuning_curves(curves, report, out / TUNING_CURVES)
        written.append(TUNING_CURVES)
    return written
