"""GTA's tuning records: MetaSchedule's JSONDatabase files plus a side file.

A :class:`RecordStore` owns a directory ``DIR``::

    DIR/workloads.json     MetaSchedule's workload table (JSON lines)
    DIR/records.json       MetaSchedule's tuning-record table (JSON lines)
    DIR/gta_records.json   GTA's fields per record (JSON lines)
    DIR/gta.lock           the lock writers hold

so that ``JSONDatabase(path_workload=DIR/workloads.json,
path_tuning_record=DIR/records.json)`` loads the tuning as it stands and
``compile_tir`` applies the best record. GTA's fields (task, mapping, median
latency, error, correctness, time) live in the side file because
MetaSchedule's loader rejects any extra element or key in its lines; each side
line names its record line by a digest of it. A record whose program failed
or computed wrong answers is written to MetaSchedule's table with its failure
stub for a run time, so MetaSchedule never picks it, while the side file keeps
what was measured.

Any number of processes may append at once (an exclusive ``flock`` around
each append); readers never lock, and each read picks up what others appended.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import interrupts
from . import formats
from .lines import (
    LineReader,
    RecordWriteError,
    append_line,
    drop_partial_tail,
    exclusive,
    first_line,
    truncate,
    warn_line,
)

WORKLOADS = "workloads.json"
RECORDS = "records.json"
SIDE = "gta_records.json"
LOCK = "gta.lock"


@dataclass(frozen=True, slots=True)
class Record:
    """One measured candidate: GTA's fields joined to MetaSchedule's tuning record.

    ``trace`` is the trace JSON as stored (``tvm.s_tir.Trace`` form via
    :meth:`RecordStore.schedule`), ``trace_key`` its :func:`formats.trace_key`,
    ``run_secs`` what MetaSchedule's line holds (the failure stub for a failed
    or wrong program), ``line`` the record's 1-based line in records.json.
    A record with no side line (written by MetaSchedule itself, or by a process
    killed between its two writes) has ``task`` None.
    """

    task: str | None
    mapping: str | None
    latency_us: float | None
    error: str | None
    correct: bool | None
    time: float | None
    workload: int
    trace: list
    trace_key: str
    run_secs: list[float] | None
    target: dict | None
    args_info: list | None
    line: int

    @property
    def ok(self) -> bool:
        """Measured, without error, and not found wrong."""
        return self.latency_us is not None and self.error is None and self.correct is not False

    @property
    def status(self) -> str:
        """``ok`` (``correct`` says whether it was checked), ``wrong`` (it ran, and its output
        differed from the reference: ``error`` says how) or ``failed`` (build or run)."""
        if self.correct is False:
            return "wrong"
        return "ok" if self.ok else "failed"

    def tuning_record_json(self) -> list:
        """The ``[trace, run_secs, target, args_info]`` MetaSchedule's TuningRecord reads."""
        return [self.trace, self.run_secs, self.target, self.args_info]


@dataclass(frozen=True, slots=True)
class _Line:
    """A parsed records.json line, before the join with the side file."""

    line: int
    workload: int
    inner: list
    key: str
    trace_key: str


class RecordStore:
    """Tuning records in ``directory``: append-only, crash-safe, shared between processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.workloads_path = self.directory / WORKLOADS
        self.records_path = self.directory / RECORDS
        self.side_path = self.directory / SIDE
        self._lock_path = self.directory / LOCK
        self._mutex = threading.RLock()  # guards the caches below within this process
        self._workload_reader = LineReader(self.workloads_path, self._lock_path)
        self._workload_mods: list[Any] = []  # IRModule by index; None if unreadable
        self._workload_hashes: list[str | None] = []  # recomputed, as JSONDatabase does
        self._workload_index: dict[str, int] = {}  # structural hash -> first index
        self._record_reader = LineReader(self.records_path, self._lock_path)
        self._record_lines: list[_Line] = []
        self._side_reader = LineReader(self.side_path, self._lock_path)
        self._side_lines: list[dict[str, Any]] = []
        self._joined: list[Record] | None = None
        self._by_task: dict[str, list[Record]] = {}

    # ---- workloads ---------------------------------------------------------------------------

    def commit_workload(self, mod: Any) -> int:
        """The index of workload ``mod`` (a PrimFunc or IRModule), registering it if new.

        Idempotent per structural hash of the module MetaSchedule would tune
        (:func:`formats.normalize_mod`), across processes: registration happens
        under the lock after reading what others registered.
        """
        mod = formats.normalize_mod(mod)
        shash = formats.structural_hash(mod)
        with self._mutex:
            self._refresh_workloads()
            if shash in self._workload_index:
                return self._workload_index[shash]
            with exclusive(self._lock_path):
                return self._commit_workload_locked(mod, shash)

    def _commit_workload_locked(self, mod: Any, shash: str) -> int:
        self._refresh_workloads()
        if shash in self._workload_index:
            return self._workload_index[shash]
        entry = formats.workload_json(mod)
        drop_partial_tail(self.workloads_path)
        append_line(self.workloads_path, formats.dumps(entry))
        self._refresh_workloads()
        return self._workload_index[shash]

    def has_workload(self, mod: Any) -> bool:
        """Whether workload ``mod`` (a PrimFunc or IRModule) is registered."""
        return self.workload_index(mod) is not None

    def workload_index(self, mod: Any) -> int | None:
        """The index of workload ``mod`` if registered, else None."""
        shash = formats.structural_hash(formats.normalize_mod(mod))
        with self._mutex:
            self._refresh_workloads()
            return self._workload_index.get(shash)

    def workload_indices(self, mod: Any) -> set[int]:
        """Every index registered for ``mod`` (more than one only where a TVM with another
        structural hash registered it too, or files were merged)."""
        shash = formats.structural_hash(formats.normalize_mod(mod))
        with self._mutex:
            self._refresh_workloads()
            return {i for i, h in enumerate(self._workload_hashes) if h == shash}

    def workload_module(self, index: int) -> Any:
        """The IRModule registered under ``index``."""
        with self._mutex:
            self._refresh_workloads()
            if 0 <= index < len(self._workload_mods) and self._workload_mods[index] is not None:
                return self._workload_mods[index]
        raise KeyError(f"{self.workloads_path} has no readable workload {index}")

    def _check_index(self, index: int) -> None:
        # a record naming a missing workload would make MetaSchedule refuse the whole file
        self._refresh_workloads()
        if not (0 <= index < len(self._workload_mods) and self._workload_mods[index]):
            raise ValueError(f"{self.workloads_path} has no readable workload {index}")

    def _refresh_workloads(self) -> None:
        from tvm.s_tir import meta_schedule as ms

        restarted, lines = self._workload_reader.read_new()
        if restarted:
            self._workload_mods, self._workload_hashes, self._workload_index = [], [], {}
        for number, obj in lines:
            mod = shash = None
            if obj is not None:
                try:
                    formats.check_workload_line(obj)
                    mod = ms.database.Workload.from_json(obj).mod
                    # recomputed, not read: the stored hash may come from another TVM version
                    shash = formats.structural_hash(mod)
                except Exception as exc:  # a bad line, or a module this TVM cannot rebuild
                    warn_line(self.workloads_path, number, first_line(exc))
            # an unreadable line still occupies its index, so later indices keep their meaning
            self._workload_mods.append(mod)
            self._workload_hashes.append(shash)
            if shash is not None:
                self._workload_index.setdefault(shash, number - 1)

    # ---- appending ---------------------------------------------------------------------------

    def append(self, task: str | None, mapping: str | None, mod: Any, trace: Any,
               run_secs: Sequence[float] | None, target: Any = None,
               args_info: Sequence[Any] | None = None, *, latency_us: float | None = None,
               error: str | None = None, correct: bool | None = None) -> Record:
        """Record one measured candidate; durable when this returns.

        ``mod``: the workload (PrimFunc or IRModule, or an index from
        :meth:`commit_workload`); ``trace``: a ``tvm.s_tir.Trace`` or its JSON;
        ``target``: a ``tvm.target.Target`` or its config dict; ``args_info``:
        MetaSchedule ``ArgInfo`` objects or their JSON. ``latency_us`` defaults
        to the median of ``run_secs`` when there is no error; ``error`` is
        flattened to one line; ``correct`` is None when the output was not
        checked. A failed or wrong candidate keeps its numbers here but gets
        MetaSchedule's failure stub as run time in records.json.
        """
        run_secs = [float(s) for s in run_secs] if run_secs else None
        if latency_us is None and error is None and run_secs:
            latency_us = statistics.median(run_secs) * 1e6
        if latency_us is not None and not math.isfinite(latency_us):
            raise ValueError(f"latency_us must be finite, got {latency_us}")
        if error is not None:
            error = " | ".join(part.strip() for part in str(error).splitlines() if part.strip())
        ok = error is None and correct is not False and latency_us is not None
        ms_secs = (run_secs or [latency_us * 1e-6]) if ok else [formats.FAILED_RUN_SECS]
        inner = [formats.trace_json(trace), ms_secs, formats.target_json(target),
                 formats.args_info_json(args_info)]
        formats.check_record_line([0, inner])  # what this store could not read, it never writes
        side = {"task": task, "mapping": mapping,
                "latency_us": None if latency_us is None else float(latency_us),
                "error": error, "correct": None if correct is None else bool(correct),
                "time": time.time()}
        if not isinstance(mod, int):
            mod = formats.normalize_mod(mod)
            shash = formats.structural_hash(mod)
        with self._mutex, exclusive(self._lock_path):
            if isinstance(mod, int):
                self._check_index(mod)
            index = mod if isinstance(mod, int) else self._commit_workload_locked(mod, shash)
            line = [index, inner]
            record_text = formats.dumps(line)
            side_text = formats.dumps({"key": formats.record_key(line), **side})
            # record line first: a kill between the two writes leaves a record without
            # GTA's fields (measured again later), never GTA fields without a record
            drop_partial_tail(self.records_path)
            self._refresh_records()
            number = self._record_reader.lines + 1
            drop_partial_tail(self.side_path)
            size = self.records_path.stat().st_size if self.records_path.exists() else 0
            with interrupts.deferred():  # no signal between the two lines
                append_line(self.records_path, record_text)
                try:
                    append_line(self.side_path, side_text)
                except RecordWriteError:
                    truncate(self.records_path, size)  # a record and its GTA fields, or neither
                    raise
        return Record(workload=index, trace=inner[0], trace_key=formats.trace_key(inner[0]),
                      run_secs=ms_secs, target=inner[2], args_info=inner[3], line=number,
                      **side)

    # ---- reading -----------------------------------------------------------------------------

    def records(self, task: str | None = None) -> list[Record]:
        """All records in file order, or those of ``task``; re-reads what others appended."""
        with self._mutex:
            self._refresh_records()
            self._ensure_joined()
            if task is None:
                return list(self._joined or [])
            return list(self._by_task.get(task, ()))

    def tasks(self) -> list[str]:
        """The task keys on record, in the order they first appear."""
        with self._mutex:
            self._refresh_records()
            self._ensure_joined()
            return list(self._by_task)

    def measured_count(self, task: str) -> int:
        """How many candidates of ``task`` were measured (failed ones included)."""
        return len(self.records(task))

    def best(self, task: str) -> Record | None:
        """The fastest record of ``task`` that ran without error and was not found wrong."""
        ok = [r for r in self.records(task) if r.ok]
        return min(ok, key=lambda r: r.latency_us) if ok else None

    def seen_traces(self, task: str) -> set[str]:
        """The :func:`formats.trace_key` of every trace measured for ``task``."""
        return {r.trace_key for r in self.records(task)}

    def schedule(self, record: Record, mod: Any = None) -> Any:
        """``record``'s trace applied to its workload: the ``tvm.s_tir.Schedule`` it measured;
        with ``mod``, applied to that module instead (a function of the same structure)."""
        from tvm.s_tir import Schedule, Trace

        sch = Schedule(self.workload_module(record.workload) if mod is None else mod)
        Trace.apply_json_to_schedule(record.trace, sch)
        return sch

    def metaschedule_view(self, task: str | None = None, mapping: str | None = None) -> Any:
        """A MetaSchedule ``Database`` over this store, limited to ``task`` if given.

        Hand it to EvolutionarySearch (it seeds its population with get_top_k)
        or to ``compile_tir``; records MetaSchedule commits through it are
        appended here under ``task`` and ``mapping``.
        """
        from .view import StoreDatabase

        return StoreDatabase(self, task, mapping)

    def _refresh_records(self) -> None:
        # side file first: its lines are written after their record lines, so every side
        # line read here has its record line visible when records.json is read next
        restarted_side, side = self._side_reader.read_new()
        restarted_rec, lines = self._record_reader.read_new()
        if restarted_side:
            self._side_lines = []
        if restarted_rec:
            self._record_lines = []
        for number, obj in side:
            if obj is None:
                continue
            try:
                formats.check_side_line(obj)
            except ValueError as exc:
                warn_line(self.side_path, number, str(exc))
                continue
            self._side_lines.append(obj)
        for number, obj in lines:
            if obj is None:
                continue
            try:
                formats.check_record_line(obj)
                parsed = _Line(number, obj[0], obj[1], formats.record_key(obj),
                               formats.trace_key(obj[1][0]))
            except (ValueError, TypeError, IndexError) as exc:
                warn_line(self.records_path, number, str(exc))
                continue
            self._record_lines.append(parsed)
        if side or lines or restarted_side or restarted_rec:
            self._joined = None  # joined again when next asked for

    def _ensure_joined(self) -> None:
        if self._joined is not None:
            return
        pending: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
        for entry in self._side_lines:
            pending[entry["key"]].append(entry)
        joined, by_task = [], defaultdict(list)
        for parsed in self._record_lines:
            # identical record lines (same trace, times, target) pair with side lines in order
            queue = pending.get(parsed.key)
            side = queue.popleft() if queue else {}
            trace, run_secs, target, args_info = parsed.inner
            latency = side.get("latency_us") if side else _ms_latency_us(run_secs)
            record = Record(task=side.get("task"), mapping=side.get("mapping"),
                            latency_us=latency, error=side.get("error"),
                            correct=side.get("correct"), time=side.get("time"),
                            workload=parsed.workload, trace=trace, trace_key=parsed.trace_key,
                            run_secs=run_secs, target=target, args_info=args_info,
                            line=parsed.line)
            joined.append(record)
            if record.task is not None:
                by_task[record.task].append(record)
        self._joined, self._by_task = joined, dict(by_task)


def _ms_latency_us(run_secs: list[float] | None) -> float | None:
    """The median latency of a record MetaSchedule wrote itself (None if it failed)."""
    valid = [s for s in run_secs or () if s != formats.FAILED_RUN_SECS]
    return statistics.median(valid) * 1e6 if valid else None

