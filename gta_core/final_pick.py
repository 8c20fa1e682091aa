"""The final pick: a workload's fastest records timed again, side by side, before one is reported.

Each candidate is measured once while tuning, so the fastest of 64 is often one measured
in a quiet moment rather than the fastest program: on int8 GEMM 512^3 the best record had
measured 410 us, was timed at 600 us afterwards, and its mapping's trials had a median of
856 us. So the workload's distinct records (over all of its mappings) are built, fastest
first, and checked against numpy (output filled with garbage first) until ``TOP`` of them
are correct or none is left; those ``TOP`` are timed in ``ROUNDS`` interleaved rounds, each round
one sample per candidate in the tuning's own way (``MeasureSettings``: the median of
``repeat`` repeats of at least ``min_repeat_ms``); the pick is the correct candidate with
the smallest median sample. Interleaving puts a slow spell of the machine into every
candidate's samples alike, not into one candidate's.

The pick is appended to ``DIR/final_pick.json`` (one JSON line per pick), so a rerun whose
top records are the same reuses it, and ``gta bench`` builds the program the pick names.
It needs the program to run here, so only CPU targets this CPU can run get one
(:func:`gta_core.host.cannot_run`); a GPU target, or one measured on another CPU, keeps the
tuning's best.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from pydantic import BaseModel, computed_field

from .database import Record, RecordStore
from .database.lines import (
    append_line,
    drop_partial_tail,
    exclusive,
    first_line,
    read_json_lines,
    warn_line,
)
from .generation.bounds import outside_error
from .measure import MeasureSettings, runnable
from .measure.garbage import garbage_output
from .models import Target
from .weight_prepack import as_model_runs
from .workloads import Workload

TOP = 4  # records timed again: the fastest after tuning were within 10-20 % of each other
ROUNDS = 5
FILE = "final_pick.json"


class Retimed(BaseModel):
    """One record timed again: its tuning latency, and its samples here (none: not timed)."""

    line: int  # the record's line in records.json
    trace_key: str
    mapping: str | None
    tuned_us: float
    samples_us: list[float] = []
    correct: bool | None = None
    error: str | None = None  # why it was not timed (it failed to build or run)

    @computed_field
    @property
    def median_us(self) -> float | None:
        return statistics.median(self.samples_us) if self.samples_us else None


class FinalPick(BaseModel):
    """The candidates of one workload's final pick; the pick is the fastest correct median."""

    tasks: list[str]  # the workload's task keys, sorted
    candidates: list[Retimed]
    time: float

    @property
    def picked(self) -> Retimed | None:
        timed = [c for c in self.candidates if c.correct and c.samples_us]
        return min(timed, key=lambda c: c.median_us) if timed else None


def ranked_records(store: RecordStore, tasks: list[str]) -> list[Record]:
    """``tasks``' good records, one per distinct trace, fastest first."""
    wanted = set(tasks)
    ok = sorted((r for r in store.records() if r.task in wanted and r.ok),
                key=lambda r: r.latency_us)
    out, seen = [], set()
    for record in ok:
        if record.trace_key not in seen:
            seen.add(record.trace_key)
            out.append(record)
    return out


def recorded(directory: str | Path, tasks: list[str] | None = None) -> list[FinalPick]:
    """The final picks on record in ``directory``, oldest first; only those of ``tasks`` (all
    of a workload's task keys) if given. A line that does not parse is skipped."""
    path = Path(directory) / FILE
    picks = []
    for number, entry in read_json_lines(path):
        try:
            pick = FinalPick.model_validate(entry)
        except ValueError as exc:
            warn_line(path, number, first_line(exc))
            continue
        if tasks is None or pick.tasks == sorted(tasks):
            picks.append(pick)
    return picks


def picked_record(store: RecordStore, tasks: list[str] | None = None) -> Record | None:
    """The record the last final pick in ``store``'s directory picked (of ``tasks``, all of a
    workload's task keys, if given), if any."""
    picks = recorded(store.directory, tasks)
    picked = picks[-1].picked if picks else None
    if picked is None:
        return None
    record = _line(store, picked.line)
    return record if record and record.trace_key == picked.trace_key else None


def _line(store: RecordStore, line: int) -> Record | None:
    return next((r for r in store.records() if r.line == line), None)


def in_bounds(store: RecordStore, record: Record | None) -> bool:
    """Whether ``record``'s program writes inside its buffers (:mod:`.generation.bounds`):
    records tuned before that check may not (a transposed convolution's, 2026-12-07)."""
    return record is not None and outside_error(store.schedule(record).mod) is None


def final_pick(store: RecordStore, workload: Workload, target: Target, tasks: list[str],
               measure: MeasureSettings | None = None, *, top: int = TOP,
               rounds: int = ROUNDS) -> FinalPick | None:
    """The final pick among ``tasks``' fastest correct records, timed here; None if none is
    on record.

    Reuses the last pick on record when it looked at the same records: the same fastest
    ones, as many as it built.
    """
    records = ranked_records(store, tasks)
    if not records:
        return None
    for pick in reversed(recorded(store.directory, tasks)):
        keys = [r.trace_key for r in records[:len(pick.candidates)]]
        if sorted(c.trace_key for c in pick.candidates) == sorted(keys) and (
                pick.picked is None or in_bounds(store, _line(store, pick.picked.line))):
            return pick
    pick = FinalPick(tasks=sorted(tasks), time=time.time(),
                     candidates=_retime(store, workload, target, records,
                                        measure or MeasureSettings(), rounds, top))
    path = store.directory / FILE
    with exclusive(store.directory / "final_pick.lock"):
        drop_partial_tail(path)
        append_line(path, pick.model_dump_json())
    return pick


def _retime(store: RecordStore, workload: Workload, target: Target, records: list[Record],
            measure: MeasureSettings, rounds: int, top: int) -> list[Retimed]:
    """Build and check ``records`` in order until ``top`` are correct; time those."""
    import tvm

    device = tvm.cpu()
    # timed as the tuning timed them: with caches flushed (a model's functions) or warm
    from .measure.scrub import preprocessor

    preproc = preprocessor(measure)
    inputs = workload.random_inputs(0)
    expected = workload.expected(inputs)
    args = [tvm.runtime.tensor(x, device) for x in inputs]
    candidates, timers = [], []
    for record in records:
        if len(timers) == top:
            break
        candidate = Retimed(line=record.line, trace_key=record.trace_key,
                            mapping=record.mapping, tuned_us=record.latency_us)
        candidates.append(candidate)
        # An output of its own, filled with garbage: one left over from another candidate,
        # or zeros, could hide a program that never writes (or never initialises) it.
        out = tvm.runtime.tensor(garbage_output(workload), device)
        try:  # as the tuning built it: a model's weights laid out once, beforehand
            mod = store.schedule(record).mod
            refusal = outside_error(mod)  # never run: it would corrupt memory
            if refusal:
                raise ValueError(refusal)
            program = as_model_runs(workload, mod)
            module = runnable(program.module(), target)
            inputs = program.arguments(args, target)
            module(*inputs, out)
        except Exception as exc:  # noqa: BLE001 - a record that no longer builds is left out
            candidate.error = first_line(exc)[:300]
            continue
        candidate.correct = workload.mismatch(out.numpy(), expected) is None
        if candidate.correct:
            timers.append((candidate, inputs, out, module.time_evaluator(
                module.entry_name, device, number=measure.number, repeat=measure.repeat,
                min_repeat_ms=measure.min_repeat_ms, f_preproc=preproc)))
    for round_ in range(rounds):
        shift = round_ % len(timers) if timers else 0  # none is always timed first
        for candidate, inputs, out, timer in timers[shift:] + timers[:shift]:
            candidate.samples_us.append(statistics.median(timer(*inputs, out).results) * 1e6)
    return candidates
