"""Tuning curves: the best throughput found so far, against trials and seconds of tuning.

Derived from each tuner's own records in order (GTA's RecordStore, MetaSchedule's
JSONDatabase), so they show the search as it happened; a failed candidate adds a trial
and no throughput. Seconds count only the tuning parts logged in ``tuned.json``.
"""

from __future__ import annotations

from pydantic import BaseModel

from .tuned import TuningEntry


class CurvePoint(BaseModel):
    trial: int
    seconds: float | None  # None where the record's time is unknown
    best_gflops: float | None  # GOPS for integer work; None until a candidate ran


class TuningCurve(BaseModel):
    workload: str
    contender: str
    points: list[CurvePoint]


def tuning_curve(workload: str, contender: str, flops: int,
                 history: list[tuple[float | None, float | None]],
                 entry: TuningEntry) -> TuningCurve:
    """The curve of one tuner on one workload from its ``(time, latency_us)`` history."""
    best: float | None = None
    points = []
    for trial, (when, latency_us) in enumerate(history, start=1):
        if latency_us is not None and (best is None or latency_us < best):
            best = latency_us
        points.append(CurvePoint(
            trial=trial, seconds=entry.elapsed(when) if when is not None else None,
            best_gflops=flops / best / 1e3 if best is not None else None))
    return TuningCurve(workload=workload, contender=contender, points=points)
