"""The line formats: MetaSchedule's JSONDatabase files and GTA's side file.

``workloads.json``, one line per workload, the line number (0-based) being
its index: ``["<structural hash>", "<base64 of the IRModule's JSON graph>"]``.

``records.json``, one line per measured trace:
``[<workload index>, [<trace JSON>, <run_secs or null>, <target dict or null>,
<args_info or null>]]``. MetaSchedule's loader checks both list lengths and
rejects unknown target keys, so nothing of GTA's can ride in this line.

``gta_records.json``, one line per record: ``{"key", "task", "mapping",
"latency_us", "error", "correct", "time"}``, where ``key`` is a digest of the
record line it belongs to (see :func:`record_key`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

FAILED_RUN_SECS = 1e10
"""MetaSchedule's stand-in run time for a candidate with no valid time (kMaxMeanTime)."""


def to_json(obj: Any) -> Any:
    """A TVM JSON-ish object (FFI arrays, maps, IntImm, FloatImm) as plain Python JSON.

    Booleans become 0/1, as MetaSchedule's own writer prints them, so a line
    reads the same whoever wrote it.
    """
    from tvm.tirx import FloatImm, IntImm
    from tvm_ffi import Array, Map

    def convert(obj: Any) -> Any:
        if obj is None or isinstance(obj, str):
            return None if obj is None else str(obj)
        if isinstance(obj, bool):
            return int(obj)
        if isinstance(obj, int | float):
            return obj
        if isinstance(obj, IntImm):
            return int(obj.value)
        if isinstance(obj, FloatImm):
            return float(obj.value)
        if isinstance(obj, list | tuple | Array):
            return [convert(item) for item in obj]
        if isinstance(obj, dict | Map):
            return {str(key): convert(value) for key, value in obj.items()}
        raise TypeError(f"cannot write a {type(obj).__name__} into a tuning record")

    return convert(obj)


def dumps(obj: Any) -> str:
    """Compact JSON, as MetaSchedule writes it."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def trace_json(trace: Any) -> list:
    """A ``tvm.s_tir.Trace`` (or its JSON, passed through) as MetaSchedule stores it."""
    if isinstance(trace, list):
        return trace
    return to_json(trace.as_json(remove_postproc=False))


def strip_postproc(trace: list) -> list:
    """The trace JSON without its postprocessing part, as ``as_json(remove_postproc=True)``."""
    insts, decisions = trace
    end = next((i for i, inst in enumerate(insts) if inst[0] == "EnterPostproc"), len(insts))
    return [insts[:end], [d for d in decisions if d[0] < end]]


def trace_key(trace: Any) -> str:
    """The key under which a trace counts as measured: a digest of its JSON sans postprocs.

    Postprocessors are deterministic given the rest of the trace, so a
    candidate is recognised whether or not they have been applied to it yet.
    """
    return _digest(strip_postproc(trace_json(trace)))


def record_key(line: list) -> str:
    """The key joining a record line to its side-file line: a digest of the whole line."""
    return _digest(line)


def normalize_mod(mod: Any) -> Any:
    """The IRModule MetaSchedule tunes for ``mod`` (a PrimFunc or an IRModule).

    A PrimFunc gains ``global_symbol`` and ``tirx.noalias`` attributes, which
    change its structural hash: records committed for the normalised module
    are the ones ``compile_tir(db, prim_func, target)`` finds.
    """
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    return _normalize_mod(mod)


def structural_hash(mod: Any) -> str:
    """The structural hash JSONDatabase keys a workload by, as the decimal string it writes."""
    import tvm_ffi

    return str(tvm_ffi.structural_hash(mod) % 2**64)


def workload_json(mod: Any) -> list[str]:
    """The workloads.json entry for a normalised IRModule."""
    from tvm.s_tir import meta_schedule as ms

    return to_json(ms.database.Workload(mod).as_json())


def target_json(target: Any) -> dict | None:
    """A target (``tvm.target.Target`` or its dict form) as the config MetaSchedule writes.

    A dict goes through ``Target`` too: one bad key would make MetaSchedule
    refuse the whole records file.
    """
    if target is None:
        return None
    if isinstance(target, dict):
        return json.loads(_target_config(dumps(target)))
    return to_json(target.export())


@functools.lru_cache(maxsize=64)
def _target_config(target: str) -> str:
    import tvm

    return dumps(to_json(tvm.target.Target(json.loads(target)).export()))


def args_info_json(args_info: Sequence[Any] | None) -> list | None:
    """``ArgInfo`` objects or their JSON, as MetaSchedule writes them (JSON is checked)."""
    if args_info is None:
        return None
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    return [to_json((ArgInfo.from_json(info) if isinstance(info, list) else info).as_json())
            for info in args_info]


def check_workload_line(obj: Any) -> str:
    """The structural hash of a workloads.json entry; ValueError if it is malformed."""
    if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)
            and obj[0].isdigit()):
        raise ValueError('expected ["<structural hash>", "<base64 module>"]')
    return obj[0]


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
        for x in value)


def check_record_line(obj: Any) -> None:
    """ValueError naming what is wrong if ``obj`` is not a records.json entry."""
    if not (isinstance(obj, list) and len(obj) == 2):
        raise ValueError("expected [workload_index, tuning_record]")
    index, inner = obj
    if not (isinstance(index, int) and not isinstance(index, bool) and index >= 0):
        raise ValueError(f"workload index {index!r} is not a non-negative integer")
    if not (isinstance(inner, list) and len(inner) == 4):
        raise ValueError("expected tuning_record = [trace, run_secs, target, args_info]")
    trace, run_secs, target, args_info = inner
    if not (isinstance(trace, list) and len(trace) == 2
            and all(isinstance(part, list) for part in trace)
            and all(isinstance(inst, list) and inst for inst in trace[0])
            and all(isinstance(d, list) and len(d) == 2 for d in trace[1])):
        raise ValueError("trace is not [instructions, decisions]")
    if run_secs is not None and not _numbers(run_secs):
        raise ValueError("run_secs is not a list of finite numbers")
    if target is not None and not isinstance(target, dict):
        raise ValueError("target is not a dict")
    if args_info is not None and not isinstance(args_info, list):
        raise ValueError("args_info is not a list")


_SIDE_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,), "mapping": (str,), "latency_us": (int, float), "error": (str,),
    "correct": (bool,), "time": (int, float),
}


def check_side_line(obj: Any) -> None:
    """ValueError naming what is wrong if ``obj`` is not a gta_records.json entry."""
    if not (isinstance(obj, dict) and isinstance(obj.get("key"), str)):
        raise ValueError('expected an object with a "key"')
    for name, types in _SIDE_TYPES.items():
        value = obj.get(name)
        if value is not None and (not isinstance(value, types)
                                  or (bool not in types and isinstance(value, bool))):
            raise ValueError(f"{name} is {value!r}")


def meta_schedule_valid(inner: list) -> bool:
    """Whether MetaSchedule counts a tuning record as valid (TuningRecordNode::IsValid)."""
    trace, run_secs = inner[0], inner[1]
    if not strip_postproc(trace)[0]:
        return False
    return bool(run_secs) and any(s != FAILED_RUN_SECS for s in run_secs)


def mean_run_secs(run_secs: list[float] | None) -> float:
    """The sort key MetaSchedule ranks records by (SortTuningRecordByMeanRunSecs)."""
    if not run_secs:
        return FAILED_RUN_SECS
    return sum(run_secs) / len(run_secs)
