"""MetaSchedule's own JSONDatabase files, as ``ms.tune_tir(..., work_dir=DIR)`` writes them.

MetaSchedule's loader stops at the first line it cannot parse, so a binary-garbage line
(a disk error, a stray write) would end every later run on that directory. Before
MetaSchedule opens the files, :func:`repair` drops every line that is not a well-formed
entry, with a warning naming ``file:line``, and renumbers the records' workload indices
past a dropped workload line; the rest loads and tuning resumes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .lines import read_json_lines, warn_line

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def workloads(directory: Path) -> list[tuple[int, Any]]:
    """The readable lines of DIR's workload file: ``[(line_number, entry), ...]``."""
    path = directory / WORKLOADS
    return [(n, e) for n, e in read_json_lines(path) if _entry(path, n, e, _is_workload)]


def records(directory: Path) -> list[tuple[int, Any]]:
    """The readable lines of DIR's record file: ``[(line_number, [index, record]), ...]``."""
    path = directory / RECORDS
    return [(n, e) for n, e in read_json_lines(path) if _entry(path, n, e, _is_record)]


def repair(directory: Path) -> None:
    """Rewrite DIR's two files without their unreadable lines (each named in a warning)."""
    kept_workloads = workloads(directory)
    old_lines = _count_lines(directory / WORKLOADS)
    # A record names its workload by its 0-based line; dropped lines shift the rest.
    new_index = {n - 1: i for i, (n, _) in enumerate(kept_workloads)}
    kept_records = []
    for number, (index, record) in records(directory):
        if index in new_index:
            kept_records.append([new_index[index], record])
        else:
            warn_line(directory / RECORDS, number, f"its workload {index} is unreadable")
    dropped_workloads = len(kept_workloads) != old_lines
    if dropped_workloads:
        _rewrite(directory / WORKLOADS, [e for _, e in kept_workloads])
    if dropped_workloads or len(kept_records) != _count_lines(directory / RECORDS):
        _rewrite(directory / RECORDS, kept_records)


def _is_workload(entry: Any) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)


def _is_record(entry: Any) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
            and isinstance(entry[1], list) and len(entry[1]) == 4)


def _entry(path: Path, number: int, entry: Any, well_formed) -> bool:
    if well_formed(entry):
        return True
    warn_line(path, number, "not a MetaSchedule database entry")
    return False


def _count_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
    except FileNotFoundError:
        return 0


def _rewrite(path: Path, entries: list[Any]) -> None:
    """Replace ``path`` with ``entries`` as JSON lines, atomically."""
    import json

    temporary = path.with_name(path.name + ".repair")
    temporary.write_text("".join(json.dumps(e) + "\n" for e in entries))
    os.replace(temporary, path)
