"""Where a tuned model's time goes: its fused functions ranked by calls x latency, each
with its throughput against the measured peak of the intrinsics for its dtypes."""

from __future__ import annotations

from pydantic import BaseModel

from ..model_tuning import ModelTuneReport
from ..plugins import Registry


class Hotspot(BaseModel):
    function: str
    weight: int  # calls per inference
    anchor: str | None
    mapping: str | None  # the program's mapping ("generic": no intrinsic; None: untuned)
    us_per_call: float
    share: float  # of the model's summed function time
    gops: float | None  # the anchor's work over the latency
    peak_gops: float | None  # the fastest measured intrinsic computing the same dtypes
    peak_intrinsic: str | None


def _peak_for(mapping: str | None, registry: Registry, target: str,
              measured: dict[str, float]) -> tuple[str | None, float | None]:
    """The fastest measured intrinsic with the dtypes of ``mapping``'s intrinsic."""
    intrinsics = {i.name: i for i in registry.intrinsics_for(target)}
    own = intrinsics.get((mapping or "").rsplit("-", 1)[0])
    if own is None:
        return None, None
    same = [name for name, i in intrinsics.items() if name in measured
            and sorted(i.input_dtypes) == sorted(own.input_dtypes)
            and i.output_dtype == own.output_dtype]
    if not same:
        return None, None
    best = max(same, key=measured.get)
    return best, measured[best]


def hotspots(report: ModelTuneReport, measured: dict[str, float], registry: Registry,
             top: int = 5) -> list[Hotspot]:
    """The ``top`` functions of ``report`` by weight x latency (``measured``: GOPS per
    intrinsic, from :func:`~.run.measured_peaks`)."""
    timed = [t for t in report.tasks if t.latency_us is not None]
    total = sum(t.weight * t.latency_us for t in timed) or 1.0
    rows = []
    for task in sorted(timed, key=lambda t: -t.weight * t.latency_us)[:top]:
        tuned = task.tuned if task.tuned and task.tuned.correct else None
        mapping = tuned.mapping if tuned else None
        intrinsic, peak = _peak_for(mapping, registry, report.target, measured)
        rows.append(Hotspot(
            function=task.name, weight=task.weight, anchor=task.anchor, mapping=mapping,
            us_per_call=task.latency_us, share=task.weight * task.latency_us / total,
            gops=task.gflops_work * 1e3 / task.latency_us if task.anchor else None,
            peak_gops=peak, peak_intrinsic=intrinsic))
    return rows


def markdown(rows: list[Hotspot]) -> list[str]:
    lines = ["| function | calls | anchor | mapping | us per call | share | GOPS | of peak |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        of_peak = (f"{r.gops / r.peak_gops:.0%} of {r.peak_intrinsic} ({r.peak_gops:.0f})"
                   if r.gops and r.peak_gops else "-")
        lines.append(f"| {r.function} | {r.weight} | {r.anchor or '-'} | {r.mapping or '-'} | "
                     f"{r.us_per_call:.0f} | {r.share:.0%} | "
                     f"{f'{r.gops:.1f}' if r.gops else '-'} | {of_peak} |")
    return lines
