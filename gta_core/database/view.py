"""A MetaSchedule ``Database`` backed by a :class:`RecordStore`.

EvolutionarySearch asks its database for ``commit_workload(mod)`` once and
``get_top_k(workload, k)`` each round (to seed its population with the best
measured traces); the ``AddToDatabase`` measure callback commits records; and
``compile_tir`` goes through MetaSchedule's default query methods, which call
``has_workload`` and ``get_top_k``. Ranking follows JSONDatabase: valid records
(a non-empty trace and a real run time) by mean ``run_secs``.
"""

from __future__ import annotations

import statistics
import warnings

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from . import formats
from .lines import CorruptLineWarning, first_line
from .records import Record, RecordStore


@derived_object
class StoreDatabase(ms.database.PyDatabase):
    """MetaSchedule's view of a record store; with ``task`` set, only that task's records."""

    def __init__(self, store: RecordStore, task: str | None = None,
                 mapping: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.task = task
        self.mapping = mapping
        self._workloads: dict[int, ms.database.Workload] = {}

    def _scope(self) -> list[Record]:
        return self.store.records(self.task)

    def _workload(self, index: int, mod=None) -> ms.database.Workload:
        """One Workload object per index, so records of one workload share it."""
        if index not in self._workloads:
            mod = self.store.workload_module(index) if mod is None else mod
            self._workloads[index] = ms.database.Workload(mod)
        return self._workloads[index]

    def has_workload(self, mod) -> bool:
        return self.store.has_workload(mod)

    def commit_workload(self, mod) -> ms.database.Workload:
        return self._workload(self.store.commit_workload(mod), formats.normalize_mod(mod))

    def commit_tuning_record(self, record: ms.database.TuningRecord) -> None:
        run_secs = [float(s.value if hasattr(s, "value") else s) for s in record.run_secs or ()]
        valid = [s for s in run_secs if s != formats.FAILED_RUN_SECS]
        # MetaSchedule passes no error text, only its failure stub for a run time
        error = None if valid else "MetaSchedule recorded no valid run time (build or run failed)"
        self.store.append(
            self.task, self.mapping, record.workload.mod, record.trace, run_secs,
            record.target, record.args_info,
            latency_us=statistics.median(valid) * 1e6 if valid else None, error=error)

    def get_top_k(self, workload: ms.database.Workload, top_k: int) -> list:
        if top_k < 0:
            raise ValueError("top_k must be non-negative")
        indices = self.store.workload_indices(workload.mod)
        candidates = [r for r in self._scope() if r.workload in indices
                      and formats.meta_schedule_valid(r.tuning_record_json())]
        candidates.sort(key=lambda r: formats.mean_run_secs(r.run_secs))  # stable: file order
        out = []
        for record in candidates:
            if len(out) == top_k:
                break
            if (tuning := self._tuning_record(record, workload)) is not None:
                out.append(tuning)
        return out

    def get_all_tuning_records(self) -> list:
        out = []
        for record in self._scope():
            try:
                workload = self._workload(record.workload)
            except KeyError as exc:
                warnings.warn(f"record on line {record.line} skipped: {exc}", stacklevel=2)
                continue
            if (tuning := self._tuning_record(record, workload)) is not None:
                out.append(tuning)
        return out

    def __len__(self) -> int:
        return len(self._scope())

    def _tuning_record(self, record: Record, workload) -> ms.database.TuningRecord | None:
        try:
            return ms.database.TuningRecord.from_json(record.tuning_record_json(), workload)
        except Exception as exc:  # a trace that no longer replays (TVM changed): skip it
            warnings.warn(f"{self.store.records_path}:{record.line}: trace does not replay: "
                          f"{first_line(exc)}", CorruptLineWarning, stacklevel=2)
            return None
