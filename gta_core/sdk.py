"""The plugin SDK: the one module a GTA plugin imports.

Everything a target plugin, rule pack or cost-model plugin needs is here, and
only what is here is promised: a name that is not in ``__all__`` may change in
any release. Names are imported on first use, so ``from gta_core.sdk import
hookimpl`` does not import TVM (plugins load at every command, even ``gta
plugins``)::

    from gta_core.sdk import GenerationRule, ScheduleContext, hookimpl

    GTA_API_VERSION = "1.0"   # the SDK this plugin was written for (optional)

    class MyRule(GenerationRule):
        \"\"\"What it does, for `gta plugins -v` and the reports.\"\"\"
        name = "my-rule"
        ...

    @hookimpl
    def gta_register_rules(register):
        register(MyRule())

:data:`API_VERSION` is ``MAJOR.MINOR``. A plugin that declares
``GTA_API_VERSION`` in its entry-point module loads when the major versions
are equal and the core's minor is at least the plugin's; otherwise the loader
names it and skips it (``gta plugins`` shows why).
"""

from __future__ import annotations

import importlib
from typing import Any

API_VERSION = "1.2"

# name -> module it lives in (relative to gta_core); imported lazily by __getattr__.
_NAMES = {
    # hooks
    "hookimpl": "hookspecs",
    # declared data: targets, intrinsics, mappings, measurements
    "Target": "models", "TargetArch": "models", "Resources": "models",
    "Intrinsic": "models", "IntrinsicCompute": "models", "IterVar": "models",
    "Operand": "models", "MappingCandidate": "models", "PeakMeasurement": "models",
    "PeakSkipped": "models", "index_variables": "models",
    # operators and workloads
    "Operator": "workloads", "OperatorParams": "workloads", "TensorInfo": "workloads",
    "ShapeError": "workloads", "Workload": "workloads",
    # program generation and pruning
    "GenerationRule": "generation", "ScheduleContext": "generation",
    "TILE_LEVELS": "generation.rule", "Constraint": "pruning",
    "CostModelEntry": "cost_model",
    # analyses a rule, constraint or enumerator reads
    "Computation": "mapping.access", "intrinsic_computation": "mapping.access",
    "workload_computation": "mapping.access", "enumerate_mappings": "mapping.enumerate",
    "needs_signed": "mapping.rewrite", "signed_form": "mapping.rewrite",
    "stage_role": "mapping.stages", "movable_stages": "generation.cpu",
    "TiledLoop": "pruning.cpu", "tiled_loops": "pruning.cpu",
    "child_statements": "pruning.cpu",
    "parallel_extent": "pruning.cpu",
    # realisation: what a target's own realisation module (Target.realisation) builds on
    "RealisationError": "mapping.stages", "Realised": "mapping.realise",
    "Reshaped": "mapping.realise", "reshape": "mapping.realise",
    "realisation_step": "mapping.realise", "ensure_registered": "mapping.realise",
    "program_for": "mapping.rewrite",
    # building a program as GTA builds it (its fast math, config and the target's pipeline)
    "build": "measure.check", "runnable": "measure.check",
    # peaks: the generic kernel gta peak falls back on, and the thread pool a peak runs on
    "measure_generic_peak": "measure.generic_peak", "with_threads": "measure.generic_peak",
    "calibrated_trips": "measure.generic_peak", "run_seconds": "measure.generic_peak",
    # host probes
    "cpu_cores": "host", "cpu_flags": "host", "cpu_vendor": "host", "cpu_cache_bytes": "host",
    "cannot_run": "host", "HostCannotRun": "host",
    # the conformance kit
    "check_plugin": "conformance", "ConformanceError": "conformance",
}

__all__ = ["API_VERSION", "compatible", *_NAMES]


def compatible(declared: str) -> str | None:
    """Why a plugin written for SDK ``declared`` cannot load on this core, or None if it can."""
    try:
        major, minor = (int(part) for part in str(declared).split("."))
    except ValueError:
        return (f"GTA_API_VERSION {declared!r} is not MAJOR.MINOR (this core provides "
                f"{API_VERSION})")
    core_major, core_minor = (int(part) for part in API_VERSION.split("."))
    if major != core_major or minor > core_minor:
        return (f"written for GTA plugin API {declared}; this core provides {API_VERSION} "
                f"(loads plugins for {core_major}.0 to {API_VERSION})")
    return None


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'gta_core.sdk' has no attribute {name!r}; the SDK "
                             "promises only the names in gta_core.sdk.__all__")
    value = getattr(importlib.import_module(f"gta_core.{_NAMES[name]}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
