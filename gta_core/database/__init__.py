"""Tuning records: MetaSchedule-compatible JSON lines, crash-safe, shared, resumable.

:class:`RecordStore` is the store; ``store.metaschedule_view(task)`` is the
MetaSchedule ``Database`` over it (:mod:`gta_core.database.view`, which imports
TVM). Reading records needs no TVM import.
"""

from .formats import trace_key
from .lines import CorruptLineWarning, RecordWriteError
from .records import Record, RecordStore

__all__ = ["CorruptLineWarning", "Record", "RecordStore", "RecordWriteError", "trace_key"]
